"""Finding the shards of the inputs: files in name order, one output shard for each."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reviewlens.errors import ReviewlensError
from reviewlens.scoring.base import INPUT_FORMATS, Shard

if TYPE_CHECKING:
    pass


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
            entries = [p for p in given.rglob("*") if not hidden(p.relative_to(given)) and not p.is_dir()]
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


def hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)
