"""The Arrow-kernel tokenizer gives exactly the Python tokenizer's tokens and vectors, trap characters included."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewlens.text import CHUNK, PUNCTUATION, SEPARATORS, BagOfWords, Standardization, tokenize
from reviewlens.text import arrow as arrow_text
from reviewlens.text.words import _token_ids

from .conftest import TRAP, make_review

STANDARDIZATIONS: tuple[Standardization, ...] = ("lower_and_strip_punctuation", "lower_and_split_punctuation")
#: Characters where Arrow and Python could part ways: every separator, punctuation, <br />, non-ASCII letters
#: with case (Unicode lowercasing must not happen), Unicode spaces Python's str.split knows and bytes.split
#: does not, a combining mark, U+FFFD, and text of several bytes per character.
TRAPS = [*SEPARATORS, *PUNCTUATION, "<br />", "<BR/>", "<br  >", "É", "ß", "ǅ", "İ", "Σ", "ﬃ", "\u0301", "\ufffd",
         "日本", "😀", " ", "a", "Z", "9"]  # fmt: skip
trap_text = st.lists(st.sampled_from(TRAPS) | st.text(max_size=4), max_size=30).map("".join)
#: Lone surrogates cannot be UTF-8; Python strings can hold them (as command-line arguments read with
#: surrogateescape do), and both paths must read them the same way.
any_text = trap_text | st.text(alphabet=st.characters(codec="utf-8") | st.characters(categories=["Cs"]), max_size=40)


def python_ids(texts: list[str], standardization: Standardization, bow: BagOfWords) -> tuple[np.ndarray, np.ndarray]:
    """The Python tokenizer's ids (``text._token_ids``), the reference the Arrow path must equal."""
    tables = bow._fitted_tables()
    return _token_ids(texts, tables.lookup, standardization)


def fitted(standardization: Standardization, ngrams: int = 2, output_mode: str = "count") -> BagOfWords:
    rng = random.Random(5)
    train = [make_review(rng, i % 2) for i in range(200)] + [" ".join(TRAP), "É é ß İ i̇ don't <br />it's"]
    return BagOfWords(max_tokens=400, ngrams=ngrams, output_mode=output_mode, standardize=standardization).fit(  # type: ignore[arg-type]
        train
    )


BAGS = {standardization: fitted(standardization) for standardization in STANDARDIZATIONS}


@pytest.mark.parametrize("standardization", STANDARDIZATIONS)
@settings(max_examples=300, deadline=None)
@given(texts=st.lists(any_text, min_size=1, max_size=8))
def test_arrow_tokens_and_ids_equal_pythons(standardization: Standardization, texts: list[str]) -> None:
    arrow = arrow_text.to_arrow(texts)
    split = [[t for t in row if t] for row in arrow_text.tokens(arrow, standardization).to_pylist()]
    assert split == [tokenize(text, standardization) for text in texts]
    bow = BAGS[standardization]
    ours = arrow_text.token_ids(arrow, standardization, bow._fitted_tables().arrow_unigrams)
    for got, expected in zip(ours, python_ids(texts, standardization, bow), strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("standardization", STANDARDIZATIONS)
def test_vectors_equal_pythons_on_empty_blank_and_long_texts(standardization: Standardization) -> None:
    rng = random.Random(9)
    long_text = " ".join(make_review(rng, 1) + rng.choice(TRAPS) for _ in range(1000))  # about 170 KB
    # The bytes C2 A0 that reached Python undecoded (surrogateescape) are U+00A0 once valid: a space on both paths.
    escaped_space = "great\udcc2\udca0film"
    assert tokenize(escaped_space, standardization) == ["great", "film"]
    texts = ["", "   ", "\x85\xa0\u2028\x00", "!!!", long_text, "Great <br />movie\x00É", escaped_space, *TRAP] * 3
    bow = BagOfWords.from_config(BAGS[standardization].get_config())
    tables = bow._fitted_tables()
    expected = tables.vectorize(*python_ids(texts, standardization, bow), len(texts), len(bow.vocabulary))
    np.testing.assert_array_equal(bow.transform(texts).toarray(), expected.toarray())
    # An Arrow column (what a scorer reads) gives the same vectors as the Python strings, across chunks.
    many = texts * (CHUNK // len(texts) + 2)
    column = pa.chunked_array([arrow_text.to_arrow(many[:100]), arrow_text.to_arrow(many[100:])])
    np.testing.assert_array_equal(bow.transform(column).toarray(), bow.transform(many).toarray())
