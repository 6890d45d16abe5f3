"""Train a recipe on a dataset and write its run directory, atomically.

The fit runs on vectors made by ``reviewlens.text`` (fast, tested equal to TextVectorization); the
saved model is the book's end-to-end model on raw strings, with a TextVectorization layer holding
the same vocabulary in front of the trained layers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.data import Dataset, Resolved, fingerprint, resolve
from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import metrics, plot_curves
from reviewlens.models.sparse_mlp import SparseMLP
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

    ``data`` is a path, a ``Dataset`` or ``None`` (resolved as the CLI does). Model selection and
    early stopping see the validation split only; the test split is read once, at the end.
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if epochs is not None and epochs < 1:
        raise ReviewlensError(f"--epochs {epochs} must be at least 1")
    resolved = (
        data
        if isinstance(data, Resolved)
        else (Resolved(data, "argument") if isinstance(data, Dataset) else resolve(data))
    )
    run_dir = Path(out) if out is not None else default_run_dir(recipe.name)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ReviewlensError(f"{run_dir} already exists and is not empty; choose another --out or remove it")

    timings: dict[str, float] = {}
    started = time.perf_counter()
    clock = started

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    log(resolved.describe())
    dataset = resolved.dataset
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

    fitted = _fit(recipe, vectorizer, x_train, y_train, x_val, y_val, epochs or recipe.epochs, seed, on_epoch)
    lap("fit_s")

    log("reading and scoring the test split (once)")
    test_texts, test_labels = dataset.read("test")
    runtime = fitted.runtime(vectorizer)
    val_metrics = metrics(runtime.predict(val_texts), val_labels)
    test_metrics = metrics(runtime.predict(test_texts), test_labels)
    lap("evaluate_s")

    metadata: dict[str, Any] = {
        "name": run_dir.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": recipe.name,
        "recipe_config": recipe.to_dict(),
        "hyperparameters": {
            "epochs": epochs or recipe.epochs,
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
            "fingerprint": fingerprint((train_texts, train_labels), (val_texts, val_labels), (test_texts, test_labels)),
            "train": len(train_texts),
            "validation": len(val_texts),
            "test": len(test_texts),
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
    _write_run(run_dir, fitted, vectorizer, runtime, metadata, started)
    return TrainResult(run_dir, metadata)


@dataclass
class _Fitted:
    core: Any  # keras.Model on vectors, with the best epoch's weights
    history: dict[str, list[float]]
    best_epoch: int

    def runtime(self, vectorizer: BagOfWords) -> DenseRuntime:
        dense = [layer for layer in self.core.layers if isinstance(layer.get_config().get("units"), int)]
        return DenseRuntime(
            vectorizer,
            [np.asarray(layer.kernel) for layer in dense],
            [np.asarray(layer.bias) for layer in dense],
        )


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
    """Fit with ``SparseMLP`` from the Keras model's initial weights; keep the best validation epoch."""
    import keras

    from reviewlens.models import bow

    keras.utils.set_random_seed(seed)
    core = bow.build(len(vectorizer.vocabulary), **recipe.model)  # type: ignore[arg-type]
    dense = [layer for layer in core.layers if isinstance(layer.get_config().get("units"), int)]
    mlp = SparseMLP(
        [np.asarray(layer.kernel) for layer in dense],
        [np.asarray(layer.bias) for layer in dense],
        dropout=recipe.model.get("dropout"),  # type: ignore[arg-type]
        optimizer=recipe.optimizer,
        learning_rate=recipe.learning_rate,
        seed=seed,
    )
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best: tuple[float, float] = (-1.0, 0.0)
    best_epoch, best_weights = 0, ([k.copy() for k in mlp.kernels], [b.copy() for b in mlp.biases])
    for epoch in range(1, epochs + 1):
        logs = mlp.train_epoch(x_train, y_train, recipe.batch_size)
        scores = metrics(mlp.predict(x_val), y_val)
        logs |= {"val_loss": float(scores["loss"]), "val_accuracy": float(scores["accuracy"])}  # type: ignore[arg-type]
        for key, value in logs.items():
            history[key].append(value)
        # Highest validation accuracy; a tie goes to the lower validation loss.
        if (logs["val_accuracy"], -logs["val_loss"]) > best:
            best = (logs["val_accuracy"], -logs["val_loss"])
            best_epoch = epoch
            best_weights = ([k.copy() for k in mlp.kernels], [b.copy() for b in mlp.biases])
        if on_epoch is not None:
            on_epoch(epoch, epochs, logs)
    for layer, kernel, bias in zip(dense, *best_weights, strict=True):
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
    return _Fitted(core, history, best_epoch)


def export_model(core: Any, vectorizer: BagOfWords) -> Any:
    """The end-to-end Keras model: raw strings in, probability of positive out."""
    import keras

    from reviewlens.keras_text import text_vectorization

    text = keras.Input(shape=(1,), dtype="string", name="text")
    x = text_vectorization(vectorizer)(text)
    for layer in core.layers[1:]:
        x = layer(x)
    return keras.Model(text, x, name=core.name)


def _write_run(
    run_dir: Path,
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
        export_model(fitted.core, vectorizer).save(staging / MODEL_FILE)
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
