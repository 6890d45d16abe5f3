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


def predicted_labels(probabilities: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The label index each row gets: a binary run's probability of positive (or its two columns) decides with
    ``decide``; with more labels (one column each) the most probable one, as a softmax has no threshold."""
    p = np.asarray(probabilities)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    return np.argmax(p, axis=-1) if p.ndim == 2 else decide(p, threshold).astype(np.int64)


def label_scores_of(columns: np.ndarray) -> np.ndarray:
    """What a run keeps of its ``(n, labels)`` probabilities: the probability of positive for two labels (as
    binary runs always have), every column for more."""
    return columns[:, 1] if columns.shape[1] == 2 else columns


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
    names: Sequence[str] = BINARY_LABELS,
) -> dict[str, object]:
    """Accuracy, binary cross-entropy, ROC AUC, the confusion matrix and, per label, precision, recall, F1 and
    average precision, with their macro-F1; deciding with ``decide``.

    The confusion matrix is ``[[true negatives, false positives], [false negatives, true positives]]``.
    ``per_label`` is keyed by ``names`` (label 0 first); a label's average precision ranks the reviews by the
    probability of that label. ``average_precision`` is the positive label's: the area under its
    precision-recall curve.

    With more than two ``names``, ``probabilities`` has one column per label (``label_scores_of``): each review
    gets its most probable label, the loss is categorical cross-entropy, the confusion matrix is ``labels x
    labels`` (rows true), and ``roc_auc`` and ``average_precision`` are the means of each label's one-vs-rest
    figure (over the labels the reviews hold).
    """
    if len(names) > 2:
        return _multiclass_metrics(np.asarray(probabilities, np.float64), np.asarray(labels, np.int64), names)
    p, y = _checked(probabilities, labels)
    predicted = decide(p, threshold).astype(np.int64)
    clipped = np.clip(p, _EPSILON, 1 - _EPSILON)
    loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    confusion = confusion_matrix(predicted, y, len(names))
    per_label = label_scores(confusion, names)
    for index, name in enumerate(names):
        per_label[name]["average_precision"] = average_precision(p if index == 1 else 1.0 - p, y == index)
    return {
        "accuracy": float(np.mean(predicted == y)),
        "loss": float(loss),
        "roc_auc": roc_auc(p, y),
        "average_precision": per_label[names[1]]["average_precision"],
        "macro_f1": float(np.mean([scores["f1"] for scores in per_label.values()])),
        "per_label": per_label,
        "confusion_matrix": confusion.tolist(),
        "examples": len(y),
    }


def _multiclass_metrics(p: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict[str, object]:
    if p.shape != (len(y), len(names)):
        raise ValueError(f"probabilities of shape {p.shape} for {len(y)} labels of {len(names)} kinds")
    if len(y) == 0:
        raise ValueError("no examples to measure")
    predicted = predicted_labels(p)
    loss = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], _EPSILON, 1.0)))
    confusion = confusion_matrix(predicted, y, len(names))
    per_label = label_scores(confusion, names)
    aucs = []
    for index, name in enumerate(names):
        per_label[name]["average_precision"] = average_precision(p[:, index], y == index)
        aucs.append(roc_auc(p[:, index], (y == index).astype(np.int64)))
    precisions = [s["average_precision"] for s in per_label.values() if s["average_precision"] is not None]
    areas = [auc for auc in aucs if auc is not None]
    return {
        "accuracy": float(np.mean(predicted == y)),
        "loss": float(loss),
        "roc_auc": float(np.mean(areas)) if areas else None,
        "average_precision": float(np.mean(precisions)) if precisions else None,
        "macro_f1": float(np.mean([scores["f1"] for scores in per_label.values()])),
        "per_label": per_label,
        "confusion_matrix": confusion.tolist(),
        "examples": len(y),
    }


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Reviews by true label (rows) and predicted label (columns), label indices ``0 .. classes - 1``."""
    return np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def label_scores(confusion: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each label's precision, recall, F1 and support (its true reviews) from a confusion matrix (rows true,
    columns predicted); a ratio with nothing to divide by is 0, as scikit-learn's ``zero_division=0``."""
    true_positives = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(actual[i])}
        for i, name in enumerate(names)
    }  # fmt: skip


def ranked_counts(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each distinct score as a threshold, descending, with the reviews at or above it and the relevant ones
    among them (ties taken together): the counts every point of a precision-recall curve is made of."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranked, hits = np.asarray(scores)[order], np.asarray(relevant, dtype=np.float64)[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last review of each group of tied scores
    return ranked[last], last + 1, np.cumsum(hits)[last]


def precision_recall_curve(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (each distinct score, descending), and the precision and recall of saying "relevant" at or
    above each: the points of the precision-recall curve."""
    thresholds, selected, true_positives = ranked_counts(scores, relevant)
    recall = true_positives / true_positives[-1] if true_positives[-1] else np.zeros_like(true_positives)
    return thresholds, true_positives / selected, recall


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float | None:
    """The area under the precision-recall curve as a step sum, ``sum_n (R_n - R_n-1) P_n`` over the thresholds
    (scikit-learn's ``average_precision_score``); None without a relevant review."""
    if not np.any(relevant):
        return None
    _, precision, recall = precision_recall_curve(np.asarray(scores, dtype=np.float64), np.asarray(relevant))
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


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
    and accuracy 0 and count 0. With one column per label (more than two), the most probable label is predicted.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    if np.ndim(probabilities) == 2:
        columns, y = np.asarray(probabilities, np.float64), np.asarray(labels, np.int64)
        predicted, confidence = predicted_labels(columns), columns.max(axis=1)
    else:
        p, y = _checked(probabilities, labels)
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
