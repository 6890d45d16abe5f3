"""Scoring one shard: its batches read, predicted a few ahead, and written under a hidden name renamed when whole."""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import predicted_labels
from reviewlens.scoring.base import BadRow, Events, ScoreJob, Shard, ShardResult, Source, path_text, record_source
from reviewlens.scoring.readers import READERS, Batch, review_text

if TYPE_CHECKING:
    from reviewlens.runs import Run


def output_schema(with_ids: bool) -> pa.Schema:
    """The columns of an output shard: the input's ``id`` or its ``file`` and ``row``; ``score`` (the
    probability of the run's last label, as ``Run.predict``), ``label`` and the run's name."""
    where = [pa.field("id", pa.string())] if with_ids else [pa.field("file", pa.string()), pa.field("row", pa.int64())]
    return pa.schema(
        [*where, pa.field("score", pa.float32()), pa.field("label", pa.string()), pa.field("run", pa.string())]
    )


class _Writer:
    """An output shard in one format, written a table at a time."""

    def __init__(self, path: Path, output_format: str, schema: pa.Schema):
        self.path, self.format, self.schema = path, output_format, schema
        self._closed = False
        self._handle: Any
        # Opened by their bytes' names: an input's name that is not UTF-8 gives an output name that is not either.
        if output_format == "parquet":
            self._handle = pq.ParquetWriter(pa.OSFile(os.fsencode(path), "wb"), schema)
        elif output_format == "csv":
            self._handle = pa_csv.CSVWriter(pa.OSFile(os.fsencode(path), "wb"), schema)
        else:
            self._handle = open(path, "wb")  # noqa: SIM115 (closed in close())
            self._encoder = msgspec.json.Encoder()

    def write(self, table: pa.Table) -> None:
        if self.format == "jsonl":
            self._handle.write(b"".join(self._encoder.encode(r) + b"\n" for r in table.to_pylist()))
        else:
            self._handle.write_table(table)

    def close(self) -> None:
        self._handle.close()
        self._closed = True
        with open(self.path, "rb+") as handle:  # on disk before the rename says it is done
            os.fsync(handle.fileno())

    def discard(self) -> None:
        """Let go of the file after a failure (it is removed, never renamed)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._handle.close()


class Predictions(Protocol):
    """Where an engine's batches are predicted: ``submit`` starts one, ``result`` waits for it; up to ``ahead``
    batches are in flight while the next is read (``LocalEngine``: helper processes, or this one)."""

    ahead: int

    def submit(self, texts: list[str]) -> Future[np.ndarray]: ...

    def result(self, future: Future[np.ndarray], texts: list[str]) -> np.ndarray: ...


def score_shard(run: Run, job: ScoreJob, shard: Shard, events: Events, predictions: Predictions) -> ShardResult:
    """Score one shard into ``job.out``, in order: written under a hidden name and renamed when whole."""
    started = time.perf_counter()
    source = Source.of(shard)
    final = job.out / shard.output_name(job.format)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.partial")
    writer: _Writer | None = None
    pending: deque[tuple[Batch, list[int], list[str], Future[np.ndarray]]] = deque()
    rows = bad_rows = read = 0

    def write_oldest() -> None:
        nonlocal rows, read
        batch, kept, texts, future = pending.popleft()
        if kept:
            assert writer is not None
            writer.write(_scored(run, shard, batch, kept, predictions.result(future, texts), writer.schema))
        rows += len(kept)
        events.advance(shard, batch.position - read, len(kept))
        read = batch.position

    try:
        for batch in READERS[shard.format](shard, job):
            if writer is None and batch.rows:  # the first rows say whether the shard has ids
                writer = _Writer(temporary, job.format, output_schema(batch.ids is not None))
            texts, kept = [], []
            for i, value in enumerate(batch.values):
                try:
                    texts.append(review_text(value, job.max_review_bytes))
                    kept.append(i)
                except ValueError as error:
                    batch.bad.append(BadRow(path_text(shard.path), batch.rows[i], str(error)))
            for bad in sorted(batch.bad, key=lambda b: b.row):
                if job.strict:
                    raise ReviewlensError(f"{bad} (--strict); fix or drop the row, or score without --strict")
                events.bad_row(bad)
            bad_rows += len(batch.bad)
            pending.append(
                (
                    batch,
                    kept,
                    texts,
                    predictions.submit(texts) if texts else ready(np.zeros((0, len(run.labels)), np.float32)),
                )
            )
            if len(pending) > predictions.ahead:
                write_oldest()
        while pending:
            write_oldest()
        if writer is None:  # no rows: an empty output shard
            writer = _Writer(temporary, job.format, output_schema(False))
        writer.close()
        os.replace(temporary, final)
        record_source(job.out, source)
    finally:
        for *_, future in pending:
            future.cancel()
        if writer is not None:
            writer.discard()
        temporary.unlink(missing_ok=True)
    return ShardResult(shard, rows, bad_rows, time.perf_counter() - started)


def ready(scores: np.ndarray) -> Future[np.ndarray]:
    future: Future[np.ndarray] = Future()
    future.set_result(scores)
    return future


def _scored(run: Run, shard: Shard, batch: Batch, kept: list[int], scores: np.ndarray, schema: pa.Schema) -> pa.Table:
    """The output rows of a batch's ``kept`` rows."""
    where: dict[str, pa.Array]
    if batch.ids is not None:
        where = {"id": pa.array([batch.ids[i] for i in kept], pa.string())}
    else:
        where = {"file": pa.array([path_text(shard.path)] * len(kept), pa.string()),
                 "row": pa.array([batch.rows[i] for i in kept], pa.int64())}  # fmt: skip
    # As Run.answers: the label decided from each row of probabilities, the score positive's for two labels
    # and the answered label's for more.
    index = predicted_labels(scores, run.threshold)
    labels = np.asarray(run.labels, dtype=object)[index]
    score = scores[:, -1] if scores.shape[1] == 2 else scores[np.arange(len(index)), index]
    return pa.table(
        {**where, "score": pa.array(score, pa.float32()), "label": pa.array(labels, pa.string()),
         "run": pa.array([run.name] * len(kept), pa.string())},
        schema=schema,
    )  # fmt: skip
