"""Pretrained family: a classifier fine-tuned on an encoder from ``reviewlens pretrain`` (``train --encoder DIR``).

The classifier is the encoder's embedding and body, concat pooling (last state, max, mean) and a dense head. It
fine-tunes with discriminative learning rates (the encoder's scaled by ``encoder_lr_scale``), gradual unfreezing
(the head alone for ``freeze_epochs``), a constant rate or ULMFiT's slanted triangular schedule (``schedule``:
a linear rise over the first ``cut_frac`` of the steps, then a linear fall to 1/``ratio`` of the peak; Howard &
Ruder 2018), and virtual adversarial training (Miyato, Dai & Goodfellow 2017): each
step adds ``vat_weight`` times KL(p(x) || p(x + r_adv)) on a batch of unlabeled reviews (train/unsup and the
train split), r_adv a perturbation of the embeddings of norm ``vat_epsilon`` found by one power iteration.
The run is like any sequence run: ``model.keras`` on raw strings, predicted with ``keras.v1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.data import Dataset, split_digest
from reviewlens.errors import ReviewlensError
from reviewlens.families.base import BestEpoch, Context, Family, Options, Trained, register_family
from reviewlens.predictors.keras_model import MODEL_FILE, PREDICT_BATCH, KerasPredictor, save_text_model
from reviewlens.recipes import Choice, Range, Recipe, Search, register
from reviewlens.text.sequences import SequenceVectorizer


@dataclass(frozen=True)
class PretrainedOptions(Options):
    """``--encoder DIR`` (required: the recipes fine-tune a pretrained encoder), ``--max-length`` and
    ``--lr-schedule`` (constant or slanted; the recipe's ``schedule`` where not given)."""

    encoder: Path | None = None
    max_length: int | None = None
    lr_schedule: str | None = None

    def __post_init__(self) -> None:
        from reviewlens.pretraining import check_encoder

        if self.encoder is None:
            raise ReviewlensError(
                "this recipe fine-tunes a pretrained encoder: pass --encoder DIR "
                "(`reviewlens pretrain --data PATH --out DIR` makes one)"
            )
        check_encoder(Path(self.encoder))  # a missing, damaged or foreign encoder fails before any data is read
        if self.max_length is not None and int(self.max_length) < 1:
            raise ReviewlensError(f"--max-length {self.max_length} must be at least 1")
        if self.lr_schedule is not None and self.lr_schedule not in SCHEDULES:
            raise ReviewlensError(f"--lr-schedule {self.lr_schedule}: the pretrained recipes take "
                                  f"{' or '.join(SCHEDULES)}")  # fmt: skip


@dataclass(frozen=True)
class PretrainedFamily(Family):
    def train(self, recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
        return _train(self, recipe, dataset, context)


PRETRAINED = register_family(
    PretrainedFamily(
        "pretrained", "pretrained encoder (reviewlens pretrain) -> concat pooling -> Dense, fine-tuned with VAT",
        (KerasPredictor.kind,), PretrainedOptions,
    )
)  # fmt: skip

#: Reviews per batch of unlabeled text for the adversarial loss, and the token widths batches are cut to.
_WIDTH_STEP = 32


def _cut(ids: np.ndarray) -> np.ndarray:
    """A tail-padded batch cut to its longest review, rounded up to ``_WIDTH_STEP`` (fewer traced shapes)."""
    longest = int(np.count_nonzero(ids, axis=1).max(initial=1))
    return ids[:, : min(ids.shape[1], -(-longest // _WIDTH_STEP) * _WIDTH_STEP)]


class _FineTuner:
    """The classifier on the encoder, its two optimizers and its training step (TensorFlow)."""

    def __init__(
        self, encoder_model: Any, recipe: Recipe, outputs: int, seed: int, schedule: str | None = None,
        backward: bool = False,
    ):  # fmt: skip
        import keras
        import tensorflow as tf

        from reviewlens.models.layers import ReverseTokens
        from reviewlens.models.pretrained import classifier, vat_loss

        keras.utils.set_random_seed(seed)
        settings = dict(recipe.model)
        dropout = float(settings.get("dropout", 0.5))  # type: ignore[arg-type]
        self.model, self.tail = classifier(encoder_model, dropout, outputs, backward)
        self.read = ReverseTokens() if backward else None  # the unlabeled ids, as the encoder reads them
        self.embedding = self.model.get_layer("embedding")
        encoder_ids = {id(v) for v in encoder_model.trainable_variables}
        self.encoder_vars = [v for v in self.model.trainable_variables if id(v) in encoder_ids]
        self.head_vars = [v for v in self.model.trainable_variables if id(v) not in encoder_ids]
        scale = float(settings.get("encoder_lr_scale", 1.0))  # type: ignore[arg-type]
        self.rates = (recipe.learning_rate * scale, recipe.learning_rate)
        self.encoder_opt = keras.optimizers.Adam(self.rates[0], clipnorm=1.0)
        self.head_opt = keras.optimizers.Adam(self.rates[1], clipnorm=1.0)
        self.schedule = schedule or str(settings.get("schedule", "constant"))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        self.cut_frac = float(settings.get("cut_frac", 0.1))  # type: ignore[arg-type]
        self.ratio = float(settings.get("ratio", 32.0))  # type: ignore[arg-type]
        self.encoder_opt.build(self.encoder_vars)
        self.head_opt.build(self.head_vars)
        self.epsilon = float(settings.get("vat_epsilon", 0.0))  # type: ignore[arg-type]
        self.weight = float(settings.get("vat_weight", 0.0))  # type: ignore[arg-type]
        self.xi = float(settings.get("vat_xi", 1e-2))  # type: ignore[arg-type]
        self.outputs = outputs
        self._vat = vat_loss
        self.step_all = tf.function(self._step_all, reduce_retracing=True)
        self.step_head = tf.function(self._step_head, reduce_retracing=True)

    def set_rate(self, step: int, total: int) -> float:
        """Both optimizers' rates for ``step`` (0-based) of ``total``: the recipe's, times the schedule's factor.
        A function of the step alone, so a resumed run sets the rates the uninterrupted one had."""
        factor = slanted_triangular(step, total, self.cut_frac, self.ratio) if self.schedule == "slanted" else 1.0
        self.encoder_opt.learning_rate = self.rates[0] * factor
        self.head_opt.learning_rate = self.rates[1] * factor
        return factor

    def loss(self, y: Any, p: Any, weights: Any) -> Any:
        """The mean over the batch of each review's loss times its weight (its label's, ``--class-weight``), as
        Keras weighs ``class_weight``."""
        import keras

        if self.outputs == 1:
            return keras.ops.mean(weights * keras.losses.binary_crossentropy(y[:, None], p))
        return keras.ops.mean(weights * keras.losses.sparse_categorical_crossentropy(y, p))

    def _step_all(self, ids: Any, y: Any, weights: Any, unlabeled: Any, noise: Any) -> Any:
        return self._step(ids, y, weights, unlabeled, noise, False)

    def _step_head(self, ids: Any, y: Any, weights: Any, unlabeled: Any, noise: Any) -> Any:
        return self._step(ids, y, weights, unlabeled, noise, True)

    def _step(self, ids: Any, y: Any, weights: Any, unlabeled: Any, noise: Any, frozen: bool) -> Any:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            supervised = self.loss(y, self.model(ids, training=True), weights)
            adversarial = tf.constant(0.0)
            if self.weight > 0:
                if self.read is not None:
                    unlabeled = self.read(unlabeled)
                vectors = self.embedding(unlabeled)
                adversarial = self._vat(self.tail, vectors, unlabeled, self.epsilon, self.xi, noise)
            total = supervised + self.weight * adversarial
        variables = self.head_vars if frozen else [*self.encoder_vars, *self.head_vars]
        gradients = tape.gradient(total, variables)
        head = len(self.head_vars)
        self.head_opt.apply_gradients(zip(gradients[-head:], self.head_vars, strict=True))
        if not frozen:
            self.encoder_opt.apply_gradients(zip(gradients[:-head], self.encoder_vars, strict=True))
        return supervised, adversarial

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (of positive; else one column per label), by batches of similar lengths."""
        lengths = np.count_nonzero(x, axis=1)
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(x),) if self.outputs == 1 else (len(x), self.outputs), np.float32)
        for start in range(0, len(x), PREDICT_BATCH):
            rows = order[start : start + PREDICT_BATCH]
            p = np.asarray(self.model(_cut(x[rows]), training=False), np.float32)
            out[rows] = p[:, 0] if self.outputs == 1 else p
        return out

    def arrays(self) -> dict[str, list[np.ndarray]]:
        """The model's variables (its dropout's seed state too, so a resumed run drops the same units) and both
        optimizers' state."""
        optimizers = [np.asarray(v.numpy()) for o in (self.encoder_opt, self.head_opt) for v in o.variables]
        return {"model": [np.asarray(v.numpy()) for v in self.model.variables], "optimizer": optimizers}

    def restore(self, arrays: dict[str, list[np.ndarray]]) -> None:
        variables = [*self.model.variables, *self.encoder_opt.variables, *self.head_opt.variables]
        for variable, value in zip(variables, [*arrays["model"], *arrays["optimizer"]], strict=True):
            variable.assign(value)


SCHEDULES = ("constant", "slanted")


def slanted_triangular(step: int, total: int, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """ULMFiT's slanted triangular learning rate at ``step`` of ``total``, as a fraction of the peak: from 1/ratio
    up to 1 over the first ``cut_frac`` of the steps, then linearly back down to 1/ratio at the last step."""
    cut = max(math.floor(total * cut_frac), 1)
    p = step / cut if step < cut else 1 - (step - cut) / max(total - cut, 1)
    return (1 + max(p, 0.0) * (ratio - 1)) / ratio


def _scores(probabilities: np.ndarray, labels: list[int]) -> tuple[float, float]:
    """(loss, accuracy) of probabilities (one column: of positive) against labels."""
    y = np.asarray(labels)
    if probabilities.ndim == 1:
        p = np.clip(probabilities, 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), float(np.mean((p > 0.5) == (y == 1)))
    p = np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.mean(np.log(p))), float(np.mean(probabilities.argmax(axis=1) == y))


def _train(family: PretrainedFamily, recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
    from reviewlens.pretraining import load_encoder

    options = context.options
    assert isinstance(options, PretrainedOptions) and options.encoder is not None
    encoder = load_encoder(options.encoder)
    length = int(options.max_length or recipe.vectorizer.get("length", 400))  # type: ignore[call-overload]
    if encoder.objective == "mlm" and length > int(encoder.metadata["model"]["length"]):
        raise ReviewlensError(
            f"--max-length {length} is longer than the {encoder.metadata['model']['length']} positions the encoder "
            f"{encoder.path} learned; pass --max-length {encoder.metadata['model']['length']} or less"
        )
    vectorizer = SequenceVectorizer(
        max_tokens=encoder.vectorizer.max_tokens, length=length, words=encoder.vectorizer.words
    )
    context.log(f"encoder {encoder.path}: {encoder.objective}, {vectorizer.vocabulary_size:,} ids")
    splits = dataset.read_splits("train", "validation", "unsup")  # one pass; test is read once, at the end
    (train_texts, train_labels), (val_texts, val_labels) = splits["train"], splits["validation"]
    train_digest, val_digest = split_digest(train_texts, train_labels), split_digest(val_texts, val_labels)
    x_train, x_val = vectorizer.transform(train_texts), vectorizer.transform(val_texts)
    y_train = np.asarray(train_labels, np.float32 if len(context.labels) == 2 else np.int32)
    weights = context.sample_weights(train_labels)
    weights = np.ones(len(y_train), np.float32) if weights is None else weights
    x_unlabeled = np.concatenate([x_train, vectorizer.transform(splits["unsup"][0])])
    x_unlabeled = x_unlabeled[np.count_nonzero(x_unlabeled, axis=1) > 0]
    train_size = len(train_texts)
    del splits, train_texts, val_texts
    context.lap("vectorize_s")

    outputs = 1 if len(context.labels) == 2 else len(context.labels)
    tuner = _FineTuner(encoder.model, recipe, outputs, context.seed, options.lr_schedule, encoder.backward)
    settings = dict(recipe.model)
    freeze_epochs = int(settings.get("freeze_epochs", 0))  # type: ignore[call-overload]
    unlabeled_batch = int(settings.get("unlabeled_batch", recipe.batch_size))  # type: ignore[call-overload]
    dim = int(tuner.embedding.output_dim)
    best: BestEpoch[list[np.ndarray]] = BestEpoch()
    history: dict[str, list[float]] = {"loss": [], "vat_loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    start = 0
    if (resumed := context.resumed) is not None:
        tuner.restore(resumed.arrays)
        best.restore(resumed.best_epoch, resumed.best_key, resumed.arrays["best"] or None)
        history, start = resumed.history, resumed.epoch
    steps = math.ceil(train_size / recipe.batch_size)
    context.log(
        f"fine-tuning {recipe.name} on {train_size:,} reviews of up to {length} tokens, VAT on "
        f"{len(x_unlabeled):,} unlabeled ones (weight {tuner.weight:g}, epsilon {tuner.epsilon:g})"
    )
    for epoch in range(start, context.epochs):
        rng = np.random.default_rng([context.seed, epoch])
        order = rng.permutation(train_size)
        step = tuner.step_head if epoch < freeze_epochs else tuner.step_all
        sums = np.zeros(2)
        unlabeled, noise = np.ones((1, 1), np.int32), np.zeros((1, 1, dim), np.float32)  # unused without VAT
        for i in range(steps):
            tuner.set_rate(epoch * steps + i, context.epochs * steps)
            rows = order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            if tuner.weight > 0:
                unlabeled = _cut(x_unlabeled[rng.integers(0, len(x_unlabeled), unlabeled_batch)])
                noise = rng.normal(size=(*unlabeled.shape, dim)).astype(np.float32)
            supervised, adversarial = step(_cut(x_train[rows]), y_train[rows], weights[rows], unlabeled, noise)
            sums += (float(supervised), float(adversarial))
        train_loss, vat = sums / steps
        val_loss, val_accuracy = _scores(tuner.predict(x_val), list(val_labels))
        seen = order[:2000]  # the training accuracy on up to 2,000 of the epoch's reviews, in eval mode
        _, train_accuracy = _scores(tuner.predict(x_train[seen]), [int(label) for label in y_train[seen]])
        logs = {"loss": float(train_loss), "vat_loss": float(vat), "accuracy": train_accuracy, "val_loss": val_loss,
                "val_accuracy": val_accuracy}  # fmt: skip
        for key, value in logs.items():
            history[key].append(value)
        best.offer(epoch + 1, logs, tuner.model.get_weights)
        context.log(f"epoch {epoch + 1}/{context.epochs}: loss {train_loss:.4f}, VAT {vat:.4f}, validation "
                    f"accuracy {val_accuracy:.4f}" + (" (head only)" if epoch < freeze_epochs else ""))  # fmt: skip
        context.checkpoint(epoch + 1, history, best, {**tuner.arrays(), "best": best.kept or []})
        context.epoch_done(epoch + 1, logs)
    assert best.kept is not None
    tuner.model.set_weights(best.kept)
    context.lap("fit_s")

    context.log("scoring the test split (once)")
    val_probabilities = tuner.predict(x_val)
    test_texts, test_labels = dataset.read("test")
    test_probabilities = tuner.predict(vectorizer.transform(test_texts))
    test_digest = split_digest(test_texts, test_labels)
    del test_texts
    core = tuner.model

    def write_model(directory: Path) -> None:
        save_text_model(directory / MODEL_FILE, core, vectorizer)

    return Trained(
        history={key: [float(v) for v in values] for key, values in history.items()},
        best_epoch=best.epoch,
        val_labels=list(val_labels),
        val_probabilities=val_probabilities,
        test_labels=test_labels,
        test_probabilities=test_probabilities,
        digests=(train_digest, val_digest, test_digest),
        train_size=train_size,
        hyperparameters={
            **options.to_metadata(),
            "sequence_length": length,
            "vocabulary_size": vectorizer.vocabulary_size,
            "lr_schedule": tuner.schedule,
            "encoder_objective": encoder.objective,
            "encoder_direction": "backward" if encoder.backward else "forward",
            "encoder_vocabulary_digest": encoder.metadata["vocabulary_digest"],
            "encoder_tokens_seen": encoder.metadata.get("tokens_seen"),
            "unlabeled": len(x_unlabeled),
        },
        preprocessor=vectorizer,
        write_model=write_model,
    )


# -- Recipes ------------------------------------------------------------------------------------------

_MIYATO = "Miyato, Dai & Goodfellow 2017, Adversarial Training Methods for Semi-Supervised Text Classification"
_FINE_TUNING = {"dropout": 0.5, "encoder_lr_scale": 0.3, "freeze_epochs": 1, "unlabeled_batch": 16,
                "schedule": "constant"}  # fmt: skip
#: ``reviewlens tune --recipe pretrained-vat --encoder DIR``: the rate, its schedule, the dropout and VAT's radius.
_VAT_SEARCH: Search = {
    "learning_rate": Range(3e-4, 3e-3, log=True),
    "model.schedule": Choice(SCHEDULES),
    "model.dropout": Range(0.2, 0.6),
    "model.vat_epsilon": Range(0.5, 5.0, log=True),
}

register(
    Recipe(
        name="pretrained-vat",
        summary="encoder from `reviewlens pretrain` (--encoder) -> concat pooling -> Dense, fine-tuned with VAT",
        source=_MIYATO + " (LM pretraining + VAT, 1024-unit LSTM)",
        expected_accuracy=0.9409,
        family="pretrained",
        vectorizer={"length": 400},
        # Every layer from the first epoch at the full rate: on the full data (2 cores, BENCHMARKS.md) 88.86%
        # validation after 3 epochs, where the head alone first and the encoder at 0.3x gave 79.02% after 2.
        model={
            **_FINE_TUNING,
            "freeze_epochs": 0,
            "encoder_lr_scale": 1.0,
            "vat_weight": 1.0,
            "vat_epsilon": 1.0,
            "vat_xi": 1e-2,
        },
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=32,
        epochs=4,
        search=_VAT_SEARCH,
        notes="The source's figure is for its 1024-unit LSTM pretrained on GPUs; the 2-core default encoder is far "
        "smaller. Every layer trains from the first epoch (chosen on validation; pretrained-finetune keeps the head "
        "alone for its first epoch, then the encoder at 0.3x the learning rate).",
        slow=True,
        tags=("sequence", "pretrained", "semi-supervised"),
    )
)
register(
    Recipe(
        name="pretrained-finetune",
        summary="as pretrained-vat without the adversarial loss: plain fine-tuning of the encoder (--encoder)",
        source=_MIYATO + " (LM pretraining alone)",
        expected_accuracy=0.9261,
        family="pretrained",
        vectorizer={"length": 400},
        model={**_FINE_TUNING, "vat_weight": 0.0, "vat_epsilon": 0.0},
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=32,
        epochs=4,
        notes="The ablation of pretrained-vat: same encoder, schedule and head, no unlabeled reviews in fine-tuning.",
        slow=True,
        tags=("sequence", "pretrained"),
    )
)
