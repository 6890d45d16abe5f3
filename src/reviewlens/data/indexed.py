"""IMDB as ``keras.datasets.imdb.load_data`` gives it: reviews as lists of word indices by frequency rank.

Derived from any dataset reviewlens reads (aclImdb, the embedded sample...) or read from a user's
``imdb.npz`` and ``imdb_word_index.json``. Index 0 is padding, 1 the start of a review, 2 a word out
of the vocabulary, and word of rank r (1 the most frequent) is r + 3.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.errors import ReviewlensError
from reviewlens.files import read_json
from reviewlens.text import BagOfWords, tokenize

WORD_INDEX_FILE = "imdb_word_index.json"
KEYS = ("x_train", "y_train", "x_test", "y_test")
START, OOV, INDEX_FROM = 1, 2, 3

_last_word_index: dict[str, int] | None = None


def word_index_of(texts: Iterable[str]) -> dict[str, int]:
    """Each word's frequency rank in ``texts`` (1 the most frequent; ties: Keras' order, by token descending)."""
    counter = BagOfWords(max_tokens=None, ngrams=1, output_mode="count")
    counter.fit_transform(texts)
    return {word: rank for rank, word in enumerate(counter.vocabulary[1:], start=1)}


def load_indexed(
    path: str | os.PathLike[str] | None = None,
    num_words: int | None = 10000,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` exactly as ``keras.datasets.imdb.load_data`` returns them.

    ``path`` is an ``imdb.npz`` (with ``imdb_word_index.json`` beside it for ``decode_review``) or any
    dataset ``--data`` takes (``None`` resolves as the CLI does); from a dataset, words are ranked
    by frequency in the aclImdb train reviews (train and validation) and test words never seen in
    them are left out, as in Keras' file. Each review starts with 1; words ranked past
    ``num_words - 3`` become 2. The ``.npz``'s pickled lists are read with an unpickler that
    rebuilds NumPy arrays and nothing else.
    """
    global _last_word_index
    if path is not None and Path(path).suffix == ".npz":
        (train, y_train), (test, y_test) = _read_npz(Path(path))
        index_file = Path(path).with_name(WORD_INDEX_FILE)
        _last_word_index = read_word_index(index_file) if index_file.is_file() else None
    else:
        from reviewlens.data.resolved import resolve

        dataset = resolve(path).dataset
        train_texts, train_labels = dataset.read("train")
        val_texts, val_labels = dataset.read("validation")
        test_texts, test_labels = dataset.read("test")
        texts = train_texts + val_texts
        _last_word_index = word_index_of(texts)
        train, y_train = _ranks(texts, _last_word_index), np.asarray(train_labels + val_labels, np.int64)
        test, y_test = _ranks(test_texts, _last_word_index), np.asarray(test_labels, np.int64)
    # From here on, Keras' load_data step for step (same shuffles, same quirks).
    rng = np.random.RandomState(seed)
    train_order, test_order = np.arange(len(train)), np.arange(len(test))
    rng.shuffle(train_order)
    rng.shuffle(test_order)
    x_train = [[START] + [w + INDEX_FROM for w in train[i]] for i in train_order]
    x_test = [[START] + [w + INDEX_FROM for w in test[i]] for i in test_order]
    y_train, y_test = y_train[train_order], y_test[test_order]
    if maxlen:
        x_train, y_train = _shorter(maxlen, x_train, y_train)
        x_test, y_test = _shorter(maxlen, x_test, y_test)
    xs = x_train + x_test
    limit = num_words or max(max(x) for x in xs)
    xs = [[w if skip_top <= w < limit else OOV for w in x] for x in xs]
    return (_objects(xs[: len(x_train)]), y_train), (_objects(xs[len(x_train) :]), y_test)


