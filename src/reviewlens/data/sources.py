"""Review sources (aclImdb directory or archive, CSV, JSONL) and the dataset with its three splits.

A source knows two things: its catalog (every review's id, declared split and label, without the
text) and how to stream the texts of a set of ids in a fixed order. ``Dataset`` turns a catalog into
train / validation / test and streams each split; nothing here holds the whole corpus in memory.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import random
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from reviewlens.errors import ReviewlensError
from reviewlens.files import LongLine, bounded_lines, cut_utf8, json_line_limit, text_lines
from reviewlens.text import valid_text

SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")
#: What an aclImdb review's label is: its sentiment folder (``pos``/``neg``), or the rating in its file name.
LabelKind = Literal["sentiment", "rating"]
LABEL_KINDS: tuple[LabelKind, ...] = ("sentiment", "rating")
#: aclImdb's folders as label names, in the binary order (negative first); ``unsup`` reviews have no label.
LABELS = {"neg": "negative", "pos": "positive"}
UNLABELED = ""
VALIDATION_FRACTION = 0.2
TEST_FRACTION = 0.2  # only for sources that do not say which reviews are test
SPLIT_SEED = 1337

_ACLIMDB_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg|unsup)/([^/]+\.txt)$")
_RATING = re.compile(r"^\d+_(\d+)\.txt$")  # aclImdb's ID_RATING.txt
#: The words a binary label column may hold; a column of nothing else is read as negative/positive.
TEXT_LABELS = {
    "positive": 1, "pos": 1, "1": 1, "true": 1,
    "negative": 0, "neg": 0, "0": 0, "false": 0,
}  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One review in a catalog: no text, just where it lives and what it is."""

    id: str
    split: str | None  # "train", "test", "unsup", or None when the source does not say
    label: str  # the label's name as the source gives it; UNLABELED for unsup reviews


@dataclass(frozen=True)
class Example:
    """One review with its text and label: the index of its name in ``Dataset.label_names``."""

    text: str
    label: int
    id: str


class Source(Protocol):
    path: Path

    def catalog(self) -> list[Entry]: ...

    def texts(self, ids: set[str]) -> Iterator[tuple[str, str]]:
        """``(id, text)`` for each id in ``ids``, in the source's own fixed order."""
        ...


#: A review longer than this many bytes (UTF-8) is cut there, with a warning: the longest aclImdb review is
#: 14 kB; a 50 MB "review" is a scraper's mistake, and reading it whole would hold up every step after.
MAX_REVIEW_BYTES = 1_000_000


@dataclass
class ReadReport:
    """What reading a dataset met besides plain reviews: files that were not UTF-8 (decoded with replacement
    characters), reviews cut at ``max_review_bytes``, and files skipped because they could not be read as
    reviews (a FIFO, a dangling link, a link loop, no permission), each with the reason. Reading goes on."""

    max_review_bytes: int = MAX_REVIEW_BYTES
    undecodable: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    _noted: set[tuple[str, str]] = field(default_factory=set, repr=False)  # a split is read more than once

    def decode(self, raw: bytes, id: str) -> str:
        """The review in ``raw`` (which may hold one byte past the limit, to tell that it was cut)."""
        if len(raw) > self.max_review_bytes:
            self._note(self.truncated, "truncated", id)
            raw = cut_utf8(raw, self.max_review_bytes)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._note(self.undecodable, "undecodable", id)
            return raw.decode("utf-8", errors="replace")

    def text(self, text: str, id: str) -> str:
        """A review that reached Python as a string (a CSV or JSON field): lone surrogates (bytes that were not
        UTF-8, or a JSON escape such as ``\\ud800``) become U+FFFD and are counted, as ``decode`` does for bytes;
        an over-long review is cut."""
        fixed = valid_text(text)
        if fixed is not text:
            self._note(self.undecodable, "undecodable", id)
        if len(fixed) > self.max_review_bytes // 4:  # may be over the limit in UTF-8
            return self.decode(fixed.encode("utf-8"), id)
        return fixed

    def _note(self, ids: list[str], kind: str, id: str) -> None:
        if (kind, id) not in self._noted:
            self._noted.add((kind, id))
            ids.append(id)

    def skip(self, id: str, reason: str) -> None:
        self.skipped[id] = reason

    def warnings(self) -> list[str]:
        """One line per kind of trouble met, for the log: how many, and the first few ids."""

        def few(ids: list[str]) -> str:
            return ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")

        lines = []
        if self.skipped:
            examples = [f"{id} ({why})" for id, why in list(self.skipped.items())[:3]]
            lines.append(f"skipped {len(self.skipped):,} files that are not readable reviews: {few(examples)}")
        if self.truncated:
            lines.append(
                f"cut {len(self.truncated):,} reviews longer than {self.max_review_bytes:,} bytes "
                f"(--max-review-bytes): {few(self.truncated)}"
            )
        if self.undecodable:
            lines.append(f"{len(self.undecodable):,} reviews were not UTF-8, read with U+FFFD: {few(self.undecodable)}")
        return lines


