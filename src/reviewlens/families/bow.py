"""Bag-of-words family: exact fast vectorization, Keras' arithmetic on sparse vectors, both cores; its recipes.

One helper process imports TensorFlow and saves the ``.keras`` model at the end; another reads and
vectorizes the test split while this process trains (the test split is scored once, after training).
Runs predict with ``dense.v1`` (NumPy) by default and carry ``keras.v1`` (``model.keras``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.data import Dataset, LabelKind, split_digest
from reviewlens.evaluation import label_scores_of, metrics
from reviewlens.export import shared_exporter
from reviewlens.families.base import BestEpoch, Context, Family, Trained, register_family
from reviewlens.models.sparse_mlp import SparseMLP, initial_weights
from reviewlens.predictors.dense import DensePredictor
from reviewlens.predictors.keras_model import MODEL_FILE
from reviewlens.processes import process_pool, stopping
from reviewlens.recipes import BOOK, Choice, Range, Recipe, Search, register
from reviewlens.text import BagOfWords


@dataclass
class Vectors:
    """What ``BagOfWordsFamily.fit`` learns from: the train and validation vectors and their source."""

    x_train: Any  # CSR, one row per review, in a shuffled order
    y_train: np.ndarray
    x_val: Any
    y_val: np.ndarray
    vectorizer: BagOfWords
    dataset: Dataset  # for families that read more of it (the unlabeled reviews)


@dataclass
class Fitted:
    """A fitted stack of Dense layers over the vectors: what ``BagOfWordsFamily.fit`` returns."""

    kernels: list[np.ndarray]  # the chosen model's weights, first layer first
    biases: list[np.ndarray]
    history: dict[str, list[float]]
    best_epoch: int
    val_probabilities: np.ndarray  # the chosen model's on the validation split (``label_scores_of``)
    architecture: dict[str, Any]  # models.bow.build's arguments for model.keras; "activation" is dense.v1's too
    hyperparameters: dict[str, object] = field(default_factory=dict)  # what was chosen, for the metadata


@dataclass(frozen=True)
class BagOfWordsFamily(Family):
    """Sparse n-gram vectors (``BagOfWords``), then Dense layers trained by ``fit``; runs predict with
    ``dense.v1``. Subclasses change only ``fit`` (the linear family)."""

    def train(self, recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
        return _train(self, recipe, dataset, context)

    def fit(self, recipe: Recipe, data: Vectors, context: Context) -> Fitted:
        """Fit with ``SparseMLP`` from Keras' default initialization; keep the best validation epoch."""
        return _fit_mlp(recipe, data.x_train, data.y_train, data.x_val, data.y_val, context)


BOW = register_family(
    BagOfWordsFamily(
        name="bow",
        summary="multi-hot, count or TF-IDF n-gram vectors -> Dense layers",
        predictors=(DensePredictor.kind, "keras.v1"),
        selects=("accuracy", "macro-f1"),
    )
)


def _train(family: BagOfWordsFamily, recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
    exporter = context.resources.enter_context(shared_exporter())  # importing TensorFlow from now, or done before
    helper = context.resources.enter_context(stopping(process_pool(1)))

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
                             vectorizer.get_config(), dataset.label_kind)  # fmt: skip
    vectors = Vectors(x_train, y_train, x_val, np.asarray(val_labels, np.float32), vectorizer, dataset)
    fitted = family.fit(recipe, vectors, context)
    context.lap("fit_s")

    context.log("scoring the test split (once)")
    x_test, test_labels, test_digest = test_job.result()
    activations = [str(fitted.architecture.get("activation", "relu"))] * (len(fitted.kernels) - 1)
    predictor = DensePredictor(vectorizer, fitted.kernels, fitted.biases, dataset.label_names, activations)

    def write_model(directory: Path) -> None:
        exporter.save(directory / MODEL_FILE, vectorizer, fitted.architecture, fitted.kernels, fitted.biases)
        predictor.save(directory)

    return Trained(
        history=fitted.history,
        best_epoch=fitted.best_epoch,
        val_labels=val_labels,
        val_probabilities=fitted.val_probabilities,
        test_labels=test_labels,
        test_probabilities=label_scores_of(predictor.predict_vectors(x_test)),
        digests=(split_digest(train_texts, train_labels), split_digest(val_texts, val_labels), test_digest),
        train_size=len(train_texts),
        hyperparameters={"vocabulary_size": len(vectorizer.vocabulary), **fitted.hyperparameters},
        preprocessor=vectorizer,
        write_model=write_model,
    )


def _read_and_vectorize(
    path: Path, validation_fraction: float, split: str, vectorizer_config: dict[str, object], label_kind: LabelKind
) -> tuple[Any, list[int], bytes]:
    """In the helper process: one split's vectors, labels and content digest."""
    texts, labels = Dataset(path, validation_fraction, labels=label_kind).read(split)
    return BagOfWords.from_config(vectorizer_config).transform(texts), labels, split_digest(texts, labels)


