"""Bulk scoring: `reviewlens score` end to end on a million reviews, side by side with `Run.predict`, the Python
tokenizer it replaced, and fastText's `predict`, in the same run.

    python benchmarks/bench_score.py --run /tmp/soak/bigram [--archive ../shared/data/aclImdb-labeled.tar.gz]
        [--rows 1000000] [--formats parquet,jsonl] [--repeat 3] [--workers N] [--keep DIR] [--baseline-src SRC]

Writes the full data's 25,000 test reviews, repeated to ``--rows`` rows (id, text), as one Parquet and one JSON
lines file, plus a Parquet file of a tenth of the rows; scores the small and the large Parquet file once for
`score`'s peak resident memory (ru_maxrss, helper processes not included: flat memory means the same peak for
both sizes); then, ``--repeat`` rounds, each timing in turn:

- `reviewlens score RUN FILE --output OUT --json` per format, as a fresh process (imports, loading the run,
  reading, scoring and writing included), with the CPU seconds of it and its helpers, which other jobs on the
  machine do not inflate as they do the wall time; with ``--baseline-src``, the same command with reviewlens
  imported from another checkout (e.g. one from before the Arrow tokenizer) right after;
- `reviewlens.load(run).predict_proba` on the 25,000 texts in this process (the NumPy runtime, Arrow tokenizer);
- the same run's vectors from the Python tokenizer (``text._token_ids``, what ``transform`` used before the
  Arrow path) and the same model: the runtime as it was;
- fastText (``fasttext`` from fasttext-numpy2), trained here once on the 25,000 train reviews (2 threads, word
  bigrams, 10 epochs, its own lowercasing and punctuation split), predicting the same 25,000 texts in one call;
  its text preparation is timed apart (``fasttext_prepare``), as fastText reads prepared lines only.

Rounds interleave the contenders, as the machine is shared and noisy; the summary gives each one's median and
every round's figure, each ratio per round and its median, and the ratio of the rates per CPU-second.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if TYPE_CHECKING:
    import numpy as np

    from reviewlens.runs import Run

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


def run_score(run: Path, source: Path, out: Path, workers: int | None, src: Path | None = None) -> dict[str, float]:
    """`reviewlens score` as a fresh process (reviewlens imported from ``src`` where given): its summary, wall
    time and peak RSS."""
    command = [sys.executable, "-m", "reviewlens.cli", "score", str(run), str(source), "--output", str(out), "--json"]
    command += [] if workers is None else ["--workers", str(workers)]
    started = time.perf_counter()
    environment = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
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


def python_tokenizer_predict(run: Run, texts: list[str]) -> np.ndarray:
    """The run's probabilities with the vectors made by the Python tokenizer (the runtime before Arrow)."""
    from reviewlens.text.words import BagOfWords, _chunks, _stack, _token_ids

    predictor = run.predictor
    bow = predictor.preprocessor
    assert isinstance(bow, BagOfWords)
    tables = bow._fitted_tables()
    counted = bow.output_mode != "multi_hot"
    parts = [
        tables.vectorize(*_token_ids(chunk, tables.lookup, bow.standardize), len(chunk), len(bow.vocabulary), counted)
        for chunk in _chunks(texts)
    ]
    return predictor.calibrated(predictor.predict_vectors(bow._finish(_stack(parts, len(bow.vocabulary)))))


_PUNCTUATION = re.compile(r"([!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~'])")


def fasttext_line(text: str) -> str:
    """A review as fastText reads it: one line, lowercased, <br /> removed, punctuation apart (as in
    bench_bow_bigram.py)."""
    text = text.replace("<br />", " ").lower()
    return " ".join(_PUNCTUATION.sub(r" \1 ", text).split())


def train_fasttext(texts: list[str], labels: list[int], scratch: Path) -> object:
    import fasttext

    rows = [f"__label__{label} {fasttext_line(text)}\n" for text, label in zip(texts, labels, strict=True)]
    random.Random(0).shuffle(rows)
    (scratch / "fasttext-train.txt").write_text("".join(rows), encoding="utf-8")
    return fasttext.train_supervised(
        input=str(scratch / "fasttext-train.txt"), epoch=10, wordNgrams=2, thread=2, verbose=0
    )


