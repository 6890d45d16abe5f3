"""Side by side: this checkout against another one (the code before a change), on what a user sees.

    python benchmarks/bench_versions.py --baseline ../baseline [--archive ../shared/data/aclImdb-labeled.tar.gz]
        [--rounds 3] [--duration 5]

``--baseline`` is another checkout of reviewlens (``git worktree add ../baseline <commit>``). Both run with
this Python, each with its own ``src`` first on ``PYTHONPATH``, as fresh processes on the same unpacked
data, alternating within every round. Per round and contender:

- train: ``reviewlens train --recipe bow-bigram`` on the full data, wall seconds from process start to
  exit (imports included), and the test accuracy it reports;
- predict: a fresh process loads that run and scores the 25,000 test reviews in one call (reviews/s,
  best of 3 calls) and reports the load seconds;
- cold: ``reviewlens predict RUN "text"`` wall seconds;
- serve: ``reviewlens serve RUN`` (cache off): seconds to the first 200 from /health, wrk at 1 and
  64 connections for ``--duration`` seconds (p50, p99, req/s), and requests of 1,000 full test reviews
  from one client (reviews/s).

Printed: a table of medians per contender and the ratio current / baseline. wrk comes from Debian.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb-labeled.tar.gz"
COLD_TEXT = "A wonderful film with a superb cast."


def predict_worker(run_dir: str, data: str) -> None:
    """In a fresh process: load the run, score the test split; print JSON."""
    begin = time.perf_counter()
    import reviewlens
    from reviewlens.data import Dataset

    run = reviewlens.load(run_dir)
    loaded = time.perf_counter() - begin
    texts, _ = Dataset(data).read("test")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run.predict(texts)
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"load_s": loaded, "reviews_per_s": len(texts) / best}))


def environment(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{checkout / 'src'}{os.pathsep}{HERE}"}


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    begin = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - begin, done.stdout


def one_round(checkout: Path, data: Path, scratch: Path, duration: float, port: int) -> dict[str, float]:
    from bench_serve import WRK_SCRIPT, batch_rate, read_reviews, started, wrk

    env = environment(checkout)
    cli = [sys.executable, "-m", "reviewlens.cli"]
    run_dir = Path(tempfile.mkdtemp(dir=scratch)) / "run"
    seconds, out = timed([*cli, "train", "--recipe", "bow-bigram", "--data", str(data), "--out", str(run_dir),
                          "--json"], env)  # fmt: skip
    result: dict[str, float] = {"train_s": seconds, "test_accuracy": json.loads(out)["test_accuracy"]}
    _, out = timed([sys.executable, __file__, "--worker", str(run_dir), str(data)], env)
    result |= json.loads(out)
    result["cold_predict_s"], _ = timed([*cli, "predict", str(run_dir), COLD_TEXT], env)

    reviews = read_reviews(data, 5000)
    (scratch / "rotate.lua").write_text(WRK_SCRIPT)
    (scratch / "bodies.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in reviews))
    base = f"http://127.0.0.1:{port}"
    serve = [*cli, "serve", str(run_dir), "--port", str(port), "--cache-size", "0", "--max-body-bytes", str(4 << 20)]
    with started(serve, f"{base}/health", None, env) as process:
        result["serve_ready_s"] = process.cold_start
        wrk(f"{base}/v1/predict", 4, 1, scratch / "rotate.lua", scratch / "bodies.jsonl")  # warm-up
        for clients in (1, 64):
            level = wrk(f"{base}/v1/predict", clients, duration, scratch / "rotate.lua", scratch / "bodies.jsonl")
            result[f"serve_{clients}_p50_ms"] = level["p50"]
            result[f"serve_{clients}_p99_ms"] = level["p99"]
            result[f"serve_{clients}_rps"] = level["rps"]
        result["serve_batch_reviews_per_s"] = batch_rate(f"{base}/v1/predict/batch", {"texts": reviews[:1000]}, 1)
    shutil.rmtree(run_dir.parent, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another reviewlens checkout (required)")
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk level")
    parser.add_argument("--port", type=int, default=18180)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        predict_worker(*args.worker)
        return
    if args.baseline is None:
        parser.error("--baseline is required")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    contenders = {"baseline": args.baseline.resolve(), "current": ROOT}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="bench-versions-") as tmp:
        scratch = Path(tmp)
        with tarfile.open(args.archive) as archive:
            archive.extractall(scratch, filter="data")
        data = scratch / "aclImdb"
        for round_ in range(args.rounds):
            order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
            for name in order:
                print(f"round {round_ + 1}: {name}", file=sys.stderr)
                results[name].append(one_round(contenders[name], data, scratch, args.duration, args.port))
    report(results, args)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    print(f"{os.cpu_count()} CPUs | {args.rounds} rounds, alternating | medians | baseline: {args.baseline}")
    print("| measure | baseline | current | current / baseline |")
    print("|---|---:|---:|---:|")
    for key in results["current"][0]:
        base = statistics.median(r[key] for r in results["baseline"])
        current = statistics.median(r[key] for r in results["current"])
        print(f"| {key} | {base:,.4g} | {current:,.4g} | {current / base:.3f} |")
    print()
    print("every round:", json.dumps(results))


if __name__ == "__main__":
    main()
