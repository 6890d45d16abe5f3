"""fastText family: averaged embeddings of unigrams and bigrams, then a logistic output (Joulin et al. 2016).

Reading, vectorizing (``BagOfWords(output_mode="mean")``: counts over the text's number of terms), the
helper process that vectorizes the test split and the one that saves ``model.keras`` are the
bag-of-words family's; only fitting differs (``models.fasttext``). The trained model is Dense(dim,
linear) then Dense(1, sigmoid), or Dense(labels, softmax) for more than two labels, so runs predict with
``dense.v1`` (NumPy) and carry ``keras.v1``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit, softmax

from reviewlens.evaluation import metrics
from reviewlens.families.base import BestEpoch, Context, register_family
from reviewlens.families.bow import BagOfWordsFamily, Fitted, Vectors
from reviewlens.models.fasttext import FastText
from reviewlens.predictors.dense import DensePredictor
from reviewlens.recipes import Recipe, register

Candidate = tuple[list[np.ndarray], list[np.ndarray], np.ndarray]  # kernels, biases, validation probabilities


@dataclass(frozen=True)
class FastTextFamily(BagOfWordsFamily):
    def fit(self, recipe: Recipe, data: Vectors, context: Context) -> Fitted:
        """Adam epochs of ``models.fasttext.FastText``; the epoch with the best validation accuracy is kept
        (``BestEpoch``). ``refit`` applies that choice to a model fitted on train + validation."""
        config: dict[str, Any] = dict(recipe.model)
        dim = int(config.get("dim", 10))
        history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
        best: BestEpoch[Candidate] = BestEpoch(context.select)
        model = self._model(recipe, data.x_train.shape[1], dim, context)
        done = 0
        if (resumed := context.resumed) is not None:  # continue a killed run after its last finished epoch
            model.set_state(resumed.arrays["model"], resumed.state["model"])
            kept = resumed.arrays
            best.restore(resumed.best_epoch, resumed.best_key, (kept["kernels"], kept["biases"], kept["best_val"][0]))
            history, done = resumed.history, resumed.epoch
        weights = context.sample_weights(data.y_train)
        epochs = model.fit_epochs(
            data.x_train, data.y_train, context.epochs, recipe.batch_size, start=done, weights=weights
        )
        for epoch, (loss, accuracy) in enumerate(epochs, start=done + 1):
            logits = model.logits(data.x_val)
            probabilities = (expit(logits) if logits.ndim == 1 else softmax(logits, axis=1)).astype(np.float32)
            scores = metrics(probabilities, data.y_val, names=context.labels)
            logs = {"loss": loss, "accuracy": accuracy, **context.selection_logs(scores)}
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            best.offer(epoch, logs, functools.partial(lambda m, p: (*m.layers(), p), model, probabilities))
            assert best.kept is not None
            arrays, state = model.get_state()
            kernels, biases, val_probabilities = best.kept
            checkpoint = {"model": arrays, "kernels": kernels, "biases": biases, "best_val": [val_probabilities]}
            context.checkpoint(epoch, history, best, checkpoint, {"model": state})
            context.epoch_done(epoch, logs)
        assert best.kept is not None  # at least one epoch
        kernels, biases, val_probabilities = best.kept
        chosen: dict[str, object] = {"dim": dim}
        if config.get("refit"):
            # The epoch chosen on validation, applied to a model fitted on train + validation with the same
            # schedule. The validation figures stay the first model's.
            context.log(f"refitting on train + validation for {best.epoch} epoch(s)")
            x_all = sparse.vstack([data.x_train, data.x_val], format="csr")
            y_all = np.concatenate([data.y_train, data.y_val])
            final = self._model(recipe, x_all.shape[1], dim, context)
            steps = final.fit_epochs(
                x_all, y_all, context.epochs, recipe.batch_size, weights=context.sample_weights(y_all)
            )
            for _ in zip(range(best.epoch), steps, strict=False):
                pass
            kernels, biases = final.layers()
            chosen["refit"] = "train+validation"
        return Fitted(
            kernels=kernels,
            biases=biases,
            history=history,
            best_epoch=best.epoch,
            val_probabilities=val_probabilities,
            architecture={"hidden": [dim], "dropout": None, "activation": "linear"}
            | ({"outputs": len(context.labels)} if len(context.labels) > 2 else {}),  # binary: as it always was
            hyperparameters=chosen,
        )

    @staticmethod
    def _model(recipe: Recipe, input_dim: int, dim: int, context: Context) -> FastText:
        return FastText(
            input_dim, dim=dim, learning_rate=recipe.learning_rate, seed=context.seed, labels=len(context.labels)
        )


FASTTEXT = register_family(
    FastTextFamily(
        name="fasttext",
        summary="averaged embeddings of unigrams and bigrams -> logistic output (fastText's classifier)",
        predictors=(DensePredictor.kind, "keras.v1"),
        selects=("accuracy", "macro-f1"),
    )
)

# -- Recipes ----------------------------------------------------------------------------------------

register(
    Recipe(
        name="fasttext",
        summary="unigrams+bigrams (100,000) averaged -> Dense(10, linear) embeddings -> Dense(1) (fastText)",
        source="Joulin et al. 2016 (fastText's classifier; the paper has no IMDB figure): fastText 0.10.4 itself, "
        "bigrams, 10 epochs, 89.2% here (BENCHMARKS.md)",
        expected_accuracy=0.892,
        family="fasttext",
        vectorizer={
            "max_tokens": 100001,
            "ngrams": 2,
            "output_mode": "mean",
            "standardize": "lower_and_split_punctuation",
        },
        model={"dim": 10, "refit": True},
        optimizer="adam",
        learning_rate=0.02,
        batch_size=64,
        book_batch_size=1,
        epochs=5,
        notes="fastText's model with Adam on mini-batches in place of its per-example SGD, and a vocabulary of the "
        "100,000 most frequent terms in place of hashed bigrams. Dimension, rate, batch, epochs and vocabulary "
        "were chosen on the validation split (scripts/tune_fasttext.py); the epoch is chosen there too, then "
        "the model is refitted on train + validation.",
        tags=("linear",),
    )
)
