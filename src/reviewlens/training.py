"""Train a recipe on a dataset and write its run directory, atomically.

``train()`` is the same for every model family: it resolves the data, hands the recipe to the
family's trainer (``reviewlens.trainers``), measures validation and test, and writes the run
directory into a hidden sibling that is renamed into place only once complete.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.data import Dataset, Resolved, fingerprint, resolve
from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import metrics, plot_curves
from reviewlens.recipes import Recipe, get_recipe
from reviewlens.runs import CURVES_FILE, HISTORY_FILE, METADATA_FILE, file_digests, library_versions
from reviewlens.trainers import TRAINERS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

Log = Callable[[str], None]
EpochCallback = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, logs)


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    metadata: dict[str, Any]


@dataclass
class Context:
    """What a family trainer gets besides the recipe and the data."""

    epochs: int
    seed: int
    log: Log = _quiet
    options: dict[str, Any] = field(default_factory=dict)  # per-run choices a family honours (--max-length...)
    on_epoch: EpochCallback | None = None
    resources: ExitStack = field(default_factory=ExitStack)  # closed once the run is written
    timings: dict[str, float] = field(default_factory=dict)
    _clock: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> None:
        """Record the seconds since the previous lap under ``name``."""
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 3)
        self._clock = now

    def epoch_done(self, epoch: int, logs: dict[str, float]) -> None:
        if self.on_epoch is not None:
            self.on_epoch(epoch, self.epochs, logs)


@dataclass
class Trained:
    """What a family trainer hands back: the best epoch's predictions and a way to save the model."""

    history: dict[str, list[float]]
    best_epoch: int
    val_labels: list[int]
    val_probabilities: np.ndarray
    test_labels: list[int]
    test_probabilities: np.ndarray
    digests: tuple[bytes, ...]  # split_digest of train, validation and test
    train_size: int
    hyperparameters: dict[str, object]  # family-specific, added to the recipe's
    write_model: Callable[[Path], None]  # writes model.keras (and any runtime files) into a directory


def default_run_dir(recipe: str, root: Path = Path("runs")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return root / f"{recipe}-{stamp}"


def configured(recipe: str | Recipe, batch_size: int | None = None, learning_rate: float | None = None) -> Recipe:
    """The recipe (looked up by name) with this run's batch size and learning rate where given."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if batch_size is not None:
        if batch_size < 1:
            raise ReviewlensError(f"--batch-size {batch_size} must be at least 1")
        recipe = dataclasses.replace(recipe, batch_size=batch_size)
    if learning_rate is not None:
        if not 0 < learning_rate < math.inf:
            raise ReviewlensError(f"--learning-rate {learning_rate} must be a positive number")
        recipe = dataclasses.replace(recipe, learning_rate=learning_rate)
    return recipe


def train(
    recipe: str | Recipe,
    data: str | os.PathLike[str] | Dataset | Resolved | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    epochs: int | None = None,
    seed: int = 1337,
    log: Log = _quiet,
    on_epoch: EpochCallback | None = None,
    options: dict[str, Any] | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
) -> TrainResult:
    """Train ``recipe`` and write a run directory; return where it is and its metadata.

    ``data`` is a path, a ``Dataset`` or ``None`` (resolved as the CLI does). Model selection sees
    the validation split only; the test split is scored once, after training. ``options`` are per-run
    settings the recipe's family honours (the sequence families' ``max_length``, ``truncate``...);
    ``batch_size`` and ``learning_rate`` replace the recipe's for this run.
    """
    recipe = configured(recipe, batch_size, learning_rate)
    if epochs is not None and epochs < 1:
        raise ReviewlensError(f"--epochs {epochs} must be at least 1")
    if isinstance(data, Resolved):
        resolved = data
    elif isinstance(data, Dataset):
        resolved = Resolved(data, "argument")
    else:
        resolved = resolve(data)
    dataset = resolved.dataset
    run_dir = Path(out) if out is not None else default_run_dir(recipe.name)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ReviewlensError(f"{run_dir} already exists and is not empty; choose another --out or remove it")

    trainer = importlib.import_module(TRAINERS[recipe.family])
    unsupported = sorted(set(options or {}) - set(getattr(trainer, "OPTIONS", ())))
    if unsupported:
        names = ", ".join("--" + name.replace("_", "-") for name in unsupported)
        raise ReviewlensError(f"recipe {recipe.name!r} ({recipe.family} family) does not take {names}; leave it out")
    context = Context(epochs=epochs or recipe.epochs, seed=seed, log=log, on_epoch=on_epoch, options=options or {})
    started = time.perf_counter()
    with context.resources:
        log(resolved.describe())
        trained: Trained = trainer.train(recipe, dataset, context)
        val_metrics = metrics(trained.val_probabilities, trained.val_labels)
        test_metrics = metrics(trained.test_probabilities, trained.test_labels)
        context.lap("evaluate_s")
        metadata: dict[str, Any] = {
            "name": run_dir.name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "recipe": recipe.name,
            "recipe_config": recipe.to_dict(),
            "hyperparameters": {
                "epochs": context.epochs,
                "batch_size": recipe.batch_size,
                "optimizer": recipe.optimizer,
                "learning_rate": recipe.learning_rate,
                "seed": seed,
                "selection": "highest validation accuracy, ties to lower validation loss",
                "validation_fraction": dataset.validation_fraction,
                **trained.hyperparameters,
            },
            "data": {
                "path": str(dataset.path),
                "origin": resolved.origin,
                "fingerprint": fingerprint(*trained.digests),
                "train": trained.train_size,
                "validation": len(trained.val_labels),
                "test": len(trained.test_labels),
                "undecodable": len(dataset.decode_report.ids),
            },
            "best_epoch": trained.best_epoch,
            "val_accuracy": val_metrics["accuracy"],
            "test_accuracy": test_metrics["accuracy"],
            "metrics": {"validation": val_metrics, "test": test_metrics},
            "timings": context.timings,
            "versions": library_versions(),
        }
        log(f"writing {run_dir}")
        write_run(run_dir, trained, metadata, started)
    return TrainResult(run_dir, metadata)


def write_run(run_dir: Path, trained: Trained, metadata: dict[str, Any], started: float) -> None:
    """Write everything into a hidden sibling directory, then rename it into place."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.partial-", dir=run_dir.parent))
    try:
        trained.write_model(staging)
        (staging / HISTORY_FILE).write_text(json.dumps(trained.history, indent=2) + "\n")
        plot_curves(trained.history, staging / CURVES_FILE, title=f"{metadata['recipe']} ({metadata['name']})")
        metadata["timings"]["total_s"] = round(time.perf_counter() - started, 3)
        metadata["files"] = file_digests(staging)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
        if run_dir.exists():  # an empty directory the user made for us
            run_dir.rmdir()
        os.replace(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
