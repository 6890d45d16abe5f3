"""Word-vector files: GloVe and word2vec text read into an embedding matrix, bad files named by line; gensim vectors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reviewlens.data import Dataset
from reviewlens.embeddings import embedding_matrix, read_vectors, train_vectors
from reviewlens.errors import ReviewlensError

from .conftest import make_review

GLOVE = "film 0.1 0.2 0.3\nthe -1 0 1e-3\nwonderful 1 1 1\n"


def test_glove_and_word2vec_text_give_the_same_matrix(tmp_path: Path) -> None:
    glove = tmp_path / "glove.txt"
    glove.write_text(GLOVE)
    word2vec = tmp_path / "w2v.txt"
    word2vec.write_text("3 3\n" + GLOVE)
    words = ["the", "film", "absent"]
    for path in (glove, word2vec):
        pretrained = embedding_matrix(path, words)
        assert pretrained.matrix.shape == (5, 3)
        assert not pretrained.matrix[:2].any() and not pretrained.matrix[4].any()  # padding, OOV, missing word
        np.testing.assert_allclose(pretrained.matrix[2], [-1, 0, 1e-3])
        np.testing.assert_allclose(pretrained.matrix[3], [0.1, 0.2, 0.3])
        assert (pretrained.found, pretrained.words) == (2, 3)
        assert pretrained.coverage == pytest.approx(2 / 3)


def test_a_word_with_spaces_and_trailing_blanks_reads(tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text("c 3 4 \na b 1 2\n")
    dim, vectors = read_vectors(path)
    assert dim == 2 and set(vectors) == {"a b", "c"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GLOVE + "plot 0.1 0.2\n", "line 4 has 2 values where the file's vectors have 3"),
        ("3 3\n" + "film 0.1 0.2 0.3\nthe 1 2\n", "line 3 has 2 values where the file's vectors have 3"),
        (GLOVE.replace("0.2", "zero"), "line 1 has a value that is not a number"),
        ("film\n", "line 1 has a word and no vector"),
        (GLOVE.encode("utf-16"), "line 1 is not UTF-8"),
        (b"film 0.1 0.2 0.3\n" + "caf\u00e9 1 2 3\n".encode("latin-1"), "line 2 is not UTF-8"),
        ("\n\n", "holds no word vectors"),
    ],
)
def test_bad_vector_files_name_the_line(content: str | bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ReviewlensError, match=message) as error:
        embedding_matrix(path, ["film", "the"])
    assert str(path) in str(error.value)


def test_a_missing_vector_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ReviewlensError, match="does not exist"):
        embedding_matrix(tmp_path / "nope.txt", ["film"])


@pytest.fixture(scope="module")
def with_unsup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import random

    from .conftest import write_aclimdb

    root = write_aclimdb(tmp_path_factory.mktemp("unsup"), {"train": 40, "test": 10})
    (root / "train" / "unsup").mkdir()
    rng = random.Random(1)
    for i in range(60):
        (root / "train" / "unsup" / f"{i}_0.txt").write_text(make_review(rng, i % 2))
    return root


def test_train_vectors_writes_glove_text_from_train_and_unsup(with_unsup: Path, tmp_path: Path) -> None:
    out = tmp_path / "vectors.txt"
    path, words = train_vectors(Dataset(with_unsup), out, dim=8, epochs=1)
    assert path == out and words > 10
    dim, vectors = read_vectors(out)
    assert dim == 8 and len(vectors) == words and "wonderful" in vectors
    assert not list(tmp_path.glob(".vectors.txt.*"))  # the staging file was renamed into place


def test_cli_embeddings_train_and_bad_file_exit_codes(with_unsup: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.txt"
    done = subprocess.run(
        [sys.executable, "-m", "reviewlens.cli", "embeddings", "train", "--data", str(with_unsup),
         "--dim", "8", "--epochs", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "8 dimensions" in done.stdout and out.is_file()
    out.write_text(out.read_text() + "broken 1 2\n")
    lines = len(out.read_text().splitlines())
    failed = subprocess.run(
        [sys.executable, "-m", "reviewlens.cli", "train", "--recipe", "bilstm-pretrained", "--data", str(with_unsup),
         "--embeddings", str(out), "--epochs", "1", "--max-length", "8", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1].startswith(f"error: {out} line {lines} has 2 values")
    assert "Traceback" not in failed.stderr
