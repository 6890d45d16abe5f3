"""Training the bag-of-words family on sparse vectors with Keras' own arithmetic, in NumPy/SciPy.

Keras' Dense layer on a SparseTensor costs ~6.5 ms per batch of 256 on 2 CPU cores, the same
product in SciPy ~0.2 ms; the whole fit of ``bow-bigram`` drops from ~40 s to a few seconds. The
model, its initial weights (taken from the Keras model), the loss (binary cross-entropy on the
sigmoid's logits; for more than two labels, a softmax and categorical cross-entropy), Dropout and the
optimizers (Keras' RMSprop and Adam update rules) are the same; the tests check one step against Keras'
own optimizer on the same batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit, log_softmax, softmax

Matrix = Any  # a scipy.sparse CSR matrix or a dense ndarray, one row per example


class _RMSprop:
    def __init__(self, learning_rate: float, rho: float = 0.9, epsilon: float = 1e-7):
        self.learning_rate, self.rho, self.epsilon = learning_rate, rho, epsilon
        self.slots: dict[int, tuple[np.ndarray, ...]] = {}  # per variable: its velocity
        self.scratch: dict[int, np.ndarray] = {}
        self.step = 1  # the step about to be taken (RMSprop's update does not depend on it)

    def apply(self, key: int, variable: np.ndarray, gradient: np.ndarray) -> None:
        # v = rho v + (1 - rho) g^2;  w -= lr g / sqrt(v + eps), in place: this runs every step.
        (velocity,) = self.slots.setdefault(key, (np.zeros_like(variable),))
        scratch = self.scratch.setdefault(key, np.empty_like(variable))
        velocity *= self.rho
        np.square(gradient, out=scratch)
        scratch *= 1 - self.rho
        velocity += scratch
        np.add(velocity, self.epsilon, out=scratch)
        np.sqrt(scratch, out=scratch)
        np.divide(gradient, scratch, out=scratch)
        scratch *= self.learning_rate
        variable -= scratch

    def next_step(self) -> None:
        self.step += 1


class _Adam:
    def __init__(self, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.slots: dict[int, tuple[np.ndarray, ...]] = {}  # per variable: its first and second moments
        self.step = 0  # the step about to be taken, from 1
        self.alpha = 0.0
        self.next_step()

    def next_step(self) -> None:
        self.step += 1
        power_1 = np.float32(self.beta_1) ** np.float32(self.step)
        power_2 = np.float32(self.beta_2) ** np.float32(self.step)
        self.alpha = float(np.float32(self.learning_rate) * np.sqrt(1 - power_2) / (1 - power_1))

    def apply(self, key: int, variable: np.ndarray, gradient: np.ndarray) -> None:
        m, v = self.slots.setdefault(key, (np.zeros_like(variable), np.zeros_like(variable)))
        m += (gradient - m) * (1 - self.beta_1)
        v += (np.square(gradient) - v) * (1 - self.beta_2)
        variable -= (m * np.float32(self.alpha)) / (np.sqrt(v) + self.epsilon)


OPTIMIZERS = {"rmsprop": _RMSprop, "adam": _Adam}


def initial_weights(sizes: Sequence[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Keras' Dense defaults: Glorot-uniform kernels, zero biases, for layer sizes ``[in, h1, ..., 1]``."""
    rng = np.random.default_rng(seed)
    kernels, biases = [], []
    for fan_in, fan_out in itertools.pairwise(sizes):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        kernels.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32))
        biases.append(np.zeros(fan_out, np.float32))
    return kernels, biases


