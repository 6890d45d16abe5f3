"""``reviewlens score``: score files of reviews with a run, streaming, one output shard per input shard.

An input is a file or a directory of shards: CSV, JSON lines, Parquet, or plain text (one review per line),
each but Parquet optionally ``.gz``. Each shard is read in record batches (pyarrow's readers; JSON lines and
text through msgspec and a line splitter, so that one bad line is one bad row, not a failed block), scored
with ``Run.predict`` and written as it goes, so memory stays flat however large the input. A shard's output is
written under a hidden temporary name and renamed when whole, then its input is recorded (size, modification
time, SHA-256) in ``.score.sources.jsonl``: a rerun skips an output shard whose input is still what it was
scored from, and scores again one whose input changed (or is not recorded). ``score.json`` in the output folder
names the run (its metadata's SHA-256) and the settings; another run's or other settings' output folder is refused.

A bad row (a missing or non-string text, invalid UTF-8, a text over ``max_review_bytes``, a blank text, a
line that is not JSON, a CSV row with the wrong number of fields) is reported with its file and row, counted
and left out; ``strict`` makes the first one a ``ReviewlensError`` instead. Rows are numbered from 1 in each
file: lines of text and JSON lines, records after the header in CSV, rows in Parquet.

Where shards are scored is an ``Engine``; every engine runs ``score_shard``, the unit of work, so they all
write the same files, and hands it ``Predictions``: where its batches are predicted, a few ahead of the
writing. ``LocalEngine`` scores shards one after another in this process, its batches predicted in helper
processes (``--workers``) or here; ``RayEngine`` the same way, its batches predicted by Ray actors.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from reviewlens.data.sources import MAX_REVIEW_BYTES
from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import predicted_labels
from reviewlens.files import json_line_limit, read_json
from reviewlens.runs import METADATA_FILE, read_metadata, sha256_of
from reviewlens.text import is_blank

if TYPE_CHECKING:
    from reviewlens.runs import Run

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
            return cls(_path_text(shard.name), _path_text(shard.path), info.st_size, info.st_mtime_ns,
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


def _recorded(out: Path) -> dict[str, Source]:
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


def _record(out: Path, source: Source) -> None:
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


# -- finding shards -------------------------------------------------------------------------------------


def _format_of(path: Path) -> tuple[str, bool] | None:
    """``(format, compressed)`` by the file's suffixes, or ``None`` for a file that is not a shard."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = (
        suffixes[-2] if compressed and len(suffixes) == 2 else (suffixes[-1] if suffixes and not compressed else "")
    )
    found = INPUT_FORMATS.get(suffix)
    if found is None or (found == "parquet" and compressed):
        return None
    return found, compressed


