"""``reviewlens pretrain``: learn an encoder from the train split and the unlabeled reviews; read encoder directories.

The encoder is pretrained on the training split (validation already held out of it) plus ``train/unsup``; the
validation and test reviews are never read. It trains in the run directories' staging directory
(``reviewlens.checkpoints``), with a checkpoint every ``checkpoint_steps`` steps and after every epoch, so
``resume=True`` continues a killed pretraining exactly where its last checkpoint stood; the finished encoder
directory is renamed into place whole:

    encoder.keras     ids -> states (safe mode; custom layers in ``reviewlens.models.pretrained``)
    vocabulary.json   the words, in id order from 2 (0 padding, 1 out of vocabulary)
    metadata.json     format, version, objective, sizes, vocabulary digest, loss per epoch, tokens, seconds, machine,
                      the SHA-256 of each other file (an encoder written before they were kept has none)
    output.npz        the objective's output layer (``weights``, ``bias``; no pickle), so ``start=`` continues it

``start=`` (``reviewlens pretrain --from DIR``) continues pretraining an encoder on the same or other text -- a
user's own unlabeled reviews, say -- with its vocabulary, sizes and output layer. An encoder written before the
output layer was kept (format 1 allows it) gets a new one, trained alone for its first ``OUTPUT_WARMUP_STEPS`` steps
so its random gradients do not unsettle the encoder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import stat
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.checkpoints import Checkpoint, Staging
from reviewlens.data import Dataset, Resolved, resolve
from reviewlens.errors import ReviewlensError
from reviewlens.files import FileError, check_writable, read_json
from reviewlens.logs import Log, silent
from reviewlens.runs import library_versions, sha256_of, write_json
from reviewlens.text.sequences import SequenceVectorizer
from reviewlens.version import __version__

ENCODER_FORMAT = "reviewlens.encoder"
ENCODER_VERSION = 1
ENCODER_FILE = "encoder.keras"
VOCABULARY_FILE = "vocabulary.json"
METADATA_FILE = "metadata.json"
OUTPUT_FILE = "output.npz"
#: the files an encoder's metadata holds the SHA-256 of
CHECKSUMMED = (ENCODER_FILE, VOCABULARY_FILE, OUTPUT_FILE)
#: Steps a new output layer trains alone when an encoder without one is continued (about 2.5 M tokens by default).
OUTPUT_WARMUP_STEPS = 300
#: What a continued encoder fixes: its sizes (and, for the Transformer, its positions) are not settings any more.
MODEL_FIELDS = ("objective", "vocabulary", "embedding", "units", "layers", "heads", "dense", "direction")
#: Reviews held out of the pretraining text to measure its validation perplexity (pretraining text, not labels).
HELD_OUT = 256
StepCallback = Callable[[int, int, float], None]  # (steps done this epoch, steps per epoch, running loss)


@dataclass(frozen=True)
class Sizes:
    """What is pretrained: the objective and the model's and batches' sizes."""

    objective: str = "lm"  # lm: LSTM next-token language model; mlm: Transformer, masked tokens
    vocabulary: int = 20000  # counting padding and OOV
    embedding: int = 128
    units: int = 256  # LSTM units (lm)
    layers: int = 1
    heads: int = 2  # Transformer (mlm)
    dense: int = 256  # Transformer feed-forward width (mlm)
    length: int = 128  # tokens per training window
    review_tokens: int | None = None  # tokens kept of each review (its first); None: all
    batch_size: int = 64
    sampled: int = 1024  # negatives of the sampled softmax
    learning_rate: float = 1e-3
    mask_rate: float = 0.15  # mlm
    direction: str = "forward"  # lm: read each review forward, or from its end (ULMFiT's backward model)

    def __post_init__(self) -> None:
        from reviewlens.models.pretrained import DIRECTIONS, OBJECTIVES

        if self.objective not in OBJECTIVES:
            raise ReviewlensError(f"--objective {self.objective} is not one of {', '.join(OBJECTIVES)}")
        if self.direction not in DIRECTIONS:
            raise ReviewlensError(f"--direction {self.direction} is not one of {', '.join(DIRECTIONS)}")
        if self.direction == "backward" and self.objective != "lm":
            raise ReviewlensError("--direction backward is for the language model (--objective lm); the masked "
                                  "Transformer reads both ways already")  # fmt: skip
        for name in ("vocabulary", "embedding", "units", "layers", "heads", "dense", "length", "batch_size", "sampled"):
            if int(getattr(self, name)) < 1:
                raise ReviewlensError(f"--{name.replace('_', '-')} {getattr(self, name)} must be at least 1")
        if self.vocabulary < 3:
            raise ReviewlensError(f"--vocabulary {self.vocabulary} must leave room for padding, OOV and a word")
        if self.review_tokens is not None and self.review_tokens < 2:
            raise ReviewlensError(f"--review-tokens {self.review_tokens} must be at least 2")
        if not 0 < self.learning_rate < math.inf or not 0 < self.mask_rate < 1:
            raise ReviewlensError("--learning-rate must be positive and the mask rate between 0 and 1")

    def model_config(self, vocabulary_size: int) -> dict[str, Any]:
        return {"vocabulary_size": vocabulary_size, "objective": self.objective, "embedding": self.embedding,
                "units": self.units, "layers": self.layers, "heads": self.heads, "dense": self.dense,
                "length": self.length}  # fmt: skip


def continued_sizes(path: Path, given: dict[str, Any]) -> Sizes:
    """The sizes to continue the encoder at ``path`` with: its own, with the training settings in ``given`` (batch,
    window, learning rate...) replaced. A model size in ``given`` other than the encoder's is a user's mistake."""
    metadata = read_encoder_metadata(path)
    known = {field.name for field in dataclasses.fields(Sizes)}
    stored = metadata.get("sizes")
    if not isinstance(stored, dict) or not known.issuperset(stored):
        raise _bad(path, f"its {METADATA_FILE} has no pretraining sizes")
    base = Sizes(**stored)
    fixed = MODEL_FIELDS + (("length",) if base.objective == "mlm" else ())
    for name in fixed:
        if name in given and given[name] != getattr(base, name):
            flag = f"--{name.replace('_', '-')}"
            raise ReviewlensError(
                f"{flag} {given[name]}: the encoder {path} was pretrained with {name} {getattr(base, name)}; leave "
                f"{flag} out to continue it (--from), or pretrain a new encoder without --from"
            )
    return dataclasses.replace(base, **{name: value for name, value in given.items() if name not in fixed})


@dataclass(frozen=True)
class Encoder:
    """A read, checked encoder directory."""

    path: Path
    model: Any  # keras.Model, ids -> states
    vectorizer: SequenceVectorizer  # its vocabulary; ``length`` set by the classifier
    metadata: dict[str, Any]
    output: tuple[np.ndarray, np.ndarray] | None = None  # the objective's output layer, where the directory kept it

    @property
    def objective(self) -> str:
        return str(self.metadata["objective"])

    @property
    def backward(self) -> bool:
        """Whether it reads each review from its end (encoders from before directions read forward)."""
        return self.metadata.get("sizes", {}).get("direction", "forward") == "backward"


def vocabulary_digest(words: list[str]) -> str:
    return hashlib.sha256(json.dumps(words, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


def unlabeled_count(dataset: Dataset, require_unlabeled: bool) -> int:
    """How many unlabeled reviews the data has; none with ``require_unlabeled`` is a user's mistake."""
    unlabeled = sum(dataset.counts().get("unsup", {}).values())
    if not unlabeled and require_unlabeled:
        raise ReviewlensError(
            f"{dataset.path} has no unlabeled reviews (aclImdb's train/unsup); add them, or leave out "
            "--require-unlabeled to pretrain on the train split alone"
        )
    return unlabeled