def timed(function: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``function()`` in this process."""
    started, cpu_started = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - started, time.process_time() - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="parquet,jsonl", help="Comma-separated: parquet, jsonl.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, help="score's --workers [default: its own, the cores].")
    parser.add_argument(
        "--baseline-src", type=Path, help="Also time `score` with reviewlens from this src folder (an older checkout)."
    )
    parser.add_argument("--keep", type=Path, help="Write the inputs and outputs here (default: a temporary folder).")
    args = parser.parse_args()

    import numpy as np

    import reviewlens
    from reviewlens.data import resolve

    dataset = resolve(args.archive).dataset
    texts = dataset.read("test")[0]
    train_texts, train_labels = dataset.read("train")
    non_ascii = sum(not text.isascii() for text in texts) / len(texts)
    print(f"test reviews with a non-ASCII character (Arrow handles them exactly too): {non_ascii:.2%}", flush=True)
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="bench-score-"))
    scratch.mkdir(parents=True, exist_ok=True)

    def source(rows: int, file_format: str) -> Path:
        path = scratch / f"reviews-{rows}.{file_format}"
        if not path.exists():  # --keep: made once
            write_input(texts, rows, path)
        return path

    # Peak memory first, while this process is small: a child's ru_maxrss counts this process's pages at the fork.
    for rows in (args.rows // 10, args.rows):
        result = run_score(args.run, source(rows, "parquet"), scratch / f"out-{time.time_ns()}", args.workers)
        print(f"score, {rows:,} rows parquet, peak RSS {result['peak_rss_mb']:.0f} MB: {result}", flush=True)

    run = reviewlens.load(args.run)
    run.predict_proba(texts[:1000])  # warm
    np.testing.assert_allclose(python_tokenizer_predict(run, texts[:2000]), run.predict_proba(texts[:2000]), atol=1e-6)
    model = train_fasttext(train_texts, [int(label) for label in train_labels], scratch)
    lines = [fasttext_line(t) for t in texts]
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    rates: dict[str, list[float]] = {}
    cpu_rates: dict[str, list[float]] = {}

    def record(name: str, rows: int, wall: float, cpu: float) -> None:
        rates.setdefault(name, []).append(rows / wall)
        cpu_rates.setdefault(name, []).append(rows / cpu)
        print(f"  {name}: {rows:,} rows, {wall:.2f} s, {rows / wall:,.0f} reviews/s, CPU {cpu:.2f} s", flush=True)

    for round_ in range(1, args.repeat + 1):
        print(f"round {round_}:", flush=True)
        for file_format in formats:
            path = source(args.rows, file_format)
            result = run_score(args.run, path, scratch / f"out-{time.time_ns()}", args.workers)
            record(f"score {file_format}", int(result["rows"]), result["wall_s"], result["cpu_s"])
            if args.baseline_src is not None:
                result = run_score(args.run, path, scratch / f"out-{time.time_ns()}", args.workers, args.baseline_src)
                record(f"score {file_format}, baseline", int(result["rows"]), result["wall_s"], result["cpu_s"])
        record("Run.predict_proba (Arrow tokenizer)", len(texts), *timed(lambda: run.predict_proba(texts)))
        record("Python tokenizer, same model", len(texts), *timed(lambda: python_tokenizer_predict(run, texts)))
        record("fastText prepare (Python)", len(texts), *timed(lambda: [fasttext_line(t) for t in texts]))
        record("fastText predict", len(texts), *timed(lambda: model.predict(lines)))  # type: ignore[attr-defined]

    print(f"\nmedians over {args.repeat} rounds (reviews/s by wall time; by CPU time of the process and its helpers):")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(
            f"  {name}: {medians[name]:,.0f}/s wall (rounds: {', '.join(f'{v:,.0f}' for v in values)}), "
            f"{statistics.median(cpu_rates[name]):,.0f}/s per CPU-second"
        )
    # Ratios per round (its contenders ran within a minute or two of each other), then their median; and the
    # ratio of the CPU rates' medians, which other jobs on the machine disturb less.
    pairs = [
        (name, "fastText predict") for name in rates if name.startswith(("score", "Run.")) and "baseline" not in name
    ]
    pairs.append(("Run.predict_proba (Arrow tokenizer)", "Python tokenizer, same model"))
    pairs += [(name, f"{name}, baseline") for name in list(rates) if f"{name}, baseline" in rates]
    for name, other in pairs:
        per_round = [a / b for a, b in zip(rates[name], rates[other], strict=True)]
        cpu = statistics.median(cpu_rates[name]) / statistics.median(cpu_rates[other])
        print(
            f"  {name} / {other}: {statistics.median(per_round):.2f}x wall "
            f"(rounds: {', '.join(f'{r:.2f}' for r in per_round)}), {cpu:.2f}x per CPU-second"
        )
    print(f"inputs and outputs in {scratch}")


if __name__ == "__main__":
    main()
