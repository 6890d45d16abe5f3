"""The HTTP service in process: every endpoint, several models, caching, metrics, and every kind of bad input."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import reviewlens
from reviewlens.serving import ServeConfig, create_app

TEXTS = ["The film was wonderful, a superb cast.", "Dull, boring, tedious plot.", "the movie", "!"]


@pytest.fixture(scope="module")
def second_run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run under another name: a second model to serve beside the first."""
    other = tmp_path_factory.mktemp("served") / "other"
    shutil.copytree(trained_run, other)
    metadata = json.loads((other / "metadata.json").read_text())
    metadata["name"] = "other"
    (other / "metadata.json").write_text(json.dumps(metadata))
    return other


@pytest.fixture(scope="module")
def client(trained_run: Path, second_run: Path) -> Iterator[TestClient]:
    config = ServeConfig(run_dirs=[str(trained_run), str(second_run)], max_body_bytes=200_000)
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        yield client


def metric(client: TestClient, line_start: str) -> float:
    text = client.get("/metrics").text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


def test_predict_and_batch_give_the_runs_scores(client: TestClient, trained_run: Path):
    expected = reviewlens.load(trained_run).predict(TEXTS)
    name = reviewlens.load(trained_run).name
    for text, probability in zip(TEXTS, expected, strict=True):
        body = client.post("/v1/predict", json={"text": text}).json()
        label = "positive" if probability >= 0.5 else "negative"
        probabilities = {"negative": pytest.approx(1 - float(probability), abs=1e-6), "positive": body["score"]}
        assert body == {"label": label, "score": body["score"], "probabilities": probabilities, "model": name}
        assert body["score"] == pytest.approx(float(probability), abs=1e-6)
    batch = client.post("/v1/predict/batch", json={"texts": TEXTS})
    assert batch.status_code == 200
    np.testing.assert_allclose([item["score"] for item in batch.json()], expected, atol=1e-6)
    assert client.post("/v1/predict/batch", json={"texts": []}).json() == []