def pretraining_texts(dataset: Dataset, require_unlabeled: bool, log: Log) -> tuple[list[str], int, int]:
    """The train split's texts (validation is held out of it) and the unlabeled ones; never validation or test."""
    if not unlabeled_count(dataset, require_unlabeled):
        log(f"warning: {dataset.path} has no unlabeled reviews (train/unsup); pretraining on the train split only")
    splits = dataset.read_splits("train", "unsup")
    train_texts, unsup_texts = splits["train"][0], splits["unsup"][0]
    return train_texts + unsup_texts, len(train_texts), len(unsup_texts)


def review_ids(
    vectorizer: SequenceVectorizer, texts: list[str], keep: int | None = None, backward: bool = False
) -> list[list[int]]:
    """Each review's ids, its first ``keep`` (all where None), reversed for a ``backward`` language model."""
    rows = [vectorizer.ids(text)[:keep] if keep else vectorizer.ids(text) for text in texts]
    return [row[::-1] for row in rows] if backward else rows


def windows(rows: list[list[int]], length: int) -> np.ndarray:
    """Each review's ids cut into windows of ``length`` tokens (the last one padded), as one int32 array."""
    out: list[np.ndarray] = []
    for ids in rows:
        for start in range(0, max(len(ids) - 1, 1), length - 1 if length > 2 else 1):
            piece = ids[start : start + length]
            if len(piece) < 2:
                continue
            window = np.zeros(length, np.int32)
            window[: len(piece)] = piece
            out.append(window)
    return np.stack(out) if out else np.zeros((0, length), np.int32)


