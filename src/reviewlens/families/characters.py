"""The character family: reviews as character ids, read by the trainable tokenization layer or a character CNN.

Recipes: ``char-tokenization`` (the ``tokenization-layer`` package's IMDB model as published), ``char-tokens``
(the same layer made to learn: greedy max-cover patterns that match as themselves, counted over the review)
and ``char-cnn`` (a plain character CNN of similar size, for comparison). All train through one loop, the
published one: per step the loss and accuracy; with ``--log-patterns DIR``, every 10 steps every pattern
decoded to text (``patterns_log.txt``) and the 15 with the most and the least gradient activity, every step
the mean and spread of each layer's values and gradients (``vals_log.csv``, ``grads_log.csv``). It saves a
checkpoint five times an epoch and at its end (``Context.checkpoint``), which ``train --resume`` continues from,
mid-epoch included. ``--split published`` trains on the
package's random 70/15/15 split of all 50,000 reviews instead of aclImdb's train/test (the figure that counts).
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.checkpoints import keras_arrays, restore_keras
from reviewlens.data import Dataset, split_digest
from reviewlens.errors import ReviewlensError
from reviewlens.families.base import BestEpoch, Context, Family, Options, Trained, register_family
from reviewlens.predictors.keras_model import MODEL_FILE, KerasPredictor, save_text_model
from reviewlens.recipes import Recipe, register
from reviewlens.text.characters import CharacterEncoder

SPLITS = ("standard", "published")
PATTERNS_LOG, VALS_LOG, GRADS_LOG = "patterns_log.txt", "vals_log.csv", "grads_log.csv"
#: Layers whose outputs the value and gradient logs follow, in the published logs' order, and their weights.
LOGGED_LAYERS = ("out", "dense", "embedding", "tokenization", "convolution", "log_counts")
#: Training texts the max-cover initializer counts n-grams in.
CORPUS_REVIEWS = 3000
PREDICT_BATCH = 256


@dataclass(frozen=True)
class CharacterOptions(Options):
    """Per-run settings of the character family; ``None`` keeps the recipe's choice."""

    max_length: int | None = None  # characters kept per review
    log_patterns: Path | None = None  # where the training loop writes its logs

    UNCHECKED = ("log_patterns",)
    split: str | None = None  # standard (aclImdb train/test) or published (random 70/15/15 of all reviews)

    def __post_init__(self) -> None:
        if self.max_length is not None and int(self.max_length) < 1:
            raise ReviewlensError(f"--max-length {self.max_length} must be at least 1")
        if self.split is not None and self.split not in SPLITS:
            raise ReviewlensError(f"--split {self.split} is not one of {', '.join(SPLITS)}")