def _stem(path: Path) -> str:
    """The file's name without its format's suffix and ``.gz``: ``part-0.jsonl.gz`` -> ``part-0``."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return name[: -len(Path(name).suffix)]


def find_shards(inputs: Sequence[Path]) -> list[Shard]:
    """The shards of each input, files in name order within a directory (hidden files and files of other
    suffixes in a directory are passed over); two shards whose outputs would share a name are refused."""
    shards: list[Shard] = []
    for given in inputs:
        if given.is_dir():
            entries = [p for p in given.rglob("*") if not _hidden(p.relative_to(given)) and not p.is_dir()]
            for entry in entries:  # an input of the folder that cannot be read as a file is said, not passed over
                if _format_of(entry) is not None and (problem := _not_a_file(entry)):
                    raise ReviewlensError(f"{entry} in {given} {problem}; move it out of the folder")
            found = sorted(p for p in entries if p.is_file())
            matched = [(p, _format_of(p)) for p in found]
            in_dir = [
                Shard(p, str(p.relative_to(given).parent / _stem(p)).removeprefix("./"), *kind)
                for p, kind in matched
                if kind is not None
            ]
            if not in_dir:
                raise ReviewlensError(
                    f"{given} holds no shards; put .csv, .jsonl, .parquet or .txt files (or .gz of them) in it"
                )
            shards += in_dir
        elif given.is_file():
            kind = _format_of(given)
            if kind is None:
                raise ReviewlensError(
                    f"{given} is not a shard reviewlens reads; pass .csv, .jsonl, .parquet or .txt (or .gz of them)"
                )
            shards.append(Shard(given, _stem(given), *kind))
        else:
            problem = _not_a_file(given) or "does not exist"
            raise ReviewlensError(f"{given} {problem}; pass files or directories of reviews to score")
    seen: dict[str, Path] = {}
    for shard in shards:
        if shard.name in seen:
            raise ReviewlensError(
                f"{seen[shard.name]} and {shard.path} would both be written as {shard.name}; "
                "score them into different --output folders"
            )
        seen[shard.name] = shard.path
    return shards


def _not_a_file(path: Path) -> str | None:
    """What ``path`` is, where it is there but not a regular file or folder (None for those, or for nothing)."""
    try:
        os.lstat(path)
    except OSError:
        return None  # nothing there
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a symbolic link that loops back on itself"
        if error.errno == errno.ENOENT:
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISFIFO(mode):
        return "is a pipe (FIFO): score reads each input twice (its checksum, then its rows); save it to a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file of reviews"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file of reviews"
    return None


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


# -- reading ------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """Rows of one shard: their numbers, ids (``None``: the shard has none), text values as read, and the
    bytes of the input file read so far (for progress)."""

    rows: list[int]
    ids: list[Any] | None
    values: list[Any]
    position: int
    bad: list[BadRow] = field(default_factory=list)


def _open(shard: Shard) -> tuple[pa.NativeFile, pa.NativeFile]:
    """The raw file (its position is progress) and the stream of its decompressed bytes."""
    try:
        raw = pa.OSFile(os.fsencode(shard.path))  # its bytes: a name that is not UTF-8 is a name all the same
    except OSError as error:
        raise ReviewlensError(f"{shard.path} cannot be read ({error}); check its permissions") from None
    return raw, pa.CompressedInputStream(raw, "gzip") if shard.compressed else raw


def _unreadable(shard: Shard, error: Exception) -> ReviewlensError:
    what = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "straddl" in what:  # pyarrow: a record longer than the block it parses at a time
        return ReviewlensError(
            f"{shard.path} holds a CSV record longer than score parses at a time (4 times --max-review-bytes), far "
            "over a review's bound; cut that review, or raise --max-review-bytes"
        )
    return ReviewlensError(f"{shard.path} cannot be read as {shard.format} ({what}); check the file")


def _csv_block(max_review_bytes: int) -> int:
    """The bytes a CSV is parsed in at a time: room for any record whose review is within the bound."""
    return max(BLOCK_BYTES, 4 * max_review_bytes + (64 << 10))


@dataclass(frozen=True)
class OverLong:
    """A line longer than its reader's bound, in place of its bytes: only its size is kept, counted to its end."""

    size: int


def _blocks(shard: Shard, stream: pa.NativeFile) -> Iterator[bytes]:
    """The stream's bytes a block at a time; a file cut short or not what its name says (a ``.gz`` that is not
    gzip) is one line naming it."""
    while True:
        try:
            block = stream.read(BLOCK_BYTES)
        except (pa.ArrowInvalid, OSError) as error:
            if _disk_full(error):
                raise
            raise _unreadable(shard, error) from None
        if not block:
            return
        yield block


def _disk_full(error: Exception) -> bool:
    return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(error)


def _lines(shard: Shard, stream: pa.NativeFile, limit: int) -> Iterator[list[bytes | OverLong]]:
    """The stream's lines (``\\n``, ``\\r\\n``), a block at a time; a UTF-8 byte-order mark is dropped. A line of
    more than ``limit`` bytes is an ``OverLong``: its bytes are skipped as they come, so memory stays within a block
    and ``limit`` however long the line."""
    rest = b""
    skipped = 0  # inside an over-long line: its bytes so far
    first = True
    for block in _blocks(shard, stream):
        if first:
            block, first = block.removeprefix(b"\xef\xbb\xbf"), False
        out: list[bytes | OverLong] = []
        if skipped:
            end = block.find(b"\n")
            if end < 0:
                skipped += len(block)
                continue
            out.append(OverLong(skipped + end))
            skipped, block = 0, block[end + 1 :]
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        if len(rest) > limit:
            skipped, rest = len(rest), b""
        for line in lines:
            line = line.removesuffix(b"\r")
            out.append(line if len(line) <= limit else OverLong(len(line)))
        yield out
    if skipped:
        yield [OverLong(skipped)]
    elif rest:
        yield [rest.removesuffix(b"\r")]


