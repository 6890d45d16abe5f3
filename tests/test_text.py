"""The fast vectorizer must give exactly what Keras TextVectorization gives, and tokens must be safe."""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewlens.text import OOV_TOKEN, SPACE_LIKE, BagOfWords, standardize, tokenize
from reviewlens.text.keras import standardize as tf_standardize
from reviewlens.text.keras import text_vectorization
from reviewlens.text.words import _KeyIndex

from .conftest import TRAP, make_review

LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = [make_review(rng, i % 2) for i in range(n)]
    texts[0] += " " + " ".join(TRAP) + " ÀÉÎ Straße ǅ"  # non-ASCII capitals stay as they are
    texts[1] = ""  # an empty review
    texts[2] = "!!! ... ???"  # only punctuation
    return texts


def keras_vectorizer(texts: list[str], standardize_fn: object, **kwargs: object) -> keras.layers.TextVectorization:
    layer = keras.layers.TextVectorization(standardize=standardize_fn, **kwargs)
    layer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(64))
    return layer


def test_space_like_is_every_python_whitespace_but_the_space() -> None:
    every = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert set(SPACE_LIKE) == every - {" "}
    assert set(LINE_BREAKS) <= set(SPACE_LIKE)


def test_standardize_lowercases_ascii_only_and_strips_punctuation() -> None:
    assert standardize("Hello, WORLD! Café ÀB") == "hello world café Àb"
    assert standardize("x\u0085y\u2028z\u00a0w") == "x y z w"
    assert tokenize("It's   <br />great!!") == ["its", "br", "great"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list(LINE_BREAKS + SPACE_LIKE))))
def test_no_token_can_break_a_vocabulary_file(text: str) -> None:
    for token in tokenize(text):
        assert token
        assert token.splitlines() == [token]
        assert not any(c.isspace() for c in token)


@pytest.mark.parametrize(
    ("output_mode", "ngrams", "max_tokens"),
    [("multi_hot", 2, 150), ("multi_hot", 1, None), ("count", 1, 60), ("tf_idf", 2, 200), ("count", 3, 300)],
)
def test_bag_of_words_equals_text_vectorization(output_mode: str, ngrams: int, max_tokens: int | None) -> None:
    train, test = corpus(300, seed=1), corpus(120, seed=2)
    ours = BagOfWords(max_tokens=max_tokens, ngrams=ngrams, output_mode=output_mode)  # type: ignore[arg-type]
    ours_train = ours.fit_transform(train).toarray()
    layer = keras_vectorizer(
        train, tf_standardize, max_tokens=max_tokens, ngrams=ngrams if ngrams > 1 else None, output_mode=output_mode
    )
    assert ours.vocabulary == layer.get_vocabulary()
    np.testing.assert_allclose(ours_train, layer(tf.constant(train)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.transform(test).toarray(), layer(tf.constant(test)).numpy(), rtol=1e-6)
    rebuilt = text_vectorization(ours)  # the layer the saved model carries
    np.testing.assert_allclose(rebuilt(tf.constant(test)).numpy(), ours.transform(test).toarray(), rtol=1e-6)


def test_equals_the_books_default_standardization_where_no_unsafe_character_occurs() -> None:
    train = [t for t in corpus(200, seed=3) if not any(c in SPACE_LIKE for c in t)]
    ours = BagOfWords(max_tokens=100, ngrams=2)
    vectors = ours.fit_transform(train).toarray()
    book = keras_vectorizer(train, "lower_and_strip_punctuation", max_tokens=100, ngrams=2, output_mode="multi_hot")
    assert ours.vocabulary == book.get_vocabulary()
    np.testing.assert_array_equal(vectors, book(tf.constant(train)).numpy())


def test_ties_are_broken_like_keras_count_then_token_descending() -> None:
    texts = ["b a", "a b", "c", "d d"]  # counts: a 2, b 2, d 2, c 1
    ours = BagOfWords(max_tokens=3, output_mode="count")
    ours.fit_transform(texts)
    assert ours.vocabulary == [OOV_TOKEN, "d", "b"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="ab cD.\u0085", max_size=12), min_size=1, max_size=12), st.integers(1, 3))
def test_fit_transform_equals_transform_after_fit(texts: list[str], ngrams: int) -> None:
    ours = BagOfWords(max_tokens=6, ngrams=ngrams, output_mode="count")
    fitted = ours.fit_transform(texts).toarray()
    np.testing.assert_array_equal(fitted, ours.transform(texts).toarray())
    # Every term occurrence lands in some column, the OOV column included.
    expected = [sum(max(len(tokenize(t)) - n + 1, 0) for n in range(1, ngrams + 1)) for t in texts]
    np.testing.assert_array_equal(fitted.sum(axis=1), expected)


def test_config_round_trip_keeps_vectors() -> None:
    texts = corpus(100, seed=4)
    ours = BagOfWords(max_tokens=80, ngrams=2, output_mode="tf_idf")
    vectors = ours.fit_transform(texts)
    again = BagOfWords.from_config(ours.get_config())
    np.testing.assert_array_equal(again.transform(texts).toarray(), vectors.toarray())


def test_transform_before_fit_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no vocabulary"):
        BagOfWords().transform(["text"])


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 2**40), max_size=300), st.lists(st.integers(-1, 2**40), max_size=200))
def test_key_index_finds_each_key_and_nothing_else(keys: set[int], others: list[int]) -> None:
    ordered = np.array(sorted(keys, key=lambda k: (k * 7919) % 1009), np.int64)  # any order: the index is positional
    index = _KeyIndex(ordered)
    queries = np.array(list(ordered) + others, np.int64)
    position = {int(k): i for i, k in enumerate(ordered)}
    np.testing.assert_array_equal(index.find(queries), [position.get(int(q), -1) for q in queries])


def test_no_row_repeats_a_column() -> None:
    # The explanations read each row's (column, value) pairs: a repeated column would count a term twice.
    texts = ["good good good film film", "bad bad", "", "good film good film"]
    for mode in ("multi_hot", "count"):
        matrix = BagOfWords(max_tokens=None, ngrams=2, output_mode=mode).fit_transform(texts)  # type: ignore[arg-type]
        for row in range(matrix.shape[0]):
            columns = matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]]
            assert len(set(columns.tolist())) == len(columns)
    assert matrix[0].sum() == 9  # count mode: 5 unigrams and 4 bigrams


def test_a_nul_inside_a_text_is_a_space_in_numpy_and_keras_alike() -> None:
    # NumPy's string arrays drop trailing NULs: a token "great\x00" would be saved as "great", a second time.
    texts = [t + (" great\x00 film" if i % 10 == 0 else " great film") for i, t in enumerate(corpus(300, seed=4))]
    ours = BagOfWords(max_tokens=500, ngrams=2)
    vectors = ours.fit_transform(texts).toarray()
    assert len(set(ours.vocabulary)) == len(ours.vocabulary) and not any("\x00" in t for t in ours.vocabulary)
    assert tokenize("great\x00film\x00") == ["great", "film"]
    rebuilt = text_vectorization(ours)  # the layer an exported model carries: its vocabulary loads
    np.testing.assert_allclose(rebuilt(tf.constant(texts)).numpy(), vectors, rtol=1e-6)
