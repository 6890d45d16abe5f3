"""A fast bag-of-words vectorizer whose output equals Keras TextVectorization's.

Pure Python + NumPy/SciPy, no TensorFlow: training uses it to vectorize fast, and the lean runtime
uses it to predict without importing TensorFlow. ``reviewlens.text.keras`` builds the equivalent
Keras layer; the tests check the two agree token for token.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from scipy import sparse

from reviewlens.text.rules import STANDARDIZATIONS, Standardization, tokenize

if TYPE_CHECKING:
    import pyarrow as pa

OutputMode = Literal["multi_hot", "count", "tf_idf", "mean"]
OUTPUT_MODES: tuple[str, ...] = ("multi_hot", "count", "tf_idf", "mean")

OOV_TOKEN = "[UNK]"
#: Texts vectorized at a time: small enough for the working arrays to stay in cache (2x faster
#: than one pass over 25,000 reviews on the machines measured).
CHUNK = 1024

#: Texts are joined with this token between them so that a whole chunk splits in one call. Both
#: standardizations turn the byte 0x1C (a line separator to ``str.splitlines``) into a space, so no
#: text can hold this token itself.
_SEPARATOR = b"\x1c"
_SEPARATOR_ID = -2
_JOIN = b" " + _SEPARATOR + b" "

Lookup = Callable[[list[bytes]], Iterable[int]]


def _chunks(texts: Iterable[str]) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        yield chunk


def _token_ids(
    texts: list[str], lookup: Lookup, standardization: Standardization = "lower_and_strip_punctuation"
) -> tuple[np.ndarray, np.ndarray]:
    """The id of every token of ``texts`` (``lookup`` maps a list of tokens to ids) and the text it is in.

    ``lookup`` must map the separator token to ``_SEPARATOR_ID``.
    """
    standardize, split = STANDARDIZATIONS[standardization]
    tokens = split(_JOIN.join(map(standardize, texts)))
    ids = np.fromiter(lookup(tokens), np.int64, len(tokens))
    separator = ids == _SEPARATOR_ID
    doc = np.cumsum(separator)
    return ids[~separator], doc[~separator]


def _next_order(
    previous: np.ndarray, unigrams: np.ndarray, doc: np.ndarray, order: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the n-grams of ``order`` starting at each position, and where they are defined.

    ``previous[i]`` is the id of the (order-1)-gram at position i (-1 where unknown); the n-gram
    adds the unigram at i + order - 1. The key ``previous * width + unigram`` names it uniquely.
    """
    span = len(unigrams) - order + 1
    if span <= 0:
        return np.empty(0, np.int64), np.empty(0, bool)
    head, tail = previous[:span], unigrams[order - 1 :]
    inside = doc[:span] == doc[order - 1 :]  # the n-gram does not cross into the next text
    known = inside & (head >= 0) & (tail >= 0)
    return np.where(known, head * width + tail, -1), inside


class _KeyIndex:
    """Each of a set of distinct non-negative int64 keys' index in it, looked up many at a time.

    An open-addressing hash table (multiplicative hashing, linear probing, at most an eighth full)
    probed with NumPy: nearly every query is settled by its first slot, so a lookup costs a few
    passes over the queries however large the table, where a binary search costs one per halving.
    """

    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd
    _FREE = -1

    def __init__(self, keys: np.ndarray):
        bits = max(int(len(keys) * 8).bit_length(), 4)
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        self._keys = np.full(1 << bits, self._FREE, np.int64)
        self._values = np.full(1 << bits, -1, np.int64)  # -1 in free slots: a lookup that ends there fails
        # Insert in rounds: each round places the pending keys whose next slot is free (one per slot).
        # A key placed at probe p found its p earlier slots taken, so a lookup may stop at a free slot.
        self._probes = 0
        pending = np.arange(len(keys))
        home = self._home(keys)
        while len(pending):
            slot = (home + self._probes) & self._mask
            free = self._keys[slot] == self._FREE
            self._keys[slot[free]] = keys[pending[free]]
            placed = self._keys[slot] == keys[pending]
            self._values[slot[placed]] = pending[placed]
            pending, home = pending[~placed], home[~placed]
            self._probes += 1

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.view(np.uint64) * self._MULTIPLIER) >> self._shift).view(np.int64)

    def find(self, queries: np.ndarray) -> np.ndarray:
        """The index of each query among the keys; -1 where it is not one (negative queries never are).

        A query of -1 is a free slot's key: it ends its probe at a free slot, whose value is -1.
        """
        queries = np.maximum(queries, self._FREE)
        home = self._home(queries)
        stored = self._keys[home]
        found = self._values[home]
        found[stored != queries] = -1
        # The rest: queries whose first slot holds another key. Follow the probe sequence.
        pending = np.flatnonzero((stored != queries) & (stored != self._FREE))
        for probe in range(1, self._probes):
            if not len(pending):
                break
            slot = (home[pending] + probe) & self._mask
            stored = self._keys[slot]
            wanted = queries[pending]
            hit = stored == wanted
            found[pending[hit]] = self._values[slot[hit]]
            pending = pending[~hit & (stored != self._FREE)]
        return found


