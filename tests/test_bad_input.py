"""Any text at all, tried systematically: every way a run predicts gives the same scores, and none raises.

Texts come from hypothesis (any Unicode, control characters, lone surrogates as command-line arguments and
stdin deliver undecodable bytes) plus the extremes by hand (empty, 1 MB). The paths compared are the ones a
user meets: the NumPy runtime, the run's own ``.keras`` model, the model library's tokenizer -> vectorizer ->
classifier chain, and the service (which refuses lone surrogates: JSON text must be Unicode).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import reviewlens
from reviewlens.library import load_library
from reviewlens.serving import ServeConfig, create_app
from reviewlens.text import is_blank, valid_text

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
CONTROLS = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from(list("\x7f\x85\xa0\u2028\u2029\ufeff"))
ANY_CHARACTER = st.characters() | SURROGATES | CONTROLS | st.sampled_from(list("<br />!?.,'\"ÉÀ"))
TEXTS = st.lists(st.text(ANY_CHARACTER, max_size=60), min_size=1, max_size=6)
EXTREMES = ["", " ", "\x00", "\udcff\udcfe bad", "good \ud800 film", "a" * 1_000_000, "good film " * 100_000]
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def runtimes(trained_run: Path) -> tuple[Any, Any, Any]:
    return reviewlens.load(trained_run), reviewlens.load(trained_run, runtime="keras"), load_library([trained_run])


@given(TEXTS)
@example(EXTREMES)
@SLOW
def test_every_runtime_gives_the_same_scores_for_any_text(runtimes: tuple[Any, Any, Any], texts: list[str]) -> None:
    numpy_run, keras_run, library = runtimes
    expected = numpy_run.predict(texts)
    assert expected.shape == (len(texts),) and np.isfinite(expected).all()
    np.testing.assert_allclose(keras_run.predict(texts), expected, rtol=0, atol=1e-5)
    chain = library.get("imdb_sentiment").predict_batch([{"text": text} for text in texts])
    np.testing.assert_allclose([result.score for result in chain], expected, rtol=0, atol=1e-5)


@given(TEXTS)
@settings(max_examples=200, deadline=None)
def test_training_and_prediction_vectorize_alike(texts: list[str]) -> None:
    # Training vectorizes with fit_transform, predict with transform, the library with token_ids then
    # transform_ids: one vocabulary, the same rows.
    from reviewlens.text import BagOfWords

    vectorizer = BagOfWords(ngrams=2, output_mode="count")
    fitted = vectorizer.fit_transform(texts).toarray()
    np.testing.assert_array_equal(vectorizer.transform(texts).toarray(), fitted)
    np.testing.assert_array_equal(
        vectorizer.transform_ids([vectorizer.token_ids(vectorizer.tokenize(text)) for text in texts]).toarray(), fitted
    )


@given(st.text(ANY_CHARACTER, max_size=200))
@settings(max_examples=300)
def test_valid_text_is_valid_unicode_and_leaves_valid_text_alone(text: str) -> None:
    cleaned = valid_text(text)
    cleaned.encode("utf-8")  # no lone surrogate is left
    if not any("\ud800" <= c <= "\udfff" for c in text):
        assert cleaned is text


def test_undecodable_bytes_read_as_a_file_does() -> None:
    raw = b"good \xff\xfe film"
    assert valid_text(raw.decode("utf-8", "surrogateescape")) == raw.decode("utf-8", "replace")


def test_the_sequence_family_reads_any_text_too(sequence_run: Path) -> None:
    run = reviewlens.load(sequence_run)
    library = load_library([sequence_run])
    scores = run.predict(EXTREMES)
    assert np.isfinite(scores).all()
    chain = library.get("imdb_sentiment").predict_batch([{"text": text} for text in EXTREMES])
    np.testing.assert_allclose([result.score for result in chain], scores, rtol=0, atol=1e-5)
    assert scores[3] == pytest.approx(float(run.predict([valid_text(EXTREMES[3])])[0]), abs=1e-6)


@pytest.fixture(scope="module")
def client(trained_run: Path) -> Iterator[TestClient]:
    config = ServeConfig(run_dirs=[str(trained_run)], max_body_bytes=4_000_000, max_text_chars=2_000_000, cache_size=0)
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        yield client


@given(TEXTS)
@example(["", "\x00\x01", "good film " * 100_000])
@SLOW
def test_the_service_scores_valid_text_as_the_run_does_and_refuses_lone_surrogates(
    client: TestClient, trained_run: Path, texts: list[str]
) -> None:
    valid = [text for text in texts if text == valid_text(text)]
    response = client.post("/v1/predict/batch", json={"texts": valid})
    assert response.status_code == 200
    expected = reviewlens.load(trained_run).predict(valid)
    for text, item, score in zip(valid, response.json(), expected, strict=True):
        if is_blank(text):  # not scored: the HTTP boundary refuses a blank review (the model would score it)
            assert item["score"] is None and item["error"] == "empty text"
        else:
            assert item["score"] == pytest.approx(float(score), abs=1e-5)
    if len(valid) < len(texts):
        invalid = next(text for text in texts if text != valid_text(text))
        # json.dumps escapes the surrogate as \udXXX, as a client in any language may send it (httpx's json= would
        # raise before sending: it encodes without escapes)
        body = json.dumps({"text": invalid})
        response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422