def _read_text(shard: Shard, job: ScoreJob) -> Iterator[Batch]:
    raw, stream = _open(shard)
    row = 0
    with raw:
        for lines in _lines(shard, stream, job.max_review_bytes):
            for start in range(0, len(lines), BATCH_ROWS):
                chunk = lines[start : start + BATCH_ROWS]
                yield Batch(list(range(row + 1, row + len(chunk) + 1)), None, chunk, raw.tell())
                row += len(chunk)


_MISSING = object()


def _read_jsonl(shard: Shard, job: ScoreJob) -> Iterator[Batch]:
    raw, stream = _open(shard)
    decoder = msgspec.json.Decoder()
    id_column = job.id_column
    checked = False
    row = 0
    limit = json_line_limit(job.max_review_bytes)
    where = _path_text(shard.path)
    fields: list[str] = []  # the first record's, for the message when no record has the text
    with raw:
        for lines in _lines(shard, stream, limit):
            batch = Batch([], [], [], 0)
            for line in lines:
                row += 1
                if isinstance(line, OverLong):
                    reason = f"a line of {line.size:,} bytes, over the {limit:,} a record may take (--max-review-bytes)"
                    batch.bad.append(BadRow(where, row, reason))
                    continue
                if not line.strip():  # a blank line holds no record, as in every JSON lines reader
                    continue
                try:
                    record = decoder.decode(line)
                except msgspec.DecodeError as error:
                    batch.bad.append(BadRow(where, row, _json_problem(line, error)))
                    continue
                except RecursionError:
                    batch.bad.append(BadRow(where, row, "nested too deeply (a record is a flat object)"))
                    continue
                if not isinstance(record, dict):
                    batch.bad.append(BadRow(where, row, f"not a JSON object but {type(record).__name__}"))
                    continue
                if not checked:  # the first record with the text says which fields the shard has
                    if job.text_column not in record:  # a bad row, as anywhere else in the shard
                        fields = fields or list(record)
                        batch.bad.append(BadRow(where, row, "no text"))
                        continue
                    if id_column is None:
                        id_column = "id" if "id" in record else None
                    else:
                        _require(shard, id_column, list(record), "field", "--id-column")
                    checked = True
                batch.rows.append(row)
                batch.values.append(record.get(job.text_column, _MISSING))
                if id_column is not None:
                    batch.ids.append(_json_id(record.get(id_column)))  # type: ignore[union-attr]
            if id_column is None:
                batch.ids = None
            batch.position = raw.tell()
            yield batch
    if not checked and fields:  # no record has the text: the field is named otherwise, not a few rows bad
        _require(shard, job.text_column, fields, "field")


def _json_problem(line: bytes, error: msgspec.DecodeError) -> str:
    """Why a JSON line is a bad row. msgspec says "truncated" of a lone surrogate's escape (``"\\ud800"``), which the
    standard library decodes: that is a text that is not UTF-8, not JSON cut short."""
    if "UTF-8" in str(error):
        return "not valid UTF-8"
    if "truncated" in str(error) or "surrogate" in str(error):
        try:
            json.loads(line)
        except (ValueError, RecursionError):
            return "not valid JSON (the record is cut short)"
        return "not valid UTF-8 (a lone surrogate)"
    return f"not valid JSON ({error})"


def _json_id(value: Any) -> str | None:
    """An id as text: a JSON string as is, a number or anything else as its JSON."""
    return value if isinstance(value, str) or value is None else msgspec.json.encode(value).decode()


def _require(shard: Shard, column: str, columns: list[str], what: str, option: str = "--text-column") -> None:
    if column not in columns:
        has = ", ".join(columns[:10]) or "none"
        raise ReviewlensError(f"{shard.path} has no {what} {column!r} (it has: {has}); pass {option} NAME")


def _id_column(shard: Shard, job: ScoreJob, columns: list[str], what: str) -> str | None:
    _require(shard, job.text_column, columns, what)
    if job.id_column is None:
        return "id" if "id" in columns else None
    _require(shard, job.id_column, columns, what, "--id-column")
    return job.id_column


def _arrow_batch(batch: pa.RecordBatch, rows: list[int], text: str, ids: str | None, position: int) -> Batch:
    values = batch.column(text)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = values.cast(pa.binary() if pa.types.is_string(values.type) else pa.large_binary())
    return Batch(
        rows,
        None if ids is None else batch.column(ids).cast(pa.string()).to_pylist(),
        values.to_pylist(),
        position,
    )


