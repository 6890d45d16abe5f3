"""Train a recipe on a dataset and write its run directory, atomically.

The fit runs on vectors made by ``reviewlens.text`` (fast, tested equal to TextVectorization); the
saved model is the book's end-to-end model on raw strings, with a TextVectorization layer holding
the same vocabulary in front of the trained layers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.data import Dataset, Resolved, fingerprint, resolve, split_digest
from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import metrics, plot_curves
from reviewlens.export import Exporter
from reviewlens.models.sparse_mlp import SparseMLP, initial_weights
from reviewlens.recipes import Recipe, get_recipe
from reviewlens.runs import (
    CURVES_FILE,
    HISTORY_FILE,
    METADATA_FILE,
    MODEL_FILE,
    file_digests,
    library_versions,
)
from reviewlens.runtime import DenseRuntime
from reviewlens.text import BagOfWords

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

Log = Callable[[str], None]
EpochCallback = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, logs)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    metadata: dict[str, Any]


def _quiet(_: str) -> None:
    pass


def default_run_dir(recipe: str, root: Path = Path("runs")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return root / f"{recipe}-{stamp}"


def train(
    recipe: str | Recipe,
    data: str | os.PathLike[str] | Dataset | Resolved | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    epochs: int | None = None,
    seed: int = 1337,
    log: Log = _quiet,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train ``recipe`` and write a run directory; return where it is and its metadata.

    ``data`` is a path, a ``Dataset`` or ``None`` (resolved as the CLI does). Model selection sees
    the validation split only; the test split is read once and scored once, after training.

    Two helper processes use the second core: one imports TensorFlow and saves the ``.keras`` model
    at the end; the other reads and vectorizes the test split while this process trains.
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if epochs is not None and epochs < 1:
        raise ReviewlensError(f"--epochs {epochs} must be at least 1")
    epochs = epochs or recipe.epochs
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

    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    spawn = multiprocessing.get_context("spawn")
    with Exporter() as exporter, ProcessPoolExecutor(1, mp_context=spawn) as helper:
        log(resolved.describe())
        log("reading train and validation reviews")
        train_texts, train_labels = dataset.read("train")
        val_texts, val_labels = dataset.read("validation")
        lap("read_s")

        log(f"vectorizing {len(train_texts):,} train and {len(val_texts):,} validation reviews")
        vectorizer = BagOfWords(**recipe.vectorizer)  # type: ignore[arg-type]
        order = np.random.default_rng(seed).permutation(len(train_texts))  # mix the classes once
        x_train = vectorizer.fit_transform([train_texts[i] for i in order])
        y_train = np.asarray(train_labels, np.float32)[order]
        x_val = vectorizer.transform(val_texts)
        y_val = np.asarray(val_labels, np.float32)
        lap("vectorize_s")

        test_job = helper.submit(_read_and_vectorize, dataset.path, dataset.validation_fraction, "test",
                                 vectorizer.get_config())  # fmt: skip
        fitted = _fit(recipe, vectorizer, x_train, y_train, x_val, y_val, epochs, seed, on_epoch)
        lap("fit_s")

        log("scoring the test split (once)")
        x_test, test_labels, test_digest = test_job.result()
        runtime = fitted.runtime(vectorizer)
        val_metrics = metrics(fitted.val_probabilities, val_labels)
        test_metrics = metrics(runtime.predict_vectors(x_test), test_labels)
        lap("evaluate_s")

        metadata: dict[str, Any] = {
            "name": run_dir.name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "recipe": recipe.name,
            "recipe_config": recipe.to_dict(),
            "hyperparameters": {
                "epochs": epochs,
                "batch_size": recipe.batch_size,
                "optimizer": recipe.optimizer,
                "learning_rate": recipe.learning_rate,
                "seed": seed,
                "selection": "highest validation accuracy, ties to lower validation loss",
                "validation_fraction": dataset.validation_fraction,
                "vocabulary_size": len(vectorizer.vocabulary),
            },
            "data": {
                "path": str(dataset.path),
                "origin": resolved.origin,
                "fingerprint": fingerprint(
                    split_digest(train_texts, train_labels), split_digest(val_texts, val_labels), test_digest
                ),
                "train": len(train_texts),
                "validation": len(val_texts),
                "test": len(test_labels),
                "undecodable": len(dataset.decode_report.ids),
            },
            "best_epoch": fitted.best_epoch,
            "val_accuracy": val_metrics["accuracy"],
            "test_accuracy": test_metrics["accuracy"],
            "metrics": {"validation": val_metrics, "test": test_metrics},
            "timings": timings,
            "versions": library_versions(),
        }
        log(f"writing {run_dir}")
        _write_run(run_dir, exporter, recipe.model, fitted, vectorizer, runtime, metadata, started)
    return TrainResult(run_dir, metadata)


def _read_and_vectorize(
    path: Path, validation_fraction: float, split: str, vectorizer_config: dict[str, object]
) -> tuple[Any, list[int], bytes]:
    """In a helper process: one split's vectors, labels and content digest."""
    texts, labels = Dataset(path, validation_fraction).read(split)
    return BagOfWords.from_config(vectorizer_config).transform(texts), labels, split_digest(texts, labels)


