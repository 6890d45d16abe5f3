"""Imbalanced data: class weights for the training loss, and a decision threshold chosen on validation.

``ClassWeight`` (``train --class-weight balanced`` or ``negative=9,positive=1``) weighs each training review's
loss by its label: ``balanced`` gives label ``c`` the weight ``n / (labels * n_c)`` over the train split's counts,
as scikit-learn's ``class_weight="balanced"``, so every label carries the same total weight. ``ThresholdRule``
(``train --threshold best-f1``, ``precision=0.9`` or a number) picks the run's decision threshold from its
validation predictions, never from test. Both take labels by index, names from the run's ``labels``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import BINARY_LABELS, DEFAULT_THRESHOLD, ranked_counts

BALANCED = "balanced"


@dataclass(frozen=True)
class ClassWeight:
    """How much a training review's loss counts, by its label: ``balanced``, or given per label (1 where not)."""

    spec: str  # as the user wrote it, normalized: "balanced" or "negative=9,positive=1"
    given: tuple[float, ...] | None  # by label index; None: balanced

    @classmethod
    def parse(cls, spec: str | Mapping[str, float], names: Sequence[str] = BINARY_LABELS) -> ClassWeight:
        """``balanced``, ``LABEL=WEIGHT,...`` or a mapping of label names to weights; a mistake is one line."""
        if isinstance(spec, str) and spec.strip() == BALANCED:
            return cls(BALANCED, None)
        pairs = spec.items() if isinstance(spec, Mapping) else [_pair(part, spec) for part in spec.split(",")]
        weights = dict.fromkeys(names, 1.0)
        seen: set[str] = set()
        for name, value in pairs:
            if name not in weights:
                raise ReviewlensError(f"--class-weight {name}={value}: the labels are {' and '.join(names)}")
            if name in seen:
                raise ReviewlensError(f"--class-weight names {name} twice; give each label once")
            if not 0 < float(value) < math.inf:
                raise ReviewlensError(f"--class-weight {name}={value}: a weight must be a positive number")
            seen.add(name)
            weights[name] = float(value)
        return cls(",".join(f"{name}={weights[name]:g}" for name in names), tuple(weights.values()))

    def resolve(self, counts: Mapping[int, int], names: Sequence[str] = BINARY_LABELS) -> tuple[float, ...]:
        """The weight of each label index, ``balanced`` over the train split's reviews per label ``counts``."""
        if self.given is not None:
            return self.given
        missing = [name for index, name in enumerate(names) if not counts.get(index)]
        if missing:
            raise ReviewlensError(f"--class-weight balanced: the train split has no {' or '.join(missing)} reviews")
        total = sum(counts.get(index, 0) for index in range(len(names)))
        return tuple(total / (len(names) * counts[index]) for index in range(len(names)))


def _pair(part: str, spec: str) -> tuple[str, str]:
    name, equals, value = part.partition("=")
    try:
        float(value)
    except ValueError:
        equals = ""
    if not equals:
        raise ReviewlensError(
            f"--class-weight {spec}: give {BALANCED} or LABEL=WEIGHT pairs, e.g. negative=9,positive=1"
        ) from None
    return name.strip(), value.strip()


@dataclass(frozen=True)
class ThresholdRule:
    """How a binary run's decision threshold is chosen on its validation predictions.

    ``best-f1``: the threshold of the highest macro-F1 (ties to the one nearest 0.5); ``precision=P``: the lowest
    threshold at which the positive label's precision reaches ``P`` (its highest recall at that precision); a
    number: that threshold. Candidates are the validation probabilities themselves.
    """

    spec: str
    precision: float | None = None
    fixed: float | None = None

    BEST_F1 = "best-f1"

    @classmethod
    def parse(cls, spec: str | float) -> ThresholdRule:
        text = str(spec).strip()
        if text == cls.BEST_F1:
            return cls(text)
        name, equals, value = text.partition("=")
        target = _number(value if equals else text)
        if equals and name.strip() == "precision" and target is not None:
            if not 0 < target <= 1:
                raise ReviewlensError(f"--threshold {text}: the target precision must be above 0 and at most 1")
            return cls(f"precision={target:g}", precision=target)
        if not equals and target is not None and 0 <= target <= 1:
            return cls(f"{target:g}", fixed=target)
        raise ReviewlensError(
            f"--threshold {text}: give {cls.BEST_F1}, precision=P (0 < P <= 1) or a number from 0 to 1"
        )

    def choose(self, probabilities: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
        """The threshold for these validation probabilities of positive and their labels."""
        if self.fixed is not None:
            return self.fixed
        y = np.asarray(labels, dtype=np.int64)
        thresholds, selected, true_positives = ranked_counts(np.asarray(probabilities, dtype=np.float64), y == 1)
        if self.precision is not None:
            precision = true_positives / selected
            reached = precision >= self.precision - 1e-12
            if not reached.any():
                raise ReviewlensError(
                    f"--threshold {self.spec}: the validation split reaches a precision of at most "
                    f"{precision.max():.4f}; choose a lower target (train again with --resume to keep the epochs)"
                )
            return float(thresholds[reached].min())
        positives, negatives = int(np.sum(y == 1)), int(np.sum(y != 1))
        false_positives = selected - true_positives
        true_negatives = negatives - false_positives
        false_negatives = positives - true_positives
        f1_positive = _ratio(2 * true_positives, 2 * true_positives + false_positives + false_negatives)
        f1_negative = _ratio(2 * true_negatives, 2 * true_negatives + false_negatives + false_positives)
        macro = (f1_positive + f1_negative) / 2
        best = np.flatnonzero(macro >= macro.max() - 1e-12)
        return float(thresholds[best[np.argmin(np.abs(thresholds[best] - DEFAULT_THRESHOLD))]])


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
