"""The bag-of-words standardization and split as Arrow compute kernels: whole arrays of texts to token ids.

``reviewlens.text`` states the rules once in Python (``SEPARATORS``, ``PUNCTUATION``, the ``<br />`` pattern) and
fits vocabularies with them; this module applies the same rules with ``pyarrow.compute``, a kernel call per
step for a whole batch of texts, no Python loop per review. It is exact, not an approximation: every step works
on UTF-8 bytes or on explicit sets of code points, as the Python path does.

- ``ascii_lower`` lowercases ASCII letters only, as ``text._BYTE_TABLE`` does (TextVectorization's
  ``tf.strings.lower`` does the same); no Unicode case folding happens on either path.
- The characters turned into spaces and the punctuation removed are RE2 classes of the very code points of
  ``SEPARATORS`` and ``PUNCTUATION`` (written ``\\x{...}``, so no RE2 or Python regex rule is involved).
- After that the only whitespace left is the space, which ``ascii_split_whitespace`` and ``bytes.split``
  both split on.

The one kind of text Arrow cannot hold is a Python string with a lone surrogate (not UTF-8): such texts are
made valid with ``text.valid_text`` first, as the Python path encodes them. ``tests/test_arrow_text.py`` checks
the two paths give the same token ids on generated text full of trap characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reviewlens.text.rules import LINE_BREAK_PATTERN, PUNCTUATION_CLASS, SEPARATOR_CLASS, Standardization, valid_text


def to_arrow(texts: Sequence[str]) -> pa.StringArray:
    """``texts`` as an Arrow array; a text with a lone surrogate is made valid UTF-8 (``valid_text``) first."""
    try:
        return pa.array(texts, pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):
        return pa.array([valid_text(text) for text in texts], pa.string())


def tokens(texts: pa.Array, standardization: Standardization) -> pa.ListArray:
    """Each text's tokens, standardized and split as ``reviewlens.text.tokenize`` does: a list per text."""
    standardized = pc.replace_substring_regex(pc.ascii_lower(texts), SEPARATOR_CLASS, " ")
    if standardization == "lower_and_strip_punctuation":
        standardized = pc.replace_substring_regex(standardized, PUNCTUATION_CLASS + "+", "")  # runs: fewer edits
    else:  # lower_and_split_punctuation: <br /> removed, each punctuation character a token of its own
        standardized = pc.replace_substring_regex(standardized, LINE_BREAK_PATTERN, " ")
        standardized = pc.replace_substring_regex(standardized, f"({PUNCTUATION_CLASS})", r" \1 ")
    return pc.ascii_split_whitespace(standardized)  # a space at either end leaves an empty token there


def token_ids(texts: pa.Array, standardization: Standardization, unigrams: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The id of every token of ``texts`` (its index in ``unigrams``, -1 for any other) and the text it is in.

    ``text._token_ids`` with a ``_NgramTables.lookup``, for a whole Arrow array at once: both int64, in order.
    """
    split = tokens(texts, standardization)
    flat, doc = pc.list_flatten(split), pc.list_parent_indices(split)
    present = pc.not_equal(pc.binary_length(flat), 0)
    flat, doc = flat.filter(present), doc.filter(present)
    ids = pc.fill_null(pc.index_in(flat, value_set=unigrams), -1)
    return ids.to_numpy().astype(np.int64, copy=False), doc.to_numpy().astype(np.int64, copy=False)