def test_models_are_listed_and_chosen_by_name(client: TestClient, trained_run: Path):
    models = client.get("/v1/models").json()
    metadata = reviewlens.load(trained_run).metadata
    assert [m["name"] for m in models] == [metadata.name, "other"]
    first = models[0]
    assert first["default"] is True and models[1]["default"] is False
    assert first["recipe"] == "bow-bigram" and first["runtime"] == "numpy"
    assert first["data_fingerprint"] == metadata.data["fingerprint"]
    assert first["created"] == metadata.created
    assert first["metrics"]["test"]["accuracy"] == metadata.metrics["test"]["accuracy"]
    body = client.post("/v1/predict", json={"text": "superb", "model": "other"}).json()
    assert body["model"] == "other"
    missing = client.post("/v1/predict", json={"text": "superb", "model": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert client.post("/v1/predict/batch", json={"texts": ["a"], "model": "nope"}).status_code == 404
    assert client.post("/v1/explain", json={"text": "a", "model": "nope"}).status_code == 404


def test_explain_returns_the_terms_that_moved_the_score(client: TestClient, trained_run: Path):
    text = "wonderful superb film, dull boring plot"
    body = client.post("/v1/explain", json={"text": text, "top": 3}).json()
    assert body["explained"] is True and len(body["terms"]) == 3
    assert body["score"] == pytest.approx(float(reviewlens.load(trained_run).predict([text])[0]), abs=1e-6)
    effects = [abs(t["contribution"]) for t in body["terms"]]
    assert effects == sorted(effects, reverse=True) and effects[0] > 0
    assert all(t["term"] in text.replace(",", "") for t in body["terms"])


def test_health_is_503_until_the_models_are_loaded(trained_run: Path):
    app = create_app(ServeConfig(run_dirs=[str(trained_run)]))
    not_started = TestClient(app)  # no context manager: the lifespan (model loading) has not run
    assert not_started.get("/health").status_code == 503
    assert not_started.get("/health").json()["status"] == "loading"
    assert not_started.post("/v1/predict", json={"text": "too early"}).status_code == 503
    with TestClient(app) as started:
        health = started.get("/health").json()
        assert health == {"status": "ok", "models": [reviewlens.load(trained_run).name], "reason": None}
    stopped = TestClient(app)  # after shutdown: not ready again, and says so
    assert stopped.get("/health").status_code == 503
    assert stopped.post("/v1/predict", json={"text": "too late"}).json()["detail"].startswith("the server is stopping")


def test_repeated_texts_come_from_the_cache(client: TestClient):
    before = metric(client, "reviewlens_cache_hits_total")
    client.post("/v1/predict", json={"text": "a text seen twice"})
    assert metric(client, "reviewlens_cache_hits_total") == before
    again = client.post("/v1/predict/batch", json={"texts": ["a text seen twice", "a text seen twice", "new one"]})
    assert again.status_code == 200
    assert metric(client, "reviewlens_cache_hits_total") == before + 2


def test_metrics_in_prometheus_format(client: TestClient):
    client.post("/v1/predict", json={"text": "count me"})
    client.post("/v1/predict", json={"text": 5})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for family in (
        "reviewlens_requests_total counter",
        "reviewlens_request_duration_seconds histogram",
        "reviewlens_batch_size histogram",
        "reviewlens_cache_hits_total counter",
        "reviewlens_errors_total counter",
        "reviewlens_texts_scored_total counter",
    ):
        assert f"# TYPE {family}" in text
    assert re.search(r'reviewlens_texts_scored_total\{model="[^"]+"\} [1-9]', text)
    assert re.search(r'reviewlens_batch_size_count\{model="[^"]+"\} [1-9]', text)
    assert re.search(r'reviewlens_requests_total\{endpoint="/v1/predict",method="POST",status="200"\} [1-9]', text)
    assert re.search(r'reviewlens_errors_total\{endpoint="/v1/predict",status="422"\} [1-9]', text)
    assert re.search(r'reviewlens_request_duration_seconds_count\{endpoint="/v1/predict"\} [1-9]', text)
    client.get("/no/such/page")
    assert 'endpoint="other"' in client.get("/metrics").text  # unknown paths do not make new series


def test_openapi_describes_requests_and_responses(client: TestClient):
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/predict/batch", "/v1/explain", "/v1/models", "/health", "/metrics"} <= set(
        schema["paths"]
    )
    predict = schema["paths"]["/v1/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictRequest")
    assert predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Prediction")
    assert {"404", "413", "422"} <= set(predict["responses"])
    components = schema["components"]["schemas"]
    assert components["Prediction"]["properties"]["label"]["type"] == "string"  # one of the model's labels
    assert components["ModelInfo"]["properties"]["labels"]["type"] == "array"
    assert "texts" in components["BatchRequest"]["properties"]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"text": "unfinished', {"content-type": "application/json"}),
        (b'{"text": 3}', {"content-type": "application/json"}),
        (b'{"texts": "not a list"}', {"content-type": "application/json"}),
        (b'{"txt": "typo"}', {"content-type": "application/json"}),
        (b'{"text": "ok", "extra": 1}', {"content-type": "application/json"}),
        (b'["a list"]', {"content-type": "application/json"}),
        (b"null", {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
        (b'{"text": "\\ud800 lone surrogate"}', {"content-type": "application/json"}),
        (b'{"text": "\xff\xfe not UTF-8"}', {"content-type": "application/json"}),
        (b'{"text": "ok", "model": 7}', {"content-type": "application/json"}),
    ],
)
def test_malformed_json_or_wrong_types_are_422(client: TestClient, body: bytes, headers: dict[str, str]):
    for path in ("/v1/predict", "/v1/explain"):
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert "detail" in response.json()


def test_oversized_input_is_413(client: TestClient):
    long_text = "word " * 20_001  # 100,005 characters, in a body under the limit
    assert client.post("/v1/predict", json={"text": long_text}).status_code == 413
    assert client.post("/v1/explain", json={"text": long_text}).status_code == 413
    batch = client.post("/v1/predict/batch", json={"texts": ["ok", long_text]})
    assert batch.status_code == 413 and "text 1" in batch.json()["detail"]
    too_many = client.post("/v1/predict/batch", json={"texts": ["a"] * 1001})
    assert too_many.status_code == 413 and "1,000" in too_many.json()["detail"]
    body = json.dumps({"text": "x" * 200_001}).encode()
    declared = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "200,000 bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies as the body streams in
        yield b'{"text": "'
        for _ in range(30):
            yield b"x" * 10_000
        yield b'"}'

    streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_client_mistakes_never_cause_a_500(client: TestClient):
    before = metric(client, 'reviewlens_errors_total{endpoint="/v1/predict",status="500"}')
    for body in (b"{", b'{"text": {"nested": true}}', b'{"text": "\\udfff"}', b"\x00\x01", b"[]" * 10):
        client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert metric(client, 'reviewlens_errors_total{endpoint="/v1/predict",status="500"}') == before == 0
    assert client.get("/v1/predict").status_code == 405


def test_the_page_is_served(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="text"' in page.text and "/v1/explain" in page.text
    # The model list is in the page as served, before any script runs: one option per model, the default chosen.
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', page.text)
    models = client.get("/v1/models").json()
    assert [(name, bool(chosen)) for name, chosen, _ in options] == [(m["name"], m["default"]) for m in models]
    assert all(f"({m['recipe']})" in shown for (_, _, shown), m in zip(options, models, strict=True))


def test_the_page_escapes_model_names_and_lists_none_behind_a_key():
    from reviewlens.serving.page import render_page

    page = render_page([('a"<b>', "bow-bigram", True)])
    assert '<option value="a&quot;&lt;b&gt;" selected>a&quot;&lt;b&gt; (bow-bigram)</option>' in page
    assert '<select id="model" aria-label="model"></select>' in render_page([])


def test_a_sequence_run_is_served_through_the_same_protocol(sequence_run: Path):
    run = reviewlens.load(sequence_run)
    with TestClient(create_app(ServeConfig(run_dirs=[str(sequence_run)])), raise_server_exceptions=False) as client:
        (info,) = client.get("/v1/models").json()
        assert info["predictor"] == "keras.v1" and info["runtime"] == "keras" and info["recipe"] == "sum-embedding"
        assert info["labels"] == ["negative", "positive"] and info["threshold"] == 0.5
        batch = client.post("/v1/predict/batch", json={"texts": TEXTS}).json()
        np.testing.assert_allclose([item["score"] for item in batch], run.predict(TEXTS), atol=1e-6)
        assert [item["label"] for item in batch] == [run.label(s) for s in run.predict(TEXTS)]
        body = client.post("/v1/explain", json={"text": TEXTS[0], "top": 2}).json()
        assert body["explained"] is True and body["method"] == "occlusion" and len(body["terms"]) == 2
        assert body["score"] == pytest.approx(float(run.predict(TEXTS[:1])[0]), abs=1e-6)


def test_a_blank_text_is_422_alone_and_unscored_in_a_batch(client: TestClient, trained_run: Path):
    for blank in ("", "   ", "\n\t\u2003\x1c"):
        for path in ("/v1/predict", "/v1/explain"):
            response = client.post(path, json={"text": blank})
            assert response.status_code == 422, (path, blank)
            assert "empty or only whitespace" in response.json()["detail"][0]["msg"]
    batch = client.post("/v1/predict/batch", json={"texts": ["superb film", "", " \n"]})
    assert batch.status_code == 200
    first, *blanks = batch.json()
    name = reviewlens.load(trained_run).name
    assert first["score"] == pytest.approx(float(reviewlens.load(trained_run).predict(["superb film"])[0]), abs=1e-6)
    assert first["error"] is None
    assert blanks == [{"label": None, "score": None, "probabilities": None, "model": name, "error": "empty text"}] * 2
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert re.search(schema["PredictRequest"]["properties"]["text"]["pattern"], "\u2003 ok")
    assert not re.search(schema["PredictRequest"]["properties"]["text"]["pattern"], " \u2003\x1c")
    assert {"type": "null"} in schema["BatchPrediction"]["properties"]["score"]["anyOf"]


@pytest.fixture(scope="module")
def keyed(trained_run: Path) -> Iterator[TestClient]:
    config = ServeConfig(run_dirs=[str(trained_run)], api_key="s3cret-key", cors_origins=["https://app.example"])
    with TestClient(create_app(config)) as client:
        yield client


def test_an_api_key_guards_every_endpoint_but_health_and_the_page(keyed: TestClient):
    assert keyed.get("/health").status_code == 200
    page = keyed.get("/")  # the page loads, asks for the key on a 401, and sends it as a bearer token
    assert page.status_code == 200 and 'id="key-form"' in page.text
    assert "<option" not in page.text  # the model names are behind the key too: the script lists them
    assert "sessionStorage" in page.text and "authorization = `Bearer ${key}`" in page.text
    key = {"Authorization": "Bearer s3cret-key"}
    for method, path, body in [
        ("GET", "/v1/models", None),
        ("GET", "/metrics", None),
        ("POST", "/v1/predict", {"text": "superb"}),
        ("POST", "/v1/predict/batch", {"texts": ["superb"]}),
        ("POST", "/v1/explain", {"text": "superb"}),
    ]:
        missing = keyed.request(method, path, json=body)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == 'Bearer realm="reviewlens"'
        assert "Authorization: Bearer KEY" in missing.json()["detail"]
        wrong = keyed.request(method, path, json=body, headers={"Authorization": "Bearer s3cret-kez"})
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
        assert keyed.request(method, path, json=body, headers=key).status_code == 200, path
    basic = {"Authorization": "Basic s3cret-key"}
    assert keyed.post("/v1/predict", json={"text": "x"}, headers=basic).status_code == 401
    # The key is checked before the body is read: an anonymous client cannot make the server parse 1 MB.
    assert keyed.post("/v1/predict", content=b"x" * (2 << 20)).status_code == 401
    schema = keyed.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert schema["paths"]["/v1/predict"]["post"]["security"] == [{"bearer": []}]
    assert "401" in schema["paths"]["/metrics"]["get"]["responses"]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_cors_only_for_the_origins_named(client: TestClient, keyed: TestClient):
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    assert "access-control-allow-origin" not in client.options("/v1/predict", headers=preflight).headers
    plain = client.post("/v1/predict", json={"text": "a"}, headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in plain.headers
    allowed = keyed.options("/v1/predict", headers=preflight)  # a preflight carries no key: answered all the same
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = keyed.options("/v1/predict", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    refused = keyed.post("/v1/predict", json={"text": "a"}, headers={"Origin": "https://app.example"})
    assert refused.status_code == 401  # and the page at that origin can read why
    assert refused.headers["access-control-allow-origin"] == "https://app.example"


def corrupt_copy(run: Path, destination: Path) -> Path:
    """A copy of ``run`` whose weights.npz is garbage that matches its checksum: it passes every check but loading."""
    shutil.copytree(run, destination)
    (destination / "weights.npz").write_bytes(b"not a NumPy archive")
    metadata = json.loads((destination / "metadata.json").read_text())
    metadata["files"]["weights.npz"] = hashlib.sha256(b"not a NumPy archive").hexdigest()
    (destination / "metadata.json").write_text(json.dumps(metadata))
    return destination


def test_a_model_that_fails_to_load_keeps_health_at_503_with_the_reason(trained_run: Path, tmp_path: Path):
    broken = corrupt_copy(trained_run, tmp_path / "broken")
    with TestClient(create_app(ServeConfig(run_dirs=[str(broken)]))) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "failed"
        assert f"{broken}/weights.npz cannot be read" in health.json()["reason"]
        refused = client.post("/v1/predict", json={"text": "superb"})
        assert refused.status_code == 503 and "weights.npz" in refused.json()["detail"]
        assert client.get("/v1/models").status_code == 503


@pytest.mark.parametrize("log_texts", [False, True])
def test_a_failure_is_a_500_logged_without_the_review(
    trained_run: Path, log_texts: bool, caplog: pytest.LogCaptureFixture
):
    def fail(texts: list[str]) -> np.ndarray:
        raise ValueError(f"cannot score {texts[0]!r}")

    review = "my private review, do not log"
    with TestClient(create_app(ServeConfig(run_dirs=[str(trained_run)], log_texts=log_texts))) as client:
        next(iter(client.app.state.reviewlens.models.values())).batcher.predict = fail  # type: ignore[attr-defined]
        with caplog.at_level(logging.ERROR, logger="reviewlens"):
            response = client.post("/v1/predict", json={"text": review})
        assert response.status_code == 500 and "log" in response.json()["detail"]
        assert 'endpoint="/v1/predict",status="500"' in client.get("/metrics").text
    (record,) = [r for r in caplog.records if r.name.startswith("reviewlens")]
    logged = record.getMessage()
    assert "POST /v1/predict failed" in logged and "ValueError" in logged and "in fail" in logged
    assert (review in logged) is log_texts


def test_422_answers_are_json_even_for_nan_and_a_wrong_content_type_is_415(client: TestClient):
    for raw in (b'{"text": NaN}', b'{"text": Infinity}', b'{"texts": [-Infinity]}'):
        url = "/v1/predict/batch" if b"texts" in raw else "/v1/predict"
        answer = client.post(url, content=raw, headers={"content-type": "application/json"})
        assert answer.status_code == 422
        body = json.loads(answer.text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
        assert body["detail"][0]["input"] in ("NaN", "Infinity", "-Infinity")
    wrong = client.post("/v1/predict", content=b'{"text": "A fine film."}', headers={"content-type": "text/plain"})
    assert wrong.status_code == 415 and "application/json" in wrong.json()["detail"]
    form = client.post("/v1/predict", data={"text": "A fine film."})  # a form, as an HTML form posts it
    assert form.status_code == 415
    fine = client.post(
        "/v1/predict", content=b'{"text": "A fine film."}', headers={"content-type": "application/json; charset=utf-8"}
    )
    assert fine.status_code == 200
