"""Reading the files reviewlens keeps (runs, encoders, checkpoints, studies): bounded before they are read.

Every such file has a bound by its kind (``MAX_BYTES``), checked on its size before a byte of it is read, so a
file that is not what it claims (a 2 GiB ``vectorizer.json`` whose checksum was rewritten to match, a link to
``/dev/zero``) is refused at once instead of filling memory. JSON files go through ``read_json`` alone, which
also refuses nesting deeper than ``MAX_JSON_DEPTH``: the decoders recurse, and a few MB of ``[`` would end a
command in a ``RecursionError`` traceback instead of one line.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from reviewlens.errors import ReviewlensError

MiB = 2**20
#: A run's (and an encoder's) record of itself: what it is, how it was made, each other file's checksum.
METADATA_FILE = "metadata.json"
#: The most bytes each kind of file may hold, by name: far above what the largest run, encoder or study writes
#: (a 1,000,000-word ``vectorizer.json`` is about 40 MB), far below what would hurt to hold in memory.
MAX_BYTES: dict[str, int] = {
    "metadata.json": 16 * MiB,  # a run's or an encoder's: a few kB
    "vectorizer.json": 256 * MiB,
    "vocabulary.json": 64 * MiB,  # an encoder's words (20,000 are about 200 kB)
    "ensemble.json": 16 * MiB,
    "history.json": 16 * MiB,
    "state.json": 16 * MiB,  # a staging directory's
    "mlflow.json": 16 * MiB,  # a staging directory's MLflow run
    "score.json": 16 * MiB,  # a score output's manifest
    "curves.png": 64 * MiB,
    "predictions.npz": 4096 * MiB,
    "weights.npz": 16384 * MiB,
    "output.npz": 16384 * MiB,
    "model.keras": 16384 * MiB,
    "encoder.keras": 16384 * MiB,
}
#: A file of a kind not named above (a word index, a file a newer reviewlens adds to a run).
DEFAULT_MAX_BYTES = 1024 * MiB
#: The deepest JSON reviewlens reads: its own files nest a few levels.
MAX_JSON_DEPTH = 64

_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))


class FileError(ReviewlensError):
    """A kept file that cannot be used: ``why`` says how (``"is larger than ... bytes"``), the message adds the
    path and ``remedy``; a reader with its own wording (an encoder's ``--encoder DIR: its NAME ...``) uses ``why``."""

    def __init__(self, path: Path, why: str, remedy: str):
        super().__init__(f"{path} {why}; {remedy}")
        self.path, self.why = path, why


def max_bytes(path: str | os.PathLike[str]) -> int:
    """The bound of the file's kind (its name)."""
    return MAX_BYTES.get(Path(path).name, DEFAULT_MAX_BYTES)


def check_size(path: Path, remedy: str, limit: int | None = None) -> int:
    """The size of ``path``, after checking it is a regular file (links followed: a device, a FIFO or a folder is
    never a kept file) within ``limit`` (its kind's bound by default)."""
    limit = max_bytes(path) if limit is None else limit
    try:
        status = path.stat()
    except FileNotFoundError:
        raise FileError(path, "is missing", remedy) from None
    except OSError as error:
        raise FileError(path, f"cannot be read ({error.strerror or error})", remedy) from None
    if not stat.S_ISREG(status.st_mode):
        raise FileError(path, "is not a regular file", remedy)
    if status.st_size > limit:
        raise FileError(path, f"is larger than {limit:,} bytes, far more than reviewlens writes", remedy)
    return status.st_size


def read_bytes(path: Path, remedy: str, limit: int | None = None) -> bytes:
    """The whole file, bounded: checked by ``check_size`` first, then read no further than that size (a read of
    the bound itself would set aside all of it, 16 MB for every ``metadata.json``)."""
    size = check_size(path, remedy, limit)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(size + 1)
    except OSError as error:
        raise FileError(path, f"cannot be read ({error.strerror or error})", remedy) from None
    if len(raw) > size:
        raise FileError(path, "grew while it was read, so it is not a finished file", remedy)
    return raw


def nests_deeper(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``raw``'s arrays and objects nest deeper than ``limit`` (brackets inside strings not counted),
    found without recursing and at C speed: strings dropped, then the brackets' running level, in blocks."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the common case: too few brackets to nest so deep
        return False
    brackets = np.frombuffer(_STRING.sub(b"", raw).translate(None, _NOT_BRACKET), np.uint8)
    level = 0
    for start in range(0, len(brackets), 1 << 20):  # a file of brackets needs no 4 bytes each at once
        # '[' and '{' (0x5B, 0x7B) have bit 0x02 set, ']' and '}' (0x5D, 0x7D) do not
        steps = np.where(brackets[start : start + (1 << 20)] & 0x02, 1, -1).astype(np.int32)
        levels = np.cumsum(steps) + level
        if int(levels.max()) > limit:
            return True
        level = int(levels[-1])
    return False


def decode_json(raw: bytes, path: Path, remedy: str) -> Any:
    """``raw`` (the content of ``path``) decoded, refused with one line if it nests too deeply or is not JSON."""
    if nests_deeper(raw):
        raise FileError(path, f"nests deeper than {MAX_JSON_DEPTH} levels, so reviewlens did not write it", remedy)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise FileError(path, f"is corrupt ({type(error).__name__}: {str(error)[:200]})", remedy) from None


def read_json(path: Path, remedy: str, limit: int | None = None) -> Any:
    """The decoded JSON file, bounded in size (its kind's bound, or ``limit``) and in depth; any failure is one
    ``FileError`` naming the path, how it failed and ``remedy`` (what to do)."""
    return decode_json(read_bytes(path, remedy, limit), path, remedy)


#: How much of an over-long line is read at a time while it is skipped.
_SKIP_BYTES = 1 * MiB


@dataclass(frozen=True)
class LongLine:
    """A line of more bytes than its reader's bound, in its place: its size (counted to its end), its first
    ``head`` bytes (the bound's worth) and its last ``tail`` bytes (as many as the reader asked to keep)."""

    size: int
    head: bytes
    tail: bytes


def bounded_lines(
    handle: IO[bytes], limit: int, tail: int = 0, keep_ends: bool = False
) -> Iterator[tuple[int, bytes | LongLine]]:
    """Each line of a binary stream as (line number from 1, its bytes without ``\\n`` or ``\\r\\n``); a UTF-8
    byte-order mark at the start is dropped. A line over ``limit`` bytes is a ``LongLine``: it is read on in
    pieces and only its head and last ``tail`` bytes are kept, so memory never grows with a line, however long.
    ``keep_ends`` leaves each line's end on it (the csv module reads ``\\r\\n`` inside a quoted field). The one
    line reader for reviews in text files (``predict --file``, data sources, ``evaluate --data``)."""
    number = 0
    while piece := handle.readline(limit + 2):  # room for the line's end
        number += 1
        if number == 1:
            piece = piece.removeprefix(b"\xef\xbb\xbf")
        if piece.endswith(b"\n") or len(piece) < limit + 2:  # the whole line (the last may have no end)
            line = piece.removesuffix(b"\n").removesuffix(b"\r")
            if len(line) <= limit:
                yield number, piece if keep_ends else line
                continue
        head, size, last = piece[:limit], len(piece), piece[-tail:] if tail else b""
        while not piece.endswith(b"\n") and (piece := handle.readline(_SKIP_BYTES)):
            size += len(piece)
            if tail:
                last = (last + piece)[-tail:]
        ending = 2 if last.endswith(b"\r\n") or piece.endswith(b"\r\n") else 1 if piece.endswith(b"\n") else 0
        yield number, LongLine(size - ending, head, last[: max(0, len(last) - ending)] if tail else b"")


def json_line_limit(max_review_bytes: int) -> int:
    """The longest JSON line read for a review of ``max_review_bytes``: room for its escapes and other fields."""
    return 6 * max_review_bytes + (64 << 10)


def text_lines(path: Path, limit: int, errors: str) -> Iterator[str]:
    """The lines of a UTF-8 text file (a byte-order mark dropped), each with its end, for the csv module (``errors``
    as for ``bytes.decode``); a physical line over ``limit`` bytes is refused in one line naming it."""
    with open(path, "rb") as handle:
        for number, line in bounded_lines(handle, limit, keep_ends=True):
            if isinstance(line, LongLine):
                raise ReviewlensError(
                    f"{path} line {number} is {line.size:,} bytes, over the {limit:,} a record may take; "
                    "cut the review or raise --max-review-bytes"
                )
            yield line.decode("utf-8", errors)


def cut_utf8(raw: bytes, limit: int) -> bytes:
    """``raw`` cut to at most ``limit`` bytes, at a character boundary (never half a UTF-8 character)."""
    end = limit
    while 0 < end < len(raw) and raw[end] & 0xC0 == 0x80:  # a continuation byte: the cut is inside a character
        end -= 1
    return raw[:end]


def check_writable(folder: Path) -> None:
    """The folder a run will be written in can be made and written, or one line saying why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        file = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        where = f"{folder} is a file" if file == folder else f"{folder} is under the file {file}"
        raise ReviewlensError(f"--out: {where}, not a folder; choose another --out") from None
    except OSError as error:
        raise ReviewlensError(
            f"--out: cannot make the folder {folder} ({error.strerror or error}); choose another --out"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReviewlensError(f"--out: the folder {folder} is not writable; choose another --out")
