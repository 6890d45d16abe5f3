"""Load test: `reviewlens serve` against modelkit's own server (`modelkit serve`), same run, same reviews.

    python benchmarks/bench_serve.py --run /tmp/full-bigram --data /tmp/imdb/aclImdb [--duration 10]

Both servers run on 127.0.0.1, one after the other, each as a fresh process. modelkit serves the run's
``model.keras`` (the vectorizer inside) through a modelkit Model that calls it eagerly, as the issue
describes; reviewlens serves the same run with its NumPy runtime. wrk (Debian: ``apt-get install wrk``)
sends single-review requests for ``--duration`` seconds at 1, 16 and 64 connections, rotating through
5,000 test reviews; the prediction cache is off so every request reaches the model. The batch figures
are requests of 1,000 full test reviews, from 1 client and from 2 at once; reviewlens is measured there
in its default configuration (one worker with one helper process on a machine with several cores), with
``--processes 0`` (one process) and with ``--workers 2``; TensorFlow already uses every core for one request. Printed:
req/s, p50, p99, timeouts and non-2xx answers per level, batch reviews/s, peak resident memory (VmHWM,
workers included) and cold start (process start to the first answer; reviewlens: a 200 from /health).

This module is also the modelkit package ``modelkit serve`` loads (``KerasSentiment`` below).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import modelkit
import pydantic

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LEVELS = (1, 16, 64)
REVIEWS = 5000
BATCH = 1000
BATCH_REQUESTS = 10
BATCH_CLIENTS = (1, 2)
MODEL = "imdb_keras"
RUN_ENVIRONMENT = "MODELKIT_REVIEWLENS_BENCH_RUN_FILE"  # modelkit's override for the asset below


class Review(pydantic.BaseModel):
    text: str


class Sentiment(pydantic.BaseModel):
    label: str
    score: float


class KerasSentiment(modelkit.Model[Review, Sentiment]):
    """The run's Keras model (vectorizer inside), called eagerly on the batch of texts."""

    CONFIGURATIONS = {MODEL: {"asset": "reviewlens/bench-run"}}  # noqa: RUF012 - modelkit's declared type

    def _load(self) -> None:
        import tensorflow as tf

        from reviewlens.runs import load_keras_model

        self.tf = tf
        self.model = load_keras_model(self.asset_path)

    def _predict_batch(self, items: list[Review]) -> list[dict[str, Any]]:  # type: ignore[override]
        texts = self.tf.constant([[item.text] for item in items])
        scores = self.model(texts, training=False).numpy().reshape(-1)
        return [{"label": "positive" if s >= 0.5 else "negative", "score": float(s)} for s in scores]


WRK_SCRIPT = """
local bodies = {}
local next_body = 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  next_body = math.random(#bodies)
end
function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[next_body])
end
"""


