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
def server(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str, float]]:
    """A ``reviewlens serve`` process, its base URL, and the seconds from start to a 200 from /health."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "reviewlens.cli", "serve", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
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
    return process.returncode == 0 and "Finished server process" in output


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


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(trained_run: Path):
    with server(str(trained_run), "--max-wait-ms", "1500") as (process, url, _):
        answers: list[httpx.Response] = []
        requests = [("/v1/predict", {"text": f"in flight {i}"}) for i in range(3)]
        requests.append(("/v1/predict/batch", {"texts": [f"review {i}" for i in range(200)]}))

        def ask(path: str, body: object) -> None:
            answers.append(httpx.post(f"{url}{path}", json=body, timeout=30))

        clients = [threading.Thread(target=ask, args=request) for request in requests]
        for client in clients:
            client.start()
        time.sleep(0.5)  # the requests now wait in the batcher for 1.5 s
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no new connections once stopping
            httpx.get(f"{url}/health", timeout=2)
        for client in clients:
            client.join(timeout=30)
        output, _ = process.communicate(timeout=30)
    assert sorted(answer.status_code for answer in answers) == [200] * 4
    assert {len(answer.json()) for answer in answers if answer.request.url.path.endswith("batch")} == {200}
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


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_run_that_cannot_be_loaded_fails_in_one_line_before_binding(trained_run: Path, tmp_path: Path, workers: str):
    from .test_serving import corrupt_copy

    broken = corrupt_copy(trained_run, tmp_path / "broken")
    port = str(free_port())
    command = [sys.executable, "-m", "reviewlens.cli", "serve", str(broken), "--workers", workers, "--port", port]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and f"{broken}/weights.npz cannot be read" in result.stderr
    assert "Started" not in result.stdout + result.stderr  # uvicorn never ran


def test_an_api_key_from_the_environment_and_no_review_in_the_logs(trained_run: Path):
    review = "a canary review that must never reach the log"
    with server(str(trained_run), env={"REVIEWLENS_API_KEY": "k3y"}) as (process, url, _):
        key = {"Authorization": "Bearer k3y"}
        assert httpx.post(f"{url}/v1/predict", json={"text": review}).status_code == 401
        assert httpx.post(f"{url}/v1/predict", json={"text": review}, headers=key).status_code == 200
        assert httpx.post(f"{url}/v1/predict/batch", json={"texts": [review, ""]}, headers=key).status_code == 200
        assert httpx.post(f"{url}/v1/explain", json={"text": review}, headers=key).status_code == 200
        echoed = httpx.post(f"{url}/v1/predict/batch", json={"texts": review}, headers=key)
        assert echoed.status_code == 422 and review in echoed.text  # the client may see its own input
        assert httpx.post(f"{url}/v1/predict", json={"text": review * 3000}, headers=key).status_code == 413
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert stopped_cleanly(process, output)
    assert "canary" not in output and "warning" not in output


def test_a_public_host_without_a_key_is_warned_about(trained_run: Path):
    with server(str(trained_run), "--host", "0.0.0.0") as (process, _, _):
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--host 0.0.0.0" in warnings[0] and "--api-key" in warnings[0]


def raw_request(path: str = "/health", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


def read_response(connection: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from ``connection``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += connection.recv(65536)
    return head


def closed_after(connection: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``connection`` (reading and discarding what it sends), at most ``limit``."""
    start = time.perf_counter()
    connection.settimeout(limit)
    while connection.recv(65536):
        pass
    return time.perf_counter() - start


