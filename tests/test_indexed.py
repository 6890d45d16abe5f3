"""The pre-indexed IMDB format: equal to keras.datasets.imdb.load_data, derived from aclImdb, safe to read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reviewlens.data import Dataset, decode_review, load_indexed, vectorize_sequences
from reviewlens.data import indexed as indexed_module
from reviewlens.errors import ReviewlensError
from reviewlens.text import tokenize


def _objects(lists: list[list[int]]) -> np.ndarray:
    array = np.empty(len(lists), dtype=object)
    array[:] = lists
    return array


@pytest.fixture
def keras_files(tmp_path: Path) -> Path:
    """An imdb.npz and imdb_word_index.json in Keras' layout: raw ranks, no start, no offset."""
    rng = np.random.default_rng(5)
    splits = {s: [rng.integers(1, 60, size=rng.integers(1, 40)).tolist() for _ in range(50)] for s in ("train", "test")}
    path = tmp_path / "imdb.npz"
    np.savez(
        path,
        x_train=_objects(splits["train"]),
        y_train=rng.integers(0, 2, 50),
        x_test=_objects(splits["test"]),
        y_test=rng.integers(0, 2, 50),
    )
    (tmp_path / "imdb_word_index.json").write_text(json.dumps({f"word{r}": r for r in range(1, 60)}))
    return path


@pytest.mark.parametrize(
    "kwargs", [{}, {"num_words": 20}, {"num_words": None, "maxlen": 25}, {"num_words": 30, "skip_top": 5, "seed": 3}]
)
def test_an_npz_loads_exactly_as_keras_loads_it(
    keras_files: Path, kwargs: dict[str, int | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from keras.src.datasets import imdb

    monkeypatch.setattr(imdb, "get_file", lambda *args, **kw: str(keras_files))  # no download
    expected = imdb.load_data(**{"num_words": 10000, **kwargs})
    got = load_indexed(keras_files, **kwargs)  # type: ignore[arg-type]
    for (x_want, y_want), (x_got, y_got) in zip(expected, got, strict=True):
        assert x_got.dtype == object and [list(x) for x in x_got] == [list(x) for x in x_want]
        np.testing.assert_array_equal(y_got, y_want)
    first = got[0][0][0]
    assert decode_review(first).split() == ["?"] + [f"word{w - 3}" if w > 2 else "?" for w in first[1:]]


def test_derived_from_aclimdb_ranks_words_by_frequency(aclimdb: Path) -> None:
    (x_train, y_train), (x_test, y_test) = load_indexed(aclimdb, num_words=10**6)
    dataset = Dataset(aclimdb)
    train_texts = dataset.read("train")[0] + dataset.read("validation")[0]
    assert len(x_train) == len(train_texts) and len(x_test) == len(dataset.read("test")[0])
    assert set(y_train.tolist()) == set(y_test.tolist()) == {0, 1}
    counts: dict[str, int] = {}
    for text in train_texts:
        for token in tokenize(text):
            counts[token] = counts.get(token, 0) + 1
    most = max(counts.items(), key=lambda item: (item[1], item[0]))[0]
    assert decode_review([4]) == most  # rank 1 is index 4
    # Every train review decodes to its tokens, after the start marker.
    decoded = {decode_review(x) for x in x_train}
    assert {"? " + " ".join(tokenize(text)) for text in train_texts} == decoded
    assert all(x[0] == 1 and min(x[1:], default=3) >= 3 for x in x_train)


def test_num_words_caps_the_indices_and_marks_the_rest_out_of_vocabulary(aclimdb: Path) -> None:
    (x_train, _), (x_test, _) = load_indexed(aclimdb, num_words=12)
    every = [w for x in [*x_train, *x_test] for w in x]
    assert max(every) == 11 and 2 in every
    multi_hot = vectorize_sequences(x_train, dimension=12)
    assert multi_hot.shape == (len(x_train), 12) and multi_hot.dtype == np.float32
    book = np.zeros((len(x_train), 12))
    for i, sequence in enumerate(x_train):  # the book's loop
        for j in sequence:
            book[i, j] = 1.0
    np.testing.assert_array_equal(multi_hot, book)
    with pytest.raises(ValueError, match="num_words=5"):
        vectorize_sequences(x_train, dimension=5)


def test_decode_review_needs_a_word_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexed_module, "_last_word_index", None)
    with pytest.raises(ReviewlensError, match="call load_indexed first"):
        decode_review([1, 4])
    assert decode_review([1, 4, 2, 5], {"good": 1, "film": 2}) == "? good ? film"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip archive", "is not a keras.datasets.imdb file"),
        (None, "is not a keras.datasets.imdb file"),  # a zip without the arrays
    ],
)
def test_a_file_that_is_not_imdb_npz_is_a_user_error(content: bytes | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "imdb.npz"
    if content is None:
        np.savez(path, other=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ReviewlensError, match=message):
        load_indexed(path)
    with pytest.raises(ReviewlensError, match="does not exist"):
        load_indexed(tmp_path / "missing.npz")


def test_an_npz_that_unpickles_anything_but_arrays_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "imdb.npz"
    hostile = _objects([[1, 2]])
    hostile[0] = Path("/etc/passwd")  # pickled as pathlib.PosixPath: a global that is not NumPy's
    np.savez(path, x_train=hostile, y_train=np.zeros(1), x_test=_objects([[1]]), y_test=np.zeros(1))
    with pytest.raises(ReviewlensError, match="pathlib"):
        load_indexed(path)


def test_dense_10k_vectors_are_the_books_vectorize_sequences(aclimdb: Path) -> None:
    # The book feeds vectorize_sequences(load_data(num_words=N)); dense-10k's vectorizer keeps the N - 4
    # words ranked 1..N-4 (indices 4..N-1) and an OOV column: the same matrix without the constant
    # start column 1 and the never-set columns 0 and 3.
    from reviewlens.recipes import get_recipe
    from reviewlens.text import BagOfWords

    words = 12
    (x_train, _), _ = load_indexed(aclimdb, num_words=words)
    book = vectorize_sequences(x_train, dimension=words)
    dataset = Dataset(aclimdb)
    texts = dataset.read("train")[0] + dataset.read("validation")[0]
    order = np.arange(len(texts))
    np.random.RandomState(113).shuffle(order)  # load_data's shuffle
    ours = BagOfWords(max_tokens=words - 3).fit_transform([texts[i] for i in order]).toarray()
    np.testing.assert_array_equal(book[:, 4:], ours[:, 1:])
    np.testing.assert_array_equal(book[:, 2], ours[:, 0])  # out-of-vocabulary words present
    assert (book[:, 1] == 1).all() and not book[:, [0, 3]].any()
    assert get_recipe("dense-10k").vectorizer["max_tokens"] == 10000 - 3
