"""Which words or terms moved a score: the explanation every predictor gives, and occlusion, which any can.

Occlusion removes each distinct word of the text in turn (every occurrence of it) and scores the rest:
a word's contribution is the score with the text as it is minus the score without it, so positive words
pushed the review towards positive. With more than two labels the score is the probability of the label the
text gets (its most probable), and a term's contribution is to that label's probability. Kinds that can
compute exact contributions (the NumPy bag-of-words predictor) override ``Predictor.explain``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["exact", "occlusion"]


@dataclass(frozen=True)
class Contribution:
    term: str  # a word, or a vocabulary n-gram such as "not good"
    contribution: float  # score minus the score without the term


@dataclass(frozen=True)
class Explanation:
    score: float  # probability that the text is positive, as the run predicts it (more labels: of ``label``)
    terms: list[Contribution]  # terms present in the text, largest effect first
    method: Method  # "exact": leave-one-term-out on the model's own input; "occlusion": words removed from the text
    label: int | None = None  # more than two labels: the index of the label explained, the text's most probable


def explained_column(probabilities: np.ndarray) -> int | None:
    """Which column of a text's probabilities an explanation follows: ``None`` for two labels (the last column,
    positive, as always), else the text's most probable label."""
    return None if len(probabilities) == 2 else int(np.argmax(probabilities))


def ranked(
    score: float, terms: Sequence[str], effects: np.ndarray, top: int | None, method: Method, label: int | None = None
) -> Explanation:
    """The explanation with ``terms`` ordered by the size of their effect (ties keep the text's order)."""
    order = np.argsort(-np.abs(effects), kind="stable")[:top]
    return Explanation(score, [Contribution(terms[i], float(effects[i])) for i in order], method, label)


def occlusion(
    predict_proba: Callable[[Sequence[str]], np.ndarray],
    tokenize: Callable[[str], list[str]],
    text: str,
    top: int | None = None,
) -> Explanation:
    """Each distinct word's effect on the probability of positive (the last column of ``predict_proba``; with
    more labels, of the text's label: ``explained_column``); ``tokenize`` is the run's own (the texts without a
    word are its tokens joined by spaces)."""
    tokens = tokenize(text)
    words = list(dict.fromkeys(tokens))
    variants = [" ".join(token for token in tokens if token != word) for word in words]
    probabilities = np.asarray(predict_proba([text, *variants]), np.float64)
    label = explained_column(probabilities[0])
    scores = probabilities[:, -1 if label is None else label]
    return ranked(float(np.float32(scores[0])), words, scores[0] - scores[1:], top, "occlusion", label)
