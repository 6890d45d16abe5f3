"""Calibration: probabilities that mean what they say, fitted on the validation split only.

Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks") divides a model's
log-probabilities by one number T > 0 fitted to minimise the validation log-loss: T > 1 softens an
overconfident model, T < 1 sharpens a timid one, and no decision at threshold 0.5 changes. For two
labels it is ``sigmoid(logit(p) / T)``. A run stores T as ``temperature``; its predictor applies it.

Stacking (``fit_stacking``) is the ensembles' combination: a logistic regression on the members'
logits, which both weighs the members and calibrates the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit, log_softmax, softmax

_EPSILON = 1e-7
#: The temperatures searched: from 1/20 to 20, enough for any model worth calibrating.
_LOG_BOUNDS = (-3.0, 3.0)


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """``log p`` of ``(n, labels)`` probabilities, clipped away from 0 so a certain answer stays finite."""
    return np.log(np.clip(np.asarray(probabilities, np.float64), _EPSILON, 1.0))


def logits(positive: np.ndarray | Sequence[float]) -> np.ndarray:
    """``log(p / (1 - p))`` of probabilities of positive, clipped as ``log_probabilities`` is."""
    p = np.clip(np.asarray(positive, np.float64), _EPSILON, 1.0 - _EPSILON)
    return np.log(p) - np.log1p(-p)


def scale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row: the calibrated ``(n, labels)`` probabilities, float32."""
    if temperature == 1.0:
        return probabilities
    return softmax(log_probabilities(probabilities) / temperature, axis=1).astype(np.float32)


def _columns(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, np.float64)
    return np.stack([1.0 - p, p], axis=1) if p.ndim == 1 else p


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray | Sequence[int]) -> float:
    """The temperature that minimises the log-loss of ``probabilities`` (``(n, labels)``, or ``(n,)`` of
    positive) on ``labels``: fit it on validation predictions, never on test."""
    from scipy.optimize import minimize_scalar  # only where a run is trained: it takes 0.15 s to import

    log_p = log_probabilities(_columns(probabilities))
    y = np.asarray(labels, np.int64)
    if len(y) == 0 or len(y) != len(log_p):
        raise ValueError(f"{len(log_p)} predictions for {len(y)} labels")

    def loss(log_t: float) -> float:
        return float(-np.mean(log_softmax(log_p / np.exp(log_t), axis=1)[np.arange(len(y)), y]))

    found = minimize_scalar(loss, bounds=_LOG_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def fit_stacking(
    member_logits: np.ndarray, labels: np.ndarray | Sequence[int], l2: float = 1e-3
) -> tuple[np.ndarray, float]:
    """Weights and bias of a logistic regression on the members' logits ``(n, members)``, L2-penalised
    (not the bias) so that two members that agree closely share their weight instead of cancelling."""
    from scipy.optimize import minimize

    x = np.asarray(member_logits, np.float64)
    y = np.asarray(labels, np.float64)
    n, members = x.shape

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta[:members] + theta[members]
        loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * theta[:members] @ theta[:members]
        error = (expit(z) - y) / n
        gradient = np.append(x.T @ error + l2 * theta[:members], error.sum())
        return float(loss), gradient

    start = np.append(np.full(members, 1.0 / members), 0.0)
    found = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B")
    return found.x[:members].astype(np.float64), float(found.x[members])
