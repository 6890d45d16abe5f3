"""Run directories: the one schema of ``metadata.json``, the one loader, and ``Run``, what every consumer predicts with.

A run directory holds ``metadata.json`` (``RunMetadata``: the recipe, data, metrics, the checksum of
every file, the predictor kinds it can be loaded with, its labels, decision threshold and calibration), the files of
its predictors, ``vectorizer.json`` (its preprocessing), ``predictions.npz`` (the validation and test
probabilities), ``history.json`` and ``curves.png``. ``read_metadata`` checks a run once where it loads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import msgspec
import numpy as np

from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import BINARY_LABELS, decide, predicted_labels
from reviewlens.explain import Explanation
from reviewlens.files import MAX_BYTES, METADATA_FILE, FileError, check_size, read_json
from reviewlens.predictors import PREDICTORS, Predictor
from reviewlens.text.preprocessor import VECTORIZER_FILE, Preprocessor, load_preprocessor

HISTORY_FILE = "history.json"
CURVES_FILE = "curves.png"
PREDICTIONS_FILE = "predictions.npz"
#: The run format this version writes: 2 added ``format_version``, ``predictors``, ``labels``, ``threshold``,
#: ``temperature``, ``family``, ``vectorizer.json`` and ``predictions.npz``. Format 1 runs still load.
FORMAT_VERSION = 2

#: ``metadata.json`` of the largest run is a few kB; a file far larger is not one (a link to /dev/zero...).
MAX_METADATA_BYTES = MAX_BYTES[METADATA_FILE]

Runtime = Literal["auto", "numpy", "keras"]
RUNTIMES: tuple[str, ...] = ("auto", "numpy", "keras")


class RunMetadata(msgspec.Struct, kw_only=True):
    """``metadata.json``: validated once where a run loads; consumers read these fields, never the raw JSON.

    A ``msgspec.Struct``: the schema is the class, decoding checks it, and it costs a few milliseconds where
    every cold ``predict`` and ``serve`` loads a run (pydantic's import and schema build took 0.1 s).
    """

    format_version: int = 1
    name: str
    created: str | None = None
    recipe: str
    family: str | None = None
    #: The kinds it loads with, the default first.
    predictors: Annotated[list[str], msgspec.Meta(min_length=1)]
    labels: Annotated[list[str], msgspec.Meta(min_length=2)] = msgspec.field(
        default_factory=lambda: list(BINARY_LABELS)
    )
    #: The score at or above which it says positive.
    threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    #: Calibration: probabilities are softmax(log p / temperature) (``train --calibrate``).
    temperature: Annotated[float, msgspec.Meta(gt=0.0)] = 1.0
    recipe_config: dict[str, Any] = msgspec.field(default_factory=dict)
    hyperparameters: dict[str, Any] = msgspec.field(default_factory=dict)
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    best_epoch: int | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    timings: dict[str, float] = msgspec.field(default_factory=dict)
    versions: dict[str, str] = msgspec.field(default_factory=dict)
    #: SHA-256 of every file of the run, by name.
    files: dict[str, str]

    def __post_init__(self) -> None:
        for name in self.files:
            if name in ("", ".", "..") or "/" in name or "\\" in name or name == METADATA_FILE:
                raise ValueError(f"file name {name!r} is not a file of the run directory")

    @classmethod
    def from_dict(cls, data: Any) -> RunMetadata:
        """Validate decoded JSON (``msgspec.ValidationError`` names the field); format 1 runs did not name
        their predictors: a vectorizer.json meant the NumPy runtime."""
        if isinstance(data, dict) and "predictors" not in data and isinstance(data.get("files"), dict):
            kinds = ["dense.v1", "keras.v1"] if VECTORIZER_FILE in data["files"] else ["keras.v1"]
            data = {**data, "predictors": kinds}
        return msgspec.convert(data, cls)

    def to_json(self) -> dict[str, Any]:
        return cast(dict[str, Any], msgspec.to_builtins(self))

    def trained_on(self) -> Path | None:
        """The data the run was trained on, as ``data`` records it; ``None`` where it records none.

        A run of the embedded sample gets this install's sample: its recorded path moves with the package.
        Other runs record the absolute path (runs written before did so as ``train`` was given it, which may be
        relative to where it ran).
        """
        from reviewlens.data import SAMPLE_ORIGIN, sample_path  # here: loading a run never reads data

        if self.data.get("origin") == SAMPLE_ORIGIN:
            return sample_path()
        path = self.data.get("path")
        return Path(path) if isinstance(path, str) and path else None

    def data_shown(self) -> str:
        """The run's data in a few words, for tables: "embedded sample", its path, or "-" where none is recorded."""
        from reviewlens.data import SAMPLE_ORIGIN

        if self.data.get("origin") == SAMPLE_ORIGIN:
            return SAMPLE_ORIGIN
        return str(self.data.get("path") or "-")


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


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in chunks (a run's weights, or a shard to score, may be larger than memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_metadata(run_dir: str | os.PathLike[str]) -> RunMetadata:
    """The run's metadata, after checking the directory is a complete, unaltered run of a format this reviewlens
    reads: every file regular, within its kind's bound (``reviewlens.files.MAX_BYTES``, checked before a byte is
    read) and matching its checksum."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ReviewlensError(f"{path} is not a run directory; pass a directory written by `reviewlens train`")
    meta_path = path / METADATA_FILE
    if not meta_path.exists() and not meta_path.is_symlink():
        raise ReviewlensError(
            f"{path} has no {METADATA_FILE}, so it is not a complete run; train again with `reviewlens train`"
        )
    decoded = read_json(meta_path, "train the model again")
    version = decoded.get("format_version", 1) if isinstance(decoded, dict) else 1
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ReviewlensError(
            f"{path} was written by a newer reviewlens (run format {version}, this one reads up to "
            f"{FORMAT_VERSION}); upgrade reviewlens to load it"
        )
    try:
        metadata = RunMetadata.from_dict(decoded)
    except msgspec.ValidationError as error:
        raise ReviewlensError(f"{meta_path} is not reviewlens run metadata ({error}); train the model again") from None
    for kind in metadata.predictors:
        if kind not in PREDICTORS:
            raise ReviewlensError(
                f"{meta_path} names the predictor {kind!r}, which this reviewlens does not know; upgrade reviewlens"
            )
        for name in PREDICTORS[kind].files:
            if name not in metadata.files:
                raise ReviewlensError(f"{meta_path} lists no checksum for {name}; the run is incomplete, train again")
    for name, digest in metadata.files.items():
        file = path / name
        if not file.exists():
            raise ReviewlensError(f"{file} is missing from the run; train the model again")
        check_size(file, "train the model again")
        if sha256_of(file) != digest:
            raise ReviewlensError(f"{file} does not match its checksum in {METADATA_FILE}; it is corrupt, train again")
    return metadata


def runs_in(directory: Path) -> tuple[list[tuple[Path, RunMetadata]], list[tuple[Path, str]]]:
    """The run directories in ``directory`` by name, with their metadata, and those whose ``metadata.json`` cannot
    be read, with why (their other files are checked where a run loads, by ``read_metadata``); folders without a
    ``metadata.json`` and hidden ones are passed over."""
    found, damaged = [], []
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        meta_path = path / METADATA_FILE
        if path.name.startswith(".") or not (meta_path.exists() or meta_path.is_symlink()):
            continue
        try:
            found.append((path, RunMetadata.from_dict(read_json(meta_path, "train it again"))))
        except FileError as error:
            damaged.append((path, f"its {METADATA_FILE} {error.why}"))
        except msgspec.ValidationError as error:
            damaged.append((path, f"its {METADATA_FILE} is not run metadata ({error})"))
    return found, damaged


def choose_predictor(metadata: RunMetadata, runtime: Runtime, where: Path) -> type[Predictor]:
    """The predictor class a run loads with: its default, or its first of the runtime asked for."""
    if runtime not in RUNTIMES:
        raise ReviewlensError(f"unknown runtime {runtime!r}; use auto, numpy or keras")
    kinds = [PREDICTORS[kind] for kind in metadata.predictors]
    if runtime != "auto":
        kinds = [cls for cls in kinds if cls.runtime == runtime]
    if not kinds:
        raise ReviewlensError(f"{where} has no {runtime} predictor (it has {', '.join(metadata.predictors)})")
    return kinds[0]


def run_preprocessor(run_dir: Path, metadata: RunMetadata) -> Preprocessor | None:
    """The run's preprocessing step; ``None`` for format 1 sequence runs, which kept it inside ``model.keras``."""
    return load_preprocessor(run_dir) if VECTORIZER_FILE in metadata.files else None


class Run:
    """A trained run: ``predict(texts)`` gives the probability that each raw text is positive.

    ``runtime="numpy"`` predicts without TensorFlow (bag-of-words runs), ``"keras"`` runs the saved
    ``model.keras``, ``"auto"`` the run's default predictor. Both give the same probabilities.
    """

    def __init__(self, run_dir: str | os.PathLike[str], runtime: Runtime = "auto"):
        self.run_dir = Path(run_dir)
        self.metadata = read_metadata(self.run_dir)
        kind = choose_predictor(self.metadata, runtime, self.run_dir)
        self.predictor: Predictor = kind.load(
            self.run_dir, self.metadata, run_preprocessor(self.run_dir, self.metadata)
        )
        self.predictor.temperature = self.metadata.temperature
        self._prove()

    def _prove(self) -> None:
        """One prediction at load, so that a run whose files load but do not fit together (weights of the wrong
        shape with checksums rewritten to match) is refused here, not on every request."""
        try:
            probabilities = self.predictor.predict_proba(["a review to prove the run predicts"])
        except Exception as error:  # whatever a tampered run raises, it cannot serve
            raise ReviewlensError(
                f"{self.run_dir} loads but does not predict ({type(error).__name__}: {error}); train the model again"
            ) from None
        if probabilities.shape != (1, len(self.labels)) or not np.all(np.isfinite(probabilities)):
            raise ReviewlensError(
                f"{self.run_dir} predicts {probabilities.shape[-1]} probabilities for its {len(self.labels)} labels "
                "(or not finite ones); train the model again"
            )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def recipe(self) -> str:
        return self.metadata.recipe

    @property
    def runtime(self) -> str:
        return self.predictor.runtime

    @property
    def labels(self) -> list[str]:
        return self.metadata.labels

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of positive for each text (float32), in order: a two-label run's score. With more labels,
        use ``predict_proba`` (one column per label) or ``answers``; this gives the last label's column."""
        return self.predict_proba(texts)[:, -1]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of each label (columns in ``labels`` order) for each text."""
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts, not one string")
        return self.predictor.predict_proba(list(texts))

    def label(self, score: float) -> str:
        """The label a binary run gives a text with this probability of positive (its threshold decides)."""
        return self.labels[int(decide(score, self.threshold))]

    def decide(self, probabilities: np.ndarray) -> list[str]:
        """The label of each row of ``predict_proba``'s probabilities: the threshold decides between two labels,
        the most probable of more wins."""
        return [self.labels[index] for index in predicted_labels(probabilities, self.threshold)]

    def answers(self, texts: Sequence[str]) -> list[Answer]:
        """Each text's label, score and the probability of every label: what every consumer reports."""
        probabilities = self.predict_proba(texts)
        return [Answer.of(label, row, self.labels) for label, row in zip(self.decide(probabilities), probabilities,
                                                                         strict=True)]  # fmt: skip

    def explain(self, text: str, top: int | None = None) -> Explanation:
        """The text's score and the terms that moved it most, largest effect first (with more than two labels,
        the probability of the text's label, ``Explanation.label``)."""
        return self.predictor.explain(text, top)

    def explained_label(self, explanation: Explanation) -> str:
        """The label an explanation's text gets: its threshold decides a two-label run's, more follow one label."""
        return self.label(explanation.score) if explanation.label is None else self.labels[explanation.label]

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r}, recipe={self.recipe!r}, runtime={self.runtime!r})"


