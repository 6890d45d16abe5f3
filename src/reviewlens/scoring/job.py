"""The job: its output folder claimed and locked, the shards still to score found, scored by an engine, summed up."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from filelock import FileLock, Timeout

from reviewlens.errors import ReviewlensError
from reviewlens.files import read_json
from reviewlens.runs import METADATA_FILE, read_metadata
from reviewlens.scoring.base import (
    LOCK_FILE,
    MANIFEST_FILE,
    OUTPUT_FORMATS,
    REPORTED_BAD_ROWS,
    BadRow,
    Events,
    ScoreJob,
    Shard,
    Summary,
    disk_full,
    path_text,
    recorded_sources,
)
from reviewlens.scoring.engines import ENGINES, RayEngine
from reviewlens.scoring.shards import find_shards, hidden

if TYPE_CHECKING:
    pass


def _manifest(job: ScoreJob) -> dict[str, Any]:
    metadata = read_metadata(job.run_dir)  # a run that is not whole is refused before any output is made
    with open(job.run_dir / METADATA_FILE, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"run": metadata.name, "run_dir": str(job.run_dir.resolve()), "metadata_sha256": digest, **job.settings()}


def _claim(job: ScoreJob, manifest: dict[str, Any]) -> None:
    """Make ``job.out`` this job's: new, empty, holding no scored shard yet, or holding the output of the same
    run with the same settings."""
    out, path = job.out, job.out / MANIFEST_FILE
    others = [p for p in out.rglob("*") if p.is_file() and p != path and not hidden(p.relative_to(out))]
    if path.is_file() and others:
        held = read_json(path, f"pass another --output or remove {out}")
        if not isinstance(held, dict) or held.get("metadata_sha256") != manifest["metadata_sha256"]:
            name = held.get("run") if isinstance(held, dict) else None
            raise ReviewlensError(
                f"--output {out} holds the scores of another run ({name or 'unknown'}); "
                "pass another --output, or remove it to score there again"
            )
        for key, value in job.settings().items():
            if held.get(key) != value:
                raise ReviewlensError(
                    f"--output {out} was scored with {key} {held.get(key)!r}, not {value!r}; "
                    "pass the same settings to resume, or another --output"
                )
        return
    if others:
        raise ReviewlensError(f"--output {out} is a folder that does not hold scores; pass a new or empty folder")
    try:
        path.write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
    except OSError as error:
        raise ReviewlensError(f"--output {out} cannot be written ({error.strerror or error}); pass another") from None


def score(
    job: ScoreJob,
    inputs: Sequence[Path],
    events: Events,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    on_plan: Callable[[list[Shard], list[Shard], list[Shard]], None] | None = None,
) -> Summary:
    """Score every shard of ``inputs`` not already in ``job.out`` from the same input; ``on_plan(to_score,
    done_before, changed)`` is told which are which before scoring starts (``changed``: in ``to_score``, output
    shards that are there but whose input changed since, or was not recorded)."""
    if job.format not in OUTPUT_FORMATS:
        raise ReviewlensError(f"unknown output format {job.format!r}; use parquet, csv or jsonl")
    if engine not in ENGINES:
        raise ReviewlensError(f"unknown engine {engine!r}; use {', '.join(ENGINES)}")
    if address is not None and engine != "ray":
        raise ReviewlensError("--address names a Ray cluster; pass it with --engine ray")
    # its settings are checked before any output is made
    scorer = RayEngine(workers, address) if engine == "ray" else ENGINES[engine](workers)
    shards = find_shards(inputs)
    manifest = _manifest(job)
    if job.out.exists() and not job.out.is_dir():
        raise ReviewlensError(f"--output {job.out} is a file; pass a folder for the scored shards")
    try:
        job.out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(job.out / LOCK_FILE, timeout=0)
        lock.acquire()
    except Timeout:
        raise ReviewlensError(
            f"another reviewlens score is writing to {job.out}; wait for it, or pass another --output"
        ) from None
    except OSError as error:
        raise ReviewlensError(
            f"--output {job.out} cannot be written ({error.strerror or error}); pass another"
        ) from None
    try:  # held once (acquired above): released however the job ends, so this process may score again
        _claim(job, manifest)
        recorded = recorded_sources(job.out)
        written = [s for s in shards if (job.out / s.output_name(job.format)).is_file()]
        done = [s for s in written if path_text(s.name) in recorded and recorded[path_text(s.name)].matches(s)]
        kept = set(done)
        changed = [s for s in written if s not in kept]
        todo = [s for s in shards if s not in kept]
        if on_plan is not None:
            on_plan(todo, done, changed)
        started = time.perf_counter()
        summary = Summary(manifest["run"], str(job.out), len(shards), len(done), 0, 0, 0.0)
        summary.shards_rescored = len(changed)
        collecting = _Collecting(events, summary.bad_rows)
        finished = 0
        try:
            for result in scorer.score(job, todo, collecting):
                summary.rows += result.rows
                summary.rows_skipped += result.bad_rows
                finished += 1
        except OSError as error:
            if not disk_full(error):
                raise
            raise ReviewlensError(
                f"--output {job.out}: the disk is full (No space left on device); free some space and run the same "
                f"command again: the {len(done) + finished} shard(s) finished are kept and skipped"
            ) from None
        summary.seconds = time.perf_counter() - started
        # A clean finish leaves only its shards and manifest. Unlinked while held: a process that opened the file
        # before cannot think it holds the lock (filelock checks the inode it locked still has a name).
        (job.out / LOCK_FILE).unlink(missing_ok=True)
    finally:
        lock.release()
    return summary


@dataclass
class _Collecting:
    """Passes events on, keeping the first bad rows for the summary."""

    events: Events
    kept: list[BadRow]

    def advance(self, shard: Shard, bytes_read: int, rows: int) -> None:
        self.events.advance(shard, bytes_read, rows)

    def bad_row(self, bad: BadRow) -> None:
        if len(self.kept) < REPORTED_BAD_ROWS:
            self.kept.append(bad)
        self.events.bad_row(bad)