class _Objective:
    """The pretraining model (encoder + output embedding) and its loss, on TensorFlow."""

    def __init__(self, sizes: Sizes, vocabulary_size: int, seed: int, start: Encoder | None = None):
        import keras
        import tensorflow as tf

        from reviewlens.models.pretrained import encoder, log_uniform

        keras.utils.set_random_seed(seed)
        self.sizes, self.vocabulary_size = sizes, vocabulary_size
        self.mask_id = vocabulary_size  # mlm's [MASK], the encoder's extra row
        self.encoder = start.model if start is not None else encoder(**sizes.model_config(vocabulary_size))
        width = sizes.units if sizes.objective == "lm" else sizes.embedding
        initial = keras.initializers.GlorotUniform(seed=seed)
        self.out_w = keras.Variable(initial((vocabulary_size, width)), name="softmax_weights")
        self.out_b = keras.Variable(np.zeros(vocabulary_size, np.float32), name="softmax_bias")
        if start is not None and start.output is not None:
            self.out_w.assign(start.output[0])
            self.out_b.assign(start.output[1])
        self.variables = [*self.encoder.trainable_variables, self.out_w, self.out_b]
        self.optimizer = keras.optimizers.Adam(sizes.learning_rate, clipnorm=1.0)
        self.optimizer.build(self.variables)
        self.q = tf.constant(log_uniform(vocabulary_size))
        self.step = tf.function(self._step, reduce_retracing=True)
        self.evaluate = tf.function(self._full_loss, reduce_retracing=True)

    def _states(self, ids: Any, selected: Any, training: bool) -> tuple[Any, Any]:
        import tensorflow as tf

        if self.sizes.objective == "lm":
            inputs, targets = ids[:, :-1], ids[:, 1:]
            states = self.encoder(inputs, training=training)
            keep = tf.not_equal(targets, 0)
        else:
            inputs, targets = selected[0], ids
            states = self.encoder(inputs, training=training)
            keep = selected[1]
        return tf.boolean_mask(states, keep), tf.boolean_mask(targets, keep)

    def _step(self, ids: Any, corrupted: Any, chosen: Any, candidates: Any, output_only: bool = False) -> Any:
        import tensorflow as tf

        k = float(self.sizes.sampled)
        variables = self.variables[-2:] if output_only else self.variables
        with tf.GradientTape() as tape:
            h, y = self._states(ids, (corrupted, chosen), True)
            sampled = (candidates, k * tf.gather(self.q, y)[:, None], k * tf.gather(self.q, candidates))
            loss = tf.reduce_mean(tf.nn.sampled_softmax_loss(
                self.out_w, self.out_b, tf.cast(y[:, None], tf.int64), h, self.sizes.sampled, self.vocabulary_size,
                sampled_values=sampled))  # fmt: skip
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss, tf.size(y)

    def _full_loss(self, ids: Any, corrupted: Any, chosen: Any) -> Any:
        import tensorflow as tf

        h, y = self._states(ids, (corrupted, chosen), False)
        logits = tf.matmul(h, self.out_w, transpose_b=True) + self.out_b
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)), tf.size(y)

    def corrupt(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """mlm's input: ``mask_rate`` of the tokens chosen, 80% of them [MASK], 10% a random word, 10% kept."""
        if self.sizes.objective == "lm":
            return ids, ids != 0
        chosen = (rng.random(ids.shape) < self.sizes.mask_rate) & (ids != 0)
        chosen[np.arange(len(ids)), 0] |= ~chosen.any(axis=1) & (ids[:, 0] != 0)  # every window predicts a token
        roll = rng.random(ids.shape)
        corrupted = np.where(chosen & (roll < 0.8), self.mask_id, ids)
        random_ids = rng.integers(2, self.vocabulary_size, ids.shape)
        corrupted = np.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, corrupted).astype(np.int32)
        return corrupted, chosen

    def candidates(self, rng: np.random.Generator) -> np.ndarray:
        """Log-uniform negatives (with replacement), drawn from ``rng`` so a resumed run draws the same."""
        u = rng.random(self.sizes.sampled)
        return np.minimum(np.exp(u * np.log(self.vocabulary_size + 1)) - 1, self.vocabulary_size - 1).astype(np.int64)

    def perplexity(self, held: np.ndarray, seed: int) -> float:
        """exp of the mean full-softmax loss per predicted token of the held-out windows (mlm: a fixed masking)."""
        rng = np.random.default_rng([seed, 999])
        total, count = 0.0, 0
        for start in range(0, len(held), 64):
            ids = held[start : start + 64]
            corrupted, chosen = self.corrupt(ids, rng)
            loss, n = self.evaluate(ids, corrupted, chosen)
            total, count = total + float(loss), count + int(n)
        return float(math.exp(min(total / max(count, 1), 50.0)))

    def arrays(self) -> dict[str, list[np.ndarray]]:
        return {"model": [np.asarray(v.numpy()) for v in self.variables],
                "optimizer": [np.asarray(v.numpy()) for v in self.optimizer.variables]}  # fmt: skip

    def restore(self, arrays: dict[str, list[np.ndarray]]) -> None:
        for variable, value in zip(self.variables, arrays["model"], strict=True):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, arrays["optimizer"], strict=True):
            variable.assign(value)