def _shorter(maxlen: int, xs: list[list[int]], ys: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    kept = [i for i, x in enumerate(xs) if len(x) < maxlen]
    return [xs[i] for i in kept], ys[kept]


def _objects(xs: list[list[int]]) -> np.ndarray:
    array = np.empty(len(xs), dtype=object)
    array[:] = xs
    return array


def _ranks(texts: Sequence[str], word_index: Mapping[str, int]) -> list[list[int]]:
    """Each token's rank, leaving out the words the index does not have."""
    get = word_index.get
    return [[r for r in map(get, tokenize(text)) if r is not None] for text in texts]


class _ArraysOnly(pickle.Unpickler):
    """Rebuilds NumPy arrays and refuses every other global, so a crafted file cannot run code."""

    ALLOWED = frozenset(
        {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
         ("numpy._core.multiarray", "_reconstruct")}
    )  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks to load {module}.{name}, which is not NumPy array data")
        return super().find_class(module, name)


def _read_member(raw: bytes) -> np.ndarray:
    handle = io.BytesIO(raw)
    try:
        return np.lib.format.read_array(handle, allow_pickle=False)
    except ValueError:  # an object array: its pickle stream follows the header
        handle.seek(0)
        major, _ = np.lib.format.read_magic(handle)
        (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(handle)
        return np.asarray(_ArraysOnly(handle).load())


def _read_npz(path: Path) -> tuple[tuple[list[list[int]], np.ndarray], tuple[list[list[int]], np.ndarray]]:
    what = f"{path} is not a keras.datasets.imdb file (an imdb.npz with x_train, y_train, x_test, y_test)"
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {key: _read_member(archive.read(f"{key}.npy")) for key in KEYS}
    except FileNotFoundError:
        raise ReviewlensError(f"{path} does not exist; pass an imdb.npz or an aclImdb dataset") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as error:
        raise ReviewlensError(f"{what} ({error})") from None
    try:
        splits = tuple(
            ([[int(w) for w in x] for x in arrays[f"x_{s}"]], np.asarray(arrays[f"y_{s}"], np.int64))
            for s in ("train", "test")
        )
    except (TypeError, ValueError) as error:
        raise ReviewlensError(f"{what}: its reviews are not lists of word indices ({error})") from None
    for xs, ys in splits:
        if len(xs) != len(ys):
            raise ReviewlensError(f"{what}: {len(xs)} reviews but {len(ys)} labels")
    return splits[0], splits[1]


def read_word_index(path: str | os.PathLike[str]) -> dict[str, int]:
    """A ``imdb_word_index.json``: each word's frequency rank."""
    index = read_json(Path(path), "pass a word index (a JSON object of word: rank)")
    if not isinstance(index, dict) or not all(isinstance(v, int) for v in index.values()):
        raise ReviewlensError(f"{path} is not a word index (a JSON object of word: rank)")
    return index


def last_word_index() -> dict[str, int] | None:
    """The word index of the last ``load_indexed`` call (``None`` before one, or for an ``.npz`` without one)."""
    return _last_word_index


def decode_review(ids: Iterable[int], word_index: Mapping[str, int] | None = None) -> str:
    """The review's words, ``?`` for padding, start and out-of-vocabulary indices (the lesson's decoding).

    ``word_index`` defaults to the one of the last ``load_indexed`` call.
    """
    index = word_index if word_index is not None else _last_word_index
    if index is None:
        raise ReviewlensError("no word index to decode with: call load_indexed first, or pass word_index")
    reverse = {rank: word for word, rank in index.items()}
    return " ".join(reverse.get(i - INDEX_FROM, "?") for i in ids)


def vectorize_sequences(sequences: Sequence[Sequence[int]], dimension: int = 10000) -> np.ndarray:
    """The book's multi-hot encoding: row i has 1.0 at each index in ``sequences[i]`` (float32)."""
    results = np.zeros((len(sequences), dimension), np.float32)
    for i, sequence in enumerate(sequences):
        indices = np.asarray(sequence, np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= dimension):
            raise ValueError(f"sequence {i} has an index outside 0..{dimension - 1}; use num_words={dimension}")
        results[i, indices] = 1.0
    return results
