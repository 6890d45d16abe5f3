"""The lean runtime: a bag-of-words run's vectorizer and Dense weights in NumPy, no TensorFlow.

It predicts what the run's ``model.keras`` predicts (the tests compare them on whole splits) at a
fraction of the start-up time and memory, and it can say which terms moved a score.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.special import expit

from reviewlens.text import BagOfWords

VECTORIZER_FILE = "vectorizer.json"
WEIGHTS_FILE = "weights.npz"


class DenseRuntime:
    """Vectorizer, then Dense(relu) layers, then Dense(1, sigmoid): the bag-of-words recipes' shape."""

    def __init__(self, vectorizer: BagOfWords, kernels: Sequence[np.ndarray], biases: Sequence[np.ndarray]):
        if len(kernels) != len(biases) or not kernels:
            raise ValueError("one bias per kernel, and at least one layer")
        self.vectorizer = vectorizer
        self.kernels = [np.ascontiguousarray(k, dtype=np.float32) for k in kernels]
        self.biases = [np.asarray(b, dtype=np.float32) for b in biases]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of positive for each text, float32, shape ``(len(texts),)``."""
        if len(texts) == 0:
            return np.zeros(0, np.float32)
        return self.predict_vectors(self.vectorizer.transform(texts))

    def predict_vectors(self, x: sparse.csr_matrix) -> np.ndarray:
        """Probability of positive for each row of vectors made by ``self.vectorizer``."""
        hidden = np.asarray(x @ self.kernels[0]) + self.biases[0]
        for kernel, bias in zip(self.kernels[1:], self.biases[1:], strict=True):
            np.maximum(hidden, 0.0, out=hidden)
            hidden = hidden @ kernel + bias
        logits = hidden[:, 0]
        return expit(logits).astype(np.float32)

    def save(self, directory: Path) -> None:
        (directory / VECTORIZER_FILE).write_text(
            json.dumps(self.vectorizer.get_config(), ensure_ascii=False), encoding="utf-8"
        )
        arrays = {f"kernel_{i}": k for i, k in enumerate(self.kernels)}
        arrays |= {f"bias_{i}": b for i, b in enumerate(self.biases)}
        np.savez(directory / WEIGHTS_FILE, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, directory: Path) -> DenseRuntime:
        config = json.loads((directory / VECTORIZER_FILE).read_text(encoding="utf-8"))
        with np.load(directory / WEIGHTS_FILE) as weights:
            layers = len([name for name in weights.files if name.startswith("kernel_")])
            kernels = [weights[f"kernel_{i}"] for i in range(layers)]
            biases = [weights[f"bias_{i}"] for i in range(layers)]
        return cls(BagOfWords.from_config(config), kernels, biases)
