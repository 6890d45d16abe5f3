"""fastText's classifier (Joulin et al. 2016) in NumPy: averaged term embeddings, then a logistic output.

A text is its bag of terms averaged over its length (``BagOfWords(output_mode="mean")``: each row sums
to 1), so ``hidden = x @ E`` is the mean of its terms' embeddings (no activation), and the probability of
positive is ``sigmoid(hidden @ w)`` (fastText's output has no bias). Initialization is fastText's
(embeddings uniform in ±1/dim, the output at zero); the optimizer is not: fastText's plain SGD reached
87% validation accuracy in 10 epochs on IMDB, oscillating from epoch to epoch, where Adam (Keras' update
rule, the rate decaying linearly to 0 over all epochs, as ``models.nb_linear``) reaches 90.9% in 5. The
embeddings' Adam is lazy: each step reads and writes only the rows, and their moments, of the batch's
terms. Once trained it is Dense(dim, linear) then Dense(1, sigmoid): a run predicts with ``dense.v1``
and saves the same layers in ``model.keras``. With ``labels`` > 2 the output is ``(dim, labels)`` under a
softmax, trained with categorical cross-entropy (fastText's own ``-loss softmax``): Dense(labels, softmax).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from reviewlens.models.nb_linear import logistic_loss, loss_gradient, shuffled_batches, softmax_gradient, softmax_loss


@dataclass
class FastText:
    """``sigmoid((x @ embeddings) @ output)`` over averaged bag-of-terms rows ``x``, trained with (lazy) Adam."""

    input_dim: int
    dim: int = 10
    learning_rate: float = 0.01
    seed: int = 0
    labels: int = 2  # more than two: a softmax output of one column per label

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        bound = 1.0 / self.dim
        self.embeddings = self.rng.uniform(-bound, bound, (self.input_dim, self.dim)).astype(np.float32)
        self.output = np.zeros(self.dim if self.labels == 2 else (self.dim, self.labels), np.float32)
        self._moments = [np.zeros_like(self.embeddings), np.zeros_like(self.embeddings)]
        self._output_moments = [np.zeros_like(self.output), np.zeros_like(self.output)]
        self._step = 0

    @property
    def binary(self) -> bool:
        return self.output.ndim == 1

    def logits(self, x: sparse.csr_matrix) -> np.ndarray:
        """The logit of positive for each row (two labels), or each label's logits (``(n, labels)``)."""
        return np.asarray(x @ self.embeddings) @ self.output

    def layers(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Copies of the weights as two Dense layers' kernels, and their biases (zeros: fastText has none)."""
        output = self.output[:, None] if self.binary else self.output
        kernels = [self.embeddings.copy(), output.copy()]
        return kernels, [np.zeros(self.dim, np.float32), np.zeros(output.shape[1], np.float32)]

    def get_state(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Everything training continues from, for a checkpoint: the weights and their Adam moments, the step,
        the random generator's state."""
        arrays = [self.embeddings, self.output, *self._moments, *self._output_moments]
        return [a.copy() for a in arrays], {"step": self._step, "rng": self.rng.bit_generator.state}

    def set_state(self, arrays: list[np.ndarray], state: dict[str, Any]) -> None:
        """Continue from ``get_state``'s arrays and state."""
        embeddings, output, m, v, m_out, v_out = (np.array(a, np.float32) for a in arrays)
        self.embeddings, self.output, self._moments, self._output_moments = embeddings, output, [m, v], [m_out, v_out]
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
        """Yield after each epoch its mean training loss and accuracy; the rate decays to 0 over all epochs.
        ``start``: epochs already done (by the state ``set_state`` restored); ``weights``: each example's weight
        in the loss (``Context.sample_weights``)."""
        n = x.shape[0]
        total = epochs * -(-n // batch_size)
        binary = self.binary
        y = np.asarray(y, np.float32 if binary else np.int64)
        (m, v), (m_out, v_out) = self._moments, self._output_moments
        for _ in range(start, epochs):
            losses, correct = 0.0, 0
            for xb, yb, wb in shuffled_batches(x, y, batch_size, self.rng, weights):
                # The batch's columns only: its terms renumbered 0..k-1, their embedding rows gathered.
                terms, local = np.unique(xb.indices, return_inverse=True)
                xl = sparse.csr_matrix((xb.data, local.ravel(), xb.indptr), shape=(len(yb), len(terms)))
                rows = self.embeddings[terms]
                hidden = np.asarray(xl @ rows)
                z = hidden @ self.output
                if binary:
                    losses += logistic_loss(z, yb, wb) * len(yb)
                    correct += int(np.sum((z >= 0) == (yb == 1)))
                    g = loss_gradient(z, yb, wb).astype(np.float32)  # d mean loss / d z
                    rows_grad = np.asarray(xl.T @ np.outer(g, self.output))
                else:
                    losses += softmax_loss(z, yb, wb) * len(yb)
                    correct += int(np.sum(np.argmax(z, axis=1) == yb))
                    g = softmax_gradient(z, yb, wb).astype(np.float32)  # (batch, labels)
                    rows_grad = np.asarray(xl.T @ (g @ self.output.T))
                self._step += 1
                rate = self.learning_rate * (1.0 - (self._step - 1) / total)
                scale = np.float32(rate * np.sqrt(1 - _B2**self._step) / (1 - _B1**self._step))
                _adam(self.output, hidden.T @ g, m_out, v_out, scale)
                row_m, row_v = m[terms], v[terms]
                _adam(rows, rows_grad, row_m, row_v, scale)
                self.embeddings[terms], m[terms], v[terms] = rows, row_m, row_v
            yield losses / n, correct / n


_B1, _B2, _EPSILON = 0.9, 0.999, 1e-7


def _adam(variable: np.ndarray, gradient: np.ndarray, m: np.ndarray, v: np.ndarray, scale: np.float32) -> None:
    """One Adam step in place (Keras' rule); ``scale`` is the rate times the bias corrections."""
    m *= _B1
    m += (1 - _B1) * gradient
    v *= _B2
    v += (1 - _B2) * gradient * gradient
    variable -= scale * m / (np.sqrt(v) + np.float32(_EPSILON))