class SparseMLP:
    """Dense(relu) layers, Dropout after the last, Dense(1, sigmoid); trained on CSR rows. An output layer of
    more than one unit is a softmax over that many labels, trained with categorical cross-entropy on label indices.

    Parameters
    ----------
    kernels, biases:
        Initial weights, first layer first (``initial_weights`` gives Keras' defaults).
    dropout:
        Rate of the Dropout after the last hidden layer, or ``None``.
    optimizer, learning_rate:
        ``"rmsprop"`` or ``"adam"`` with Keras' defaults otherwise.
    """

    def __init__(
        self,
        kernels: Sequence[np.ndarray],
        biases: Sequence[np.ndarray],
        dropout: float | None = None,
        optimizer: str = "rmsprop",
        learning_rate: float = 1e-3,
        seed: int = 1337,
    ):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, not {optimizer!r}")
        self.kernels = [np.array(k, dtype=np.float32) for k in kernels]
        self.biases = [np.array(b, dtype=np.float32) for b in biases]
        self.dropout = dropout or 0.0
        self.optimizer = OPTIMIZERS[optimizer](learning_rate)
        self.rng = np.random.default_rng(seed)

    def get_state(self) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
        """Everything training continues from, for a checkpoint: the weights, the optimizer's slots (by
        variable: kernels then biases) and step, and the random generator's state (shuffling, dropout)."""
        keys = sorted(self.optimizer.slots)
        arrays = {
            "kernels": [k.copy() for k in self.kernels],
            "biases": [b.copy() for b in self.biases],
            "optimizer": [slot.copy() for key in keys for slot in self.optimizer.slots[key]],
        }
        return arrays, {"optimizer_step": self.optimizer.step, "slot_keys": keys, "rng": self.rng.bit_generator.state}

    def set_state(self, arrays: dict[str, list[np.ndarray]], state: dict[str, Any]) -> None:
        """Continue from ``get_state``'s arrays and state."""
        self.kernels = [np.array(k, dtype=np.float32) for k in arrays["kernels"]]
        self.biases = [np.array(b, dtype=np.float32) for b in arrays["biases"]]
        keys, slots = state["slot_keys"], [np.array(s) for s in arrays["optimizer"]]
        per = len(slots) // max(len(keys), 1)
        self.optimizer.slots = {key: tuple(slots[i * per : (i + 1) * per]) for i, key in enumerate(keys)}
        self.optimizer.step = int(state["optimizer_step"]) - 1
        self.optimizer.next_step()
        self.rng.bit_generator.state = state["rng"]

    def _forward(self, x: Matrix, training: bool) -> tuple[list[np.ndarray], list[np.ndarray | None], np.ndarray]:
        activations: list[np.ndarray] = []
        masks: list[np.ndarray | None] = []
        hidden = np.asarray(x @ self.kernels[0]) + self.biases[0]
        for layer in range(1, len(self.kernels)):
            np.maximum(hidden, 0.0, out=hidden)
            mask = None
            if training and self.dropout and layer == len(self.kernels) - 1:
                keep = self.rng.random(hidden.shape, dtype=np.float32) >= self.dropout
                mask = keep.astype(np.float32) / np.float32(1.0 - self.dropout)
                hidden = hidden * mask
            activations.append(hidden)
            masks.append(mask)
            hidden = hidden @ self.kernels[layer] + self.biases[layer]
        return activations, masks, hidden[:, 0] if self.binary else hidden

    @property
    def binary(self) -> bool:
        """One sigmoid output (two labels), rather than a softmax over more."""
        return self.kernels[-1].shape[1] == 1

    def predict(self, x: Matrix, batch_size: int = 4096) -> np.ndarray:
        """Probability of positive for each row; with more labels, each label's probability (one row each)."""
        out = [self._forward(x[i : i + batch_size], False)[2] for i in range(0, x.shape[0], batch_size)]
        if self.binary:
            logits = np.concatenate(out) if out else np.zeros(0, np.float32)
            return expit(logits).astype(np.float32)
        logits = np.concatenate(out) if out else np.zeros((0, self.kernels[-1].shape[1]), np.float32)
        return softmax(logits, axis=1).astype(np.float32)

    def gradients(
        self, x: Matrix, y: np.ndarray, weights: np.ndarray | None = None
    ) -> tuple[float, np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """Loss, probabilities, and the gradients of the mean binary (or categorical) cross-entropy on one batch;
        with ``weights``, each example's loss times its weight, over the batch size (Keras' ``sample_weight``)."""
        activations, masks, logits = self._forward(x, True)
        if self.binary:
            probabilities = expit(logits)
            # Keras computes the loss from the sigmoid's logits: log(1 + e^z) - y z, stable form.
            losses = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
            errors = probabilities - y
        else:  # softmax: the loss is -log p_y, its gradient on the logits p - onehot(y)
            rows, labels = np.arange(len(y)), np.asarray(y, np.int64)
            log_p = log_softmax(logits, axis=1)
            probabilities = np.exp(log_p)
            losses = -log_p[rows, labels]
            errors = probabilities.copy()
            errors[rows, labels] -= 1.0
        if weights is not None:
            losses = losses * weights
            errors = errors * (weights if self.binary else weights[:, None])
        loss = float(np.mean(losses))
        delta = (errors / len(y)).astype(np.float32)
        delta = delta[:, None] if self.binary else delta
        kernel_grads: list[np.ndarray] = [np.empty(0)] * len(self.kernels)
        bias_grads: list[np.ndarray] = [np.empty(0)] * len(self.kernels)
        for layer in range(len(self.kernels) - 1, 0, -1):
            below = activations[layer - 1]
            kernel_grads[layer] = below.T @ delta
            bias_grads[layer] = delta.sum(axis=0)
            delta = delta @ self.kernels[layer].T
            mask = masks[layer - 1]
            if mask is not None:
                delta *= mask
            delta *= below > 0
        kernel_grads[0] = np.asarray(x.T @ delta, dtype=np.float32)
        bias_grads[0] = delta.sum(axis=0)
        return loss, probabilities, kernel_grads, bias_grads

    def train_batch(self, x: Matrix, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
        """One optimizer step; returns the batch's loss and accuracy (with dropout, as Keras logs)."""
        loss, probabilities, kernel_grads, bias_grads = self.gradients(x, y, weights)
        for i, (kernel, grad) in enumerate(zip(self.kernels, kernel_grads, strict=True)):
            self.optimizer.apply(2 * i, kernel, grad)
        for i, (bias, grad) in enumerate(zip(self.biases, bias_grads, strict=True)):
            self.optimizer.apply(2 * i + 1, bias, grad)
        self.optimizer.next_step()
        if self.binary:
            return loss, float(np.mean((probabilities > 0.5) == (y > 0.5)))
        return loss, float(np.mean(np.argmax(probabilities, axis=1) == y))

    def train_epoch(
        self, x: sparse.csr_matrix, y: np.ndarray, batch_size: int, weights: np.ndarray | None = None
    ) -> dict[str, float]:
        """One pass over ``x`` in a fresh random order, each example's loss times its ``weight`` where given;
        the mean loss and accuracy over the batches, weighted by their sizes."""
        order = self.rng.permutation(x.shape[0])
        total_loss = total_correct = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss, accuracy = self.train_batch(x[batch], y[batch], None if weights is None else weights[batch])
            total_loss += loss * len(batch)
            total_correct += accuracy * len(batch)
        return {"loss": total_loss / len(order), "accuracy": total_correct / len(order)}
