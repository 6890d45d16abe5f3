"""Linear family: naive-Bayes-weighted logistic models on binarized 1-3-grams (NBSVM, NBSVM++); its recipes.

Reading, vectorizing, the helper process that vectorizes the test split and the one that saves
``model.keras`` are the bag-of-words family's; only fitting differs. The trained model is one Dense
layer over the multi-hot vector, so runs predict with ``dense.v1`` (NumPy) and carry ``keras.v1``. More than
two labels train ``NBSoftmax`` with ``MULTICLASS_LOSS``: one Dense(labels, softmax) once trained.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit, softmax

from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import metrics
from reviewlens.families.base import SELECTIONS, BestEpoch, Context, register_family
from reviewlens.families.bow import BagOfWordsFamily, Fitted, Vectors
from reviewlens.models.nb_linear import NBLinear, NBSoftmax, interpolated, nb_ratios, nb_ratios_per_label
from reviewlens.predictors.dense import DensePredictor
from reviewlens.recipes import Choice, Range, Recipe, Search, register

#: How more than two labels are learned: each label's column a logistic model of "this label or the rest" on its
#: one-vs-rest naive-Bayes ratios, a review's probabilities the softmax of the columns' logits. Chosen over a
#: softmax trained with categorical cross-entropy on aclImdb's ratings (8 labels), validation only
#: (benchmarks/bench_ratings_linear.py): accuracy 48.85% vs 48.71% (nbsvm), 48.91% vs 48.41% (nbsvm-plus), rating
#: MAE 1.19 vs 1.24 and 1.18 vs 1.19; macro-F1 0.400 vs 0.386 and 0.392 vs 0.396; log-loss 1.411 vs 1.410 and
#: 1.466 vs 1.444 (``--calibrate`` fits a temperature where that matters).
MULTICLASS_LOSS = "one-vs-rest"
#: kernel, bias (a float; one per label for more labels), validation probabilities, beta
Candidate = tuple[np.ndarray, Any, np.ndarray, float]


@dataclass(frozen=True)
class LinearFamily(BagOfWordsFamily):
    def fit(self, recipe: Recipe, data: Vectors, context: Context) -> Fitted:
        """Naive-Bayes ratios from the train split, then Adam epochs; the epoch (and for NBSVM the
        interpolation beta) with the best validation accuracy is kept (``BestEpoch``).

        ``self_training`` (a fraction) first fits on train alone, labels the dataset's unlabeled reviews
        with that model, and adds the most confident fraction of them to the training set.
        ``refit`` applies the choices to a model fitted on train + validation.
        """
        config: dict[str, Any] = dict(recipe.model)
        x_train, y_train, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
        chosen: dict[str, object] = {}
        if config.get("self_training"):
            x_pseudo, y_pseudo = _pseudo_labelled(recipe, data, float(config["self_training"]), context)
            x_train = sparse.vstack([x_train, x_pseudo], format="csr")
            y_train = np.concatenate([y_train, y_pseudo])
            chosen["pseudo_labelled"] = len(y_pseudo)
        model = _model(recipe, x_train, y_train, context)
        betas = [float(beta) for beta in config.get("betas", [1.0])]
        history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
        best: BestEpoch[Candidate] = BestEpoch(context.select)
        done = 0
        if (resumed := context.resumed) is not None:  # continue a killed run after its last finished epoch
            model.set_state(resumed.arrays["model"], resumed.state["model"])
            saved = resumed.arrays["best"]  # a Candidate, its floats as arrays
            bias = float(saved[1]) if saved[1].ndim == 0 else np.asarray(saved[1], np.float64)
            best.restore(resumed.best_epoch, resumed.best_key, (saved[0], bias, saved[2], float(saved[3])))
            history, done = resumed.history, resumed.epoch
        weights = context.sample_weights(y_train)
        epochs = model.fit_epochs(x_train, y_train, context.epochs, recipe.batch_size, start=done, weights=weights)
        for epoch, (loss, accuracy) in enumerate(epochs, start=done + 1):
            candidate, scores = _best_beta(model, betas, x_val, y_val, context)
            logs = {"loss": loss, "accuracy": accuracy, **scores}
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            best.offer(epoch, logs, functools.partial(lambda kept: kept, candidate))
            assert best.kept is not None
            arrays, state = model.get_state()
            kept = [np.asarray(value, np.float32) for value in best.kept]
            context.checkpoint(epoch, history, best, {"model": arrays, "best": kept}, {"model": state})
            context.epoch_done(epoch, logs)
        assert best.kept is not None  # at least one epoch
        kernel, bias, val_probabilities, beta = best.kept
        chosen["beta"] = beta
        if config.get("refit"):
            # The choices made on validation, applied to a model fitted on train + validation: the same
            # schedule, stopped at the chosen epoch. The validation figures stay the first model's.
            context.log(f"refitting on train + validation for {best.epoch} epoch(s), beta {beta}")
            x_all, y_all = sparse.vstack([x_train, x_val], format="csr"), np.concatenate([y_train, y_val])
            final = _model(recipe, x_all, y_all, context)
            steps = final.fit_epochs(
                x_all, y_all, context.epochs, recipe.batch_size, weights=context.sample_weights(y_all)
            )
            for _ in zip(range(best.epoch), steps, strict=False):
                pass
            kernel = final.kernel(interpolated(final.w, beta)) if beta != 1.0 else final.kernel()
            bias = float(final.bias) if np.ndim(final.bias) == 0 else final.bias.copy()
            chosen["refit"] = "train+validation"
        chosen["features"] = int(np.count_nonzero(kernel))
        if len(context.labels) > 2:
            chosen["multiclass_loss"] = MULTICLASS_LOSS
        if kernel.ndim == 2:  # more than two labels: Dense(labels, softmax)
            kernels, biases = [kernel], [np.asarray(bias, np.float32)]
            architecture: dict[str, Any] = {"hidden": [], "dropout": None, "outputs": kernel.shape[1]}
        else:  # binary: as it always was
            kernels, biases = [kernel[:, None]], [np.array([bias], np.float32)]
            architecture = {"hidden": [], "dropout": None}
        return Fitted(
            kernels=kernels,
            biases=biases,
            history=history,
            best_epoch=best.epoch,
            val_probabilities=val_probabilities,
            architecture=architecture,
            hyperparameters=chosen,
        )


def _pseudo_labelled(recipe: Recipe, data: Vectors, keep: float, context: Context) -> tuple[Any, np.ndarray]:
    """The unlabeled reviews a model of the train split is surest about (the ``keep`` fraction), with its labels."""
    texts, _ = data.dataset.read("unsup")
    if not texts:
        raise ReviewlensError(
            f"recipe {recipe.name!r} learns from unlabeled reviews, and {data.dataset.path} has none; "
            "pass an aclImdb directory with train/unsup (unpack aclImdb-unsup.tar.gz beside train/)"
        )
    context.log(f"labelling {len(texts):,} unlabeled reviews with a model of the train split")
    x_unsup = data.vectorizer.transform(texts)
    teacher = _model(recipe, data.x_train, data.y_train, context)
    weights = context.sample_weights(data.y_train)
    for _ in teacher.fit_epochs(data.x_train, data.y_train, context.epochs, recipe.batch_size, weights=weights):
        pass
    logits = teacher.logits(x_unsup)
    if logits.ndim == 2:  # more than two labels: the surest are those of the most probable label's highest probability
        surest = softmax(logits, axis=1).max(axis=1)
        confident = surest >= np.quantile(surest, 1.0 - keep)
        return x_unsup[confident], np.argmax(logits[confident], axis=1).astype(np.float32)
    confident = np.abs(logits) >= np.quantile(np.abs(logits), 1.0 - keep)
    return x_unsup[confident], (logits[confident] >= 0).astype(np.float32)


def _model(recipe: Recipe, x: Any, y: np.ndarray, context: Context) -> NBLinear:
    """A fresh model over ``x``'s naive-Bayes ratios, configured by the recipe; for more than two labels
    (``context.labels``) an ``NBSoftmax`` over each label's one-vs-rest ratios, trained with ``MULTICLASS_LOSS``."""
    config: dict[str, Any] = dict(recipe.model)
    alpha, labels = float(config.get("alpha", 1.0)), len(context.labels)
    ratios = nb_ratios(x, y, alpha) if labels == 2 else nb_ratios_per_label(x, y, labels, alpha)
    ratios[0] = 0.0  # the out-of-vocabulary column says nothing about sentiment
    extra: dict[str, Any] = {} if labels == 2 else {"loss": MULTICLASS_LOSS}
    return (NBLinear if labels == 2 else NBSoftmax)(
        ratios,
        **extra,
        shift=float(config.get("shift", 0.0)),
        scale=float(config.get("scale", 1.0)),
        init=float(config.get("init", 0.0)),
        learning_rate=recipe.learning_rate,
        weight_decay=float(config.get("weight_decay", 0.0)),
        seed=context.seed,
    )


