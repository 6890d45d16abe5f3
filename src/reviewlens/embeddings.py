"""Word vectors: read GloVe or word2vec text files into an embedding matrix; learn in-domain ones with gensim.

``reviewlens embeddings train`` writes GloVe text format (``word v1 v2 ...``), so ``bilstm-pretrained``
works offline with vectors learned from the train split and the unlabeled reviews.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reviewlens.data import Dataset
from reviewlens.errors import ReviewlensError
from reviewlens.text import tokenize


@dataclass(frozen=True)
class Pretrained:
    """An embedding matrix for a vocabulary: row i is the vector of token id i (rows 0 and 1 are zeros)."""

    matrix: np.ndarray
    found: int  # vocabulary words the file has a vector for
    words: int

    @property
    def coverage(self) -> float:
        return self.found / self.words if self.words else 0.0


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise ReviewlensError(
                        f"{path} line {number} is not UTF-8 text; save the word vectors as UTF-8 "
                        "(GloVe or word2vec text format)"
                    ) from None
    except FileNotFoundError:
        raise ReviewlensError(f"{path} does not exist; pass a GloVe or word2vec text file to --embeddings") from None
    except IsADirectoryError:
        raise ReviewlensError(f"{path} is a directory; pass a GloVe or word2vec text file to --embeddings") from None


def read_vectors(
    path: str | os.PathLike[str], keep: Callable[[str], bool] = lambda word: True
) -> tuple[int, dict[str, np.ndarray]]:
    """The dimension, and the vectors of the words ``keep`` accepts, from GloVe text (``word v1 ... vd``)
    or word2vec text (the same lines after a ``count dim`` header). Every line is checked, kept or not."""
    path = Path(path)
    vectors: dict[str, np.ndarray] = {}
    dim: int | None = None
    for number, line in _lines(path):
        if number == 1 and len(fields := line.split()) == 2 and all(f.isdigit() for f in fields):
            dim = int(fields[1])  # word2vec's header
            continue
        if not line.strip():
            continue
        if dim is None:
            dim = len(line.rstrip(" ").split(" ")) - 1  # the first word has no spaces in the files we know
            if dim < 1:
                raise ReviewlensError(f"{path} line {number} has a word and no vector; expected `word v1 v2 ...`")
        parts = line.rstrip(" ").rsplit(" ", dim)  # a word may hold spaces, a vector never does
        if len(parts) != dim + 1 or not parts[0]:
            raise ReviewlensError(
                f"{path} line {number} has {len(line.split()) - 1} values where the file's vectors have {dim}; "
                "every line must be `word` and the same number of values"
            )
        if keep(parts[0]):
            try:
                vectors[parts[0]] = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise ReviewlensError(
                    f"{path} line {number} has a value that is not a number; expected `word v1 v2 ...`"
                ) from None
    if dim is None:
        raise ReviewlensError(f"{path} holds no word vectors; pass a GloVe or word2vec text file")
    return dim, vectors


def embedding_matrix(path: str | os.PathLike[str], words: list[str]) -> Pretrained:
    """Rows for padding, OOV and ``words`` (in id order); words missing from the file get zeros."""
    wanted = set(words)
    dim, vectors = read_vectors(path, wanted.__contains__)
    matrix = np.zeros((len(words) + 2, dim), np.float32)
    for i, word in enumerate(words, start=2):
        if word in vectors:
            matrix[i] = vectors[word]
    return Pretrained(matrix, sum(word in vectors for word in words), len(words))


class _Sentences:
    """The tokens of the train split and the unlabeled reviews, streamed again on every pass."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __iter__(self) -> Iterator[list[str]]:
        for split in ("train", "unsup"):
            for example in self.dataset.examples(split):
                yield tokenize(example.text)


def train_vectors(
    dataset: Dataset, out: str | os.PathLike[str], dim: int = 100, epochs: int = 5, min_count: int = 2,
    seed: int = 1337, workers: int = 2,
) -> tuple[Path, int]:  # fmt: skip
    """Learn word2vec (skip-gram) vectors from the train split and ``unsup``; write GloVe text to ``out``.

    Returns the file and the number of words. The validation and test splits are never read.
    """
    from gensim.models import Word2Vec

    if dim < 1 or epochs < 1:
        raise ReviewlensError(f"--dim {dim} and --epochs {epochs} must be at least 1")
    out = Path(out)
    if out.is_dir():
        raise ReviewlensError(f"{out} is a directory; pass the file to write, e.g. --out vectors.txt")
    model = Word2Vec(
        _Sentences(dataset), vector_size=dim, window=5, min_count=min_count, sg=1, epochs=epochs,
        workers=workers, seed=seed,
    )  # fmt: skip
    vectors = model.wv
    if not len(vectors):
        raise ReviewlensError(f"{dataset.path} has no word seen {min_count} times; use more reviews or --min-count 1")
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor, staging = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with open(descriptor, "w", encoding="utf-8") as handle:
            for word in vectors.index_to_key:
                handle.write(word + " " + " ".join(f"{v:.6g}" for v in vectors[word]) + "\n")
        os.replace(staging, out)
    except BaseException:
        os.unlink(staging)
        raise
    return out, len(vectors)
