"""Sequence families (rnn, conv, transformer, embedding-sum): int sequences, Keras ``fit``, a raw-string model.

Reviews become padded token ids (``reviewlens.sequences``), in memory or streamed batch by batch
(``stream``); the saved ``model.keras`` is Input(string) -> TextVectorization(int) -> FitLength -> the
trained model. Keras is imported lazily so that ``--backend jax`` can choose it first.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import math
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.data import Dataset, Example, split_digest
from reviewlens.errors import ReviewlensError
from reviewlens.recipes import Recipe
from reviewlens.runs import MODEL_FILE
from reviewlens.sequences import SIDES, SequenceVectorizer
from reviewlens.training import Context, Trained

MODELS = {
    "rnn": "reviewlens.models.rnn",
    "conv": "reviewlens.models.conv",
    "transformer": "reviewlens.models.transformer",
    "embedding-sum": "reviewlens.models.embedding_sum",
}
#: Per-run options (``reviewlens train --max-length ...``) this family honours.
OPTIONS = frozenset(
    {"max_length", "truncate", "early_stopping", "lr_schedule", "clipnorm", "backend", "embeddings", "stream", "bucket"}
)
LR_SCHEDULES = ("constant", "cosine", "plateau")
BACKENDS = ("tensorflow", "jax")
PREDICT_BATCH = 256


def train(recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
    options = context.options
    keras = _keras(options.get("backend", "tensorflow"))
    vectorizer = _vectorizer(recipe, options)
    stream = bool(options.get("stream"))
    bucket = not stream and bucketing(recipe, vectorizer, options.get("bucket"))

    context.log(f"fitting a {vectorizer.max_tokens:,}-token vocabulary" + (" (streaming)" if stream else ""))
    x_val: np.ndarray | None = None
    if stream:
        train_hash, val_hash = _Digest(), _Digest()
        vectorizer.fit(example.text for example in train_hash.over(_alternated(dataset, "train")))
        train_size, train_digest = train_hash.count, train_hash.digest()
        train_data: Any = _streamed(dataset, "train", vectorizer, recipe.batch_size)
        val_data: Any = _streamed(dataset, "validation", vectorizer, PREDICT_BATCH)
        val_labels = [example.label for example in val_hash.over(_alternated(dataset, "validation"))]
        val_digest = val_hash.digest()
        context.lap("vectorize_s")
    else:
        splits = dataset.read_splits("train", "validation")  # one pass over the source
        (train_texts, train_labels), (val_texts, val_labels) = splits["train"], splits["validation"]
        train_digest = split_digest(train_texts, train_labels)
        val_digest = split_digest(val_texts, val_labels)
        context.lap("read_s")
        order = np.random.default_rng(context.seed).permutation(len(train_texts))  # mix the classes once
        vectorizer.fit(train_texts)
        train_data = (vectorizer.transform(train_texts[i] for i in order), np.asarray(train_labels, np.float32)[order])
        x_val = vectorizer.transform(val_texts)
        val_data = (x_val, np.asarray(val_labels, np.float32))
        context.log(f"length bucketing: {'on' if bucket else 'off'}")
        train_size = len(train_texts)
        del train_texts, val_texts
        context.lap("vectorize_s")

    keras.utils.set_random_seed(context.seed)
    model_config: dict[str, Any] = dict(recipe.model)
    extra: dict[str, object] = {"vocabulary_size": vectorizer.vocabulary_size, "sequence_length": vectorizer.length}
    if model_config.pop("pretrained", False):
        pretrained = _pretrained(options.get("embeddings"), vectorizer, context)
        model_config["pretrained"] = pretrained.matrix
        extra |= {"embeddings": str(options["embeddings"]), "embedding_coverage": round(pretrained.coverage, 4)}
    model = build_model(recipe.family, vectorizer, model_config)
    steps = math.ceil(train_size / recipe.batch_size)
    model.compile(optimizer=_optimizer(recipe, options, steps * context.epochs), loss="binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    best = _best_epoch_callback(keras, context)
    callbacks: list[Any] = [best]
    if options.get("early_stopping"):
        callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=int(options["early_stopping"])))
    if options.get("lr_schedule") == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=1))
    context.log(f"training {recipe.name} on {train_size:,} reviews of {vectorizer.length} tokens")
    if stream:  # the stream alternates the classes instead of shuffling
        fit_args: dict[str, Any] = {"x": train_data, "shuffle": False}
    elif bucket:
        fit_args = {"x": bucketed(train_data[0], train_data[1], recipe.batch_size, context.seed), "shuffle": False}
        val_data = bucketed(val_data[0], val_data[1], PREDICT_BATCH)
    else:
        fit_args = {"x": train_data[0], "y": train_data[1], "batch_size": recipe.batch_size}
    model.fit(**fit_args, epochs=context.epochs, validation_data=val_data, callbacks=callbacks, verbose=0)
    model.set_weights(best.weights)
    context.lap("fit_s")

    context.log("scoring the test split (once)")
    val_probabilities = _predict(model, x_val if x_val is not None else val_data, bucket)
    if stream:
        test_hash = _Digest()
        test_labels = [example.label for example in test_hash.over(_alternated(dataset, "test"))]
        test_digest = test_hash.digest()
        test_probabilities = _predict(model, _streamed(dataset, "test", vectorizer, PREDICT_BATCH))
    else:
        test_texts, test_labels = dataset.read("test")
        test_probabilities = _predict(model, vectorizer.transform(test_texts), bucket)
        test_digest = split_digest(test_texts, test_labels)
        del test_texts
    weights = model.get_weights()
    backend = keras.config.backend()

    def write_model(directory: Path) -> None:
        args = (directory / MODEL_FILE, recipe.family, model_config, weights, vectorizer.get_config())
        if backend == "tensorflow":
            export(*args)
        else:  # the raw-string model needs TensorFlow's string ops: save it from a TensorFlow process
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=spawn, initializer=_use_tensorflow) as helper:
                helper.submit(export, *args).result()

    return Trained(
        history={key: [float(v) for v in values] for key, values in best.history.items()},
        best_epoch=best.best_epoch,
        val_labels=list(val_labels),
        val_probabilities=val_probabilities,
        test_labels=test_labels,
        test_probabilities=test_probabilities,
        digests=(train_digest, val_digest, test_digest),
        train_size=train_size,
        hyperparameters={**extra, **_shown(options), **_sides(vectorizer), "bucket": bucket, "backend": backend},
        write_model=write_model,
    )


def _keras(backend: str) -> Any:
    """Keras, on ``backend``; it must be chosen before Keras is first imported (the CLI does so)."""
    if backend not in BACKENDS:
        raise ReviewlensError(f"--backend {backend} is not one reviewlens trains with; use tensorflow or jax")
    if backend == "jax":
        try:
            import jax  # noqa: F401
        except ImportError:
            raise ReviewlensError(
                "--backend jax needs JAX, which is not installed; pip install 'reviewlens[jax]'"
            ) from None
        os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.config.backend() != backend:
        raise ReviewlensError(
            f"Keras already runs on {keras.config.backend()} in this process; set KERAS_BACKEND={backend} before "
            "starting Python (the CLI's --backend does)"
        )
    return keras


def _use_tensorflow() -> None:
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _vectorizer(recipe: Recipe, options: dict[str, Any]) -> SequenceVectorizer:
    config = dict(recipe.vectorizer)
    if options.get("max_length") is not None:
        if int(options["max_length"]) < 1:
            raise ReviewlensError(f"--max-length {options['max_length']} must be at least 1")
        config["length"] = int(options["max_length"])
    if options.get("truncate") is not None:
        if options["truncate"] not in SIDES:
            raise ReviewlensError(f"--truncate {options['truncate']} is not head or tail")
        config["truncate"] = options["truncate"]
    return SequenceVectorizer(**config)  # type: ignore[arg-type]


def _sides(vectorizer: SequenceVectorizer) -> dict[str, object]:
    return {"truncate": vectorizer.truncate, "padding": vectorizer.padding}


def _shown(options: dict[str, Any]) -> dict[str, object]:
    """The options as they go into the run's metadata."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in options.items()}


