"""What a scoring job is: its settings, its shards, what each shard was scored from, its events and summary."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from reviewlens.data.sources import MAX_REVIEW_BYTES
from reviewlens.errors import ReviewlensError
from reviewlens.runs import sha256_of

if TYPE_CHECKING:
    pass


OutputFormat = Literal["parquet", "csv", "jsonl"]
OUTPUT_FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")
#: Input formats by file suffix (before an optional ``.gz``).
INPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".txt": "text"}
MANIFEST_FILE = "score.json"
#: A JSON line per output shard written, the input it was scored from (a shard's last line counts).
SOURCES_FILE = ".score.sources.jsonl"
LOCK_FILE = ".score.lock"
#: Rows read, scored and written at a time: large enough that per-call costs vanish, small enough to stay flat.
BATCH_ROWS = 4096
#: Bytes read from a CSV, JSON lines or text shard at a time.
BLOCK_BYTES = 4 << 20
#: Bad rows printed one by one; the rest are counted.
REPORTED_BAD_ROWS = 100


@dataclass(frozen=True)
class Shard:
    """One input file: ``name`` (its path under the INPUT it was found in) names its output shard."""

    path: Path
    name: str
    format: str
    compressed: bool

    def output_name(self, output_format: str) -> str:
        return f"{self.name}.{output_format}"


class Source(msgspec.Struct, frozen=True):
    """What an output shard was scored from: its input shard's path, size, modification time and SHA-256."""

    shard: str  # ``Shard.name``
    path: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, shard: Shard) -> Source:
        """The input as it is now, taken before it is read: a change while it is scored shows at the next run."""
        try:
            info = shard.path.stat()
            return cls(path_text(shard.name), path_text(shard.path), info.st_size, info.st_mtime_ns,
                       sha256_of(shard.path))  # fmt: skip
        except OSError as error:
            raise ReviewlensError(f"{shard.path} cannot be read ({error.strerror or error}); check it") from None

    def matches(self, shard: Shard) -> bool:
        """Whether the shard's input is still what was scored: the same size, and the same modification time (as
        make and rsync judge) or, where that moved, the same content."""
        try:
            info = shard.path.stat()
            return info.st_size == self.size and (
                info.st_mtime_ns == self.mtime_ns or sha256_of(shard.path) == self.sha256
            )
        except OSError:  # unreadable now: scored again, where its reader says why
            return False


def recorded_sources(out: Path) -> dict[str, Source]:
    """The last source recorded for each shard in ``out`` (a line a crash cut short is passed over)."""
    try:
        lines = (out / SOURCES_FILE).read_bytes().splitlines()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ReviewlensError(f"{out / SOURCES_FILE} cannot be read ({error.strerror or error}); check it") from None
    decoder = msgspec.json.Decoder(Source)
    found = {}
    for line in lines:
        with contextlib.suppress(msgspec.DecodeError):  # ValidationError too
            source = decoder.decode(line)
            found[source.shard] = source
    return found


def record_source(out: Path, source: Source) -> None:
    """Append what a shard just written was scored from (after its rename: a kill between the two leaves an
    output shard with no record, or an older one, and it is scored again)."""
    with open(out / SOURCES_FILE, "ab") as handle:
        handle.write(msgspec.json.encode(source) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class ScoreJob:
    """What to score and how: the settings every shard of one output folder shares."""

    run_dir: Path
    out: Path
    format: OutputFormat = "parquet"
    text_column: str = "text"
    #: The column of ids to carry; ``None``: ``id`` where a shard has one, else the file and row number.
    id_column: str | None = None
    strict: bool = False
    max_review_bytes: int = MAX_REVIEW_BYTES

    def settings(self) -> dict[str, Any]:
        """What the manifest pins besides the run: output of other settings would not match these shards."""
        return {"format": self.format, "text_column": self.text_column, "id_column": self.id_column}


@dataclass(frozen=True)
class BadRow:
    file: str
    row: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.reason}"


@dataclass(frozen=True)
class ShardResult:
    shard: Shard
    rows: int
    bad_rows: int
    seconds: float


class Events(Protocol):
    """What scoring tells its caller as it goes (the CLI: a progress bar and bad-row lines)."""

    def advance(self, shard: Shard, bytes_read: int, rows: int) -> None: ...

    def bad_row(self, bad: BadRow) -> None: ...


class Engine(Protocol):
    """Where shards are scored: each is passed to ``score_shard`` once, in any order, results as they finish."""

    def score(self, job: ScoreJob, shards: Sequence[Shard], events: Events) -> Iterator[ShardResult]: ...


@dataclass
class Summary:
    run: str
    out: str
    shards: int
    shards_done_before: int
    rows: int
    rows_skipped: int
    seconds: float
    bad_rows: list[BadRow] = field(default_factory=list)  # the first REPORTED_BAD_ROWS
    shards_rescored: int = 0  # done before, scored again: their input changed since (or was not recorded)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "out": self.out,
            "shards": self.shards,
            "shards_done_before": self.shards_done_before,
            "shards_rescored": self.shards_rescored,
            "rows": self.rows,
            "rows_skipped": self.rows_skipped,
            "seconds": round(self.seconds, 3),
            "reviews_per_s": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
            "bad_rows": [{"file": b.file, "row": b.row, "reason": b.reason} for b in self.bad_rows],
        }


def path_text(path: str | os.PathLike[str]) -> str:
    """A path as UTF-8 text (for the output's ``file`` column and the sources record): the bytes of a name that is
    not UTF-8 written as ``\\xe9`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def disk_full(error: Exception) -> bool:
    return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(error)
