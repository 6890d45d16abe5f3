"""Naive-Bayes-weighted linear models on binarized n-gram vectors, trained with Adam on sparse mini-batches.

The naive-Bayes log-count ratio of feature j is ``r_j = log((p_j / |p|_1) / (q_j / |q|_1))`` with
``p = alpha + (feature counts over positive reviews)`` and ``q`` the same over negative ones (Wang &
Manning 2012). Both models score ``x @ kernel + bias`` with a kernel built from r:

- NBSVM: ``kernel = r * w``, w learned with L2 weight decay; after training, Wang & Manning's
  interpolation ``w' = (1 - beta) * mean|w| + beta * w`` (``interpolated``).
- NBSVM++ (fast.ai's machine-learning course, lesson 5): ``kernel = r * (w + shift) * scale``, w
  initialized uniformly in ±0.1: every feature starts at its naive-Bayes weight and learns a correction.

Both are one Dense(1, sigmoid) layer over the multi-hot vector once trained, so a run predicts with
``dense.v1`` and saves the same layer in ``model.keras``.

More than two labels (``NBSoftmax``): each label k has its one-vs-rest ratio ``r_k`` (p over the reviews of k,
q over all others), its own w_k and bias, and the logits ``x @ kernel`` of a ``(features, labels)`` kernel are
trained either under a softmax with categorical cross-entropy (``loss="softmax"``) or each as its own logistic
model of "label k or not" (``loss="one-vs-rest"``: the sum of the labels' binary cross-entropies, so each column
learns exactly as a separate ``NBLinear`` of that label would). Either way a review's probabilities are the
softmax of its logits: one Dense(labels, softmax) layer once trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit, log_expit, log_softmax


def shuffled_batches(
    x: sparse.csr_matrix, y: np.ndarray, batch_size: int, rng: np.random.Generator, weights: np.ndarray | None = None
) -> Iterator[tuple[sparse.csr_matrix, np.ndarray, np.ndarray | None]]:
    """One epoch's mini-batches of rows, labels and their ``weights`` (``None`` without): the rows shuffled once,
    then cut into contiguous batches."""
    order = rng.permutation(x.shape[0])
    xs, ys, ws = x[order], y[order], None if weights is None else weights[order]
    for start in range(0, x.shape[0], batch_size):
        end = start + batch_size
        yield xs[start:end], ys[start:end], None if ws is None else ws[start:end]


def nb_ratios(x: sparse.csr_matrix, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """The naive-Bayes log-count ratio of every column of the binarized ``x`` (float32)."""
    positive = np.asarray(y) == 1
    p = alpha + np.asarray(x[positive].sum(axis=0)).ravel()
    q = alpha + np.asarray(x[~positive].sum(axis=0)).ravel()
    return (np.log(p / p.sum()) - np.log(q / q.sum())).astype(np.float32)


def nb_ratios_per_label(x: sparse.csr_matrix, y: np.ndarray, labels: int, alpha: float = 1.0) -> np.ndarray:
    """Each label's one-vs-rest naive-Bayes log-count ratio, ``(columns, labels)`` float32: column k is
    ``nb_ratios`` of the reviews of label k against all the others."""
    y = np.asarray(y, np.int64)
    return np.stack([nb_ratios(x, (y == k).astype(np.int64), alpha) for k in range(labels)], axis=1)


def softmax_loss(logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean categorical cross-entropy of label indices ``y`` given ``(n, labels)`` logits, weighted where given."""
    losses = -log_softmax(logits, axis=1)[np.arange(len(y)), np.asarray(y, np.int64)]
    return float(np.mean(losses if weights is None else losses * weights))