class Answer(msgspec.Struct, frozen=True):
    """A run's answer for one text: its label, its ``score`` (the probability of positive for two labels, as
    binary runs always gave; of the answered label for more) and the probability of each label, by name."""

    label: str
    score: float
    probabilities: dict[str, float]

    @classmethod
    def of(cls, label: str, row: np.ndarray, labels: Sequence[str]) -> Answer:
        probabilities = {name: float(p) for name, p in zip(labels, row, strict=True)}
        return cls(label, probabilities[labels[-1]] if len(labels) == 2 else probabilities[label], probabilities)

    @property
    def confidence(self) -> float:
        """The probability of the answered label (for two labels from ``score``, as it always was shown)."""
        if len(self.probabilities) == 2:
            return self.score if self.label == list(self.probabilities)[-1] else 1.0 - self.score
        return self.probabilities[self.label]

    def to_json(self) -> dict[str, Any]:
        """``{"label", "score", "probabilities"}``, each probability to six places."""
        return {"label": self.label, "score": round(self.score, 6),
                "probabilities": {name: round(p, 6) for name, p in self.probabilities.items()}}  # fmt: skip


Predictor.open_run = Run  # an ensemble's members are runs: how a predictor opens one (see ``Predictor.open_run``)


def load(run_dir: str | os.PathLike[str], runtime: Runtime = "auto") -> Run:
    """Load a run directory written by ``reviewlens train``."""
    return Run(run_dir, runtime)


def read_predictions(run_dir: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The run's validation and test labels and probabilities of positive, as its trainer computed them."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.is_file():
        raise ReviewlensError(f"{path} is missing: runs of format 1 did not keep their predictions; train again")
    check_size(path, "train the model again")
    try:
        with np.load(path, allow_pickle=False) as arrays:  # an object array would need pickle: refused
            return {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ReviewlensError(f"{path} cannot be read ({error}); train the model again") from None


def write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