def _aclimdb_entry(split: str, category: str, name: str, kind: LabelKind, where: Path) -> Entry:
    """The catalog entry of aclImdb's ``split/category/name``: labelled by its folder or by the rating in its
    name (``ID_RATING.txt``); ``unsup`` reviews are unlabeled either way."""
    id = f"{split}/{category}/{name}"
    if category == "unsup":
        return Entry(id, "unsup", UNLABELED)
    if kind == "sentiment":
        return Entry(id, split, LABELS[category])
    rating = _RATING.match(name)
    if rating is None:
        raise ReviewlensError(
            f"{where}: {id} has no rating in its name (aclImdb names files ID_RATING.txt); "
            "leave out --labels rating for this data"
        )
    return Entry(id, split, str(int(rating.group(1))))


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a review file, or ``None`` when it is a regular file (links followed)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a link to nothing"
    except OSError as error:
        return "a link loop" if error.errno == errno.ELOOP else (error.strerror or str(error)).lower()
    if stat.S_ISREG(mode):
        return None
    return "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "not a regular file"


class DirectorySource:
    """An unpacked aclImdb tree: ``{train,test}/{pos,neg}/*.txt`` (and optionally ``train/unsup``)."""

    def __init__(self, path: Path, decode: ReadReport, labels: LabelKind = "sentiment"):
        root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
        missing = [f"{s}/{c}" for s in ("train", "test") for c in ("pos", "neg") if not (root / s / c).is_dir()]
        if missing:
            raise ReviewlensError(
                f"{path} is not an aclImdb directory: {', '.join(missing)} missing; "
                "point --data at the folder holding train/ and test/ (or at an archive, CSV or JSONL file)"
            )
        self.path, self.root, self._decode, self._kind = path, root, decode, labels
        self._catalog: list[Entry] | None = None

    def catalog(self) -> list[Entry]:
        if self._catalog is None:
            self._catalog = self._list()
        return self._catalog

    def _list(self) -> list[Entry]:
        entries = []
        for split in ("train", "test"):
            for category in ("neg", "pos", "unsup"):
                folder = self.root / split / category
                if not folder.is_dir():
                    continue
                for name in sorted(n for n in os.listdir(folder) if n.endswith(".txt")):
                    why = _unreadable(folder / name)
                    if why is None:
                        entries.append(_aclimdb_entry(split, category, name, self._kind, self.path))
                    else:
                        self._decode.skip(f"{split}/{category}/{name}", why)
        return entries

    def texts(self, ids: set[str]) -> Iterator[tuple[str, str]]:
        for entry in self.catalog():
            if entry.id in ids:
                try:
                    with open(self.root / entry.id, "rb") as handle:
                        raw = handle.read(self._decode.max_review_bytes + 1)
                except OSError as error:  # gone or made unreadable since the catalog was read
                    self._decode.skip(entry.id, (error.strerror or str(error)).lower())
                    continue
                yield entry.id, self._decode.decode(raw, entry.id)


