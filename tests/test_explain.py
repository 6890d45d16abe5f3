"""Leave-one-term-out contributions: equal to re-scoring the vector with each column removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

import reviewlens
from reviewlens.explain import explain, lean_runtime
from reviewlens.runtime import DenseRuntime

from .conftest import NEGATIVE, POSITIVE


@pytest.fixture(scope="module")
def runtime(trained_run: Path) -> DenseRuntime:
    lean = lean_runtime(reviewlens.load(trained_run))
    assert lean is not None
    return lean


def score_vector(runtime: DenseRuntime, x: np.ndarray) -> float:
    hidden = x @ runtime.kernels[0] + runtime.biases[0]
    for kernel, bias in zip(runtime.kernels[1:], runtime.biases[1:], strict=True):
        hidden = np.maximum(hidden, 0) @ kernel + bias
    return float(expit(hidden[0]))


TEXTS = [
    "The film was wonderful, a superb cast and a moving story.",
    "Dull, boring and tedious: the plot is pointless. The film the film.",
    "qwerty uiop",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_contributions_equal_rescoring_without_each_term(runtime: DenseRuntime, text: str):
    explanation = explain(runtime, text)
    assert explanation.score == pytest.approx(float(runtime.predict([text])[0]), abs=1e-6)
    x = runtime.vectorizer.transform([text]).toarray()[0].astype(np.float64)
    present = [column for column in np.flatnonzero(x) if column != 0]
    assert sorted(c.term for c in explanation.terms) == sorted(runtime.vectorizer.vocabulary[j] for j in present)
    full = score_vector(runtime, x)
    for item in explanation.terms:
        column = runtime.vectorizer.vocabulary.index(item.term)
        without = x.copy()
        without[column] = 0.0
        assert item.contribution == pytest.approx(full - score_vector(runtime, without), abs=1e-5)
    effects = [abs(c.contribution) for c in explanation.terms]
    assert effects == sorted(effects, reverse=True)


def test_cue_words_push_the_way_the_data_says(runtime: DenseRuntime):
    terms = {c.term: c.contribution for c in explain(runtime, " ".join(POSITIVE + NEGATIVE)).terms}
    assert sum(terms[word] for word in POSITIVE) > 0.02
    assert sum(terms[word] for word in NEGATIVE) < -0.02
    assert len(explain(runtime, TEXTS[0], top=3).terms) == 3


def test_logistic_regression_shape_has_no_hidden_layer(runtime: DenseRuntime):
    # A single Dense(1) layer: the contribution is exact there too (no ReLU to skip).
    single = DenseRuntime(runtime.vectorizer, [runtime.kernels[0][:, :1]], [runtime.biases[0][:1]])
    explanation = explain(single, "wonderful film")
    x = runtime.vectorizer.transform(["wonderful film"]).toarray()[0]
    assert explanation.score == pytest.approx(float(single.predict(["wonderful film"])[0]), abs=1e-6)
    for item in explanation.terms:
        column = runtime.vectorizer.vocabulary.index(item.term)
        logit = float(x @ single.kernels[0][:, 0] + single.biases[0][0])
        expected = expit(logit) - expit(logit - x[column] * single.kernels[0][column, 0])
        assert item.contribution == pytest.approx(expected, abs=1e-6)
