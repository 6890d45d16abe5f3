"""The standardization every model reads its text by: the one definition of a token.

Two standardizations: ``lower_and_strip_punctuation`` (the book's, the default) and
``lower_and_split_punctuation`` (HTML line breaks removed, each ASCII punctuation character a token of
its own: "!" and "?" carry sentiment, and the linear recipes use them). Both have one change that
makes every token safe to save: each whitespace or line-break character that TextVectorization would keep inside
a token (U+0085, U+00A0, U+2028, ... and the ASCII controls 0x1C-0x1F), and NUL, becomes a space. Keras saves
a vocabulary as lines of text and reads it back with ``str.splitlines()``; without this change a
token holding U+0085 splits in two on load and the model no longer loads. ``reviewlens.text.keras`` holds the
same rules as TensorFlow ops, and ``reviewlens.text.arrow`` as Arrow compute kernels.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Literal

#: Every character ``str.isspace()`` accepts except the plain space; it includes all the characters
#: ``str.splitlines()`` breaks on. The standardization turns each into a space.
SPACE_LIKE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: What the standardization turns into a space: ``SPACE_LIKE`` and NUL, which NumPy's string arrays drop at the
#: end of a string (a token "great\x00" would be saved as "great", a second time, and the vocabulary refused).
SEPARATORS = SPACE_LIKE + "\x00"
#: The same characters Keras' default standardization strips (its DEFAULT_STRIP_REGEX).
PUNCTUATION = string.punctuation

_NON_ASCII_SPACE = re.compile("[" + "".join(c for c in SPACE_LIKE if ord(c) > 127) + "]")
_SURROGATE = re.compile("[\ud800-\udfff]")


#: Why a blank text in a batch has no score (the service's batch answers, ``reviewlens predict --json``).
EMPTY_TEXT: Literal["empty text"] = "empty text"


def is_blank(text: str) -> bool:
    """Whether ``text`` is empty or holds only whitespace (``str.isspace``: a space or ``SPACE_LIKE``)."""
    return not text.strip()


def valid_text(text: str) -> str:
    """``text`` as valid Unicode, what every model reads: bytes that were not UTF-8 and reached Python as lone
    surrogates (``surrogateescape``: command-line arguments, stdin) become U+FFFD each, as reading the same
    bytes from a file with replacement gives; any other lone surrogate becomes U+FFFD too. Valid text is
    returned as is, at the cost of one check."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def _byte_table() -> bytes:
    table = bytearray(range(256))
    for char in string.ascii_uppercase:  # TextVectorization lowercases ASCII letters only
        table[ord(char)] = ord(char.lower())
    for char in SEPARATORS:
        if ord(char) < 128:
            table[ord(char)] = ord(" ")
    return bytes(table)


_BYTE_TABLE = _byte_table()
_PUNCTUATION_BYTES = PUNCTUATION.encode("ascii")


def _standardized_bytes(text: str) -> bytes:
    # UTF-8 never puts an ASCII byte inside a multi-byte character, so byte-level ASCII
    # lowercasing and punctuation deletion are exactly the character-level operations.
    if not text.isascii():  # valid first: bytes that were not UTF-8 may decode to a space-like character
        text = _NON_ASCII_SPACE.sub(" ", valid_text(text))
    return text.encode("utf-8").translate(_BYTE_TABLE, _PUNCTUATION_BYTES)


def re2_class(characters: str) -> str:
    """An RE2 character class of exactly ``characters``, each written as its code point: the one builder of the
    classes the Arrow kernels and the Keras layers standardize with."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in characters) + "]"


#: ``SEPARATORS`` and ``PUNCTUATION`` as RE2 classes.
SEPARATOR_CLASS = re2_class(SEPARATORS)
PUNCTUATION_CLASS = re2_class(PUNCTUATION)


#: An HTML line break, as lower_and_split_punctuation removes it: after lowercasing, when every other space-like
#: character is a space. The same pattern in Python's ``re`` and in RE2 (``reviewlens.text.arrow``).
LINE_BREAK_PATTERN = "<br */?>"
_LINE_BREAK = re.compile(LINE_BREAK_PATTERN.encode("ascii"))
_SPACED_PUNCTUATION = [(bytes([byte]), b" %c " % byte) for byte in PUNCTUATION.encode("ascii")]


def _split_punctuation(standardized: bytes) -> list[bytes]:
    """lower_and_split_punctuation's tokens: each punctuation byte apart, then split on spaces (one
    ``bytes.replace`` per punctuation character is twice as fast as a regular expression's findall)."""
    for character, spaced in _SPACED_PUNCTUATION:
        standardized = standardized.replace(character, spaced)
    return standardized.split()


def _spaced_bytes(text: str) -> bytes:
    # Lowercased and spaced as above, punctuation kept, <br /> removed: split by _split_punctuation.
    if not text.isascii():
        text = _NON_ASCII_SPACE.sub(" ", valid_text(text))
    return _LINE_BREAK.sub(b" ", text.encode("utf-8").translate(_BYTE_TABLE))


Standardization = Literal["lower_and_strip_punctuation", "lower_and_split_punctuation"]
#: Per standardization: how one text is standardized, and how standardized bytes split into tokens.
STANDARDIZATIONS: dict[str, tuple[Callable[[str], bytes], Callable[[bytes], list[bytes]]]] = {
    "lower_and_strip_punctuation": (_standardized_bytes, bytes.split),
    "lower_and_split_punctuation": (_spaced_bytes, _split_punctuation),
}


def standardize(text: str, standardization: Standardization = "lower_and_strip_punctuation") -> str:
    """Lowercase ASCII letters, turn every kind of whitespace into a space, and strip ASCII punctuation
    (``lower_and_strip_punctuation``) or remove ``<br />`` and set each punctuation character apart
    (``lower_and_split_punctuation``, whose tokens this joins with spaces)."""
    if standardization == "lower_and_strip_punctuation":
        return _standardized_bytes(text).decode("utf-8")
    return " ".join(tokenize(text, standardization))


def tokenize(text: str, standardization: Standardization = "lower_and_strip_punctuation") -> list[str]:
    """Standardize ``text`` and split it into tokens, as the recipes' TextVectorization does."""
    standardized, split = STANDARDIZATIONS[standardization]
    return [token.decode("utf-8") for token in split(standardized(text))]