class ArchiveSource:
    """The aclImdb layout inside a ``.tar.gz`` (or .tar, .tar.bz2, .tar.xz), streamed, never unpacked."""

    def __init__(self, path: Path, decode: ReadReport, labels: LabelKind = "sentiment"):
        self.path, self._decode, self._kind = path, decode, labels
        self._catalog: list[Entry] | None = None

    def _members(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, Entry]]:
        try:
            with tarfile.open(self.path, mode="r|*") as archive:
                for member in archive:
                    match = _ACLIMDB_MEMBER.search(member.name)
                    if not member.isfile() or match is None:
                        continue
                    split, category, name = match.groups()
                    yield archive, member, _aclimdb_entry(split, category, name, self._kind, self.path)
                # tarfile ends quietly at the end of the data; a whole archive ends with a block of zeros, which
                # it has just read in full. Anything else is an interrupted copy or download.
                assert archive.fileobj is not None
                if archive.fileobj.tell() - archive.offset != tarfile.BLOCKSIZE:
                    raise ReviewlensError(
                        f"{self.path} is truncated (it stops without the end-of-archive marker); "
                        "download or copy it again"
                    )
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise ReviewlensError(
                f"{self.path} is not a readable tar archive ({error}); download it again "
                "(reviewlens data download) or point --data at an unpacked aclImdb directory"
            ) from None

    def catalog(self) -> list[Entry]:
        if self._catalog is None:
            self._catalog = [entry for _, _, entry in self._members()]
            if not any(e.split == "train" for e in self._catalog):
                raise ReviewlensError(
                    f"{self.path} holds no aclImdb reviews (no train/pos or train/neg *.txt members); "
                    "point --data at an archive of the aclImdb dataset"
                )
        return self._catalog

    def texts(self, ids: set[str]) -> Iterator[tuple[str, str]]:
        for archive, member, entry in self._members():
            if entry.id in ids:
                handle = archive.extractfile(member)
                assert handle is not None
                yield entry.id, self._decode.decode(handle.read(self._decode.max_review_bytes + 1), entry.id)


class _RecordSource:
    """Shared by CSV and JSONL: one review per record, any labels, an optional split.

    A label column of 0/1, negative/positive (pos/neg, true/false) alone is the binary negative/positive; any
    other column's values are the label names as written (surrounding spaces dropped). A record of the split
    ``unsup`` (or ``unlabeled``) is an unlabeled review, as aclImdb's train/unsup, whatever its label; a file with
    no label at all (a CSV without the label column, JSON lines without the field) holds only unlabeled reviews,
    for ``reviewlens pretrain``. Any other record without a label is a mistake."""

    text_field: str
    label_field: str

    def __init__(self, path: Path, decode: ReadReport):
        self.path, self._decode = path, decode
        self._catalog: list[Entry] | None = None

    def _records(self) -> Iterator[tuple[int, dict[str, object]]]:
        raise NotImplementedError

    def _entries(self) -> Iterator[tuple[Entry, str]]:
        for number, record in self._records():
            where = f"{self.path} line {number}"
            if self.text_field not in record:
                raise ReviewlensError(
                    f"{where} lacks the {self.text_field!r} field; every record needs it (and {self.label_field!r}: "
                    "positive or negative, or any label)"
                )
            split = str(record.get("split") or "").strip().lower() or None
            split = "unsup" if split == "unlabeled" else split
            if split not in (None, "train", "test", "unsup"):
                raise ReviewlensError(
                    f"{where} has the unknown split {split!r}; use train, test or unsup (unlabeled), or leave it out"
                )
            label = record.get(self.label_field)
            if isinstance(label, dict | list):
                raise ReviewlensError(
                    f"{where} has the label {label!r}; a label is a word or a whole number (positive, 3, ...)"
                )
            text = record[self.text_field]
            if not isinstance(text, str):
                raise ReviewlensError(f"{where}: {self.text_field!r} must be a string, not {text!r}")
            id = f"line-{number}"
            name = UNLABELED if split == "unsup" or label is None else str(label).strip()
            yield Entry(id, split, name), self._decode.text(text, id)

    def _unlabeled_mistake(self, entry: Entry, labeled: bool) -> Entry:
        """``entry`` as the catalog keeps it: a review without a label outside the unsup split is unlabeled where
        the whole file is (no record has a label), and a mistake where others have one."""
        if entry.label != UNLABELED or entry.split == "unsup":
            return entry
        if not labeled:
            return Entry(entry.id, "unsup", UNLABELED)
        raise ReviewlensError(
            f"{self.path} {entry.id.replace('-', ' ')} has no label; a label is a word or a whole number (positive, "
            f"3, ...), or give an unlabeled review the split unsup"
        )

    def catalog(self) -> list[Entry]:
        if self._catalog is None:
            entries = [entry for entry, _ in self._entries()]
            if not entries:
                raise ReviewlensError(f"{self.path} holds no reviews; it needs one review per record")
            labeled = any(entry.label != UNLABELED for entry in entries)
            entries = [self._unlabeled_mistake(entry, labeled) for entry in entries]
            if all(e.label.lower() in TEXT_LABELS for e in entries if e.label != UNLABELED):  # today's binary words
                binary = {word: LABELS["pos" if value else "neg"] for word, value in TEXT_LABELS.items()}
                binary[UNLABELED] = UNLABELED
                entries = [Entry(e.id, e.split, binary[e.label.lower()]) for e in entries]
            self._catalog = entries
        return self._catalog

    def texts(self, ids: set[str]) -> Iterator[tuple[str, str]]:
        for entry, text in self._entries():
            if entry.id in ids:
                yield entry.id, text


