"""Calibration: temperature scaling fitted on validation (``train --calibrate``), and the stacking ensembles use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

import reviewlens
from reviewlens.calibration import fit_stacking, fit_temperature, logits, scale
from reviewlens.data import Dataset
from reviewlens.evaluation import expected_calibration_error, metrics
from reviewlens.predictors import binary_columns
from reviewlens.runs import read_predictions
from reviewlens.training import train

TEXTS = ["A wonderful, superb film.", "Dull and tedious.", "", "wonderful", "the the the"]


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of positive three times as sure (in logits) as the labels they were drawn from warrant."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < expit(true_logits)).astype(int)
    return expit(3.0 * true_logits), labels


def test_temperature_undoes_overconfidence_without_changing_decisions() -> None:
    probabilities, labels = overconfident(20_000, seed=1)
    temperature = fit_temperature(probabilities, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    calibrated = scale(binary_columns(probabilities), temperature)[:, 1]
    assert (calibrated >= 0.5).tolist() == (probabilities >= 0.5).tolist()
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(probabilities, labels) / 3
    assert metrics(calibrated, labels)["loss"] < metrics(probabilities, labels)["loss"]  # type: ignore[operator]


def test_temperature_scaling_is_a_sigmoid_of_scaled_logits_for_two_labels() -> None:
    p = np.array([0.01, 0.3, 0.5, 0.9, 0.999], np.float32)
    np.testing.assert_allclose(scale(binary_columns(p), 2.5)[:, 1], expit(logits(p) / 2.5), atol=1e-6)
    assert scale(binary_columns(p), 1.0) is not None
    np.testing.assert_array_equal(scale(binary_columns(p), 1.0), binary_columns(p))


def test_stacking_weighs_the_informative_member() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 5000)
    informative = (2 * labels - 1) * 2.0 + rng.normal(0, 1.5, 5000)
    noise = rng.normal(0, 2.0, 5000)
    weights, _ = fit_stacking(np.stack([informative, noise], axis=1), labels)
    assert weights[0] > 0.5 and abs(weights[1]) < 0.05


def test_calibrated_run_stores_and_applies_its_temperature(session_aclimdb: Path, tmp_path: Path) -> None:
    plain = train("nbsvm-plus", session_aclimdb, tmp_path / "plain")
    calibrated = train("nbsvm-plus", session_aclimdb, tmp_path / "calibrated", calibrate=True)
    temperature = calibrated.metadata.temperature
    assert temperature != 1.0 and plain.metadata.temperature == 1.0
    assert calibrated.metadata.hyperparameters["calibration"]["fitted_on"] == "validation"
    raw = reviewlens.load(plain.run_dir).predict(TEXTS)
    for runtime in ("numpy", "keras"):
        scores = reviewlens.load(calibrated.run_dir, runtime=runtime).predict(TEXTS)  # type: ignore[arg-type]
        np.testing.assert_allclose(scores, expit(logits(raw) / temperature), atol=1e-5)
    # Explanations are of the calibrated score: each term's effect is the plain model's, calibrated.
    plain_explanation = reviewlens.load(plain.run_dir).explain(TEXTS[0])
    without = {t.term: plain_explanation.score - t.contribution for t in plain_explanation.terms}
    for runtime in ("numpy", "keras"):
        run = reviewlens.load(calibrated.run_dir, runtime=runtime)  # type: ignore[arg-type]
        explanation = run.explain(TEXTS[0])
        assert explanation.score == pytest.approx(float(run.predict(TEXTS[:1])[0]), abs=1e-5)
        if runtime == "numpy":  # exact, over the same vocabulary terms
            for term in explanation.terms:
                expected = explanation.score - expit(logits(without[term.term]) / temperature)
                assert term.contribution == pytest.approx(float(expected), abs=1e-4)
    # The same model, so the same decisions; the run's test predictions are its calibrated scores.
    assert calibrated.metadata.test_accuracy == plain.metadata.test_accuracy
    texts, _ = Dataset(session_aclimdb).read("test")
    np.testing.assert_allclose(
        read_predictions(calibrated.run_dir)["test_probabilities"],
        reviewlens.load(calibrated.run_dir).predict(texts),
        atol=1e-5,
    )
