"""`reviewlens serve` as a real process: loopback by default, no TensorFlow, graceful shutdown, several workers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import reviewlens


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, float]]:
    """A ``reviewlens serve`` process, its base URL, and the seconds from start to a 200 from /health."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "reviewlens.cli", "serve", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    cold_start = time.perf_counter() - started
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 60:
                raise AssertionError("the server did not become healthy in 60 s")
            time.sleep(0.05)
        yield process, url, cold_start
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stopped_cleanly(process: subprocess.Popen[str], output: str) -> bool:
    # uvicorn shuts down gracefully, then re-raises the signal it caught so the parent sees it.
    return process.returncode in (0, -signal.SIGTERM) and "Finished server process" in output


def test_serves_on_loopback_without_tensorflow(trained_run: Path):
    with server(str(trained_run)) as (process, url, cold_start):
        assert cold_start < 15  # the benchmark measures it properly; here: it starts without TensorFlow
        body = httpx.post(f"{url}/v1/predict", json={"text": "wonderful superb film"}).json()
        expected = float(reviewlens.load(trained_run).predict(["wonderful superb film"])[0])
        assert body["score"] == pytest.approx(expected, abs=1e-6)
        assert httpx.post(f"{url}/v1/explain", json={"text": "wonderful superb film"}).json()["explained"]
        libraries = Path(f"/proc/{process.pid}/maps").read_text()
        assert "tensorflow" not in libraries and "keras" not in libraries
        listening = Path("/proc/net/tcp").read_text()
        assert f"0100007F:{int(url.rsplit(':', 1)[1]):04X}" in listening  # bound to 127.0.0.1 only
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert stopped_cleanly(process, output)
    assert "http://127.0.0.1:" in output


def test_app_never_imports_tensorflow(trained_run: Path):
    script = f"""
import sys
from fastapi.testclient import TestClient
from reviewlens.serving import ServeConfig, create_app
with TestClient(create_app(ServeConfig(run_dirs=[{str(trained_run)!r}]))) as client:
    assert client.post("/v1/predict/batch", json={{"texts": ["a", "b"]}}).status_code == 200
    assert client.post("/v1/explain", json={{"text": "a b"}}).status_code == 200
    client.get("/v1/models"), client.get("/metrics"), client.get("/")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "modelkit")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_shutdown_finishes_requests_in_flight(trained_run: Path):
    with server(str(trained_run), "--max-wait-ms", "1500") as (process, url, _):
        answer: dict[str, object] = {}

        def ask() -> None:
            response = httpx.post(f"{url}/v1/predict", json={"text": "in flight"}, timeout=30)
            answer.update(status=response.status_code, body=response.json())

        client = threading.Thread(target=ask)
        client.start()
        time.sleep(0.4)  # the request now waits in the batcher for 1.5 s
        process.send_signal(signal.SIGTERM)
        client.join(timeout=30)
        output, _ = process.communicate(timeout=30)
    assert answer["status"] == 200
    assert answer["body"]["label"] in ("positive", "negative")  # type: ignore[index]
    assert stopped_cleanly(process, output)


def test_workers_share_the_socket_and_add_up_their_metrics(trained_run: Path):
    with server(str(trained_run), "--workers", "2") as (_, url, _):
        for i in range(12):
            with httpx.Client() as fresh:  # a new connection each time, so both workers take some
                assert fresh.post(f"{url}/v1/predict", json={"text": f"review {i}"}).status_code == 200
        text = httpx.get(f"{url}/metrics").text
        match = re.search(r'reviewlens_requests_total\{endpoint="/v1/predict",method="POST",status="200"\} (\S+)', text)
        assert match and float(match.group(1)) == 12


def test_a_bad_run_fails_before_serving_with_one_line(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "reviewlens.cli", "serve", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing" in result.stderr
    run = tmp_path / "run"
    run.mkdir()
    metadata = {
        "name": "run",
        "recipe": "bow-bigram",
        "predictors": ["dense.v1"],
        "files": {"weights.npz": "0" * 64, "vectorizer.json": "0" * 64},
    }
    (run / "metadata.json").write_text(json.dumps(metadata))
    result = subprocess.run(
        [sys.executable, "-m", "reviewlens.cli", "serve", str(run)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "weights.npz" in result.stderr and result.stderr.count("\n") == 1