class CsvSource(_RecordSource):
    """A CSV with ``review,sentiment`` columns (the 50k "IMDB Dataset.csv"), optional ``split``."""

    text_field, label_field = "review", "sentiment"

    def _records(self) -> Iterator[tuple[int, dict[str, object]]]:
        # The one bounded line reader: it drops the byte-order mark spreadsheet programs start a CSV with, keeps the
        # CRLF inside a quoted field, and refuses a line longer than any review within the bound fills.
        lines = text_lines(self.path, 4 * self._decode.max_review_bytes + (64 << 10), "surrogateescape")
        dialect = csv.excel_tab if self.path.name.lower().endswith(".tsv") else csv.excel
        reader = csv.DictReader(lines, dialect=dialect)
        allow_csv_fields(4 * self._decode.max_review_bytes + 1)  # an over-long review is cut, not refused
        try:
            fields = [name.strip().lower() for name in reader.fieldnames or []]
            if "review" not in fields:
                raise ReviewlensError(
                    f"{self.path} needs a header with the columns review,sentiment (review alone: unlabeled "
                    f"reviews) (found {', '.join(reader.fieldnames or []) or 'no header'})"
                )
            reader.fieldnames = fields  # " Review" and "SENTIMENT" as a spreadsheet may write them
            for record in reader:
                yield reader.line_num, dict(record)
        except csv.Error as error:
            raise ReviewlensError(f"{self.path} line {reader.line_num} is not valid CSV ({error})") from None


def allow_csv_fields(characters: int) -> None:
    """Let the csv module read fields this long (its default stops at 131,072 characters)."""
    if csv.field_size_limit() < characters:
        csv.field_size_limit(characters)


class JsonlSource(_RecordSource):
    """JSON lines with ``text`` and ``label`` fields, optional ``split``."""

    text_field, label_field = "text", "label"

    def _records(self) -> Iterator[tuple[int, dict[str, object]]]:
        return jsonl_records(self.path, "surrogateescape", self._decode.max_review_bytes)