def softmax_gradient(logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The gradient of ``softmax_loss`` with respect to the logits: ``(softmax - onehot) / n``."""
    errors = np.exp(log_softmax(logits, axis=1))
    errors[np.arange(len(y)), np.asarray(y, np.int64)] -= 1.0
    errors /= len(y)
    return errors if weights is None else errors * weights[:, None]


def logistic_loss(logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean binary cross-entropy of labels ``y`` given the logits, each example's times its weight where given."""
    losses = y * log_expit(logits) + (1 - y) * log_expit(-logits)
    return float(-np.mean(losses if weights is None else losses * weights))


def loss_gradient(logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The gradient of ``logistic_loss`` with respect to the logits."""
    errors = (expit(logits) - y) / len(y)
    return errors if weights is None else errors * weights


@dataclass
class NBLinear:
    """``x @ (r * scale * (w + shift)) + bias``, trained with Adam (Keras' update rule) and linear decay.

    ``shift=0, scale=1, init=0`` is NBSVM's logistic regression on ``r * x``; ``shift=0.4, scale=0.1,
    init=0.1`` is NBSVM++.
    """

    ratios: np.ndarray
    shift: float = 0.0
    scale: float = 1.0
    init: float = 0.0  # w starts uniform in [-init, init]
    learning_rate: float = 0.02
    weight_decay: float = 1e-6
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        n = len(self.ratios)
        self.w = self.rng.uniform(-self.init, self.init, n).astype(np.float32)
        self.bias: Any = 0.0  # a float; one per label in NBSoftmax
        self._m, self._v = np.zeros(n, np.float32), np.zeros(n, np.float32)
        self._mb: Any = 0.0
        self._vb: Any = 0.0
        self._step = 0

    def kernel(self, w: np.ndarray | None = None) -> np.ndarray:
        return self.ratios * np.float32(self.scale) * ((self.w if w is None else w) + np.float32(self.shift))

    def logits(self, x: sparse.csr_matrix, kernel: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(x @ (self.kernel() if kernel is None else kernel)).ravel() + self.bias

    def get_state(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Everything training continues from, for a checkpoint: w and its Adam moments, the bias and its,
        the step, the random generator's state."""
        scalars = {"bias": self.bias, "mb": self._mb, "vb": self._vb, "step": self._step}
        return [self.w.copy(), self._m.copy(), self._v.copy()], {**scalars, "rng": self.rng.bit_generator.state}

    def set_state(self, arrays: list[np.ndarray], state: dict[str, Any]) -> None:
        """Continue from ``get_state``'s arrays and state."""
        self.w, self._m, self._v = (np.array(a, np.float32) for a in arrays)
        self._mb, self._vb, self._step = state["mb"], state["vb"], int(state["step"])
        self.bias = np.float64(state["bias"])  # as training makes it: a NumPy scalar keeps the logits in float64
        self.rng.bit_generator.state = state["rng"]

    def fit_epochs(
        self,
        x: sparse.csr_matrix,
        y: np.ndarray,
        epochs: int,
        batch_size: int,
        start: int = 0,
        weights: np.ndarray | None = None,
    ) -> Iterator[tuple[float, float]]:
        """Yield after each epoch the epoch's mean training loss and accuracy; the rate decays to 0 over all epochs.
        ``start``: epochs already done (by the state ``set_state`` restored); ``weights``: each example's weight
        in the loss (``Context.sample_weights``)."""
        n = x.shape[0]
        steps_per_epoch = -(-n // batch_size)
        total = epochs * steps_per_epoch
        y = np.asarray(y, np.float32)
        for _ in range(start, epochs):
            losses, correct = 0.0, 0
            for xb, yb, wb in shuffled_batches(x, y, batch_size, self.rng, weights):
                factor = self.ratios * np.float32(self.scale)
                z = np.asarray(xb @ (factor * (self.w + np.float32(self.shift)))).ravel() + self.bias
                losses += logistic_loss(z, yb, wb) * len(yb)
                correct += int(np.sum((z >= 0) == (yb == 1)))
                g = loss_gradient(z, yb, wb)
                grad = np.asarray(xb.T @ g).ravel().astype(np.float32) * factor + np.float32(self.weight_decay) * self.w
                self._adam_step(grad, float(g.sum()), total)
            yield losses / n, correct / n

    def _adam_step(self, grad: np.ndarray, bias_grad: Any, total: int) -> None:
        """One Adam step of w and the bias, the rate decaying linearly to 0 over ``total`` steps."""
        b1, b2, eps = 0.9, 0.999, 1e-7
        self._step += 1
        rate = self.learning_rate * (1.0 - (self._step - 1) / total)
        correction = np.sqrt(1 - b2**self._step) / (1 - b1**self._step)
        self._m *= b1
        self._m += (1 - b1) * grad
        self._v *= b2
        self._v += (1 - b2) * grad * grad
        self.w -= np.float32(rate * correction) * self._m / (np.sqrt(self._v) + np.float32(eps))
        self._mb = b1 * self._mb + (1 - b1) * bias_grad
        self._vb = b2 * self._vb + (1 - b2) * bias_grad * bias_grad
        self.bias = self.bias - rate * correction * self._mb / (np.sqrt(self._vb) + eps)


def interpolated(w: np.ndarray, beta: float) -> np.ndarray:
    """Wang & Manning's ``(1 - beta) * mean|w| + beta * w``; for a ``(features, labels)`` w, each label's column
    with its own mean."""
    if w.ndim == 2:
        return ((1.0 - beta) * np.mean(np.abs(w), axis=0) + beta * w).astype(np.float32)
    return ((1.0 - beta) * np.mean(np.abs(w)) + beta * w).astype(np.float32)


@dataclass
class NBSoftmax(NBLinear):
    """``softmax(x @ (r * scale * (w + shift)) + bias)`` over more than two labels: ``ratios``, w and their Adam
    moments are ``(features, labels)``, the bias one per label; the same Adam with linear decay as ``NBLinear``.
    ``loss``: ``"softmax"`` (categorical cross-entropy) or ``"one-vs-rest"`` (each column a logistic model)."""

    loss: str = "softmax"

    def __post_init__(self) -> None:
        if self.loss not in ("softmax", "one-vs-rest"):
            raise ValueError(f"loss must be 'softmax' or 'one-vs-rest', not {self.loss!r}")
        self.rng = np.random.default_rng(self.seed)
        shape = self.ratios.shape
        self.w = self.rng.uniform(-self.init, self.init, shape).astype(np.float32)
        self.bias = np.zeros(shape[1], np.float64)
        self._m, self._v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self._mb, self._vb = np.zeros(shape[1], np.float64), np.zeros(shape[1], np.float64)
        self._step = 0

    def logits(self, x: sparse.csr_matrix, kernel: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(x @ (self.kernel() if kernel is None else kernel)) + self.bias

    def get_state(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        arrays = [self.w.copy(), self._m.copy(), self._v.copy()]
        scalars = {"bias": self.bias.tolist(), "mb": self._mb.tolist(), "vb": self._vb.tolist(), "step": self._step}
        return arrays, {**scalars, "rng": self.rng.bit_generator.state}

    def set_state(self, arrays: list[np.ndarray], state: dict[str, Any]) -> None:
        self.w, self._m, self._v = (np.array(a, np.float32) for a in arrays)
        self.bias, self._mb, self._vb = (np.asarray(state[key], np.float64) for key in ("bias", "mb", "vb"))
        self._step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]

    def fit_epochs(
        self,
        x: sparse.csr_matrix,
        y: np.ndarray,
        epochs: int,
        batch_size: int,
        start: int = 0,
        weights: np.ndarray | None = None,
    ) -> Iterator[tuple[float, float]]:
        """As ``NBLinear.fit_epochs``, with label indices ``y`` and categorical cross-entropy."""
        n = x.shape[0]
        total = epochs * -(-n // batch_size)
        y = np.asarray(y, np.int64)
        factor = self.ratios * np.float32(self.scale)
        for _ in range(start, epochs):
            losses, correct = 0.0, 0
            for xb, yb, wb in shuffled_batches(x, y, batch_size, self.rng, weights):
                z = np.asarray(xb @ (factor * (self.w + np.float32(self.shift)))) + self.bias
                correct += int(np.sum(np.argmax(z, axis=1) == yb))
                if self.loss == "softmax":
                    losses += softmax_loss(z, yb, wb) * len(yb)
                    g = softmax_gradient(z, yb, wb)
                else:  # one-vs-rest: each column's binary cross-entropy against "this label or not"
                    onehot = (yb[:, None] == np.arange(z.shape[1])).astype(np.float32)
                    losses += logistic_loss(z, onehot, None if wb is None else wb[:, None]) * len(yb) * z.shape[1]
                    g = loss_gradient(z, onehot, None if wb is None else wb[:, None])
                grad = np.asarray(xb.T @ g.astype(np.float32)) * factor + np.float32(self.weight_decay) * self.w
                self._adam_step(grad, g.sum(axis=0), total)
            yield losses / n, correct / n
