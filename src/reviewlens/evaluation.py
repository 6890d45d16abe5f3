"""The decision rule, metrics of predicted probabilities against labels, and the training-curve plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_EPSILON = 1e-7  # Keras' clip for binary cross-entropy
#: A binary run's labels: index 0 is negative, 1 positive, as the data's 0/1 labels.
BINARY_LABELS: tuple[str, str] = ("negative", "positive")
DEFAULT_THRESHOLD = 0.5


def decide(scores: float | np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> Any:
    """The one decision rule: a probability of positive at or above the threshold is positive (True)."""
    return scores >= threshold


def metrics(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, object]:
    """Accuracy, binary cross-entropy, ROC AUC and the confusion matrix, deciding with ``decide``.

    The confusion matrix is ``[[true negatives, false positives], [false negatives, true positives]]``.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} probabilities for {len(y)} labels")
    if len(y) == 0:
        raise ValueError("no examples to measure")
    predicted = decide(p, threshold).astype(np.int64)
    clipped = np.clip(p, _EPSILON, 1 - _EPSILON)
    loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    tn = int(np.sum((predicted == 0) & (y == 0)))
    fp = int(np.sum((predicted == 1) & (y == 0)))
    fn = int(np.sum((predicted == 0) & (y == 1)))
    tp = int(np.sum((predicted == 1) & (y == 1)))
    return {
        "accuracy": float(np.mean(predicted == y)),
        "loss": float(loss),
        "roc_auc": roc_auc(p, y),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "examples": len(y),
    }


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half); None with one class."""
    positives = int(np.sum(labels == 1))
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    # Average ranks (ties share the mean of their positions), as scipy.stats.rankdata gives.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    u = ranks[labels == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def plot_curves(history: Mapping[str, Sequence[float]], path: Path, title: str = "") -> None:
    """The book's two plots side by side: loss and accuracy per epoch, training and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style, label in (("", "bo-", "Training"), ("val_", "r-", "Validation")):
            values = history.get(prefix + key)
            if values:
                axis.plot(range(1, len(values) + 1), values, style, label=f"{label} {key}")
        axis.set_xlabel("Epoch")
        axis.set_ylabel(key.capitalize())
        axis.set_title(f"Training and validation {key}")
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100)
    plt.close(figure)