def _best_beta(
    model: NBLinear, betas: list[float], x_val: Any, y_val: np.ndarray, context: Context
) -> tuple[Candidate, dict[str, float]]:
    """The interpolation with the best validation figure (``BestEpoch``'s, ties to the lower loss), and its scores."""
    found: tuple[tuple[float, float], Candidate, dict[str, float]] | None = None
    for beta in betas:
        kernel = model.kernel(interpolated(model.w, beta)) if beta != 1.0 else model.kernel()
        logits = model.logits(x_val, kernel)
        probabilities = (expit(logits) if logits.ndim == 1 else softmax(logits, axis=1)).astype(np.float32)
        logs = context.selection_logs(metrics(probabilities, y_val, names=context.labels))
        key = (logs[SELECTIONS[context.select]], -logs["val_loss"])
        if found is None or key > found[0]:
            bias = float(model.bias) if np.ndim(model.bias) == 0 else model.bias.copy()
            found = (key, (kernel.copy(), bias, probabilities, beta), logs)
    assert found is not None
    return found[1], found[2]


LINEAR = register_family(
    LinearFamily(
        name="linear",
        summary="naive-Bayes-weighted logistic regression on binarized n-grams",
        predictors=(DensePredictor.kind, "keras.v1"),
        selects=("accuracy", "macro-f1"),
    )
)

