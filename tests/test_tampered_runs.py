"""A run directory that was cut short, altered or made by someone else: one line each, and never code from it.

Each case changes a copy of a trained run the way a crash, a bad copy or an attacker would, rewriting the
checksums where the change would otherwise be caught by them, and loads it as ``predict`` and ``serve`` do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import reviewlens
from reviewlens.errors import ReviewlensError

from .test_cli import run as run_cli


def _metadata(run: Path) -> dict[str, object]:
    return json.loads((run / "metadata.json").read_text())


def _edit_metadata(run: Path, **fields: object) -> None:
    (run / "metadata.json").write_text(json.dumps(_metadata(run) | fields))


def _rewrite_checksum(run: Path, name: str) -> None:
    files = dict(_metadata(run)["files"])  # type: ignore[call-overload]
    files[name] = hashlib.sha256((run / name).read_bytes()).hexdigest()
    _edit_metadata(run, files=files)


def _truncate_weights(run: Path) -> None:
    data = (run / "weights.npz").read_bytes()
    (run / "weights.npz").write_bytes(data[: len(data) // 2])
    _rewrite_checksum(run, "weights.npz")


def _misshape_weights(run: Path) -> None:
    with np.load(run / "weights.npz") as weights:
        arrays = dict(weights)
    arrays["kernel_0"] = arrays["kernel_0"][:10]
    np.savez(run / "weights.npz", **arrays)  # type: ignore[arg-type]
    _rewrite_checksum(run, "weights.npz")


def _pickle_in_weights(run: Path) -> None:
    with np.load(run / "weights.npz") as weights:
        arrays = dict(weights)
    arrays["activations"] = np.array([print], dtype=object)  # loading it would need pickle
    np.savez(run / "weights.npz", **arrays)  # type: ignore[arg-type]
    _rewrite_checksum(run, "weights.npz")


def _replace_metadata(run: Path, make: Callable[[Path], None]) -> None:
    (run / "metadata.json").unlink()
    make(run / "metadata.json")


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "files emptied": (lambda run: _edit_metadata(run, files={}), "lists no checksum for vectorizer.json"),
    "a name leaving the run": (
        lambda run: _edit_metadata(run, files=_metadata(run)["files"] | {"../../../etc/hostname": "0" * 64}),  # type: ignore[operator]
        "'../../../etc/hostname' is not a file of the run directory",
    ),
    "weights truncated": (_truncate_weights, "weights.npz cannot be read"),
    "weights of the wrong shape": (_misshape_weights, "loads but does not predict"),
    "a pickled object in the weights": (_pickle_in_weights, "weights.npz cannot be read (Object arrays"),
    "weights changed": (lambda run: (run / "weights.npz").write_bytes(b"PK\x03\x04"), "does not match its checksum"),
    "weights missing": (lambda run: (run / "weights.npz").unlink(), "weights.npz is missing from the run"),
    "weights a FIFO": (lambda run: ((run / "weights.npz").unlink(), os.mkfifo(run / "weights.npz")), "not a regular"),
    "metadata missing": (lambda run: (run / "metadata.json").unlink(), "has no metadata.json"),
    "metadata a link to /dev/zero": (
        lambda run: _replace_metadata(run, lambda path: path.symlink_to("/dev/zero")),
        "metadata.json is not a regular file",
    ),
    "metadata a folder": (lambda run: _replace_metadata(run, Path.mkdir), "metadata.json is not a regular file"),
    "metadata cut short": (
        lambda run: (run / "metadata.json").write_bytes((run / "metadata.json").read_bytes()[:200]),
        "metadata.json is corrupt",
    ),
    "a field of the wrong type": (lambda run: _edit_metadata(run, test_accuracy="high"), "at `$.test_accuracy`"),
    "metrics null": (lambda run: _edit_metadata(run, metrics=None), "at `$.metrics`"),
    "written by a newer reviewlens": (
        lambda run: _edit_metadata(run, format_version=99),
        "was written by a newer reviewlens (run format 99, this one reads up to 2); upgrade reviewlens",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_tampered_run_is_refused_with_one_line(trained_run: Path, tmp_path: Path, case: str) -> None:
    tamper, message = CASES[case]
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    reviewlens.load(run)  # the copy loads before it is changed
    tamper(run)
    with pytest.raises(ReviewlensError) as refused:
        reviewlens.load(run)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value) and str(run) in str(refused.value)


def test_the_command_line_gives_the_line_and_exit_code_2(trained_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    _misshape_weights(run)
    result = run_cli("predict", str(run), "a fine film")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {run} loads but does not predict (ValueError: matmul: dimension mismatch")
    assert line.endswith("train the model again")


def test_a_model_with_a_lambda_layer_is_refused_not_run(trained_run: Path, tmp_path: Path) -> None:
    import keras

    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)  # its function is Python bytecode in the file
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(outputs)).save(run / "model.keras")
    _rewrite_checksum(run, "model.keras")
    with pytest.raises(ReviewlensError, match=r"model\.keras cannot be loaded .*Lambda.*safe_mode") as refused:
        reviewlens.load(run, runtime="keras")  # Keras' safe mode refuses to deserialize it
    assert "\n" not in str(refused.value)
    assert reviewlens.load(run, runtime="numpy").predict(["good"]).shape == (1,)  # its NumPy weights are intact