def jsonl_records(
    path: Path, errors: str, max_review_bytes: int = MAX_REVIEW_BYTES
) -> Iterator[tuple[int, dict[str, object]]]:
    """Each non-blank line of a JSON lines file as (line number, object); ``errors`` as for ``bytes.decode``. A line
    longer than a record of a ``max_review_bytes`` review may take is refused in one line, read in fixed memory."""
    limit = json_line_limit(max_review_bytes)
    with open(path, "rb") as handle:
        for number, raw in bounded_lines(handle, limit):
            if isinstance(raw, LongLine):
                raise ReviewlensError(
                    f"{path} line {number} is {raw.size:,} bytes, over the {limit:,} a record may take; "
                    "cut the review or raise --max-review-bytes"
                )
            line = raw.decode("utf-8", errors)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except RecursionError:
                raise ReviewlensError(f"{path} line {number} is nested too deeply; a record is a flat object") from None
            except json.JSONDecodeError as error:
                raise ReviewlensError(f"{path} line {number} is not JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ReviewlensError(f"{path} line {number} is not a JSON object with text and label")
            yield number, record


def open_source(path: Path, decode: ReadReport, labels: LabelKind = "sentiment") -> Source:
    """The source for ``path``, chosen by what it is: a directory, an archive, a .csv or a .jsonl; ``labels``
    ``"rating"`` labels aclImdb reviews by their rating, which only aclImdb's file names carry."""
    if labels not in LABEL_KINDS:
        raise ReviewlensError(f"--labels {labels}: use sentiment or rating")
    if not path.exists():
        raise ReviewlensError(f"{path} does not exist; pass an aclImdb directory, a .tar.gz, a .csv or a .jsonl")
    if path.is_dir():
        return DirectorySource(path, decode, labels)
    if path.stat().st_size == 0:
        raise ReviewlensError(f"{path} is empty; pass a file that holds reviews")
    name = path.name.lower()
    if labels == "rating" and name.endswith((".csv", ".tsv", ".jsonl", ".json", ".ndjson")):
        raise ReviewlensError(
            f"--labels rating: {path} carries no ratings (only aclImdb's ID_RATING.txt file names do); "
            "leave --labels out, its label column is used as it is"
        )
    if name.endswith((".csv", ".tsv")):
        return CsvSource(path, decode)
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return JsonlSource(path, decode)
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")) or tarfile.is_tarfile(path):
        return ArchiveSource(path, decode, labels)
    raise ReviewlensError(
        f"{path} is not a dataset reviewlens reads; pass an aclImdb directory, a .tar.gz, a .csv or a .jsonl"
    )


def label_order(names: set[str]) -> tuple[str, ...]:
    """Label names in their order: by value where all are numbers (star ratings: 2 before 10), else sorted, so
    negative comes before positive as the binary runs have always had them."""
    try:
        return tuple(sorted(names, key=float))
    except ValueError:
        return tuple(sorted(names))


#: A label with fewer reviews than this in a split is worth a warning (``data info``).
RARE_LABEL = 5


def _hold_out(ids: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """The book's split: shuffle with ``random.Random(1337)``, the last ``fraction`` is held out."""
    shuffled = list(ids)  # sorted by id, whatever order the source lists them in
    random.Random(SPLIT_SEED).shuffle(shuffled)
    held = int(fraction * len(shuffled))
    return shuffled[: len(shuffled) - held], shuffled[len(shuffled) - held :]


class Dataset:
    """Labeled reviews from one source, split into train, validation and test.

    Validation is ``validation_fraction`` of train per class, chosen with ``random.Random(1337)``
    as the Keras book does; test is never touched by it. Iterating a split streams its reviews
    in the source's fixed order.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        validation_fraction: float = VALIDATION_FRACTION,
        max_review_bytes: int = MAX_REVIEW_BYTES,
        labels: LabelKind = "sentiment",
    ):
        if not 0.0 < validation_fraction < 1.0:
            raise ReviewlensError(f"validation fraction {validation_fraction} must lie between 0 and 1")
        if max_review_bytes < 1:
            raise ReviewlensError(f"--max-review-bytes {max_review_bytes} must be at least 1")
        self.path = Path(path)
        self.read_report = ReadReport(max_review_bytes)
        self.source = open_source(self.path, self.read_report, labels)
        self.label_kind = labels
        self.validation_fraction = validation_fraction
        self._split_ids: dict[str, set[str]] | None = None
        self._names: tuple[str, ...] = ()
        self._labels: dict[str, int] = {}
        self._rank: dict[str, int] = {}  # each id's position in sorted order

    def _splits(self) -> dict[str, set[str]]:
        if self._split_ids is None:
            # Sorted by id, so the same reviews give the same splits and the same training order
            # whatever order the source lists them in (a directory listing, an archive's members).
            catalog = sorted(self.source.catalog(), key=lambda entry: entry.id)
            names = {e.label for e in catalog if e.label != UNLABELED}
            binary = names <= set(LABELS.values())
            self._names = tuple(LABELS.values()) if binary else label_order(names)
            unlabeled_only = not names and any(e.split == "unsup" for e in catalog)  # for pretraining alone
            if unlabeled_only:
                self._names = ()
            elif len(self._names) < 2:
                raise ReviewlensError(
                    f"{self.path} has the single label {next(iter(names), '')!r}; a classifier needs at least two "
                    "labels in its label column"
                )
            index = {name: i for i, name in enumerate(self._names)} | {UNLABELED: -1}
            self._labels = {e.id: index[e.label] for e in catalog}
            self._rank = {e.id: i for i, e in enumerate(catalog)}
            by_class: dict[tuple[str | None, int], list[str]] = {}
            for entry in catalog:
                by_class.setdefault((entry.split, self._labels[entry.id]), []).append(entry.id)
            splits: dict[str, set[str]] = {name: set() for name in (*SPLITS, "unsup")}
            for label in range(len(self._names)):
                train = by_class.get(("train", label), [])
                test = by_class.get(("test", label), [])
                undeclared = by_class.get((None, label), [])
                if undeclared:  # a CSV or JSONL without a split column: hold out a test part
                    more_train, more_test = _hold_out(undeclared, TEST_FRACTION)
                    train, test = train + more_train, test + more_test
                train, validation = _hold_out(train, self.validation_fraction)
                splits["train"].update(train)
                splits["validation"].update(validation)
                splits["test"].update(test)
            splits["unsup"].update(by_class.get(("unsup", -1), []))
            # Two labels are needed in train and test, as always; more labels need every one in train (a label
            # only test holds cannot be learned) and some test reviews; a test split without some is a warning.
            two = len(self._names) == 2
            for name in () if unlabeled_only else ("train", "test"):
                held = {self._labels[id] for id in splits[name]}
                missing = [n for i, n in enumerate(self._names) if i not in held]
                if missing and (two or name == "train" or not held):
                    raise ReviewlensError(
                        f"{self.path} has no {' or '.join(missing)} reviews in its {name} split; "
                        + ("both classes are needed" if two else f"{name} needs every label the data has")
                    )
            self._split_ids = splits
        return self._split_ids

    @property
    def label_names(self) -> tuple[str, ...]:
        """The labels' names, each review's label an index into them: negative, positive for binary data (as
        0/1 always were), else the label column's values in order (numbers by value, words sorted)."""
        self._splits()
        if not self._names:
            raise ReviewlensError(
                f"{self.path} holds only unlabeled reviews: `reviewlens pretrain --data {self.path}` learns from them; "
                "a classifier needs labeled ones"
            )
        return self._names

    @property
    def labeled(self) -> bool:
        """Whether the data has labeled reviews (else only unlabeled ones, for pretraining)."""
        self._splits()
        return bool(self._names)

    def warnings(self) -> list[str]:
        """What is wrong with the labels but does not stop training: a label with fewer than ``RARE_LABEL``
        train reviews, a label the test split lacks (its scores cannot be measured)."""
        counts, lines = self.counts(), []
        for index, name in enumerate(self.label_names):
            seen = counts["train"].get(index, 0) + counts["validation"].get(index, 0)
            if seen < RARE_LABEL:
                lines.append(f"label {name!r} has only {seen} train and validation reviews; it will be learned poorly")
            if counts["test"].get(index, 0) == 0:
                lines.append(f"label {name!r} has no test reviews; its test scores cannot be measured")
        return lines

    def ids(self, split: str) -> set[str]:
        """The ids of the reviews in ``split`` (train, validation, test or unsup)."""
        return self._splits()[split]

    def examples(self, split: str) -> Iterator[Example]:
        """Stream the reviews of ``split`` as ``Example(text, label, id)``."""
        ids = self.ids(split)
        for id, text in self.source.texts(ids):
            yield Example(text, self._labels[id], id)

    def read(self, split: str) -> tuple[list[str], list[int]]:
        """All texts and labels of one split, sorted by id."""
        return self.read_splits(split)[split]

    def read_splits(self, *splits: str) -> dict[str, tuple[list[str], list[int]]]:
        """Texts and labels of several splits, each sorted by id, from one pass over the source."""
        owner = {id: split for split in splits for id in self.ids(split)}
        found: dict[str, list[tuple[int, str, int]]] = {split: [] for split in splits}
        for id, text in self.source.texts(set(owner)):
            found[owner[id]].append((self._rank[id], text, self._labels[id]))
        result = {}
        for split, rows in found.items():
            rows.sort(key=lambda row: row[0])
            result[split] = ([text for _, text, _ in rows], [label for _, _, label in rows])
        return result

    def catalog_digest(self) -> str:
        """A hash of what the splits are made of, without reading a text: every review's id, split and label,
        the validation fraction and the review size limit (what ``train --resume`` checks is the same data)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(b"%r\x00%d\x00" % (self.validation_fraction, self.read_report.max_review_bytes))
        self._splits()
        if self._names != tuple(LABELS.values()):  # binary data hashes as it always has
            digest.update(json.dumps(self._names).encode("utf-8", "surrogatepass"))
        for entry in sorted(self.source.catalog(), key=lambda entry: entry.id):
            label = self._labels[entry.id]  # the index: 0/1 (-1 unlabeled), as before labels had names
            digest.update(f"{entry.id}\x00{entry.split}\x00{label}\n".encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def counts(self) -> dict[str, dict[int, int]]:
        """Reviews per split and label, from the catalog alone."""
        result: dict[str, dict[int, int]] = {}
        for split, ids in self._splits().items():
            per_label: dict[int, int] = {}
            for id in ids:
                per_label[self._labels[id]] = per_label.get(self._labels[id], 0) + 1
            result[split] = per_label
        return result

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r})"
