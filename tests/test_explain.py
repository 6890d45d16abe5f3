"""Leave-one-term-out contributions: equal to re-scoring the vector with each column removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

import reviewlens
from reviewlens.explain import MAX_OCCLUDED_WORDS
from reviewlens.predictors.dense import DensePredictor

from .conftest import NEGATIVE, POSITIVE
from .memory import MB, python_peak


@pytest.fixture(scope="module")
def predictor(trained_run: Path) -> DensePredictor:
    run = reviewlens.load(trained_run)
    assert isinstance(run.predictor, DensePredictor)
    return run.predictor


def score_vector(predictor: DensePredictor, x: np.ndarray) -> float:
    hidden = x @ predictor.kernels[0] + predictor.biases[0]
    for kernel, bias in zip(predictor.kernels[1:], predictor.biases[1:], strict=True):
        hidden = np.maximum(hidden, 0) @ kernel + bias
    return float(expit(hidden[0]))


TEXTS = [
    "The film was wonderful, a superb cast and a moving story.",
    "Dull, boring and tedious: the plot is pointless. The film the film.",
    "qwerty uiop",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_contributions_equal_rescoring_without_each_term(predictor: DensePredictor, text: str):
    explanation = predictor.explain(text)
    assert explanation.method == "exact"
    assert explanation.score == pytest.approx(float(predictor.predict_proba([text])[0, 1]), abs=1e-6)
    vocabulary = predictor.preprocessor.vocabulary
    x = predictor.preprocessor.transform([text]).toarray()[0].astype(np.float64)
    present = [column for column in np.flatnonzero(x) if column != 0]
    assert sorted(c.term for c in explanation.terms) == sorted(vocabulary[j] for j in present)
    full = score_vector(predictor, x)
    for item in explanation.terms:
        column = vocabulary.index(item.term)
        without = x.copy()
        without[column] = 0.0
        assert item.contribution == pytest.approx(full - score_vector(predictor, without), abs=1e-5)
    effects = [abs(c.contribution) for c in explanation.terms]
    assert effects == sorted(effects, reverse=True)


def test_cue_words_push_the_way_the_data_says(predictor: DensePredictor):
    terms = {c.term: c.contribution for c in predictor.explain(" ".join(POSITIVE + NEGATIVE)).terms}
    assert sum(terms[word] for word in POSITIVE) > 0.02
    assert sum(terms[word] for word in NEGATIVE) < -0.02
    assert len(predictor.explain(TEXTS[0], top=3).terms) == 3


def test_logistic_regression_shape_has_no_hidden_layer(predictor: DensePredictor):
    # A single Dense(1) layer: the contribution is exact there too (no ReLU to skip).
    single = DensePredictor(predictor.preprocessor, [predictor.kernels[0][:, :1]], [predictor.biases[0][:1]])
    explanation = single.explain("wonderful film")
    x = predictor.preprocessor.transform(["wonderful film"]).toarray()[0]
    assert explanation.score == pytest.approx(float(single.predict_proba(["wonderful film"])[0, 1]), abs=1e-6)
    for item in explanation.terms:
        column = predictor.preprocessor.vocabulary.index(item.term)
        logit = float(x @ single.kernels[0][:, 0] + single.biases[0][0])
        expected = expit(logit) - expit(logit - x[column] * single.kernels[0][column, 0])
        assert item.contribution == pytest.approx(expected, abs=1e-6)


def test_occlusion_is_each_word_removed_and_rescored(trained_run: Path):
    # The explanation any predictor can give (the Keras one here): remove each distinct word everywhere.
    run = reviewlens.load(trained_run, runtime="keras")
    text = "Wonderful film, wonderful cast; a dull plot."
    explanation = run.explain(text)
    assert explanation.method == "occlusion"
    assert [c.term for c in sorted(explanation.terms, key=lambda c: c.term)] == sorted(
        {"wonderful", "film", "cast", "a", "dull", "plot"}
    )
    assert explanation.score == pytest.approx(float(run.predict([text])[0]), abs=1e-6)
    for item in explanation.terms:
        rest = " ".join(
            word for word in ["wonderful", "film", "wonderful", "cast", "a", "dull", "plot"] if word != item.term
        )
        assert item.contribution == pytest.approx(explanation.score - float(run.predict([rest])[0]), abs=1e-5)
    assert run.explain("").terms == []


def test_occlusion_of_a_long_text_on_a_keras_run_holds_a_small_fixed_memory(trained_run: Path):
    # 100,000 characters of 11,000 distinct words: a copy of the text per word held gigabytes in Keras.
    code = (
        "import sys, reviewlens\n"
        "run = reviewlens.load(sys.argv[1], runtime='keras')\n"
        "explanation = run.explain(' '.join(f'word{i}' for i in range(11_000)))\n"
        "print(explanation.words, explanation.considered)\n"
    )
    result, peak = python_peak("-c", code, str(trained_run))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["11000", str(MAX_OCCLUDED_WORDS)]
    assert peak < 1200 * MB, f"{peak / MB:.0f} MB"