# -- Recipes ----------------------------------------------------------------------------------------

#: Binarized unigrams, bigrams and trigrams, punctuation as tokens ("!" and "?" carry sentiment).
_NGRAMS_1_3 = {
    "max_tokens": 200001,
    "ngrams": 3,
    "output_mode": "multi_hot",
    "standardize": "lower_and_split_punctuation",
}
#: What `reviewlens tune` searches for NBSVM and NBSVM++; each recipe's own settings lie inside.
_LINEAR_SEARCH: Search = {
    "learning_rate": Range(0.005, 0.05, log=True),
    "batch_size": Choice((32, 64, 128)),
    "epochs": Range(2, 5),
    "model.weight_decay": Range(1e-7, 1e-3, log=True),
    "vectorizer.max_tokens": Range(50_001, 800_001, log=True),
    "vectorizer.ngrams": Choice((2, 3)),
}

register(
    Recipe(
        name="nbsvm",
        summary="binarized 1-3-grams (200,000) x naive-Bayes ratios -> logistic regression, interpolated",
        source="Wang & Manning 2012 (NBSVM); Mesnil et al. 2015 (NB-LR on 1-3-grams, 91.87%)",
        expected_accuracy=0.9187,
        family="linear",
        vectorizer=_NGRAMS_1_3,
        model={"alpha": 1.0, "weight_decay": 5e-4, "betas": [0.25, 0.5, 0.75, 1.0], "refit": True},
        optimizer="adam",
        learning_rate=0.02,
        batch_size=64,
        book_batch_size=64,
        epochs=3,
        notes="Trained with Adam on sparse mini-batches (L2 weight decay 5e-4, about C=0.1 on 20,000 reviews); "
        "beta and the epoch are chosen on the validation split.",
        tags=("linear",),
        search=_LINEAR_SEARCH,
    )
)
_PLUS: dict[str, object] = {"alpha": 1.0, "shift": 0.4, "scale": 0.1, "init": 0.1, "weight_decay": 1e-6, "refit": True}
register(
    Recipe(
        name="nbsvm-plus",
        summary="binarized 1-3-grams (200,000): naive-Bayes ratios times a learned per-feature weight (NBSVM++)",
        source="fast.ai machine-learning course, lesson 5 (NBSVM++, 92.22%)",
        expected_accuracy=0.9222,
        family="linear",
        vectorizer=_NGRAMS_1_3,
        model=_PLUS,
        optimizer="adam",
        learning_rate=0.02,
        batch_size=64,
        book_batch_size=64,
        epochs=3,
        notes="Each feature's weight is (w + 0.4) * r / 10, w learned from ±0.1: it starts at its naive-Bayes "
        "weight and learns a correction. The epoch is chosen on the validation split.",
        tags=("linear",),
        search={**_LINEAR_SEARCH, "model.shift": Range(0.1, 1.0)},
    )
)
register(
    Recipe(
        name="nbsvm-plus-unlabeled",
        summary="nbsvm-plus, self-trained: labels the unlabeled reviews (train/unsup), learns from its surest 60%",
        source="nbsvm-plus with self-training (semi-supervised: needs aclImdb's 50,000 unlabeled reviews)",
        expected_accuracy=None,
        family="linear",
        vectorizer=_NGRAMS_1_3,
        model={**_PLUS, "self_training": 0.6},
        optimizer="adam",
        learning_rate=0.02,
        batch_size=64,
        book_batch_size=64,
        epochs=3,
        notes="Semi-supervised: uses the unlabeled reviews of train/unsup (never test texts). The fraction 0.6 was "
        "chosen on the validation split among 0.3, 0.6 and 1.0.",
        tags=("linear", "semi-supervised"),
    )
)
