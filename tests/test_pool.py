"""Helper processes for large model calls: same scores, small calls stay home, the service uses them."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import reviewlens
from reviewlens.pool import PooledPredict
from reviewlens.serving import ServeConfig, create_app
from reviewlens.serving.config import default_processes

TEXTS = [f"review {i}: {'wonderful superb' if i % 2 else 'dull boring'} film number {i}" for i in range(50)]


def test_large_calls_are_shared_and_score_the_same(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    model = reviewlens.load(trained_run)
    pooled = PooledPredict(model, processes=2, min_chunk=8)
    try:
        submitted: list[int] = []
        submit = pooled._pool.submit
        monkeypatch.setattr(pooled._pool, "submit", lambda fn, texts: submitted.append(len(texts)) or submit(fn, texts))
        np.testing.assert_array_equal(pooled(TEXTS), model.predict_proba(TEXTS))
        assert submitted == [17, 17]  # 50 texts in three chunks: this process scores the first 16
        np.testing.assert_array_equal(pooled(TEXTS[:15]), model.predict_proba(TEXTS[:15]))
        assert submitted == [17, 17]  # under two chunks' worth: scored here, no helper involved
    finally:
        pooled.close()


def test_only_the_numpy_runtime_is_shared(trained_run: Path):
    with pytest.raises(ValueError, match="NumPy"):
        PooledPredict(reviewlens.load(trained_run, runtime="keras"), processes=1)


def test_the_service_uses_helpers_for_big_batches(trained_run: Path):
    texts = TEXTS * 6  # 300 texts: more than two chunks of 128
    with TestClient(create_app(ServeConfig(run_dirs=[str(trained_run)], processes=1, cache_size=0))) as client:
        served = next(iter(client.app.state.reviewlens.models.values()))  # type: ignore[attr-defined]
        assert isinstance(served.pool, PooledPredict)
        scores = [item["score"] for item in client.post("/v1/predict/batch", json={"texts": texts}).json()]
    np.testing.assert_allclose(scores, reviewlens.load(trained_run).predict(texts), atol=1e-7)


@pytest.mark.parametrize(("workers", "cores", "expected"), [(1, 2, 1), (1, 1, 0), (2, 2, 0), (4, 16, 0)])
def test_one_helper_by_default_for_a_single_worker_on_several_cores(
    workers: int, cores: int, expected: int, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert default_processes(workers) == expected


def test_a_helper_that_dies_is_replaced_and_counted(trained_run: Path):
    texts = TEXTS * 6  # 300 texts: shared with the helper
    expected = reviewlens.load(trained_run).predict(texts)
    config = ServeConfig(run_dirs=[str(trained_run)], processes=1, cache_size=0)
    with TestClient(create_app(config)) as client:
        served = next(iter(client.app.state.reviewlens.models.values()))  # type: ignore[attr-defined]
        assert served.pool is not None
        for future in served.pool._warming:
            future.result(timeout=60)  # the helper is up
        (helper,) = _helpers()
        os.kill(helper.pid, signal.SIGKILL)
        helper.join(timeout=10)
        for _ in range(2):  # the call that finds it dead, then one served by its replacement
            response = client.post("/v1/predict/batch", json={"texts": texts})
            assert response.status_code == 200
            np.testing.assert_allclose([item["score"] for item in response.json()], expected, atol=1e-7)
        metrics = client.get("/metrics").text
        assert f'reviewlens_helper_restarts_total{{model="{served.name}"}} 1.0' in metrics
        (replacement,) = _helpers()
        assert replacement.pid != helper.pid


def _helpers() -> list[multiprocessing.Process]:
    """This process's children but a training's exporter, which a test before may have left for the next."""
    return [child for child in multiprocessing.active_children() if child.name != "reviewlens-export"]
