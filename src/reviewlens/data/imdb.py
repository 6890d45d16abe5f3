"""``keras.datasets.imdb`` over reviewlens' data: the Keras book's code runs with only its import changed.

``from reviewlens.data import imdb`` in place of ``from tensorflow.keras.datasets import imdb``; then
``imdb.load_data(num_words=10000)`` and ``imdb.get_word_index()`` return what Keras' do, from the data
the command line would use (``$REVIEWLENS_DATA``, the download cache, else the embedded sample) or
from ``path`` (an aclImdb folder or archive, a CSV, or a Keras ``imdb.npz``), with no download.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from reviewlens.data import indexed
from reviewlens.errors import ReviewlensError

__all__ = ["get_word_index", "load_data"]


def load_data(
    path: str | os.PathLike[str] | None = None,
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int = indexed.START,
    oov_char: int = indexed.OOV,
    index_from: int = indexed.INDEX_FROM,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))``, as ``keras.datasets.imdb.load_data`` (see ``load_indexed``)."""
    given = (start_char, oov_char, index_from)
    if given != (indexed.START, indexed.OOV, indexed.INDEX_FROM):
        raise ReviewlensError(
            f"start_char, oov_char, index_from = {given}: reviewlens reads Keras' defaults "
            f"({indexed.START}, {indexed.OOV}, {indexed.INDEX_FROM}) only; leave them out"
        )
    return indexed.load_indexed(path, num_words=num_words, skip_top=skip_top, maxlen=maxlen, seed=seed)


def get_word_index(path: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Each word's frequency rank (1 the most frequent), as ``keras.datasets.imdb.get_word_index``.

    ``path`` is an ``imdb_word_index.json``; without it, the index of the last ``load_data`` call, or
    (before any) the one of the data ``load_data()`` would read.
    """
    if path is not None:
        return indexed.read_word_index(Path(path))
    if indexed.last_word_index() is None:
        load_data()
    index = indexed.last_word_index()
    if index is None:  # a Keras imdb.npz with no imdb_word_index.json beside it
        raise ReviewlensError("the last load_data read an imdb.npz with no imdb_word_index.json beside it; pass path")
    return dict(index)
