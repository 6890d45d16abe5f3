"""Reading a shard in batches of rows: CSV, JSON lines, Parquet and text, each bad row said with its file and row."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from reviewlens.errors import ReviewlensError
from reviewlens.files import json_line_limit
from reviewlens.scoring.base import BATCH_ROWS, BLOCK_BYTES, BadRow, ScoreJob, Shard, disk_full, path_text
from reviewlens.text import is_blank

if TYPE_CHECKING:
    pass


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
            if disk_full(error):
                raise
            raise _unreadable(shard, error) from None
        if not block:
            return
        yield block


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
    where = path_text(shard.path)
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
    return BadRow(path_text(shard.path), row, "a record with the wrong number of fields")


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


def review_text(value: Any, limit: int) -> str:
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
