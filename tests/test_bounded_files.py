"""Files reviewlens keeps (runs, encoders) are read within a bound of their kind and a nesting depth: a file far
larger than reviewlens writes, or JSON nested a million levels deep, is one line, never a full memory or a
``RecursionError`` traceback."""

from __future__ import annotations

import hashlib
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest

import reviewlens
from reviewlens.errors import ReviewlensError
from reviewlens.files import MAX_BYTES, MAX_JSON_DEPTH, read_json
from reviewlens.predictors import PREDICTORS

from .test_cli import run as run_cli

#: 4 MB of nesting: under every bound, far deeper than any decoder recurses.
NESTED = b"[" * 2_000_000 + b"]" * 2_000_000


def _rewrite_checksum(run: Path, name: str) -> None:
    metadata = json.loads((run / "metadata.json").read_text())
    with open(run / name, "rb") as handle:
        metadata["files"][name] = hashlib.file_digest(handle, "sha256").hexdigest()
    (run / "metadata.json").write_text(json.dumps(metadata))


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "runs" / "copy"))


def test_every_file_of_a_run_has_a_bound_of_its_kind(trained_run: Path) -> None:
    names = set(json.loads((trained_run / "metadata.json").read_text())["files"]) | {"metadata.json"}
    names |= {name for kind in PREDICTORS for name in PREDICTORS[kind].files}
    assert names <= set(MAX_BYTES), names - set(MAX_BYTES)


def test_a_vectorizer_far_larger_than_its_bound_is_refused_before_it_is_read(run_copy: Path) -> None:
    with open(run_copy / "vectorizer.json", "r+b") as handle:  # sparse: no disk, and its checksum matches
        handle.truncate(MAX_BYTES["vectorizer.json"] + 1)
    _rewrite_checksum(run_copy, "vectorizer.json")
    tracemalloc.start()
    try:
        with pytest.raises(ReviewlensError, match=r"vectorizer\.json is larger than 268,435,456 bytes") as refused:
            reviewlens.load(run_copy)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # not read whole (it was: twice its size)
    assert "\n" not in str(refused.value) and "train the model again" in str(refused.value)


def test_a_nested_metadata_is_one_line_for_predict_and_runs_lists_the_others(run_copy: Path, tmp_path: Path) -> None:
    shutil.copytree(run_copy, tmp_path / "runs" / "good")
    (run_copy / "metadata.json").write_bytes(NESTED)
    with pytest.raises(ReviewlensError, match=rf"metadata\.json nests deeper than {MAX_JSON_DEPTH} levels"):
        reviewlens.load(run_copy)
    result = run_cli("predict", str(run_copy), "a fine film")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"{run_copy / 'metadata.json'} nests deeper" in line

    listed = run_cli("runs", str(tmp_path / "runs"), "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert [Path(r["run_dir"]).name for r in report["runs"]] == ["good"]
    [damaged] = report["damaged"]
    assert damaged["run_dir"] == str(run_copy) and "nests deeper" in damaged["why"]
    table = run_cli("runs", str(tmp_path / "runs"))
    assert table.returncode == 0 and "good" in table.stdout
    assert f"damaged run: {run_copy}" in table.stdout


def test_a_nested_vectorizer_is_one_line_for_predict_and_explain(run_copy: Path) -> None:
    (run_copy / "vectorizer.json").write_bytes(NESTED)
    _rewrite_checksum(run_copy, "vectorizer.json")
    for command in ("predict", "explain"):
        result = run_cli(command, str(run_copy), "a fine film")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert f"{run_copy / 'vectorizer.json'} nests deeper than {MAX_JSON_DEPTH} levels" in line


def test_brackets_inside_strings_are_not_nesting(tmp_path: Path) -> None:
    path = tmp_path / "vectorizer.json"
    words = ["[" * 100, '\\"[[[', "{" * 100]
    path.write_text(json.dumps({"words": words, "deep": [[[1]]]}))
    assert read_json(path, "")["words"] == words
    path.write_text(json.dumps({"words": words}) + "[" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(ReviewlensError, match="nests deeper"):
        read_json(path, "")


def test_an_encoder_whose_json_nests_deeply_is_one_line(tmp_path: Path) -> None:
    from reviewlens.pretraining import ENCODER_FORMAT, ENCODER_VERSION, METADATA_FILE, VOCABULARY_FILE, check_encoder

    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / METADATA_FILE).write_bytes(NESTED)
    with pytest.raises(ReviewlensError, match=rf"--encoder {encoder}: its metadata\.json nests deeper"):
        check_encoder(encoder)
    metadata = {"format": ENCODER_FORMAT, "format_version": ENCODER_VERSION, "objective": "lm",
                "vocabulary_size": 4, "vocabulary_digest": "0", "model": {}}  # fmt: skip
    (encoder / METADATA_FILE).write_text(json.dumps(metadata))
    (encoder / VOCABULARY_FILE).write_bytes(NESTED)
    with pytest.raises(ReviewlensError, match=r"its vocabulary\.json nests deeper") as refused:
        check_encoder(encoder)
    assert "\n" not in str(refused.value)


def test_predictions_holding_an_object_array_are_refused_in_one_line(run_copy: Path) -> None:
    import numpy as np

    from reviewlens.runs import read_predictions

    np.savez(run_copy / "predictions.npz", val_probability=np.array([print], dtype=object))
    with pytest.raises(ReviewlensError, match=r"predictions\.npz cannot be read \(Object arrays") as refused:
        read_predictions(run_copy)
    assert "\n" not in str(refused.value)
