"""Reading and checking run directories: the one loader every consumer (CLI, library, service) uses."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from reviewlens.errors import ReviewlensError

if TYPE_CHECKING:
    from reviewlens.runtime import DenseRuntime

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
HISTORY_FILE = "history.json"
CURVES_FILE = "curves.png"

Runtime = Literal["auto", "numpy", "keras"]


def file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file in ``directory`` (not recursive), by name."""
    digests = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("reviewlens", "keras", "tensorflow-cpu", "tensorflow", "numpy", "scipy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def read_metadata(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's metadata, after checking the directory is a complete, unaltered run."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ReviewlensError(f"{path} is not a run directory; pass a directory written by `reviewlens train`")
    meta_path = path / METADATA_FILE
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReviewlensError(
            f"{path} has no {METADATA_FILE}, so it is not a complete run; train again with `reviewlens train`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReviewlensError(f"{meta_path} is corrupt ({error}); train the model again") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("files"), dict):
        raise ReviewlensError(f"{meta_path} is not reviewlens run metadata; train the model again")
    for name, digest in metadata["files"].items():
        file = path / name
        if not file.is_file():
            raise ReviewlensError(f"{file} is missing from the run; train the model again")
        if hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            raise ReviewlensError(f"{file} does not match its checksum in {METADATA_FILE}; it is corrupt, train again")
    return metadata


class Model:
    """A trained run: ``predict(texts)`` gives the probability that each raw text is positive.

    ``runtime="numpy"`` predicts without TensorFlow (bag-of-words runs); ``"keras"`` runs the saved
    ``model.keras``; ``"auto"`` picks numpy where the run has it. Both give the same probabilities.
    """

    def __init__(self, run_dir: str | os.PathLike[str], runtime: Runtime = "auto"):
        self.run_dir = Path(run_dir)
        self.metadata = read_metadata(self.run_dir)
        from reviewlens.runtime import VECTORIZER_FILE, DenseRuntime

        has_lean = (self.run_dir / VECTORIZER_FILE).is_file()
        if runtime not in ("auto", "numpy", "keras"):
            raise ReviewlensError(f"unknown runtime {runtime!r}; use auto, numpy or keras")
        if runtime == "numpy" and not has_lean:
            raise ReviewlensError(f"{self.run_dir} has no NumPy runtime; use runtime='keras'")
        self.runtime: str = "numpy" if has_lean and runtime != "keras" else "keras"
        self._lean = DenseRuntime.load(self.run_dir) if self.runtime == "numpy" else None
        self._keras: Any = None if self._lean is not None else load_keras_model(self.run_dir)

    @property
    def dense_runtime(self) -> DenseRuntime | None:
        """The NumPy runtime predicting for this run, or ``None`` when the Keras model does."""
        return self._lean

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.run_dir.name))

    @property
    def recipe(self) -> str:
        return str(self.metadata.get("recipe"))

    def predict(self, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
        """Probability of positive for each text (float32), in order."""
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts, not one string")
        texts = list(texts)
        if self._lean is not None:
            return self._lean.predict(texts)
        if not texts:
            return np.zeros(0, np.float32)
        import tensorflow as tf

        batch = tf.reshape(tf.constant(texts, dtype=tf.string), (-1, 1))
        return np.asarray(self._keras.predict(batch, batch_size=batch_size, verbose=0), np.float32).reshape(-1)

    def __repr__(self) -> str:
        return f"Model({str(self.run_dir)!r}, recipe={self.recipe!r}, runtime={self.runtime!r})"


def load_keras_model(run_dir: str | os.PathLike[str]) -> Any:
    """The run's end-to-end ``keras.Model`` (imports TensorFlow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import reviewlens.keras_text  # registers the standardization for loading
    import reviewlens.models.layers  # noqa: F401 - registers the recipes' custom layers

    path = Path(run_dir) / MODEL_FILE
    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError, KeyError) as error:
        raise ReviewlensError(f"{path} cannot be loaded ({error}); train the model again") from None


def load(run_dir: str | os.PathLike[str], runtime: Runtime = "auto") -> Model:
    """Load a run directory written by ``reviewlens train``."""
    return Model(run_dir, runtime)