@dataclass(frozen=True)
class CharacterFamily(Family):
    def train(self, recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
        return _train(self, recipe, dataset, context)


CHARACTERS = register_family(
    CharacterFamily(
        "characters",
        "character ids -> learned character tokens (the tokenization layer) or a character CNN",
        (KerasPredictor.kind,),
        CharacterOptions,
    )
)


# -- data ------------------------------------------------------------------------------------------


def published_split(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train, validation and test as the package's script splits ``n`` reviews: scikit-learn's
    ``train_test_split(test_size=0.3, random_state=42)``, then the held-out 30% split in half the same way
    (a permutation by ``RandomState(42)``; the test part is its first ``ceil(size * fraction)``)."""
    order = np.random.RandomState(seed).permutation(n)
    held, train = order[: math.ceil(0.3 * n)], order[math.ceil(0.3 * n) :]
    halves = np.random.RandomState(seed).permutation(len(held))
    cut = math.ceil(0.5 * len(held))
    return train, held[halves[cut:]], held[halves[:cut]]


def _splits(dataset: Dataset, split: str) -> dict[str, tuple[list[str], list[int]]]:
    parts = dataset.read_splits("train", "validation", "test")
    if split == "standard":
        return parts
    texts = [text for name in ("train", "validation", "test") for text in parts[name][0]]
    labels = [label for name in ("train", "validation", "test") for label in parts[name][1]]
    indices = dict(zip(("train", "validation", "test"), published_split(len(texts)), strict=True))
    return {name: ([texts[i] for i in rows], [labels[i] for i in rows]) for name, rows in indices.items()}


# -- logs and checkpoints --------------------------------------------------------------------------


def _writable(directory: Path) -> Path:
    """The log folder, created; a folder that cannot be written is a user's mistake, said before training."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ReviewlensError(
            f"--log-patterns {directory}: cannot write there ({error.strerror or error}); choose a writable folder"
        ) from None
    return directory


def _title(layer: Any, weight: Any) -> str:
    """A weight's column name in the logs, as published: "Out Kernel", "Embedding Kernel", "Patterns"."""
    if weight.name == "patterns":
        return "Patterns"
    kind = "Kernel" if weight.name == "embedding_matrix" else weight.name.replace("_", " ").title()
    return f"{layer.name.replace('_', ' ').title()} {kind}"


class _Probe:
    """The model with its logged layers' outputs, and one training step that reports what the logs need."""

    def __init__(self, model: Any, optimizer: Any):
        import keras
        import tensorflow as tf

        binary = model.output_shape[-1] == 1

        self.model, self.optimizer = model, optimizer
        self.layers = [model.get_layer(name) for name in LOGGED_LAYERS if name in {lr.name for lr in model.layers}]
        self.weights = [(layer, w) for layer in self.layers for w in layer.trainable_weights]
        probe = keras.Model(model.inputs, [layer.output for layer in self.layers])
        out_index = next(i for i, layer in enumerate(self.layers) if layer.name == "out")
        binary_loss = keras.losses.BinaryCrossentropy()

        def loss_fn(y: Any, z: Any, sample_weight: Any) -> Any:
            if binary:
                return binary_loss(y, z, sample_weight=sample_weight)
            # Cross-entropy written out on the softmax's probabilities: Keras' own would take the logits behind them,
            # and the gradient the logs report for the output layer would be None.
            picked = tf.gather(z, tf.cast(y, tf.int32), batch_dims=1)
            return tf.reduce_mean(sample_weight * -tf.math.log(tf.clip_by_value(picked, 1e-7, 1.0)))

        variables = model.trainable_variables
        logged = [w for _, w in self.weights]
        self.columns = [
            f"{layer.name.replace('_', ' ').title()} {stat}" for layer in self.layers for stat in ("Mean", "Std")
        ]
        self.columns += [f"{_title(layer, w)} {stat}" for layer, w in self.weights for stat in ("Mean", "Std")]
        patterns = next((w for layer, w in self.weights if w.name == "patterns"), None)

        def stats(tensors: Sequence[Any], spread_of_batch_mean: bool) -> Any:
            values = []
            for t in tensors:
                t = tf.cast(t, tf.float32)
                values.append(tf.reduce_mean(t))
                values.append(tf.math.reduce_std(tf.reduce_mean(t, axis=0) if spread_of_batch_mean else t))
            return tf.stack(values)

        @tf.function(reduce_retracing=True)
        def step(x: Any, y: Any, weights: Any) -> Any:
            with tf.GradientTape() as tape:
                outputs = probe(x, training=True)
                z = outputs[out_index][:, 0] if binary else outputs[out_index]
                loss = loss_fn(y, z, sample_weight=weights)
            grads = tape.gradient(loss, list(outputs) + variables)
            layer_grads, var_grads = grads[: len(outputs)], grads[len(outputs) :]
            by_id = {id(v): g for v, g in zip(variables, var_grads, strict=True)}
            logged_grads = [by_id[id(w)] for w in logged]
            optimizer.apply_gradients(zip(var_grads, variables, strict=True))
            values = tf.concat([stats(outputs, True), stats([w.value for w in logged], False)], 0)
            gradients = tf.concat([stats(layer_grads, True), stats(logged_grads, False)], 0)
            activity = tf.zeros([0])
            if patterns is not None:
                g = by_id[id(patterns)][:, :, 0, :]  # (C, L, n)
                activity = tf.math.reduce_std(g, axis=[0, 1]) + tf.abs(tf.reduce_mean(g, axis=[0, 1]))
            answers = tf.cast(z >= 0.5, tf.float32) if binary else tf.cast(tf.argmax(z, axis=-1), y.dtype)
            correct = tf.reduce_sum(tf.cast(tf.equal(answers, y), tf.float32))
            return loss, correct, values, gradients, activity

        self.step = step


class _Logs:
    """The published loop's three logs, appended to (a resumed run continues them)."""

    def __init__(self, directory: Path, columns: list[str], alphabet: str, log: Any):
        self.directory, self.alphabet, self.log = directory, alphabet, log
        for name in (VALS_LOG, GRADS_LOG):
            path = directory / name
            if not path.exists():
                path.write_text(",".join(columns) + "\n", encoding="utf-8")
        (directory / PATTERNS_LOG).touch()

    def step(self, step: int, values: Any, gradients: Any, patterns: Any, activity: Any) -> None:
        for name, row in ((VALS_LOG, values), (GRADS_LOG, gradients)):
            with open(self.directory / name, "a", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow([f"{float(v):.6g}" for v in row])
        if patterns is None or step % 10:
            return
        from reviewlens.models.tokenization import decode_patterns

        decoded = decode_patterns(patterns, self.alphabet)
        with open(self.directory / PATTERNS_LOG, "a", encoding="utf-8") as f:
            f.write(", ".join(json.dumps(p, ensure_ascii=False) for p in decoded) + "\n")
        order = np.argsort(np.asarray(activity), kind="stable")
        show = 15

        def listed(indices: Any) -> str:
            return "  ".join(f'"{decoded[i]}" {float(activity[i]) * 100:.4f}' for i in indices)

        self.log(f"step {step}: patterns with diverse non-zero gradients: {listed(order[::-1][:show])}")
        self.log(f"step {step}: patterns with mostly zero gradients: {listed(order[:show])}")


# -- training --------------------------------------------------------------------------------------


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    """The probability of positive for each row (two labels), or each label's probability (rows, labels)."""
    outputs = model.output_shape[-1]
    probabilities = np.zeros((len(x), outputs), np.float32)
    for start in range(0, len(x), PREDICT_BATCH):
        batch = x[start : start + PREDICT_BATCH]
        probabilities[start : start + len(batch)] = np.asarray(model(batch, training=False))
    return probabilities.reshape(-1) if outputs == 1 else probabilities


def _scores(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(cross-entropy, accuracy) of ``_predict``'s probabilities against label indices."""
    if probabilities.ndim == 1:
        p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
        loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
        return float(loss), float(np.mean((p >= 0.5) == (labels == 1)))
    rows = np.arange(len(labels))
    p = np.clip(probabilities[rows, labels.astype(np.int64)].astype(np.float64), 1e-7, 1.0)
    return float(-np.mean(np.log(p))), float(np.mean(probabilities.argmax(axis=1) == labels))


def _train(family: CharacterFamily, recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
    options = context.options
    assert isinstance(options, CharacterOptions)
    log_dir = _writable(Path(options.log_patterns)) if options.log_patterns is not None else None
    split = options.split or "standard"
    import keras

    from reviewlens.models import characters as models

    splits = _splits(dataset, split)
    (train_texts, train_labels), (val_texts, val_labels) = splits["train"], splits["validation"]
    test_texts, test_labels = splits["test"]
    if not train_texts or not val_texts:
        raise ReviewlensError(f"{dataset.path}: the character recipes need train and validation reviews")
    digests = tuple(split_digest(*splits[name]) for name in ("train", "validation", "test"))
    context.lap("read_s")
    vectorizer: dict[str, Any] = dict(recipe.vectorizer)
    length = int(options.max_length or vectorizer.get("length", 2000))
    encoder = CharacterEncoder(length=length, size=int(vectorizer.get("alphabet", 30))).fit(train_texts)
    x_train, x_val = encoder.transform(train_texts), encoder.transform(val_texts)
    outputs = 1 if len(context.labels) == 2 else len(context.labels)
    y_type = np.float32 if outputs == 1 else np.int32  # what each loss takes: a probability's target, an index
    y_train, y_val = np.asarray(train_labels, y_type), np.asarray(val_labels, y_type)
    weights = context.sample_weights(train_labels)
    w_train = np.ones(len(y_train), np.float32) if weights is None else weights  # all ones: the unweighted mean
    context.log(f"alphabet of {encoder.num_chars} characters: {encoder.alphabet!r}; {length:,} characters per review")
    context.lap("vectorize_s")

    keras.utils.set_random_seed(context.seed)
    config: dict[str, Any] = {**recipe.model, "outputs": outputs}
    resumed = context.resumed
    corpus = None
    if resumed is None:  # a resumed model's patterns come from its checkpoint
        picked = np.random.default_rng(context.seed).permutation(len(train_texts))[:CORPUS_REVIEWS]
        corpus = [train_texts[i] for i in sorted(picked)]
        if config.get("kind") != "cnn":
            context.log(f"initializing patterns from {len(corpus):,} training reviews ({config.get('strategy')})")
    model = models.build(num_chars=encoder.num_chars, length=length, alphabet=encoder.alphabet, corpus=corpus,
                         seed=context.seed, **config)  # fmt: skip
    optimizer = type(keras.optimizers.get(recipe.optimizer))(learning_rate=recipe.learning_rate)
    probe = _Probe(model, optimizer)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best = BestEpoch[list[np.ndarray]]()
    first_epoch, first_step, partial = 0, 0, {"seen": 0, "correct": 0.0, "loss": 0.0}
    if resumed is not None:
        restore_keras(model, optimizer, resumed.arrays)
        best.restore(resumed.best_epoch, resumed.best_key, resumed.arrays["best"] or None)
        history, first_epoch, first_step = resumed.history, resumed.epoch, resumed.step
        partial = resumed.state.get("partial", partial)
        context.log(f"resuming after epoch {first_epoch}, step {first_step}")
    logs = _Logs(log_dir, probe.columns, encoder.alphabet, context.log) if log_dir is not None else None
    tokenization = models.tokenization_layer(model)
    context.lap("build_s")

    steps = math.ceil(len(x_train) / recipe.batch_size)
    every = max(steps // 5, 1)

    def checkpoint(epoch: int, step: int, partial: dict[str, float]) -> None:
        arrays = {**keras_arrays(model, optimizer), "best": best.kept or []}
        context.checkpoint(epoch, history, best, arrays, {"partial": partial}, step=step)

    for epoch in range(first_epoch, context.epochs):
        order = np.random.default_rng([context.seed, epoch]).permutation(len(x_train))
        seen, correct, total_loss = int(partial["seen"]), float(partial["correct"]), float(partial["loss"])
        for step in range(first_step, steps):
            rows = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            loss, hits, values, gradients, activity = probe.step(x_train[rows], y_train[rows], w_train[rows])
            seen, correct, total_loss = seen + len(rows), correct + float(hits), total_loss + float(loss) * len(rows)
            if logs is not None:
                patterns = None if tokenization is None else tokenization.patterns.numpy()
                logs.step(
                    epoch * steps + step, np.asarray(values), np.asarray(gradients), patterns, np.asarray(activity)
                )
            if (step + 1) % every == 0 and step + 1 < steps:
                checkpoint(epoch, step + 1, {"seen": seen, "correct": correct, "loss": total_loss})
        first_step, partial = 0, {"seen": 0, "correct": 0.0, "loss": 0.0}
        val_probabilities = _predict(model, x_val)
        val_loss, val_accuracy = _scores(val_probabilities, y_val)
        epoch_logs = {
            "loss": total_loss / max(seen, 1),
            "accuracy": correct / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        for key, value in epoch_logs.items():
            history[key].append(value)
        best.offer(epoch + 1, epoch_logs, model.get_weights)
        checkpoint(epoch + 1, 0, partial)
        context.epoch_done(epoch + 1, epoch_logs)
    assert best.kept is not None  # at least one epoch
    model.set_weights(best.kept)
    context.lap("fit_s")

    context.log("scoring the test split (once)")
    val_probabilities = _predict(model, x_val)
    test_probabilities = _predict(model, encoder.transform(test_texts))
    weights = model.get_weights()

    def write_model(directory: Path) -> None:
        export(directory / MODEL_FILE, config, weights, encoder)

    hyperparameters: dict[str, object] = {**options.to_metadata(), "split": split, "length": length,
                                          "alphabet": encoder.alphabet}  # fmt: skip
    if tokenization is not None:
        from reviewlens.models.tokenization import decode_patterns

        hyperparameters["patterns_sample"] = decode_patterns(tokenization.patterns.numpy(), encoder.alphabet)[:20]
    return Trained(
        history=history,
        best_epoch=best.epoch,
        val_labels=list(val_labels),
        val_probabilities=val_probabilities,
        test_labels=list(test_labels),
        test_probabilities=test_probabilities,
        digests=digests,
        train_size=len(train_texts),
        hyperparameters=hyperparameters,
        preprocessor=encoder,
        write_model=write_model,
    )


def export(path: Path, config: dict[str, Any], weights: list[np.ndarray], encoder: CharacterEncoder) -> None:
    """Save the end-to-end model: raw strings in, the trained model's probability out."""

    from reviewlens.models import characters as models

    core = models.build(num_chars=encoder.num_chars, length=encoder.length, alphabet=encoder.alphabet, **config)
    core.set_weights(weights)
    save_text_model(path, core, encoder)


# -- recipes ---------------------------------------------------------------------------------------

_PACKAGE = "tokenization-layer 0.0.2 (martinm07), its IMDB script"
register(
    Recipe(
        name="char-tokenization",
        summary="30 characters, 2,000 per review -> TokenizationLayer(500, max-cover) -> EmbeddingLayer(1) -> "
        "Flatten -> BatchNorm -> Dense(64) -> Dense(1)",
        source=_PACKAGE,
        expected_accuracy=None,
        family="characters",
        vectorizer={"alphabet": 30, "length": 2000},
        model={
            "kind": "published",
            "patterns": 500,
            "pattern_len": 13,
            "gram_lens": list(range(5, 14)),
            "strategy": "sample",
            "padding": "noise",
        },
        optimizer="adam",
        batch_size=32,
        epochs=10,
        notes="The published model and loop (its split: --split published). Its initializer fills the padding "
        "of short grams with noise, which reads as random characters: such patterns almost never match.",
        slow=True,
        tags=("characters", "tokenization-layer"),
    )
)
register(
    Recipe(
        name="char-tokens",
        summary="30 characters, 2,000 per review -> TokenizationLayer(8,000 greedy max-cover patterns, counted) "
        "-> log(1 + count) -> Dense(1)",
        source=f"{_PACKAGE}, made to learn",
        expected_accuracy=None,
        family="characters",
        vectorizer={"alphabet": 30, "length": 2000},
        model={
            "kind": "pooled",
            "patterns": 8000,
            "pattern_len": 12,
            "gram_lens": list(range(4, 13)),
            "strategy": "greedy",
            "padding": "wildcard",
            "constrain": True,
            "dropout": 0.3,
        },
        optimizer="adam",
        learning_rate=3e-3,
        batch_size=64,
        epochs=6,
        notes="What makes the layer learn: patterns initialized by greedy max cover (each the gram covering the "
        "most text not yet covered), short grams padded with wildcards so they match as themselves, pattern "
        "values kept inside (0, 1) where the gradient lives, and each token's matches counted over the review "
        "(by hashing, no 2,000-wide map) instead of flattening 2,000 positions.",
        tags=("characters", "tokenization-layer"),
    )
)
register(
    Recipe(
        name="char-cnn",
        summary="30 characters, 2,000 per review -> Embedding(16) -> Conv1D(256, 7, relu) -> max over the text "
        "-> Dense(1)",
        source="a plain character CNN of the tokenization layer's size, for comparison",
        expected_accuracy=None,
        family="characters",
        vectorizer={"alphabet": 30, "length": 2000},
        model={"kind": "cnn", "embedding": 16, "filters": 256, "kernel_size": 7, "dropout": 0.3},
        optimizer="adam",
        batch_size=64,
        epochs=6,
        slow=True,
        tags=("characters", "cnn"),
    )
)
