"""The decision rule, metrics of predicted probabilities against labels, calibration, and the plots."""

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


def _checked(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of positive (float64) and labels (int64), as flat arrays of the same, non-zero length."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} probabilities for {len(y)} labels")
    if len(y) == 0:
        raise ValueError("no examples to measure")
    return p, y


def metrics(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, object]:
    """Accuracy, binary cross-entropy, ROC AUC and the confusion matrix, deciding with ``decide``.

    The confusion matrix is ``[[true negatives, false positives], [false negatives, true positives]]``.
    """
    p, y = _checked(probabilities, labels)
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


CALIBRATION_BINS = 15


def calibration_bins(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    bins: int = CALIBRATION_BINS,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, np.ndarray]:
    """Reviews, mean confidence and accuracy in each of ``bins`` equal-width bins of [0, 1].

    The confidence of a review is the probability of the label the run predicts for it (``decide``
    with ``threshold``): ``p`` when it says positive, ``1 - p`` when it says negative. Bin ``i`` holds
    confidences in ``[i / bins, (i + 1) / bins)``, the last one also 1. Empty bins have confidence
    and accuracy 0 and count 0.
    """
    p, y = _checked(probabilities, labels)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    predicted = decide(p, threshold).astype(np.int64)
    confidence = np.where(predicted == 1, p, 1.0 - p)
    index = np.clip((confidence * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    shown = np.maximum(counts, 1)
    return {
        "edges": np.linspace(0.0, 1.0, bins + 1),
        "counts": counts,
        "confidence": np.bincount(index, weights=confidence, minlength=bins) / shown,
        "accuracy": np.bincount(index, weights=(predicted == y).astype(np.float64), minlength=bins) / shown,
    }


def expected_calibration_error(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    bins: int = CALIBRATION_BINS,
    threshold: float = DEFAULT_THRESHOLD,
) -> float:
    """The expected calibration error: how far confidence is from accuracy, averaged over reviews.

    Binned over the probability of the *predicted* label (see ``calibration_bins``), 15 equal-width
    bins by default: ``sum over bins of (reviews in bin / reviews) * |accuracy - mean confidence|``.
    0 is perfectly calibrated; a run that says 99% and is right 70% of the time scores about 0.29.
    """
    table = calibration_bins(probabilities, labels, bins, threshold)
    counts = table["counts"]
    return float(np.sum(counts * np.abs(table["accuracy"] - table["confidence"])) / np.sum(counts))


def plot_reliability(
    probabilities: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    path: Path,
    bins: int = CALIBRATION_BINS,
    threshold: float = DEFAULT_THRESHOLD,
    title: str = "",
) -> Path:
    """A reliability diagram as a PNG: accuracy against confidence per bin, and how many reviews each holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = calibration_bins(probabilities, labels, bins, threshold)
    ece = expected_calibration_error(probabilities, labels, bins, threshold)
    edges, counts = table["edges"], table["counts"]
    centers, width = (edges[:-1] + edges[1:]) / 2, 1.0 / bins
    filled = counts > 0
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, height_ratios=(3, 1), constrained_layout=True
    )
    top.plot([0, 1], [0, 1], "k--", label="Perfect calibration")
    top.bar(centers[filled], table["accuracy"][filled], width=width, color="b", alpha=0.7, edgecolor="k",
            label="Accuracy")  # fmt: skip
    top.bar(centers[filled], (table["confidence"] - table["accuracy"])[filled], bottom=table["accuracy"][filled],
            width=width, color="r", alpha=0.3, hatch="//", label="Gap to confidence")  # fmt: skip
    top.set_ylabel("Accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"Reliability (ECE {ece:.4f}, {bins} bins)")
    top.legend(loc="upper left")
    bottom.bar(centers, counts, width=width, color="gray", edgecolor="k")
    bottom.set_xlabel("Confidence (probability of the predicted label)")
    bottom.set_ylabel("Reviews")
    bottom.set_xlim(0, 1)
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
    return path
