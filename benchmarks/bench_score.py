"""Bulk scoring: `reviewlens score` end to end on a million reviews vs `Run.predict` on the same texts.

    python benchmarks/bench_score.py --run /tmp/soak/bigram [--archive ../shared/data/aclImdb-labeled.tar.gz]
        [--rows 1000000] [--format parquet|jsonl] [--workers N] [--keep DIR]

Writes the full data's 25,000 test reviews, repeated to ``--rows`` rows (id, text), as one Parquet or
JSON lines file, plus a file of a tenth of the rows; runs `reviewlens score RUN FILE --output OUT --json`
on each as a fresh process (imports, loading the run, reading, scoring and writing included); and times
`reviewlens.load(run).predict` on the 25,000 texts in this process. Printed: rows, seconds and reviews/s
of each, and the peak resident memory (ru_maxrss) of each `score` process (its helper processes, each with
its own copy of the run, not included): flat memory means the same peak for both sizes; and the CPU seconds
of it and its helpers, which other jobs on the machine do not inflate as they do the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb-labeled.tar.gz"


def write_input(texts: list[str], rows: int, path: Path) -> Path:
    """``rows`` rows of ``texts`` over and over, ids ``r0``, ``r1``, ..., written 25,000 rows at a time."""
    writer = (
        pq.ParquetWriter(path, pa.schema([("id", pa.string()), ("text", pa.string())]))
        if path.suffix == ".parquet"
        else None
    )
    with open(path, "wb") if writer is None else open(os.devnull, "wb") as lines:
        for start in range(0, rows, len(texts)):
            chunk = texts[: min(len(texts), rows - start)]
            ids = [f"r{start + i}" for i in range(len(chunk))]
            if writer is not None:
                writer.write_table(pa.table({"id": ids, "text": chunk}))
            else:
                lines.write(
                    "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(ids, chunk, strict=True)).encode()
                )
    if writer is not None:
        writer.close()
    return path


def run_score(run: Path, source: Path, out: Path, workers: int | None) -> dict[str, float]:
    """`reviewlens score` as a fresh process: its summary, wall time and peak RSS."""
    command = [sys.executable, "-m", "reviewlens.cli", "score", str(run), str(source), "--output", str(out), "--json"]
    command += [] if workers is None else ["--workers", str(workers)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not the largest of all children
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"score failed on {source} with exit code {os.waitstatus_to_exitcode(status)}")
    summary = json.loads(stdout)
    peak = usage.ru_maxrss
    return {"rows": summary["rows"], "wall_s": wall, "reviews_per_s_wall": summary["rows"] / wall,
            "reviews_per_s_scoring": summary["reviews_per_s"], "peak_rss_mb": peak / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--workers", type=int, help="score's --workers [default: its own, the cores].")
    parser.add_argument("--keep", type=Path, help="Write the inputs and outputs here (default: a temporary folder).")
    args = parser.parse_args()

    import reviewlens
    from reviewlens.data import resolve

    texts = resolve(args.archive).dataset.read("test")[0]
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="bench-score-"))
    scratch.mkdir(parents=True, exist_ok=True)
    results = {}
    for rows in (args.rows // 10, args.rows):  # the small one first: ru_maxrss of children only grows
        source = scratch / f"reviews-{rows}.{args.format}"
        if not source.exists():  # --keep: made once
            write_input(texts, rows, source)
        results[rows] = run_score(args.run, source, scratch / f"out-{rows}-{time.time_ns()}", args.workers)
        print(
            f"score, {rows:,} rows ({source.stat().st_size / 2**20:,.0f} MB {args.format}): {results[rows]}", flush=True
        )

    run = reviewlens.load(args.run)
    run.predict(texts[:1000])  # warm
    started, cpu_started = time.perf_counter(), time.process_time()
    run.predict(texts)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"Run.predict, {len(texts):,} test reviews in one call: {seconds:.2f} s, "
        f"{len(texts) / seconds:,.0f} reviews/s, CPU {cpu:.2f} s"
    )
    print(f"inputs and outputs in {scratch}")


if __name__ == "__main__":
    main()
