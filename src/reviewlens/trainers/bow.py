"""Bag-of-words family: exact fast vectorization, Keras' arithmetic on sparse vectors, both cores.

One helper process imports TensorFlow and saves the ``.keras`` model at the end; another reads and
vectorizes the test split while this process trains (the test split is scored once, after training).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.data import Dataset, split_digest
from reviewlens.evaluation import metrics
from reviewlens.export import Exporter
from reviewlens.models.sparse_mlp import SparseMLP, initial_weights
from reviewlens.recipes import Recipe
from reviewlens.runs import MODEL_FILE
from reviewlens.runtime import DenseRuntime
from reviewlens.text import BagOfWords
from reviewlens.training import Context, Trained


def train(recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
    exporter = context.resources.enter_context(Exporter())  # starts importing TensorFlow now
    helper = context.resources.enter_context(ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")))

    context.log("reading train and validation reviews")
    splits = dataset.read_splits("train", "validation")  # one pass over the source
    (train_texts, train_labels), (val_texts, val_labels) = splits["train"], splits["validation"]
    context.lap("read_s")

    context.log(f"vectorizing {len(train_texts):,} train and {len(val_texts):,} validation reviews")
    vectorizer = BagOfWords(**recipe.vectorizer)  # type: ignore[arg-type]
    order = np.random.default_rng(context.seed).permutation(len(train_texts))  # mix the classes once
    x_train = vectorizer.fit_transform([train_texts[i] for i in order])
    y_train = np.asarray(train_labels, np.float32)[order]
    x_val = vectorizer.transform(val_texts)
    context.lap("vectorize_s")

    test_job = helper.submit(_read_and_vectorize, dataset.path, dataset.validation_fraction, "test",
                             vectorizer.get_config())  # fmt: skip
    fitted = _fit(recipe, vectorizer, x_train, y_train, x_val, np.asarray(val_labels, np.float32), context)
    context.lap("fit_s")

    context.log("scoring the test split (once)")
    x_test, test_labels, test_digest = test_job.result()
    runtime = DenseRuntime(vectorizer, fitted.kernels, fitted.biases)

    def write_model(directory: Path) -> None:
        exporter.save(directory / MODEL_FILE, vectorizer, dict(recipe.model), fitted.kernels, fitted.biases)
        runtime.save(directory)

    return Trained(
        history=fitted.history,
        best_epoch=fitted.best_epoch,
        val_labels=val_labels,
        val_probabilities=fitted.val_probabilities,
        test_labels=test_labels,
        test_probabilities=runtime.predict_vectors(x_test),
        digests=(split_digest(train_texts, train_labels), split_digest(val_texts, val_labels), test_digest),
        train_size=len(train_texts),
        hyperparameters={"vocabulary_size": len(vectorizer.vocabulary)},
        write_model=write_model,
    )


def _read_and_vectorize(
    path: Path, validation_fraction: float, split: str, vectorizer_config: dict[str, object]
) -> tuple[Any, list[int], bytes]:
    """In the helper process: one split's vectors, labels and content digest."""
    texts, labels = Dataset(path, validation_fraction).read(split)
    return BagOfWords.from_config(vectorizer_config).transform(texts), labels, split_digest(texts, labels)


@dataclass
class _Fitted:
    kernels: list[np.ndarray]  # the best epoch's weights, first layer first
    biases: list[np.ndarray]
    history: dict[str, list[float]]
    best_epoch: int
    val_probabilities: np.ndarray  # the best epoch's, on the validation split


def _fit(
    recipe: Recipe, vectorizer: BagOfWords, x_train: Any, y_train: np.ndarray, x_val: Any, y_val: np.ndarray,
    context: Context,
) -> _Fitted:  # fmt: skip
    """Fit with ``SparseMLP`` from Keras' default initialization; keep the best validation epoch."""
    hidden = list(recipe.model.get("hidden", [16]))  # type: ignore[call-overload]
    kernels, biases = initial_weights([len(vectorizer.vocabulary), *hidden, 1], context.seed)
    mlp = SparseMLP(
        kernels,
        biases,
        dropout=recipe.model.get("dropout"),  # type: ignore[arg-type]
        optimizer=recipe.optimizer,
        learning_rate=recipe.learning_rate,
        seed=context.seed,
    )
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best: tuple[float, float] = (-1.0, 0.0)
    best_epoch, best_weights = 0, ([k.copy() for k in mlp.kernels], [b.copy() for b in mlp.biases])
    val_probabilities = np.zeros(len(y_val), np.float32)
    for epoch in range(1, context.epochs + 1):
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
        context.epoch_done(epoch, logs)
    return _Fitted(*best_weights, history, best_epoch, val_probabilities)