def _snapshot(mlp: SparseMLP, val_probabilities: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    return [k.copy() for k in mlp.kernels], [b.copy() for b in mlp.biases], val_probabilities


def _fit_mlp(
    recipe: Recipe,
    x_train: Any,
    y_train: np.ndarray,
    x_val: Any,
    y_val: np.ndarray,
    context: Context,
) -> Fitted:
    """Dense layers with one sigmoid output for two labels, a softmax over more (``context.labels``)."""
    names = context.labels
    hidden = list(recipe.model.get("hidden", [16]))  # type: ignore[call-overload]
    outputs = 1 if len(names) == 2 else len(names)
    kernels, biases = initial_weights([x_train.shape[1], *hidden, outputs], context.seed)
    mlp = SparseMLP(
        kernels,
        biases,
        dropout=recipe.model.get("dropout"),  # type: ignore[arg-type]
        optimizer=recipe.optimizer,
        learning_rate=recipe.learning_rate,
        seed=context.seed,
    )
    weights = context.sample_weights(y_train)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best: BestEpoch[tuple[list[np.ndarray], list[np.ndarray], np.ndarray]] = BestEpoch(context.select)
    first = 1
    if (resumed := context.resumed) is not None:  # continue a killed run after its last finished epoch
        mlp.set_state(resumed.arrays, resumed.state)
        kept = resumed.arrays["best_kernels"], resumed.arrays["best_biases"], resumed.arrays["best_val"][0]
        best.restore(resumed.best_epoch, resumed.best_key, kept)
        history, first = resumed.history, resumed.epoch + 1
    for epoch in range(first, context.epochs + 1):
        logs = mlp.train_epoch(x_train, y_train, recipe.batch_size, weights)
        probabilities = mlp.predict(x_val)
        scores = metrics(probabilities, y_val, names=names)
        logs |= context.selection_logs(scores)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        best.offer(epoch, logs, functools.partial(_snapshot, mlp, probabilities))
        arrays, state = mlp.get_state()
        assert best.kept is not None
        kernels, biases, val_probabilities = best.kept
        arrays |= {"best_kernels": kernels, "best_biases": biases, "best_val": [val_probabilities]}
        context.checkpoint(epoch, history, best, arrays, state)
        context.epoch_done(epoch, logs)
    assert best.kept is not None  # at least one epoch
    kernels, biases, val_probabilities = best.kept
    architecture = dict(recipe.model) | ({"outputs": outputs} if outputs > 1 else {})  # binary: as it always was
    return Fitted(kernels, biases, history, best.epoch, val_probabilities, architecture)


# -- Recipes ----------------------------------------------------------------------------------------

_BOOK_BOW = f"{BOOK}, ch. 11, bag-of-words models"
#: What `reviewlens tune` searches for the book's bag-of-words recipes; each recipe's own settings lie inside.
_BOW_SEARCH: Search = {
    "learning_rate": Range(1e-4, 1e-2, log=True),
    "batch_size": Choice((32, 64, 128, 256)),
    "model.dropout": Range(0.0, 0.7),
    "vectorizer.max_tokens": Range(10_000, 100_000, log=True),
    "vectorizer.ngrams": Choice((1, 2, 3)),
}

register(
    Recipe(
        name="bow-unigram",
        summary="multi-hot unigrams (20,000) -> Dense(16, relu) -> Dropout(0.5) -> Dense(1)",
        source=_BOOK_BOW,
        expected_accuracy=0.888,
        family="bow",
        vectorizer={"max_tokens": 20000, "ngrams": 1, "output_mode": "multi_hot"},
        model={"hidden": [16], "dropout": 0.5},
        tags=("bag-of-words",),
        search={name: space for name, space in _BOW_SEARCH.items() if name != "vectorizer.ngrams"},
    )
)
register(
    Recipe(
        name="bow-bigram",
        summary="multi-hot unigrams+bigrams (20,000) -> Dense(16, relu) -> Dropout(0.5) -> Dense(1)",
        source=_BOOK_BOW,
        expected_accuracy=0.897,
        family="bow",
        vectorizer={"max_tokens": 20000, "ngrams": 2, "output_mode": "multi_hot"},
        model={"hidden": [16], "dropout": 0.5},
        tags=("bag-of-words", "default"),
        search=_BOW_SEARCH,
    )
)
register(
    Recipe(
        name="tfidf-bigram",
        summary="TF-IDF unigrams+bigrams (20,000) -> Dense(16, relu) -> Dropout(0.5) -> Dense(1)",
        source=_BOOK_BOW,
        expected_accuracy=0.889,
        family="bow",
        vectorizer={"max_tokens": 20000, "ngrams": 2, "output_mode": "tf_idf"},
        model={"hidden": [16], "dropout": 0.5},
        tags=("bag-of-words",),
        search=_BOW_SEARCH,
    )
)
register(
    Recipe(
        name="dense-10k",
        summary="multi-hot of vectorize_sequences(num_words=10000) -> Dense(16) -> Dense(16) -> Dense(1)",
        source=f"{BOOK}, ch. 4, classifying movie reviews",
        expected_accuracy=0.88,
        family="bow",
        # num_words=10000 keeps indices below 10,000: the 9,996 most frequent words (index = rank + 3).
        vectorizer={"max_tokens": 10000 - 3, "ngrams": 1, "output_mode": "multi_hot"},
        model={"hidden": [16, 16], "dropout": None},
        batch_size=512,
        book_batch_size=512,
        epochs=4,
        notes="Its vectors are vectorize_sequences(load_indexed(num_words=10000)) without the constant "
        "start column, computed from the text directly (tested equal).",
        tags=("bag-of-words",),
    )
)