@dataclass
class _Fitted:
    kernels: list[np.ndarray]  # the best epoch's weights, first layer first
    biases: list[np.ndarray]
    history: dict[str, list[float]]
    best_epoch: int
    val_probabilities: np.ndarray  # the best epoch's, on the validation split

    def runtime(self, vectorizer: BagOfWords) -> DenseRuntime:
        return DenseRuntime(vectorizer, self.kernels, self.biases)


def _fit(
    recipe: Recipe,
    vectorizer: BagOfWords,
    x_train: Any,
    y_train: np.ndarray,
    x_val: Any,
    y_val: np.ndarray,
    epochs: int,
    seed: int,
    on_epoch: EpochCallback | None,
) -> _Fitted:
    """Fit with ``SparseMLP`` from Keras' default initialization; keep the best validation epoch."""
    hidden = list(recipe.model.get("hidden", [16]))  # type: ignore[call-overload]
    kernels, biases = initial_weights([len(vectorizer.vocabulary), *hidden, 1], seed)
    mlp = SparseMLP(
        kernels,
        biases,
        dropout=recipe.model.get("dropout"),  # type: ignore[arg-type]
        optimizer=recipe.optimizer,
        learning_rate=recipe.learning_rate,
        seed=seed,
    )
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best: tuple[float, float] = (-1.0, 0.0)
    best_epoch, best_weights = 0, ([k.copy() for k in mlp.kernels], [b.copy() for b in mlp.biases])
    val_probabilities = np.zeros(len(y_val), np.float32)
    for epoch in range(1, epochs + 1):
        logs = mlp.train_epoch(x_train, y_train, recipe.batch_size)
        probabilities = mlp.predict(x_val)
        scores = metrics(probabilities, y_val)
        logs |= {"val_loss": float(scores["loss"]), "val_accuracy": float(scores["accuracy"])}  # type: ignore[arg-type]
        for key, value in logs.items():
            history[key].append(value)
        # Highest validation accuracy; a tie goes to the lower validation loss.
        if (logs["val_accuracy"], -logs["val_loss"]) > best:
            best = (logs["val_accuracy"], -logs["val_loss"])
            best_epoch, val_probabilities = epoch, probabilities
            best_weights = ([k.copy() for k in mlp.kernels], [b.copy() for b in mlp.biases])
        if on_epoch is not None:
            on_epoch(epoch, epochs, logs)
    return _Fitted(*best_weights, history, best_epoch, val_probabilities)


def _write_run(
    run_dir: Path,
    exporter: Exporter,
    recipe_model: dict[str, object],
    fitted: _Fitted,
    vectorizer: BagOfWords,
    runtime: DenseRuntime,
    metadata: dict[str, Any],
    started: float,
) -> None:
    """Write everything into a hidden sibling directory, then rename it into place."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.partial-", dir=run_dir.parent))
    try:
        exporter.save(staging / MODEL_FILE, vectorizer, dict(recipe_model), fitted.kernels, fitted.biases)
        runtime.save(staging)
        (staging / HISTORY_FILE).write_text(json.dumps(fitted.history, indent=2) + "\n")
        plot_curves(fitted.history, staging / CURVES_FILE, title=f"{metadata['recipe']} ({metadata['name']})")
        metadata["timings"]["total_s"] = round(time.perf_counter() - started, 3)
        metadata["files"] = file_digests(staging)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
        if run_dir.exists():  # an empty directory the user made for us
            run_dir.rmdir()
        os.replace(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