def model_module(family: str) -> Any:
    return importlib.import_module(MODELS[family])


#: Sequences at most this long are not bucketed unless asked: there is little padding to save, and the
#: bucketing pipeline costs more than it saves (sum-embedding at 64 tokens trained 0.78x as fast with it).
BUCKET_MIN_LENGTH = 128


def bucketing(recipe: Recipe, vectorizer: SequenceVectorizer, asked: bool | None) -> bool:
    """Whether to train on batches of similar lengths, each padded only to its longest review: only where
    padding cannot change a score; by default (``asked`` None) only for sequences longer than
    ``BUCKET_MIN_LENGTH``."""
    if asked is False or vectorizer.padding != "tail":
        return False
    if not model_module(recipe.family).padding_invariant(**recipe.model):
        return False
    return asked is True or vectorizer.length > BUCKET_MIN_LENGTH


def build_model(family: str, vectorizer: SequenceVectorizer, config: dict[str, Any]) -> Any:
    """The family's ``build(vocabulary_size, sequence_length, **config)``: a model over token ids of any
    length up to ``sequence_length`` (which only learned positions need)."""
    return model_module(family).build(vectorizer.vocabulary_size, vectorizer.length, **config)


def _pretrained(path: object, vectorizer: SequenceVectorizer, context: Context) -> Any:
    from reviewlens.embeddings import embedding_matrix

    if path is None:
        raise ReviewlensError(
            "this recipe needs word vectors: pass --embeddings PATH (GloVe or word2vec text; "
            "`reviewlens embeddings train --out vectors.txt` makes them)"
        )
    pretrained = embedding_matrix(Path(str(path)), vectorizer.words)
    context.log(f"{path}: vectors for {pretrained.found:,} of {pretrained.words:,} words ({pretrained.coverage:.1%})")
    return pretrained


