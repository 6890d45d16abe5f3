"""Characters as model input: the tokenization layer's preprocessing, in NumPy (no TensorFlow).

The published tokenization layer reads reviews lowercased, ``<br />`` removed, ASCII punctuation stripped,
and keeps the 30 most common characters of the corpus (its *alphabet*). ``one_hot_str`` is its one-hot
encoding, a (categories, characters) matrix; the recipes feed the same information as character ids,
``CharacterEncoder.transform``: a (texts, length) int32 matrix where ``0..C-1`` are the alphabet's
categories and ``C`` (``blank``) is padding or a character outside the alphabet (an all-zero one-hot column).

An alphabet is a string of its characters; the category ``<UNK>`` may appear in it once and then stands for
every character outside the alphabet. Also here: counting character n-grams and choosing patterns from
them (``sample_grams``, the published initializer's draw; ``greedy_cover``, each new gram the one that covers
the most text not yet covered), which ``reviewlens.models.tokenization``'s initializers use.
"""

from __future__ import annotations

import heapq
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from reviewlens.text.rules import SEPARATORS

if TYPE_CHECKING:
    pass

UNK = "<UNK>"
ALPHABET_SIZE = 30
LENGTH = 2000
#: Character n-gram lengths the published max-cover initializer draws from.
GRAM_LENGTHS = tuple(range(5, 14))

#: Punctuation removed; every whitespace or line-break character and NUL a space (``reviewlens.text.SEPARATORS``): a
#: tab or a U+2028 is no character of its own and a pattern never breaks a line of the logs.
_TABLE = str.maketrans(SEPARATORS, " " * len(SEPARATORS), string.punctuation)


def standardize_characters(text: str) -> str:
    """The published preprocessing: ``<br />`` to a space, lowercase, ASCII punctuation removed; and every
    kind of whitespace a space."""
    return text.replace("<br />", " ").lower().translate(_TABLE)


def categories(chars: str) -> list[str]:
    """The one-hot categories of an alphabet string: its characters, ``<UNK>`` one category where it stands."""
    if chars.count(UNK) > 1:
        raise ValueError(f"an alphabet holds {UNK} at most once")
    before, unk, after = chars.partition(UNK)
    found = [*before, *([UNK] if unk else []), *after]
    if len(set(found)) != len(found):
        raise ValueError(f"an alphabet lists each character once: {chars!r}")
    return found


def fit_alphabet(texts: Iterable[str], size: int = ALPHABET_SIZE) -> str:
    """The ``size`` most common characters of the standardized ``texts`` (ties: the earlier character)."""
    if size < 1:
        raise ValueError(f"an alphabet needs at least one character, not {size}")
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(standardize_characters(text))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "".join(char for char, _ in ranked[:size] if char != "<")  # "<" cannot be one: it would read as <UNK>


def one_hot_str(text: str, chars: str) -> np.ndarray:
    """``text`` one-hot encoded by ``chars``: an int32 (categories, len(text)) matrix, a column per character.

    A character outside the alphabet is an all-zero column, or the ``<UNK>`` category's where the alphabet
    has one. The text is taken as it is: standardize it first (``standardize_characters``) as the models do.
    """
    cats = categories(chars)
    ids = _ids(text, _table(cats), len(cats))
    matrix = np.zeros((len(cats) + 1, len(text)), np.int32)
    matrix[ids, np.arange(len(text))] = 1
    return matrix[:-1]


class _Table(dict[int, int]):
    """``str.translate`` table to category ids; characters outside the alphabet map to ``default``."""

    def __init__(self, mapping: dict[int, int], default: int):
        super().__init__(mapping)
        self.default = default

    def __missing__(self, key: int) -> int:
        return self.default


def _table(cats: Sequence[str]) -> _Table:
    unknown = cats.index(UNK) if UNK in cats else len(cats)
    return _Table({ord(char): i for i, char in enumerate(cats) if char != UNK}, unknown)


def _ids(text: str, table: _Table, blank: int) -> np.ndarray:
    """Each character's category id (``blank`` outside the alphabet without ``<UNK>``): one ``translate``."""
    if blank >= 0xD800:
        raise ValueError("an alphabet has fewer than 55,296 categories")
    return np.frombuffer(text.translate(table).encode("utf-32-le"), np.uint32).astype(np.int32)


