"""``dense.v1``: a bag-of-words vector through a stack of Dense layers, in NumPy (no TensorFlow).

The bag-of-words recipes' shape: hidden Dense layers (relu, or linear as fastText's averaged embeddings),
then a Dense output (one unit and a sigmoid for two labels, else a softmax). It predicts what the run's
``model.keras`` predicts (the tests compare them on whole splits) at a fraction of the start-up time and
memory, and its explanations are exact.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np
from scipy import sparse
from scipy.special import expit, softmax

from reviewlens.errors import ReviewlensError
from reviewlens.explain import Explanation, explained_column, ranked
from reviewlens.predictors.base import Predictor, binary_columns, register_predictor
from reviewlens.text import BagOfWords
from reviewlens.text.preprocessor import VECTORIZER_FILE, Preprocessor

if TYPE_CHECKING:
    from reviewlens.runs import RunMetadata

WEIGHTS_FILE = "weights.npz"
#: A hidden layer's activation, by the name Keras gives it. Runs saved before activations were stored are relu.
ACTIVATIONS = {"relu": lambda z: np.maximum(z, 0.0), "linear": lambda z: z}


@register_predictor
class DensePredictor(Predictor):
    kind = "dense.v1"
    runtime = "numpy"
    files = (VECTORIZER_FILE, WEIGHTS_FILE)

    preprocessor: BagOfWords

    def __init__(
        self,
        preprocessor: BagOfWords,
        kernels: Sequence[np.ndarray],
        biases: Sequence[np.ndarray],
        labels: Sequence[str] = ("negative", "positive"),
        activations: Sequence[str] | None = None,
    ):
        if len(kernels) != len(biases) or not kernels:
            raise ValueError("one bias per kernel, and at least one layer")
        activations = ["relu"] * (len(kernels) - 1) if activations is None else list(activations)
        if len(activations) != len(kernels) - 1 or set(activations) - set(ACTIVATIONS):
            raise ValueError(f"one activation of {tuple(ACTIVATIONS)} per hidden layer, not {activations}")
        super().__init__(preprocessor, labels)
        self.kernels = [np.ascontiguousarray(k, dtype=np.float32) for k in kernels]
        self.biases = [np.asarray(b, dtype=np.float32) for b in biases]
        self.activations = activations  # of the hidden layers, first first
        outputs = self.kernels[-1].shape[1]
        if outputs != (1 if len(self.labels) == 2 else len(self.labels)):
            raise ValueError(f"an output layer of {outputs} units for the labels {self.labels}")

    def predict_vectors(self, x: sparse.csr_matrix) -> np.ndarray:
        return self._probabilities(self._logits(np.asarray(x @ self.kernels[0]) + self.biases[0]))

    def _logits(self, hidden: np.ndarray) -> np.ndarray:
        """The output layer's logits given the first layer's pre-activations (one row per input)."""
        for activation, kernel, bias in zip(self.activations, self.kernels[1:], self.biases[1:], strict=True):
            hidden = ACTIVATIONS[activation](hidden) @ kernel + bias
        return hidden

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        if logits.shape[1] == 1:
            return binary_columns(expit(logits[:, 0]))
        return softmax(logits, axis=1).astype(np.float32)

    def explain(self, text: str, top: int | None = None) -> Explanation:
        """Each present vocabulary term's exact leave-one-out contribution to the probability of positive.

        Removing term j from the vector x changes the first layer's pre-activation ``z = x W + b`` to
        ``z - x_j W[j]``: one matrix product covers every term. For a ``mean`` vector (the counts over
        their total t, so x sums to t = 1) the rest is also divided again: ``(x W - x_j W[j]) / (t - x_j)``,
        the average of the other terms (zeros if there are none). The out-of-vocabulary column is not a
        term and is left out of the list (its effect stays in the score).
        """
        x = self.preprocessor.transform([text])
        kernel, bias = self.kernels[0], self.biases[0]
        summed = np.asarray(x @ kernel)  # (1, units)
        keep = x.indices != 0
        columns, values = x.indices[keep], x.data[keep]
        without = summed - values[:, None] * kernel[columns]  # (terms, units): each row lacks one term
        if self.preprocessor.output_mode == "mean":
            rest = x.data.sum(dtype=np.float64) - values.astype(np.float64)  # each row's share left
            scale = np.divide(1.0, rest, out=np.zeros_like(rest), where=rest > 1e-6)  # nothing left: zeros
            without = without * scale[:, None]
        hidden, without = summed + bias, without + bias
        logits = self._logits(np.vstack([hidden, without]).astype(np.float32))
        probabilities = self.calibrated(self._probabilities(logits))
        label = explained_column(probabilities[0])  # more labels: the text's own, whose probability is followed
        positive = probabilities[:, -1 if label is None else label].astype(np.float64)
        terms = [self.preprocessor.vocabulary[column] for column in columns]
        return ranked(float(np.float32(positive[0])), terms, positive[0] - positive[1:], top, "exact", label)

    def save(self, directory: Path) -> None:
        arrays = {f"kernel_{i}": k for i, k in enumerate(self.kernels)}
        arrays |= {f"bias_{i}": b for i, b in enumerate(self.biases)}
        arrays["activations"] = np.array(self.activations, dtype=np.str_)  # no pickle needed to read it back
        np.savez(directory / WEIGHTS_FILE, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, directory: Path, metadata: RunMetadata, preprocessor: Preprocessor | None) -> Self:
        if not isinstance(preprocessor, BagOfWords):
            raise ReviewlensError(f"{directory / VECTORIZER_FILE} does not hold a bag of words; train the model again")
        path = directory / WEIGHTS_FILE
        try:
            with np.load(path) as weights:
                layers = len([name for name in weights.files if name.startswith("kernel_")])
                kernels = [weights[f"kernel_{i}"] for i in range(layers)]
                biases = [weights[f"bias_{i}"] for i in range(layers)]
                activations = [str(a) for a in weights["activations"]] if "activations" in weights.files else None
            return cls(preprocessor, kernels, biases, metadata.labels, activations)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise ReviewlensError(f"{path} cannot be read ({error}); train the model again") from None