#: Entries of the scratch table ``_representatives`` uses: 16 MB of int32, whatever the batch.
_SCRATCH = 1 << 22


def _representatives(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> np.ndarray:
    """For each entry, the index of one entry with the same (row, column): the same one for all of them.

    ``rows`` must be sorted. Each block of rows gets a scratch table with a slot per (row, column);
    every entry writes its index to its slot, then reads the slot back. Whichever write lands last,
    all the entries of a slot read the same index, and it is one of theirs. No sort is needed.
    """
    representatives = np.empty(len(rows), np.int64)
    block = max(_SCRATCH // max(n_columns, 1), 1)
    scratch = np.empty(min(block, max(n_rows, 1)) * n_columns, np.int32)
    bounds = np.searchsorted(rows, np.arange(0, n_rows + block, block))
    for first_row, (start, stop) in zip(range(0, n_rows, block), itertools.pairwise(bounds), strict=True):
        if start == stop:
            continue
        slots = (rows[start:stop] - first_row) * n_columns + columns[start:stop]
        scratch[slots] = np.arange(stop - start, dtype=np.int32)
        representatives[start:stop] = scratch[slots] + start
    return representatives


class _IdsOrUnknown(dict[bytes, int]):
    """Token ids, -1 for any other token: a failed lookup costs a call, a hit costs none (dict.get costs one each)."""

    __slots__ = ()

    def __missing__(self, token: bytes) -> int:
        return -1


class _NgramTables:
    """Lookup tables from a vocabulary: unigrams by dict, longer n-grams by integer keys."""

    def __init__(self, vocabulary: Sequence[str], ngrams: int):
        grams = [term.encode("utf-8").split(b" ") for term in vocabulary[1:]]
        self.unigram_ids: dict[bytes, int] = {}
        for gram in grams:
            for token in gram:
                self.unigram_ids.setdefault(token, len(self.unigram_ids))
        self.width = max(len(self.unigram_ids), 1)
        self._arrow_unigrams: pa.Array | None = None
        self._ids_and_separator = _IdsOrUnknown(self.unigram_ids | {_SEPARATOR: _SEPARATOR_ID})
        # Per order: an index of the known n-grams' keys (those in the vocabulary and their prefixes)
        # and each one's column in the output (0, the OOV column, for a bare prefix). Each array of
        # columns ends with an extra 0, so that indexing it with -1 (an unknown n-gram) gives column 0.
        column: dict[tuple[bytes, ...], int] = {tuple(gram): i for i, gram in enumerate(grams, start=1)}
        previous_ids: dict[tuple[bytes, ...], int] = {(token,): i for token, i in self.unigram_ids.items()}
        unigram_columns = np.zeros(self.width + 1, np.int64)
        for unigram, i in previous_ids.items():
            unigram_columns[i] = column.get(unigram, 0)
        self.indexes: list[_KeyIndex | None] = [None]
        self.columns: list[np.ndarray] = [unigram_columns]
        for order in range(2, ngrams + 1):
            prefixes = [tuple(gram[:order]) for gram in grams if len(gram) >= order]
            keyed = list(dict.fromkeys(prefixes))
            keys = [previous_ids[p[:-1]] * self.width + self.unigram_ids[p[-1]] for p in keyed]
            self.indexes.append(_KeyIndex(np.array(keys, np.int64)))
            self.columns.append(np.array([column.get(p, 0) for p in keyed] + [0], np.int64))
            previous_ids = {p: i for i, p in enumerate(keyed)}

    def lookup(self, tokens: list[bytes]) -> Iterable[int]:
        """Each token's unigram id: -1 for a token in no vocabulary term, the separator's for the separator."""
        return map(self._ids_and_separator.__getitem__, tokens)

    @property
    def arrow_unigrams(self) -> pa.Array:
        """The unigrams as an Arrow array, each at its id: what ``arrow.token_ids`` looks tokens up in."""
        if self._arrow_unigrams is None:
            import pyarrow as pa

            self._arrow_unigrams = pa.array([token.decode("utf-8") for token in self.unigram_ids], pa.string())
        return self._arrow_unigrams

    def vectorize(
        self, unigrams: np.ndarray, doc: np.ndarray, n_docs: int, n_columns: int, counted: bool = True
    ) -> sparse.csr_matrix:
        """Term counts per text (1 for every present term unless ``counted``): a row per text, a column per term.

        ``unigrams`` holds each token's unigram id and ``doc`` the (sorted) index of its text. The
        entries of a row come in the text's order, not sorted by column; no row repeats a column.
        """
        orders = len(self.columns)
        # The column of the n-gram of each order starting at each position; -1 where there is none.
        grid = np.full((len(unigrams), orders), -1, np.int64)
        grid[:, 0] = self.columns[0][unigrams]
        previous = unigrams
        for order in range(2, orders + 1):
            keys, inside = _next_order(previous, unigrams, doc, order, self.width)
            index = self.indexes[order - 1]
            assert index is not None
            previous = index.find(keys)
            grid[: len(keys), order - 1] = np.where(inside, self.columns[order - 1][previous], -1)
        columns = grid.ravel()
        rows = np.repeat(doc, orders)
        present = columns >= 0
        rows, columns = rows[present], columns[present]
        representative = _representatives(rows, columns, n_docs, n_columns)
        first = representative == np.arange(len(representative))
        if counted:
            counts = np.bincount(representative, minlength=len(representative))[first].astype(np.float32)
        else:
            counts = np.ones(np.count_nonzero(first), np.float32)
        # Where each text's entries start, counted among the first ones: rows are sorted, so a cumulative count
        # read at each text's start (a binary search per text) is the CSR index pointer.
        firsts_before = np.zeros(len(first) + 1, np.int64)
        np.cumsum(first, out=firsts_before[1:])
        indptr = firsts_before[np.searchsorted(rows, np.arange(n_docs + 1))]
        return sparse.csr_matrix((counts, columns[first], indptr), shape=(n_docs, n_columns))


@dataclass
class BagOfWords:
    """A TextVectorization(output_mode=multi_hot|count|tf_idf) equivalent, fitted in one pass; ``mean``
    is ``count`` divided by the row's total (Keras: TextVectorization(count) then ``layers.RowMean``).

    Parameters
    ----------
    max_tokens:
        Size of the vocabulary including the out-of-vocabulary entry at index 0; ``None`` keeps all.
    ngrams:
        Largest n-gram; 2 gives unigrams and bigrams, as ``TextVectorization(ngrams=2)``.
    output_mode:
        ``multi_hot`` (1 where a term occurs), ``count``, ``tf_idf`` (count times IDF), or ``mean``: the
        counts divided by the text's number of terms (the out-of-vocabulary column included), so each
        nonempty row sums to 1 and a model's first layer averages its terms' weights (fastText).
    standardize:
        ``lower_and_strip_punctuation`` (TextVectorization's default) or ``lower_and_split_punctuation``.
    """

    kind: ClassVar[str] = "bag-of-words"

    max_tokens: int | None = 20000
    ngrams: int = 1
    output_mode: OutputMode = "multi_hot"
    standardize: Standardization = "lower_and_strip_punctuation"
    vocabulary: list[str] = field(default_factory=list)
    idf_weights: np.ndarray | None = None
    _tables: _NgramTables | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, not {self.output_mode!r}")
        if self.ngrams < 1:
            raise ValueError(f"ngrams must be at least 1, not {self.ngrams}")
        if self.standardize not in STANDARDIZATIONS:
            raise ValueError(f"standardize must be one of {tuple(STANDARDIZATIONS)}, not {self.standardize!r}")
        if self.vocabulary:
            self._set_vocabulary(self.vocabulary)

    # -- fitting ---------------------------------------------------------------------------------
    def fit_transform(self, texts: Iterable[str]) -> sparse.csr_matrix:
        """Learn the vocabulary (and IDF) from ``texts`` and return their vectors, reading them once."""
        seen: defaultdict[bytes, int] = defaultdict(itertools.count().__next__)
        seen[_SEPARATOR] = _SEPARATOR_ID  # set, not counted: the tokens' ids start at 0
        chunks = []  # per chunk of texts: its token ids, each token's text within the chunk, its size
        for chunk in _chunks(texts):
            ids, doc = _token_ids(chunk, lambda tokens: map(seen.__getitem__, tokens), self.standardize)
            chunks.append((ids, doc, len(chunk)))
        del seen[_SEPARATOR]
        tokens = list(seen)  # insertion order is id order
        starts = np.cumsum([0] + [size for _, _, size in chunks])
        unigrams = np.concatenate([ids for ids, _, _ in chunks] + [np.empty(0, np.int64)])
        doc = np.concatenate([d + start for (_, d, _), start in zip(chunks, starts, strict=False)] + [unigrams[:0]])

        # Count every n-gram; the n-grams of each order get dense ids by np.unique.
        counts = [np.bincount(unigrams, minlength=len(tokens))]
        parents: list[np.ndarray] = [np.empty(0, np.int64)]
        previous = unigrams
        for order in range(2, self.ngrams + 1):
            keys, _ = _next_order(previous, unigrams, doc, order, max(len(tokens), 1))
            valid = keys >= 0
            if order < self.ngrams:  # the next order needs each position's id of this order
                unique, inverse, order_counts = np.unique(keys[valid], return_inverse=True, return_counts=True)
                previous = np.full(len(keys), -1, np.int64)
                previous[valid] = inverse
            else:
                unique, order_counts = np.unique(keys[valid], return_counts=True)
            counts.append(order_counts)
            parents.append(unique)

        def term(order: int, i: int) -> bytes:
            if order == 1:
                return tokens[i]
            parent, last = divmod(int(parents[order - 1][i]), max(len(tokens), 1))
            return term(order - 1, parent) + b" " + tokens[last]

        chosen = self._top_terms(counts, term)
        self._set_vocabulary([OOV_TOKEN] + [term(o, i).decode("utf-8") for o, i in chosen])

        assert self._tables is not None
        known = np.array([self._tables.unigram_ids.get(t, -1) for t in tokens], np.int64)
        tables = self._tables
        counted = self.output_mode != "multi_hot"
        parts = [tables.vectorize(known[ids], d, size, len(self.vocabulary), counted) for ids, d, size in chunks]
        matrix = _stack(parts, len(self.vocabulary))
        if self.output_mode == "tf_idf":
            document_counts = np.bincount(matrix.indices, minlength=len(self.vocabulary))[1:]
            self.idf_weights = _idf(document_counts, matrix.shape[0])
        return self._finish(matrix)

    def fit(self, texts: Iterable[str]) -> BagOfWords:
        """Learn the vocabulary (and IDF weights for ``tf_idf``) from ``texts``."""
        self.fit_transform(texts)
        return self

    def _top_terms(self, counts: list[np.ndarray], term: Callable[[int, int], bytes]) -> list[tuple[int, int]]:
        # Keras orders by count, then by the token itself, both descending (np.lexsort(...)[::-1]).
        every = np.concatenate(counts)
        limit = len(every) if self.max_tokens is None else max(self.max_tokens - 1, 0)
        if limit == 0 or len(every) == 0:
            return []
        threshold = np.partition(every, len(every) - limit)[len(every) - limit] if limit < len(every) else 0
        candidates = [
            (int(c), order, int(i))
            for order, order_counts in enumerate(counts, start=1)
            for i in np.flatnonzero(order_counts >= threshold)
            for c in (order_counts[i],)
        ]
        candidates.sort(key=lambda item: (item[0], term(item[1], item[2])), reverse=True)
        return [(order, i) for _, order, i in candidates[:limit]]

    # -- applying --------------------------------------------------------------------------------
    def transform(self, texts: Iterable[str] | pa.Array | pa.ChunkedArray) -> sparse.csr_matrix:
        """Vectorize ``texts``: a CSR matrix of float32, one row per text, ``len(vocabulary)`` columns.

        ``texts`` may be Python strings or an Arrow array of strings (valid UTF-8, no nulls: a scorer's column
        passes as is). Either way they are tokenized by Arrow compute kernels, ``CHUNK`` texts a call
        (``reviewlens.text.arrow``: the same tokens as ``tokenize``, proved by the tests).
        """
        from reviewlens.text import arrow

        tables = self._fitted_tables()
        counted = self.output_mode != "multi_hot"
        parts = [
            tables.vectorize(
                *arrow.token_ids(chunk, self.standardize, tables.arrow_unigrams),
                len(chunk),
                len(self.vocabulary),
                counted,
            )
            for chunk in _arrow_chunks(texts)
        ]
        return self._finish(_stack(parts, len(self.vocabulary)))

    def tokenize(self, text: str) -> list[str]:
        """The text's tokens, standardized as this vectorizer reads them."""
        return tokenize(text, self.standardize)

    def token_ids(self, tokens: Sequence[str]) -> list[int]:
        """Each standardized token's id: 0 is never given (padding), 1 is out of vocabulary, words from 2.

        A token is known when it is part of any vocabulary term (a bigram's words count), so that
        ``transform_ids`` can rebuild every n-gram from the ids.
        """
        ids = self._fitted_tables().unigram_ids
        return [ids.get(token.encode("utf-8"), -1) + 2 for token in tokens]

    def transform_ids(self, rows: Sequence[Sequence[int]]) -> sparse.csr_matrix:
        """The vectors of texts given as ``token_ids`` lists (0s, padding, are skipped): ``transform``'s output."""
        tables = self._fitted_tables()
        kept = [np.asarray(row, np.int64) for row in rows]
        kept = [row[row != 0] for row in kept]
        unigrams = np.concatenate([*kept, np.empty(0, np.int64)]) - 2  # out of vocabulary: 1 - 2 = -1
        doc = np.repeat(np.arange(len(kept)), [len(row) for row in kept])
        counted = self.output_mode != "multi_hot"
        return self._finish(tables.vectorize(unigrams, doc, len(kept), len(self.vocabulary), counted))

    def _fitted_tables(self) -> _NgramTables:
        if self._tables is None:
            raise ValueError("the vectorizer has no vocabulary yet: call fit() or fit_transform()")
        return self._tables

    def _finish(self, matrix: sparse.csr_matrix) -> sparse.csr_matrix:
        if self.output_mode == "multi_hot":
            matrix.data[:] = 1.0
        elif self.output_mode == "tf_idf":
            assert self.idf_weights is not None
            matrix.data *= self.idf_weights[matrix.indices]
        elif self.output_mode == "mean":  # counts are whole numbers: their totals are exact (an empty row has none)
            rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
            totals = np.bincount(rows, weights=matrix.data, minlength=matrix.shape[0]).astype(np.float32)
            matrix.data /= totals[rows]
        return matrix

    def _set_vocabulary(self, vocabulary: list[str]) -> None:
        if not vocabulary or vocabulary[0] != OOV_TOKEN:
            raise ValueError(f"a vocabulary starts with the OOV token {OOV_TOKEN!r}")
        self.vocabulary = vocabulary
        self._tables = _NgramTables(vocabulary, self.ngrams)

    # -- persistence -----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted vectorizer, as JSON-serializable values."""
        return {
            "max_tokens": self.max_tokens,
            "ngrams": self.ngrams,
            "output_mode": self.output_mode,
            "standardize": self.standardize,
            "vocabulary": self.vocabulary,
            "idf_weights": None if self.idf_weights is None else self.idf_weights.tolist(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BagOfWords:
        idf = config.get("idf_weights")
        return cls(
            max_tokens=config["max_tokens"],
            ngrams=config["ngrams"],
            output_mode=config["output_mode"],
            standardize=config.get("standardize", "lower_and_strip_punctuation"),
            vocabulary=list(config["vocabulary"]),
            idf_weights=None if idf is None else np.asarray(idf, dtype=np.float32),
        )


def _arrow_chunks(texts: Iterable[str] | pa.Array | pa.ChunkedArray) -> Iterator[pa.Array]:
    """``texts`` as Arrow arrays of ``CHUNK`` texts."""
    import pyarrow as pa

    from reviewlens.text.arrow import to_arrow

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, pa.Array):
        for start in range(0, len(texts), CHUNK):
            yield texts.slice(start, CHUNK)
    else:
        for chunk in _chunks(texts):
            yield to_arrow(chunk)


def _stack(parts: list[sparse.csr_matrix], n_columns: int) -> sparse.csr_matrix:
    if not parts:
        return sparse.csr_matrix((0, n_columns), dtype=np.float32)
    return parts[0] if len(parts) == 1 else sparse.vstack(parts, format="csr")


def _idf(document_counts: np.ndarray, num_documents: int) -> np.ndarray:
    """Keras' IDF, ``log(1 + N / (1 + df))``, with the OOV entry's weight the mean of the others."""
    weights = np.log(1.0 + num_documents / (1.0 + document_counts)).astype(np.float32)
    oov = weights.mean(dtype=np.float32) if len(weights) else np.float32(0.0)
    return np.concatenate([[oov], weights]).astype(np.float32)