def pretrain(
    data: str | os.PathLike[str] | Dataset | Resolved | None,
    out: str | os.PathLike[str],
    *,
    sizes: Sizes = Sizes(),
    epochs: int = 1,
    seed: int = 1337,
    resume: bool = False,
    require_unlabeled: bool = False,
    checkpoint_steps: int = 200,
    time_budget_s: float | None = None,
    start: str | os.PathLike[str] | None = None,
    log: Log = silent,
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """Pretrain an encoder on the train split and the unlabeled reviews; write its directory at ``out``; return
    its metadata. ``time_budget_s`` ends pretraining at the first step past it (the encoder says so). ``start``
    continues the encoder in that directory (its vocabulary and model; ``sizes`` from ``continued_sizes``)."""
    if epochs < 1:
        raise ReviewlensError(f"--epochs {epochs} must be at least 1")
    if checkpoint_steps < 1:
        raise ReviewlensError(f"--checkpoint-steps {checkpoint_steps} must be at least 1")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReviewlensError(f"{out} already exists and is not empty; choose another --out or remove it")
    check_writable(out.parent)
    base = None if start is None else load_encoder(start)
    if base is not None:  # the CLI's sizes come from ``continued_sizes``; a caller's must agree with the encoder
        continued_sizes(base.path, {name: getattr(sizes, name) for name in (*MODEL_FIELDS, "length")})
    if isinstance(data, Resolved):
        resolved = data
    elif isinstance(data, Dataset):
        resolved = Resolved(data, "argument")
    else:
        resolved = resolve(data)
    dataset = resolved.dataset
    unlabeled_count(dataset, require_unlabeled)  # refused before anything is written
    settings = {"pretrain": dataclasses.asdict(sizes), "epochs": epochs, "seed": seed, "reviewlens": __version__,
                "data": {"path": str(dataset.path.resolve()), "catalog": dataset.catalog_digest()},
                "from": None if base is None else {"path": str(base.path.resolve()),
                                                   "vocabulary": base.metadata["vocabulary_digest"]}}  # fmt: skip
    staging = Staging(out)
    staging.begin(settings, resume)
    try:
        with_log = log
        with_log(resolved.describe())
        metadata = _pretrain(dataset, staging, sizes, epochs, seed, require_unlabeled, checkpoint_steps,
                             time_budget_s, base, with_log, on_step)  # fmt: skip
        log(f"writing {out}")
        return staging.finish(lambda directory: _write_encoder(directory, *metadata))
    except BaseException:
        staging.stop(log)
        raise


def _pretrain(
    dataset: Dataset, staging: Staging, sizes: Sizes, epochs: int, seed: int, require_unlabeled: bool,
    checkpoint_steps: int, time_budget_s: float | None, base: Encoder | None, log: Log, on_step: StepCallback | None,
) -> tuple[Any, SequenceVectorizer, tuple[np.ndarray, np.ndarray], dict[str, Any]]:  # fmt: skip
    started = time.perf_counter()
    texts, n_train, n_unsup = pretraining_texts(dataset, require_unlabeled, log)
    if not texts:
        raise ReviewlensError(f"{dataset.path} has no training reviews to pretrain on")
    held_rows = np.random.default_rng(seed).permutation(len(texts))[: min(HELD_OUT, max(len(texts) // 10, 1))]
    held_set = set(held_rows.tolist())
    kept = [text for i, text in enumerate(texts) if i not in held_set]
    what = (f"fitting a {sizes.vocabulary:,}-token vocabulary" if base is None
            else f"continuing {base.path} ({base.vectorizer.vocabulary_size:,}-token vocabulary)")  # fmt: skip
    log(f"pretraining text: {n_train:,} train and {n_unsup:,} unlabeled reviews ({len(held_rows)} held out for "
        f"perplexity); {what}")  # fmt: skip
    if base is None:
        vectorizer = SequenceVectorizer(max_tokens=sizes.vocabulary, length=sizes.length).fit(kept)
    else:
        vectorizer = SequenceVectorizer(base.vectorizer.max_tokens, sizes.length, words=base.vectorizer.words)
    window = sizes.length + (sizes.objective == "lm")  # lm predicts each next token

    def ids_of(rows: list[str]) -> list[list[int]]:
        return review_ids(vectorizer, rows, sizes.review_tokens, sizes.direction == "backward")

    train_x = windows(ids_of(kept), window)
    held_x = windows(ids_of([texts[i] for i in held_rows]), window)
    del texts, kept
    if not len(train_x):
        raise ReviewlensError(f"{dataset.path}'s training reviews hold no two tokens in a row to pretrain on")
    objective = _Objective(sizes, vectorizer.vocabulary_size, seed, base)
    steps = math.ceil(len(train_x) / sizes.batch_size)
    warmup = 0
    if base is not None and base.output is None:
        warmup = OUTPUT_WARMUP_STEPS
        log(f"warning: {base.path} has no {OUTPUT_FILE} (written by an older reviewlens): a new output layer trains "
            f"alone for the first {warmup} steps")  # fmt: skip
    tokens_per_epoch = int(np.count_nonzero(train_x))  # input tokens (lm: windows overlap by one)
    kind = f"a {sizes.direction} LSTM language model" if sizes.objective == "lm" else "a masked-token Transformer"
    log(
        f"pretraining {kind} on {len(train_x):,} windows of {sizes.length} tokens "
        f"({tokens_per_epoch:,} tokens an epoch, {steps:,} steps)"
    )
    history: dict[str, list[float]] = {"loss": [], "val_perplexity": [], "tokens": [], "seconds": []}
    epoch, step, tokens, inputs, seconds, running, count = 0, 0, 0, 0, 0.0, 0.0, 0
    if (resumed := staging.resumed) is not None:
        objective.restore(resumed.arrays)
        history = resumed.history
        epoch, step = resumed.epoch, resumed.step
        tokens, seconds = int(resumed.state["tokens"]), float(resumed.state["seconds"])
        inputs = int(resumed.state["inputs"])
        running, count = float(resumed.state["running"]), int(resumed.state["count"])
        log(f"resuming {staging.path} at epoch {epoch + 1}, step {step} of {steps}")
    clock = time.perf_counter()

    def save(epoch: int, step: int) -> None:
        elapsed = seconds + time.perf_counter() - clock
        state = {"tokens": tokens, "inputs": inputs, "seconds": elapsed, "running": running, "count": count}
        staging.save(Checkpoint(epoch, history, 0, (0.0, 0.0), objective.arrays(), state, step))

    stopped = False
    while epoch < epochs and not stopped:
        order = np.random.default_rng([seed, epoch]).permutation(len(train_x))
        while step < steps:
            rng = np.random.default_rng([seed, epoch, step])
            ids = train_x[order[step * sizes.batch_size : (step + 1) * sizes.batch_size]]
            corrupted, chosen = objective.corrupt(ids, rng)
            output_only = epoch * steps + step < warmup
            loss, n = objective.step(ids, corrupted, chosen, objective.candidates(rng), output_only)
            running, count, tokens, step = running + float(loss), count + 1, tokens + int(n), step + 1
            inputs += int(np.count_nonzero(ids))
            if on_step is not None:
                on_step(step, steps, running / count)
            over = time_budget_s is not None and seconds + time.perf_counter() - clock >= time_budget_s
            if step < steps and not over and step % checkpoint_steps == 0:
                save(epoch, step)
            if over:
                stopped = step < steps or epoch + 1 < epochs
                break
        perplexity = objective.perplexity(held_x, seed)
        elapsed = seconds + time.perf_counter() - clock
        history["loss"].append(running / max(count, 1))
        history["val_perplexity"].append(perplexity)
        history["tokens"].append(tokens)
        history["seconds"].append(round(elapsed, 3))
        log(f"epoch {epoch + 1}/{epochs}: loss {running / max(count, 1):.4f} (sampled softmax), validation "
            f"perplexity {perplexity:.1f}, {tokens:,} tokens in {elapsed:.0f} s ({tokens / max(elapsed, 1e-9):,.0f}/s)"
            + (" - time budget reached" if stopped else ""))  # fmt: skip
        epoch, step, running, count = epoch + 1, 0, 0.0, 0
        if not stopped:
            save(epoch, 0)
    total = seconds + time.perf_counter() - clock
    before = 0 if base is None else int(base.metadata.get("tokens_seen_total", base.metadata.get("tokens_seen", 0)))
    metadata = {
        "format": ENCODER_FORMAT,
        "format_version": ENCODER_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "objective": sizes.objective,
        "sizes": dataclasses.asdict(sizes),
        "model": sizes.model_config(vectorizer.vocabulary_size),
        "vocabulary_size": vectorizer.vocabulary_size,
        "vocabulary_digest": vocabulary_digest(vectorizer.words),
        "loss": history["loss"],
        "val_perplexity": history["val_perplexity"],
        "history": history,
        "epochs": epochs,
        "epochs_done": len(history["loss"]),
        "stopped_by_time_budget": stopped,
        "tokens_seen": tokens,
        "tokens_seen_total": tokens + before,
        "continued_from": None
        if base is None
        else {
            "path": str(base.path),
            "tokens_seen_total": before,
            "seconds": base.metadata.get("seconds"),
            "output_layer": "new" if warmup else "kept",
            "output_warmup_steps": warmup,
        },
        "tokens_per_epoch": tokens_per_epoch,
        "seconds": round(total, 3),
        "setup_seconds": round(clock - started, 3),
        "tokens_per_second": round(tokens / max(total, 1e-9), 1),
        "input_tokens_seen": inputs,
        "input_tokens_per_second": round(inputs / max(total, 1e-9), 1),
        "data": {
            "path": str(dataset.path),
            "train": n_train,
            "unsup": n_unsup,
            "held_out": len(held_rows),
            "windows": len(train_x),
            "catalog": dataset.catalog_digest(),
            "read": ["train", "unsup"],
        },
        "seed": seed,
        "resumed": staging.resumed is not None,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "versions": library_versions(),
    }
    output = (np.asarray(objective.out_w.numpy()), np.asarray(objective.out_b.numpy()))
    return objective.encoder, vectorizer, output, metadata


def _write_encoder(
    directory: Path, model: Any, vectorizer: SequenceVectorizer, output: tuple[np.ndarray, np.ndarray],
    metadata: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    model.save(directory / ENCODER_FILE)
    np.savez(directory / OUTPUT_FILE, weights=output[0], bias=output[1])
    (directory / VOCABULARY_FILE).write_text(json.dumps(vectorizer.words, ensure_ascii=False), encoding="utf-8")
    # Written last, as a run's: the checksum of every other file, which check_encoder holds them to.
    metadata = {**metadata, "files": {name: sha256_of(directory / name) for name in CHECKSUMMED}}
    write_json(directory / METADATA_FILE, metadata)
    return metadata


def _bad(path: Path, why: str) -> ReviewlensError:
    return ReviewlensError(
        f"--encoder {path}: {why}; pass a directory written by `reviewlens pretrain`, or pretrain again"
    )


def _read_json(path: Path, name: str) -> Any:
    """``path/name`` decoded, by the one bounded reader (``reviewlens.files.read_json``: a regular file within its
    kind's bound and nesting depth), a failure said as the encoder's (the encoder's ``.keras`` file is checked as a
    zip, which reads its members' sizes from its directory)."""
    try:
        return read_json(path / name, "pretrain again")
    except FileError as error:
        raise _bad(path, f"its {name} {error.why}") from None


def read_encoder_metadata(path: Path) -> dict[str, Any]:
    """An encoder directory's checked metadata, without loading Keras."""
    if not path.is_dir():
        raise _bad(path, "no such directory" if not path.exists() else "not a directory")
    metadata = _read_json(path, METADATA_FILE)
    if not isinstance(metadata, dict) or metadata.get("format") != ENCODER_FORMAT:
        raise _bad(path, f"its {METADATA_FILE} is not an encoder's")
    if metadata.get("format_version") != ENCODER_VERSION:
        raise _bad(path, f"encoder format version {metadata.get('format_version')!r}, this reviewlens reads "
                   f"{ENCODER_VERSION}")  # fmt: skip
    for key in ("objective", "vocabulary_size", "vocabulary_digest", "model"):
        if key not in metadata:
            raise _bad(path, f"its {METADATA_FILE} lacks {key!r}")
    return metadata


def check_encoder(path: Path) -> tuple[dict[str, Any], list[str], tuple[np.ndarray, np.ndarray] | None]:
    """An encoder directory's metadata and vocabulary, checked against each other, its ``.keras`` file checked
    whole (a zip whose members' checksums hold) and its output layer read and checked, without importing
    TensorFlow."""
    metadata = read_encoder_metadata(path)
    words = _read_json(path, VOCABULARY_FILE)
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise _bad(path, f"its {VOCABULARY_FILE} is not a list of words")
    if vocabulary_digest(words) != metadata["vocabulary_digest"] or len(words) + 2 != metadata["vocabulary_size"]:
        raise _bad(path, f"its {VOCABULARY_FILE} is another vocabulary than the one the encoder was trained with")
    try:
        if not stat.S_ISREG((path / ENCODER_FILE).stat().st_mode):
            raise _bad(path, f"its {ENCODER_FILE} is not a regular file")
        with zipfile.ZipFile(path / ENCODER_FILE) as archive:
            broken = archive.testzip()
    except FileNotFoundError:
        raise _bad(path, f"it has no {ENCODER_FILE}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise _bad(path, f"its {ENCODER_FILE} cannot be loaded ({type(error).__name__}: cut short or not a .keras "
                   "file)") from None  # fmt: skip
    if broken is not None:
        raise _bad(path, f"its {ENCODER_FILE} cannot be loaded ({broken} is damaged)")
    model = metadata["model"]
    width = model.get("units") if metadata["objective"] == "lm" else model.get("embedding")
    if not isinstance(width, int):
        raise _bad(path, f"its {METADATA_FILE} gives no width for the encoder's states")
    output = _read_output(path, len(words) + 2, width)
    _check_files(path, metadata)  # last: the checks above name what is wrong where they can
    return metadata, words, output


def _check_files(path: Path, metadata: dict[str, Any]) -> None:
    """Each file the metadata lists matches its SHA-256 there (an encoder written before they were kept lists none,
    and is checked by its vocabulary digest and its zip's own checksums only)."""
    files = metadata.get("files")
    if files is None:
        return
    if not isinstance(files, dict) or not all(isinstance(files.get(name), str) for name in CHECKSUMMED):
        raise _bad(path, f"its {METADATA_FILE} lists no checksum for each of {', '.join(CHECKSUMMED)}")
    for name in CHECKSUMMED:
        file = path / name
        try:
            if not stat.S_ISREG(file.stat().st_mode):
                raise _bad(path, f"its {name} is not a regular file")
            digest = sha256_of(file)
        except FileNotFoundError:
            raise _bad(path, f"it has no {name}") from None
        except OSError as error:
            raise _bad(path, f"its {name} cannot be read ({error.strerror or error})") from None
        if digest != files[name]:
            raise _bad(path, f"its {name} does not match its checksum in {METADATA_FILE} (damaged or rewritten)")


def load_encoder(path: str | os.PathLike[str]) -> Encoder:
    """Read and check an encoder directory: metadata, vocabulary (its digest), and the ``.keras`` model in safe mode
    (its embedding the vocabulary's size). Any mismatch is one line (``ReviewlensError``)."""
    path = Path(path)
    metadata, words, output = check_encoder(path)
    import keras

    import reviewlens.models.pretrained  # noqa: F401 - registers the encoder's layers

    try:
        model = keras.saving.load_model(path / ENCODER_FILE, safe_mode=True)
    except FileNotFoundError:
        raise _bad(path, f"it has no {ENCODER_FILE}") from None
    except (ValueError, OSError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise _bad(path, f"its {ENCODER_FILE} cannot be loaded ({type(error).__name__})") from None
    try:
        rows = int(model.get_layer("embedding").input_dim)
    except ValueError:
        raise _bad(path, f"its {ENCODER_FILE} has no embedding layer") from None
    if rows != len(words) + 2 + (metadata["objective"] == "mlm"):
        raise _bad(path, f"its {ENCODER_FILE} embeds {rows} ids and its vocabulary has {len(words) + 2}")
    vectorizer = SequenceVectorizer(max_tokens=len(words) + 2, length=int(metadata["model"]["length"]), words=words)
    if output is not None and int(model.output_shape[-1]) != output[0].shape[1]:
        raise _bad(path, f"its {OUTPUT_FILE} reads states of {output[0].shape[1]} and the encoder gives "
                   f"{model.output_shape[-1]}")  # fmt: skip
    return Encoder(path, model, vectorizer, metadata, output)


def _read_output(path: Path, rows: int, width: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The directory's output layer (``OUTPUT_FILE``), checked: a regular file, two float arrays of the encoder's
    shapes, finite, no pickle. None where the directory has none (an encoder written before it was kept)."""
    file = path / OUTPUT_FILE
    try:
        if not stat.S_ISREG(file.stat().st_mode):
            raise _bad(path, f"its {OUTPUT_FILE} is not a regular file")
        with np.load(file, allow_pickle=False) as arrays:
            weights, bias = np.asarray(arrays["weights"]), np.asarray(arrays["bias"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise _bad(path, f"its {OUTPUT_FILE} cannot be loaded ({type(error).__name__})") from None
    if weights.shape != (rows, width) or bias.shape != (rows,) or weights.dtype.kind != "f" or bias.dtype.kind != "f":
        raise _bad(path, f"its {OUTPUT_FILE} holds arrays of {weights.shape} and {bias.shape}, not the encoder's "
                   f"({rows}, {width}) and ({rows},)")  # fmt: skip
    if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
        raise _bad(path, f"its {OUTPUT_FILE} holds values that are not finite")
    return weights.astype(np.float32), bias.astype(np.float32)