@dataclass
class CharacterEncoder:
    """Reviews to character ids: standardized, cut and padded to ``length``; the character family's preprocessing.

    ``drop_unknown`` removes characters outside the alphabet before cutting (the published training script
    does); otherwise each is a blank (or ``<UNK>``) position.
    """

    kind: ClassVar[str] = "characters"

    alphabet: str = ""
    length: int = LENGTH
    size: int = ALPHABET_SIZE
    drop_unknown: bool = True
    _table: _Table | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"a character length must be at least 1, not {self.length}")
        if self.alphabet:
            self._table = _table(categories(self.alphabet))

    @property
    def num_chars(self) -> int:
        """The number of categories C; id C is the blank."""
        return len(categories(self.alphabet))

    @property
    def blank(self) -> int:
        return self.num_chars

    def fit(self, texts: Iterable[str]) -> Self:
        self.alphabet = fit_alphabet(texts, self.size)
        self._table = _table(categories(self.alphabet))
        return self

    def encode(self, text: str) -> np.ndarray:
        """The ids of one review's characters, uncut (the blank for padding never appears)."""
        if self._table is None:
            raise ValueError("the character encoder has no alphabet yet: call fit()")
        ids = _ids(standardize_characters(text), self._table, self.blank)
        return ids[ids != self.blank] if self.drop_unknown else ids

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """A (texts, length) int32 matrix of ids: each review's first ``length`` characters, then blanks."""
        rows = [self.encode(text)[: self.length] for text in texts]
        matrix = np.full((len(rows), self.length), self.blank, np.int32)
        for i, row in enumerate(rows):
            matrix[i, : len(row)] = row
        return matrix

    # The preprocessing protocol's token view: a character is a token, ids from 2 (0 padding, 1 unknown).
    def tokenize(self, text: str) -> list[str]:
        return list(standardize_characters(text))

    def token_ids(self, tokens: Sequence[str]) -> list[int]:
        if self._table is None:
            raise ValueError("the character encoder has no alphabet yet: call fit()")
        return [int(_ids(token, self._table, self.blank)[0]) + 2 if token else 1 for token in tokens]

    def transform_ids(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        matrix = np.full((len(rows), self.length), self.blank, np.int32)
        for i, row in enumerate(rows):
            ids = np.asarray([t - 2 for t in row if t != 0], np.int32)
            ids = ids[(ids >= 0) & (ids != self.blank)] if self.drop_unknown else np.where(ids < 0, self.blank, ids)
            ids = ids[: self.length]
            matrix[i, : len(ids)] = ids
        return matrix

    def get_config(self) -> dict[str, Any]:
        return {"alphabet": self.alphabet, "length": self.length, "size": self.size, "drop_unknown": self.drop_unknown}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        return cls(
            alphabet=str(config["alphabet"]),
            length=int(config["length"]),
            size=int(config.get("size", ALPHABET_SIZE)),
            drop_unknown=bool(config.get("drop_unknown", True)),
        )


# -- character n-grams ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Grams:
    """Distinct character n-grams of one length in a corpus: ids (``length`` columns) and counts."""

    length: int
    ids: np.ndarray  # (grams, length) int32 category ids
    counts: np.ndarray  # (grams,) int64


def _windows(corpus: np.ndarray, length: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys of every window of ``length`` ids (base ``base``) and where no window holds a blank."""
    starts = len(corpus) - length + 1
    if starts <= 0:
        return np.empty(0, np.int64), np.empty(0, bool)
    keys = np.zeros(starts, np.uint64)
    clean = np.ones(starts, bool)
    for j in range(length):
        column = corpus[j : j + starts].astype(np.uint64)
        clean &= column < base
        keys = keys * np.uint64(base) + np.minimum(column, np.uint64(base - 1))
    return keys, clean


def _decode_keys(keys: np.ndarray, length: int, base: int) -> np.ndarray:
    ids = np.empty((len(keys), length), np.int32)
    rest = keys.copy()
    for j in range(length - 1, -1, -1):
        ids[:, j] = rest % np.uint64(base)
        rest //= np.uint64(base)
    return ids


def max_key_length(num_chars: int, bits: int = 64) -> int:
    """The longest gram whose key (its ids as digits in base ``num_chars``) fits in an unsigned integer of ``bits``."""
    length = 1
    while max(num_chars, 2) ** (length + 1) <= 2**bits:
        length += 1
    return length


def corpus_ids(texts: Iterable[str], encoder: CharacterEncoder) -> np.ndarray:
    """The texts' character ids joined into one array, a blank between two texts (no gram crosses it)."""
    blank = np.array([encoder.blank], np.int32)
    parts = [part for text in texts for part in (encoder.encode(text)[: encoder.length], blank)]
    return np.concatenate(parts) if parts else np.empty(0, np.int32)


def count_grams(corpus: np.ndarray, num_chars: int, lengths: Iterable[int], filter_over: int = 1) -> list[Grams]:
    """Per length, the distinct grams of ``corpus`` (ids; blanks break grams) seen more than ``filter_over`` times."""
    found = []
    for length in lengths:
        if length > max_key_length(num_chars):
            raise ValueError(f"grams of {length} characters of a {num_chars}-character alphabet are too long to count")
        keys, clean = _windows(corpus, length, num_chars)
        unique, counts = np.unique(keys[clean], return_counts=True)
        kept = counts > filter_over
        found.append(Grams(length, _decode_keys(unique[kept], length, num_chars), counts[kept]))
    return found


def sample_grams(grams: list[Grams], n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The published draw: per pattern a length uniformly, then a gram of that length in proportion to its count."""
    usable = [g for g in grams if len(g.counts)]
    if not usable:
        raise ValueError("the corpus has no character n-gram seen often enough to draw patterns from")
    chosen = []
    for _ in range(n):
        g = usable[rng.integers(len(usable))]
        chosen.append(g.ids[rng.choice(len(g.counts), p=g.counts / g.counts.sum())])
    return chosen


def greedy_cover(
    corpus: np.ndarray, grams: list[Grams], n: int, num_chars: int, candidates: int = 50_000
) -> list[np.ndarray]:
    """Max cover, greedily: each new gram the one whose occurrences cover the most characters not yet covered.

    Coverage is submodular, so a gram's gain only shrinks as others are chosen: the search re-evaluates
    the best stale gain first (lazy greedy) and takes a gram once its fresh gain is still the best.
    ``candidates`` bounds the grams considered: those of the largest count times length (the most a gram
    can ever cover).
    """
    pool = heapq.nlargest(
        candidates, ((int(c) * g.length, gi, i) for gi, g in enumerate(grams) for i, c in enumerate(g.counts))
    )
    if not pool:
        raise ValueError("the corpus has no character n-gram seen often enough to choose patterns from")
    starts: dict[tuple[int, int], np.ndarray] = {}
    for gi, g in enumerate(grams):
        wanted = np.array(sorted(i for _, grams_i, i in pool if grams_i == gi), np.int64)
        if not len(wanted):
            continue
        keys, clean = _windows(corpus, g.length, num_chars)
        gram_keys = np.zeros(len(wanted), np.uint64)
        for j in range(g.length):
            gram_keys = gram_keys * np.uint64(num_chars) + g.ids[wanted, j].astype(np.uint64)
        order = np.argsort(gram_keys)
        positions = np.flatnonzero(clean & np.isin(keys, gram_keys))
        which = order[np.searchsorted(gram_keys[order], keys[positions])]
        by_gram = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[by_gram], np.arange(len(wanted) + 1))
        for k, i in enumerate(wanted):
            starts[(gi, int(i))] = positions[by_gram[bounds[k] : bounds[k + 1]]]
    covered = np.zeros(len(corpus), bool)

    def spans(key: tuple[int, int]) -> np.ndarray:
        return (starts[key][:, None] + np.arange(grams[key[0]].length)).ravel()

    heap = [(-bound, gi, i) for bound, gi, i in pool]
    heapq.heapify(heap)
    chosen: list[np.ndarray] = []
    while heap and len(chosen) < n:
        _, gi, i = heapq.heappop(heap)
        current = int(np.count_nonzero(~covered[spans((gi, i))]))
        if heap and current < -heap[0][0]:  # stale: back in with its current gain
            heapq.heappush(heap, (-current, gi, i))
            continue
        chosen.append(grams[gi].ids[i])
        covered[spans((gi, i))] = True
    return chosen