def _csv_reader(shard: Shard, stream: pa.NativeFile, block: int, **options: Any) -> pa_csv.CSVStreamingReader:
    try:
        return pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=block, use_threads=False),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=options.pop("invalid")),
            convert_options=pa_csv.ConvertOptions(**options),
        )
    except (pa.ArrowInvalid, OSError) as error:
        raise _unreadable(shard, error) from None


def _read_csv(shard: Shard, job: ScoreJob) -> Iterator[Batch]:
    block = _csv_block(job.max_review_bytes)
    raw, stream = _open(shard)
    with raw:  # the header first: only the text and id columns are then parsed, as text (no type guessed)
        try:
            names = _csv_reader(shard, stream, block, invalid=lambda row: "skip", column_types={}).schema.names
        except UnicodeDecodeError as error:  # a header that is not UTF-8 (a spreadsheet's UTF-16, say)
            raise _unreadable(shard, error) from None
    ids = _id_column(shard, job, names, "column")
    wrong: list[int] = []  # records with the wrong number of fields, by number (the header is record 1)

    def invalid(row: Any) -> str:
        wrong.append(row.number - 1)
        return "skip"

    raw, stream = _open(shard)
    with raw:
        reader = _csv_reader(
            shard, stream, block, invalid=invalid, include_columns=[job.text_column] + ([ids] if ids else []),
            column_types={job.text_column: pa.binary(), **({ids: pa.string()} if ids else {})},
        )  # fmt: skip
        row = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError) as error:
                raise _unreadable(shard, error) from None
            rows: list[int] = []
            skipped = 0
            while len(rows) < batch.num_rows:  # rows skipped as invalid keep their numbers
                row += 1
                if skipped < len(wrong) and wrong[skipped] == row:
                    skipped += 1
                else:
                    rows.append(row)
            read = _arrow_batch(batch, rows, job.text_column, ids, raw.tell())
            read.bad = [_wrong_fields(shard, n) for n in wrong[:skipped]]
            del wrong[:skipped]
            yield read
        if wrong:  # invalid records after the last valid one
            yield Batch([], [] if ids else None, [], raw.tell(), [_wrong_fields(shard, n) for n in wrong])


def _wrong_fields(shard: Shard, row: int) -> BadRow:
    return BadRow(_path_text(shard.path), row, "a record with the wrong number of fields")


