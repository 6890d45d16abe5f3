"""Which terms moved a score: exact leave-one-term-out contributions for bag-of-words runs (NumPy, no TensorFlow).

A term's contribution is the score with the text as it is minus the score with that term's column of the
bag-of-words vector set to zero, every other term kept: positive terms pushed the review towards positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from reviewlens.runs import Model
from reviewlens.runtime import DenseRuntime


@dataclass(frozen=True)
class Contribution:
    term: str  # a vocabulary entry: a word, or an n-gram such as "not good"
    contribution: float  # score minus the score without the term


@dataclass(frozen=True)
class Explanation:
    score: float  # probability that the text is positive, as ``DenseRuntime.predict`` gives it
    terms: list[Contribution]  # vocabulary terms present in the text, largest effect first


def lean_runtime(model: Model) -> DenseRuntime | None:
    """The run's NumPy runtime, when it has one (bag-of-words recipes); ``None`` for Keras-only runs."""
    return model.dense_runtime


def _logits_from_hidden(runtime: DenseRuntime, hidden: np.ndarray) -> np.ndarray:
    """The logits given the first layer's pre-activations, one row per input: the rest of the network."""
    for kernel, bias in zip(runtime.kernels[1:], runtime.biases[1:], strict=True):
        hidden = np.maximum(hidden, 0.0) @ kernel + bias
    return hidden[:, 0]


def explain(runtime: DenseRuntime, text: str, top: int | None = None) -> Explanation:
    """The text's score and each present vocabulary term's leave-one-out contribution, largest first.

    The out-of-vocabulary column is not a term and is left out of the list (its effect stays in the score).
    One matrix product covers every term: removing term j from x changes the first layer's
    pre-activation ``z = x W + b`` to ``z - x_j W[j]``.
    """
    x = runtime.vectorizer.transform([text])
    kernel, bias = runtime.kernels[0], runtime.biases[0]
    hidden = np.asarray(x @ kernel) + bias  # (1, units)
    keep = x.indices != 0
    columns, values = x.indices[keep], x.data[keep]
    without = hidden - values[:, None] * kernel[columns]  # (terms, units): each row lacks one term
    probabilities = expit(_logits_from_hidden(runtime, np.vstack([hidden, without]).astype(np.float32)))
    score = float(np.float32(probabilities[0]))
    effects = probabilities[0] - probabilities[1:]
    order = np.argsort(-np.abs(effects), kind="stable")[:top]
    vocabulary = runtime.vectorizer.vocabulary
    terms = [Contribution(vocabulary[columns[i]], float(effects[i])) for i in order]
    return Explanation(score, terms)