def read_reviews(data: Path, count: int) -> list[str]:
    from reviewlens.data import Dataset

    texts, _ = Dataset(data).read("test")
    random.Random(0).shuffle(texts)
    return texts[:count]


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of the process and its children (the workers, with --workers)."""
    status = Path(f"/proc/{pid}/status").read_text()
    total = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += peak_rss_mb(int(child))
    return total


@contextmanager
def started(command: list[str], ready_url: str, probe: dict[str, Any] | None, env: dict[str, str]) -> Iterator[Any]:
    """A server process and its cold start: seconds from spawn to the first 200 from ``ready_url``."""
    import httpx

    # A file, not a pipe: a chatty server never blocks on a full pipe. Closed in the finally below.
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115
    begin = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise SystemExit(f"{command[0]} exited: {log.read()[-3000:]}")
            try:
                answer = httpx.post(ready_url, json=probe, timeout=30) if probe else httpx.get(ready_url, timeout=5)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - begin > 180:
                raise SystemExit(f"{command[0]} did not answer in 180 s")
            time.sleep(0.02)
        process.cold_start = time.perf_counter() - begin  # type: ignore[attr-defined]
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def parse_milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(url: str, clients: int, duration: float, script: Path, bodies: Path) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{clients}", f"-d{duration:g}s", "--timeout", "2s", "--latency", "-s", str(script)]
    output = subprocess.run([*command, url, "--", str(bodies)], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    timeouts = re.search(r"timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": parse_milliseconds(latency["50"]) if "50" in latency else float("nan"),  # nan: nothing answered
        "p99": parse_milliseconds(latency["99"]) if "99" in latency else float("nan"),
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def batch_rate(url: str, payload: Any, clients: int) -> float:
    """Reviews/s over ``clients`` concurrent clients, each sending BATCH_REQUESTS batches one after another."""
    import httpx

    # Encoded once: the clients share the servers' two cores, so they should spend as little as they can.
    body, headers = json.dumps(payload).encode(), {"content-type": "application/json"}

    def client_loop() -> None:
        with httpx.Client(timeout=120) as client:
            for _ in range(BATCH_REQUESTS):
                client.post(url, content=body, headers=headers).raise_for_status()

    with httpx.Client(timeout=120) as client:
        client.post(url, content=body, headers=headers).raise_for_status()  # warm-up
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return BATCH * BATCH_REQUESTS * clients / (time.perf_counter() - begin)


def measure(
    name: str, process: Any, urls: tuple[str, str], batch_payload: Any, files: Path, duration: float | None
) -> dict[str, Any]:
    """Single-review levels (unless ``duration`` is None), batch rates at 1 and 2 clients, memory, cold start."""
    single_url, batch_url = urls
    script, bodies = files / "rotate.lua", files / "bodies.jsonl"
    levels = {}
    if duration is not None:
        wrk(single_url, 4, 2, script, bodies)  # warm-up, not reported
        for clients in LEVELS:
            levels[clients] = wrk(single_url, clients, duration, script, bodies)
            print(f"  {name}: {clients} clients done", file=sys.stderr)
    batch = {clients: batch_rate(batch_url, batch_payload, clients) for clients in BATCH_CLIENTS}
    print(f"  {name}: batches done", file=sys.stderr)
    return {"levels": levels, "batch": batch, "rss": peak_rss_mb(process.pid), "cold": process.cold_start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("/tmp/full-bigram"), help="a bow-bigram run directory")
    parser.add_argument("--data", type=Path, default=Path("/tmp/imdb/aclImdb"), help="dataset with a test split")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency level")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    reviews = read_reviews(args.data, REVIEWS)
    batch_texts = reviews[:BATCH]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        files = Path(scratch)
        (files / "rotate.lua").write_text(WRK_SCRIPT)
        (files / "bodies.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in reviews))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(Path(__file__).parent)}
        base = f"http://127.0.0.1:{args.port}"
        urls = (f"{base}/v1/predict", f"{base}/v1/predict/batch")
        ours = [str(BIN / "reviewlens"), "serve", str(args.run), "--port", str(args.port), "--cache-size", "0"]
        # 1,000 full reviews are about 1.3 MB of JSON: over the default 1 MiB body limit, so raise it here.
        ours += ["--max-body-bytes", str(4 << 20)]
        for extra in ([], ["--processes", "0"], ["--workers", "2"]):
            name = " ".join(["reviewlens serve", *extra])
            with started([*ours, *extra], f"{base}/health", None, env) as process:
                duration = None if extra else args.duration  # the levels: the default configuration
                results[name] = measure(name, process, urls, {"texts": batch_texts}, files, duration)

        base = f"http://127.0.0.1:{args.port + 1}"
        urls = (f"{base}/predict/{MODEL}", f"{base}/predict/batch/{MODEL}")
        theirs = [str(BIN / "modelkit"), "serve", "bench_serve", "--required-models", MODEL]
        theirs += ["--host", "127.0.0.1", "--port", str(args.port + 1)]
        probe = {"text": "warming up"}
        with started(theirs, urls[0], probe, {**env, RUN_ENVIRONMENT: str(args.run)}) as process:
            payload = [{"text": t} for t in batch_texts]
            results["modelkit serve"] = measure("modelkit serve", process, urls, payload, files, args.duration)
    report(results, args)


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"run: {args.run}  |  {os.cpu_count()} CPUs  |  wrk -t1, {args.duration:g} s per level, loopback")
    print("| server | clients | req/s | p50 ms | p99 ms | timeouts | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for server, result in results.items():
        for clients, level in result["levels"].items():
            print(
                f"| {server} | {clients} | {level['rps']:,.0f} | {level['p50']:.2f} | {level['p99']:.2f} "
                f"| {level['timeouts']} | {level['non_2xx']} |"
            )
    print()
    columns = " | ".join(f"batch reviews/s, {c} client{'s' if c > 1 else ''}" for c in BATCH_CLIENTS)
    print(f"| server | {columns} | peak RSS MB | cold start s |")
    print("|---|" + "---:|" * (len(BATCH_CLIENTS) + 2))
    for server, result in results.items():
        rates = " | ".join(f"{result['batch'][c]:,.0f}" for c in BATCH_CLIENTS)
        print(f"| {server} | {rates} | {result['rss']:.0f} | {result['cold']:.2f} |")
    ours, theirs = results["reviewlens serve"], results["modelkit serve"]
    mine = [result for name, result in results.items() if name.startswith("reviewlens")]
    one_client, two_clients = (ours["batch"][c] / theirs["batch"][c] for c in BATCH_CLIENTS)
    peak = max(result["rss"] for result in mine)
    print()
    goals = [
        ("single-client p50 <= 2 ms", ours["levels"][1]["p50"] <= 2.0, f"{ours['levels'][1]['p50']:.2f} ms"),
        ("64 clients >= 1,500 req/s", ours["levels"][64]["rps"] >= 1500, f"{ours['levels'][64]['rps']:,.0f} req/s"),
        ("64 clients p99 <= 50 ms", ours["levels"][64]["p99"] <= 50, f"{ours['levels'][64]['p99']:.1f} ms"),
        ("batch >= 2x modelkit, 1 client (default configuration)", one_client >= 2, f"{one_client:.1f}x"),
        ("batch >= 2x modelkit, 2 clients (default configuration)", two_clients >= 2, f"{two_clients:.1f}x"),
        ("peak memory <= 400 MB, every reviewlens row", peak <= 400, f"at most {peak:.0f} MB"),
        ("cold start <= 3 s", ours["cold"] <= 3, f"{ours['cold']:.2f} s"),
    ]
    for goal, met, figure in goals:
        print(f"{'met    ' if met else 'NOT met'}  {goal}: {figure}")


if __name__ == "__main__":
    main()