def _read_parquet(shard: Shard, job: ScoreJob) -> Iterator[Batch]:
    try:
        # pre-buffering keeps every row group read; the file by its bytes' name (it may not be UTF-8)
        parquet = pq.ParquetFile(pa.OSFile(os.fsencode(shard.path)), pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as error:
        raise _unreadable(shard, error) from None
    with parquet:
        ids = _id_column(shard, job, parquet.schema_arrow.names, "column")
        kind = parquet.schema_arrow.field(job.text_column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)):
            raise ReviewlensError(
                f"{shard.path}: column {job.text_column!r} holds {kind}, not text; pass --text-column NAME"
            )
        total, size, row = max(parquet.metadata.num_rows, 1), shard.path.stat().st_size, 0
        columns = [job.text_column] + ([ids] if ids is not None and ids != job.text_column else [])
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                rows = list(range(row + 1, row + batch.num_rows + 1))
                row += batch.num_rows
                yield _arrow_batch(batch, rows, job.text_column, ids, size * row // total)
        except (pa.ArrowInvalid, OSError) as error:
            raise _unreadable(shard, error) from None


READERS: dict[str, Callable[[Shard, ScoreJob], Iterator[Batch]]] = {
    "csv": _read_csv,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "text": _read_text,
}


def _text(value: Any, limit: int) -> str:
    """The review in a row's value, or ``ValueError`` saying why the row is bad."""
    if value is _MISSING or value is None:
        raise ValueError("no text")
    if isinstance(value, OverLong):
        raise ValueError(f"a text of {value.size:,} bytes, over --max-review-bytes {limit:,}")
    if isinstance(value, str):  # from JSON: a lone surrogate (``"\\ud800"``) is no more UTF-8 than a bad byte
        if len(value) * 4 > limit and (size := len(value.encode("utf-8", "surrogatepass"))) > limit:
            raise ValueError(f"a text of {size:,} bytes, over --max-review-bytes {limit:,}")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("not valid UTF-8 (a lone surrogate)") from None
    elif isinstance(value, bytes):
        if len(value) > limit:
            raise ValueError(f"a text of {len(value):,} bytes, over --max-review-bytes {limit:,}")
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not valid UTF-8") from None
    else:
        raise ValueError(f"a text that is not a string but {type(value).__name__}")
    if is_blank(value):
        raise ValueError("a blank text")
    return value


# -- writing ------------------------------------------------------------------------------------------


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
                    texts.append(_text(value, job.max_review_bytes))
                    kept.append(i)
                except ValueError as error:
                    batch.bad.append(BadRow(_path_text(shard.path), batch.rows[i], str(error)))
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
                    predictions.submit(texts) if texts else _ready(np.zeros((0, len(run.labels)), np.float32)),
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
        _record(job.out, source)
    finally:
        for *_, future in pending:
            future.cancel()
        if writer is not None:
            writer.discard()
        temporary.unlink(missing_ok=True)
    return ShardResult(shard, rows, bad_rows, time.perf_counter() - started)


def _path_text(path: str | os.PathLike[str]) -> str:
    """A path as UTF-8 text (for the output's ``file`` column and the sources record): the bytes of a name that is
    not UTF-8 written as ``\\xe9`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _ready(scores: np.ndarray) -> Future[np.ndarray]:
    future: Future[np.ndarray] = Future()
    future.set_result(scores)
    return future


def _scored(run: Run, shard: Shard, batch: Batch, kept: list[int], scores: np.ndarray, schema: pa.Schema) -> pa.Table:
    """The output rows of a batch's ``kept`` rows."""
    where: dict[str, pa.Array]
    if batch.ids is not None:
        where = {"id": pa.array([batch.ids[i] for i in kept], pa.string())}
    else:
        where = {"file": pa.array([_path_text(shard.path)] * len(kept), pa.string()),
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


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalEngine:
    """Scores shards one after another. With ``workers`` above 1 and at least ``MIN_SHARED_BYTES`` of input, a
    run with a NumPy predictor is predicted in that many helper processes (spawned at the first batch of
    ``MIN_SHARED`` texts or more, as ``serve``'s are, and ending with this one) while this process reads,
    checks and writes, a batch per helper ahead; a helper that dies leaves its batches to this process. Less
    input is scored here: starting a helper (a second or two) would cost more than it saves. A Keras run
    predicts here, where TensorFlow uses every core."""

    MIN_SHARED = 256
    MIN_SHARED_BYTES = 16 << 20  # about 12,000 IMDB reviews

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ReviewlensError(f"--workers {workers}: pass 1 or more, the processes that predict")
        self.workers = workers

    def score(self, job: ScoreJob, shards: Sequence[Shard], events: Events) -> Iterator[ShardResult]:
        from reviewlens.runs import load

        if not shards:
            return
        run = load(job.run_dir)
        size = sum(shard.path.stat().st_size for shard in shards)
        shared = self.workers > 1 and run.runtime == "numpy" and size >= self.MIN_SHARED_BYTES
        predictions = _Helpers(run, self.workers if shared else 0)
        try:
            for shard in shards:
                yield score_shard(run, job, shard, events, predictions)
        finally:
            predictions.close()


class _Helpers:
    """``Predictions`` in ``processes`` helper processes, or in this one when there are none, too few texts to
    share, or the helpers died."""

    def __init__(self, run: Run, processes: int):
        self.run, self.processes = run, processes
        self.ahead = processes
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        from reviewlens.processes import process_pool
        from reviewlens.serving.pool import (
            helper_predict,
            load_helper_run,
        )  # the helpers serve starts: the run, NumPy predictor

        if self._pool is None and self.processes and len(texts) >= LocalEngine.MIN_SHARED:
            self._pool = process_pool(self.processes, initializer=load_helper_run, initargs=(str(self.run.run_dir),))
        if self._pool is not None:
            try:
                return self._pool.submit(helper_predict, texts)
            except BrokenProcessPool:
                self.close()
                self.processes = 0
        return _ready(self.run.predict_proba(texts))

    def result(self, future: Future[np.ndarray], texts: list[str]) -> np.ndarray:
        try:
            return future.result()
        except BrokenProcessPool:  # a helper died (killed, out of memory): this process scores the batch
            return self.run.predict_proba(texts)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


#: How long ``--address`` may take to answer before the job is refused.
RAY_CONNECT_SECONDS = 10.0


class RayEngine:
    """Scores shards with a pool of ``workers`` Ray actors, each holding the run (loaded once, from a tar of
    the run directory put in Ray's object store, so the workers need no shared disk). This process reads,
    checks and writes every shard with ``score_shard``, as ``LocalEngine`` does, so the outputs, resuming
    and bad-row reports are the same; only the texts of each batch travel to an actor and its scores back.
    ``address`` joins a running cluster (``host:6379``, ``ray://host:10001`` or ``auto``); without it a
    local Ray starts here and stops at the end."""

    def __init__(self, workers: int = 1, address: str | None = None):
        if workers < 1:
            raise ReviewlensError(f"--workers {workers}: pass 1 or more, the Ray actors that predict")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ReviewlensError(
                "--engine ray needs Ray; pip install 'reviewlens[ray]' (here and on every worker)"
            ) from None
        if address is not None:
            _check_answers(address)
        self.workers, self.address = workers, address

    def score(self, job: ScoreJob, shards: Sequence[Shard], events: Events) -> Iterator[ShardResult]:
        import ray

        from reviewlens.runs import load

        if not shards:
            return
        run = load(job.run_dir)
        with contextlib.ExitStack() as stack:
            if not ray.is_initialized():
                where = f"--address {self.address}" if self.address is not None else "a local Ray"
                try:  # without --address: the head a keeper process starts, which ends with this one
                    address = self.address if self.address is not None else stack.enter_context(_local_ray())
                    ray.init(address=address, logging_level=logging.ERROR)
                except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError...
                    what = str(error).splitlines()[0] if str(error) else type(error).__name__
                    raise ReviewlensError(f"{where}: Ray did not start or join ({what})") from None
                stack.callback(ray.shutdown)  # this driver leaves before the keeper stops the head
            cpus = ray.cluster_resources().get("CPU", 0)
            if cpus < self.workers:
                raise ReviewlensError(
                    f"--workers {self.workers}: the Ray cluster has {cpus:g} CPUs; pass --workers {int(cpus) or 1}"
                    " or fewer, or add nodes"
                )
            predictions = _RayActors(run, self.workers)
            stack.callback(predictions.close)
            for shard in shards:
                yield score_shard(run, job, shard, events, predictions)


#: How long a local Ray's keeper may take to start the head, and to stop it.
RAY_START_SECONDS = 120.0


@contextlib.contextmanager
def _local_ray() -> Iterator[str]:
    """A local Ray head for one job: its address while the job runs.

    ``ray.init`` started in this process leaves Ray's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``,
    children of the raylet that Ray's parent-death signal does not reach) running for good when this process is
    killed. So a keeper process (``_keep_ray_head``) starts the head in a process group of its own, and ends the
    whole group when told to or when this process is gone, however it ended: Ray's processes cannot outlive it.
    """
    from reviewlens.processes import spawn_context, starting_children

    context = spawn_context()
    ours, theirs = context.Pipe()
    with starting_children():
        keeper = context.Process(target=_keep_ray_head, args=(os.getpid(), theirs), name="reviewlens-ray-head")
        keeper.start()
    theirs.close()
    try:
        if not ours.poll(RAY_START_SECONDS):
            raise TimeoutError(f"no head within {RAY_START_SECONDS:g} s")
        started, value, auth_mode = ours.recv()  # EOFError: the keeper died
        if not started:
            raise RuntimeError(value)
        if auth_mode is not None and os.environ.get("RAY_AUTH_MODE") != auth_mode:
            # A new local Ray turns token authentication on (Ray 2.52+); a driver given its address does not, so
            # this one is told as Ray tells itself (ray._private.authentication: the variable, then the config).
            from ray._raylet import Config  # type: ignore[attr-defined,unused-ignore]  # ray is optional

            os.environ["RAY_AUTH_MODE"] = auth_mode
            Config.initialize("")
        yield value
    finally:
        ours.close()  # the keeper's pipe closes: it stops the head
        keeper.join(RAY_START_SECONDS)
        if keeper.is_alive():
            keeper.kill()


def _keep_ray_head(parent_pid: int, connection: Any) -> None:
    """A local Ray's keeper: start the head in this process group, send its address and authentication mode, and
    end the group (every process of Ray's but its workers, which end with their raylet) when the pipe closes or
    the parent is gone."""
    import signal

    os.setpgid(0, 0)  # before Ray starts: its processes join this group; the session stays the parent's

    def end_group() -> None:
        os.killpg(0, signal.SIGKILL)  # this process with them

    from reviewlens.processes import child_started

    child_started(parent_pid, on_parent_death=end_group)
    import ray

    try:
        ray.init(include_dashboard=False, logging_level=logging.ERROR)
    except Exception as error:
        connection.send((False, str(error).splitlines()[0] if str(error) else type(error).__name__, None))
        end_group()
    connection.send((True, ray.get_runtime_context().gcs_address, os.environ.get("RAY_AUTH_MODE")))
    with contextlib.suppress(EOFError, OSError):
        connection.recv()  # nothing is sent: this returns when the parent closes its end or dies
    if os.getppid() == parent_pid:  # a finished job: Ray stops in order first
        ray.shutdown()
    end_group()


def _check_answers(address: str) -> None:
    """Refuse an address where nothing listens, in seconds (``ray.init`` would retry for minutes)."""
    import socket

    where = address.removeprefix("ray://")
    if address == "auto" or ":" not in where:
        return
    host, _, port = where.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_SECONDS):
            pass
    except ValueError:
        raise ReviewlensError(
            f"--address {address}: pass HOST:PORT of the Ray head (ray://HOST:PORT for Ray client)"
        ) from None
    except OSError as error:
        raise ReviewlensError(
            f"--address {address}: no Ray cluster answers there ({error.strerror or error}); "
            "start one (ray start --head) or pass its head's address"
        ) from None


def _run_archive(run_dir: Path) -> bytes:
    """The run directory as an uncompressed tar, in memory."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(run_dir, arcname=run_dir.name or "run")
    return buffer.getvalue()


class _RunActor:
    """A Ray actor's state: the run, unpacked from the archive into a temporary folder and loaded once."""

    def __init__(self, archive: bytes):
        import io
        import tarfile
        import tempfile

        from reviewlens.runs import load

        self._folder = tempfile.TemporaryDirectory(prefix="reviewlens-run-")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(self._folder.name, filter="data")
            (name,) = {Path(member.name).parts[0] for member in tar.getmembers()}
        self.run = load(Path(self._folder.name) / name)

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.run.predict_proba(texts)


class _RayActors:
    """``Predictions`` on Ray actors, batches dealt round-robin, two per actor ahead; an actor that dies leaves
    its batches to this process."""

    def __init__(self, run: Run, workers: int):
        import ray

        self.run = run
        self.ahead = 2 * workers
        archive = ray.put(_run_archive(run.run_dir))
        actor = ray.remote(num_cpus=1)(_RunActor)
        self._actors: list[Any] = [actor.remote(archive) for _ in range(workers)]
        self._next = 0

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        if not self._actors:
            return _ready(self.run.predict_proba(texts))
        self._next = (self._next + 1) % len(self._actors)
        future: Future[np.ndarray] = self._actors[self._next].predict.remote(texts).future()
        return future

    def result(self, future: Future[np.ndarray], texts: list[str]) -> np.ndarray:
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return future.result()
        except RayTaskError as error:  # the run failed on these texts: as it would here
            raise error.as_instanceof_cause() from None
        except RayActorError:  # killed, out of memory, its node gone
            return self.run.predict_proba(texts)

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []


ENGINES: dict[str, Callable[[int], Engine]] = {"local": LocalEngine, "ray": RayEngine}


# -- the job ------------------------------------------------------------------------------------------


def _manifest(job: ScoreJob) -> dict[str, Any]:
    metadata = read_metadata(job.run_dir)  # a run that is not whole is refused before any output is made
    with open(job.run_dir / METADATA_FILE, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"run": metadata.name, "run_dir": str(job.run_dir.resolve()), "metadata_sha256": digest, **job.settings()}


def _claim(job: ScoreJob, manifest: dict[str, Any]) -> None:
    """Make ``job.out`` this job's: new, empty, holding no scored shard yet, or holding the output of the same
    run with the same settings."""
    out, path = job.out, job.out / MANIFEST_FILE
    others = [p for p in out.rglob("*") if p.is_file() and p != path and not _hidden(p.relative_to(out))]
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
        recorded = _recorded(job.out)
        written = [s for s in shards if (job.out / s.output_name(job.format)).is_file()]
        done = [s for s in written if _path_text(s.name) in recorded and recorded[_path_text(s.name)].matches(s)]
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
            if not _disk_full(error):
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