def test_slow_or_huge_headers_are_cut_off_and_idle_keep_alive_is_not(trained_run: Path):
    with server(str(trained_run), "--header-timeout", "1") as (_, url, _):
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        with socket.create_connection(address) as silent:  # connects, sends nothing
            assert closed_after(silent, 5) < 2
        with socket.create_connection(address) as slow:  # one byte every 0.2 s: never done in time
            start = time.perf_counter()
            with pytest.raises(OSError):
                for byte in raw_request(extra=b"X-Slow: " + b"a" * 100 + b"\r\n"):
                    slow.sendall(bytes([byte]))
                    time.sleep(0.2)
                    if time.perf_counter() - start > 5:
                        raise AssertionError("the slow client was not cut off")
            assert time.perf_counter() - start < 2.5
        for extra in (b"X-Big: " + b"a" * 70_000 + b"\r\n", b"".join(b"X-%d: a\r\n" % i for i in range(150))):
            with socket.create_connection(address) as greedy:
                greedy.sendall(raw_request(extra=extra))
                assert read_response(greedy).startswith(b"HTTP/1.1 431 ")
        with socket.create_connection(address) as patient:  # keep-alive: idle longer than the header timeout
            for _ in range(2):
                patient.sendall(raw_request())
                assert read_response(patient).startswith(b"HTTP/1.1 200 ")
                time.sleep(1.5)
        assert httpx.get(f"{url}/health").status_code == 200


def stalled_upload(address: tuple[str, int], length: int = 100) -> socket.socket:
    """A connection that sends a POST's headers and the first byte of its ``length``-byte body, then nothing."""
    connection = socket.create_connection(address)
    head = f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    connection.sendall(head.encode() + b"{")
    return connection


def test_slow_bodies_are_cut_off_and_connections_are_capped_beside_a_served_client(trained_run: Path):
    with server(str(trained_run), "--body-timeout", "3", "--max-connections", "8") as (_, url, _):
        address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        with socket.create_connection(address) as slow:  # a whole request at one byte every 0.2 s
            start = time.perf_counter()
            with pytest.raises(OSError):
                slow.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n")
                for byte in b"{" + b" " * 38 + b"}":
                    slow.sendall(bytes([byte]))
                    time.sleep(0.2)
                    if time.perf_counter() - start > 15:
                        raise AssertionError("the slow body was not cut off")
            assert time.perf_counter() - start < 8
        stalled = [stalled_upload(address) for _ in range(7)]
        started = time.perf_counter()
        served = httpx.post(f"{url}/v1/predict", json={"text": "a fine film"}, timeout=30)
        assert served.status_code == 200 and time.perf_counter() - started < 3  # beside them, not after them
        stalled.append(stalled_upload(address))  # the eighth: now at the cap
        refused = httpx.post(f"{url}/v1/predict", json={"text": "a fine film"}, timeout=30)
        assert refused.status_code == 503 and time.perf_counter() - started < 3  # at once, not held
        for connection in stalled:
            with connection:
                connection.settimeout(15)
                assert read_response(connection).startswith(b"HTTP/1.1 408 ")
        assert time.perf_counter() - started < 10
        assert httpx.post(f"{url}/v1/predict", json={"text": "a fine film"}, timeout=30).status_code == 200


def test_sigterm_beside_a_stalled_upload_exits_after_the_grace_period_with_one_line(trained_run: Path):
    with server(str(trained_run), "--body-timeout", "60", "--grace-period", "1") as (process, url, _):
        with stalled_upload(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as stalled:
            assert httpx.get(f"{url}/health").status_code == 200  # the upload's headers are in by now
            process.send_signal(signal.SIGTERM)
            stalled.settimeout(20)
            assert read_response(stalled).startswith(b"HTTP/1.1 503 ")
        output, _ = process.communicate(timeout=20)
    assert stopped_cleanly(process, output), output
    assert "Traceback" not in output and "Exception" not in output and "ERROR" not in output, output
    [line] = [line for line in output.splitlines() if "grace period" in line]
    assert "after the 1 s grace period" in line


def test_a_port_in_use_is_one_line_and_exit_code_2(trained_run: Path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "reviewlens.cli", "serve", str(trained_run), "--port", str(port)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: --port {port} is in use on 127.0.0.1; stop what serves there, or pass another --port"
    )