def _optimizer(recipe: Recipe, options: dict[str, Any], total_steps: int) -> Any:
    import keras

    schedule = options.get("lr_schedule") or "constant"
    if schedule not in LR_SCHEDULES:
        raise ReviewlensError(f"--lr-schedule {schedule} is not one of {', '.join(LR_SCHEDULES)}")
    rate: Any = recipe.learning_rate
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, decay_steps=max(total_steps, 1))
    kwargs: dict[str, Any] = {"learning_rate": rate}
    if options.get("clipnorm") is not None:
        if float(options["clipnorm"]) <= 0:
            raise ReviewlensError(f"--clipnorm {options['clipnorm']} must be positive")
        kwargs["clipnorm"] = float(options["clipnorm"])
    return type(keras.optimizers.get(recipe.optimizer))(**kwargs)


def _best_epoch_callback(keras: Any, context: Context) -> Any:
    """Keeps the weights of the best epoch (highest validation accuracy, ties to lower loss) and reports epochs."""

    class BestEpoch(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best: tuple[float, float] = (-1.0, 0.0)
            self.best_epoch = 0
            self.weights: list[np.ndarray] = []
            self.history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = {key: float((logs or {})[key]) for key in self.history}
            for key, value in logs.items():
                self.history[key].append(value)
            if (logs["val_accuracy"], -logs["val_loss"]) > self.best:
                self.best = (logs["val_accuracy"], -logs["val_loss"])
                self.best_epoch, self.weights = epoch + 1, self.model.get_weights()
            context.epoch_done(epoch + 1, logs)

    return BestEpoch()


def _widths(lengths: np.ndarray, limit: int) -> np.ndarray:
    """Padded width for batches whose longest review has ``lengths`` tokens: a multiple of 16 (fewer shapes)."""
    return np.clip(-(-lengths // 16) * 16, 16, limit)


def bucketed(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None = None) -> Any:
    """Tail-padded sequences as a ``tf.data`` pipeline of batches of similar lengths, each cut to its longest.

    With a ``seed``: every epoch shuffles, sorts each run of 32 batches by length, and shuffles the batches;
    without: in length order (for validation).
    """
    import tensorflow as tf

    lengths = np.count_nonzero(x, axis=1)  # tokens are never 0
    rng = np.random.default_rng(seed)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if seed is None:
            groups = _groups(np.argsort(lengths, kind="stable"), batch_size)
        else:
            order, groups = rng.permutation(len(x)), []
            for start in range(0, len(order), batch_size * 32):
                run = order[start : start + batch_size * 32]
                groups += _groups(run[np.argsort(lengths[run], kind="stable")], batch_size)
            groups = [groups[i] for i in rng.permutation(len(groups))]
        for rows in groups:
            width = _widths(lengths[rows].max(keepdims=True), x.shape[1])[0]
            yield x[rows, :width], y[rows]

    signature = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.float32))
    pipeline = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return pipeline.apply(tf.data.experimental.assert_cardinality(math.ceil(len(x) / batch_size))).prefetch(2)


def _groups(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]


def _predict(model: Any, data: Any, bucket: bool = False) -> np.ndarray:
    """Probabilities in the order of ``data`` (an array, or a pipeline of batches)."""
    if not isinstance(data, np.ndarray):
        return np.asarray(model.predict(data, verbose=0), np.float32).reshape(-1)
    probabilities = np.zeros(len(data), np.float32)
    if not bucket:
        if len(data):
            probabilities[:] = np.asarray(model.predict(data, batch_size=PREDICT_BATCH, verbose=0)).reshape(-1)
        return probabilities
    lengths = np.count_nonzero(data, axis=1)
    for rows in _groups(np.argsort(lengths, kind="stable"), PREDICT_BATCH):
        width = _widths(lengths[rows].max(keepdims=True), data.shape[1])[0]
        probabilities[rows] = np.asarray(model.predict_on_batch(data[rows, :width])).reshape(-1)
    return probabilities


class _Digest:
    """A streamed split's content hash, in streamed order (so not equal to ``split_digest`` of ``read``)."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)
        self.count = 0

    def over(self, examples: Iterable[Example]) -> Iterator[Example]:
        for example in examples:
            self.count += 1
            self._hash.update(b"%d\x00%d\x00" % (example.label, len(example.text)))
            self._hash.update(example.text.encode("utf-8", "surrogatepass"))
            yield example

    def digest(self) -> bytes:
        return self._hash.digest()


def _alternated(dataset: Dataset, split: str) -> Iterator[Example]:
    """One stream over the positive reviews and one over the negative ones, alternated."""
    positive = (e for e in dataset.examples(split) if e.label == 1)
    negative = (e for e in dataset.examples(split) if e.label == 0)
    return (e for pair in itertools.zip_longest(positive, negative) for e in pair if e is not None)


def _streamed(dataset: Dataset, split: str, vectorizer: SequenceVectorizer, batch_size: int) -> Any:
    """A ``tf.data`` pipeline over one split, tokenized and padded batch by batch as the reviews stream
    from the source (the modelkit tutorial's data path): nothing holds the split."""
    import tensorflow as tf

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        examples = _alternated(dataset, split)
        while chunk := list(itertools.islice(examples, batch_size)):
            yield vectorizer.transform(e.text for e in chunk), np.array([e.label for e in chunk], np.float32)

    signature = (tf.TensorSpec((None, vectorizer.length), tf.int32), tf.TensorSpec((None,), tf.float32))
    steps = math.ceil(sum(dataset.counts()[split].values()) / batch_size)
    pipeline = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return pipeline.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def export(
    path: Path, family: str, model_config: dict[str, Any], weights: list[np.ndarray], vectorizer: dict[str, object]
) -> None:
    """Save the end-to-end model: raw strings in, the trained model's probability out."""
    import keras

    from reviewlens.keras_text import int_vectorization

    sequences = SequenceVectorizer.from_config(vectorizer)
    core = build_model(family, sequences, model_config)
    core.set_weights(weights)
    text = keras.Input(shape=(1,), dtype="string", name="text")
    x = text
    for layer in int_vectorization(sequences):
        x = layer(x)
    keras.Model(text, core(x), name=f"{core.name}_text").save(path)
