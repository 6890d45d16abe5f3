"""Labelled review files scored whole: every row of a .tsv, or of a .csv/.jsonl without a split column.

``reviewlens evaluate --data FILE`` uses these to check a model on reviews from elsewhere. A ``.tsv`` is
``text<TAB>label`` with no header; a ``.csv`` has the columns ``review,sentiment`` or ``text,label``; a
``.jsonl`` has the keys ``text`` and ``label``. Labels are 0/1 or negative/positive (any case), or the names of
the run's labels where it has others.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from reviewlens.data.sources import MAX_REVIEW_BYTES, TEXT_LABELS, allow_csv_fields, jsonl_records
from reviewlens.errors import ReviewlensError
from reviewlens.files import LongLine, bounded_lines, cut_utf8, text_lines

TSV_SUFFIXES = (".tsv",)
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")  # as ``open_source`` reads them
CSV_HEADERS = (("review", "sentiment"), ("text", "label"))
SPLIT_FIELD = "split"
_TSV_HEADERS = {("text", "label"), ("review", "sentiment")}  # a header line a user added anyway is skipped


def _suffix(path: Path) -> str:
    return path.name.lower()


def labelled_file(path: str | os.PathLike[str]) -> bool:
    """Whether every row of ``path`` is for evaluation: a .tsv, or a .csv/.jsonl that declares no split.

    A .csv or .jsonl with a ``split`` column (or any record with a non-empty ``split`` key) is a dataset
    with train and test parts, read by ``reviewlens.data.Dataset`` instead.
    """
    path = Path(path)
    if not path.is_file():
        return False
    name = _suffix(path)
    if name.endswith(TSV_SUFFIXES):
        return True
    if name.endswith(CSV_SUFFIXES):
        header = next(csv.reader(text_lines(path, 4 * MAX_REVIEW_BYTES, "replace")), [])
        return SPLIT_FIELD not in {column.strip().lower() for column in header}
    if name.endswith(JSONL_SUFFIXES):
        records = jsonl_records(path, errors="replace")
        return all(not str(record.get(SPLIT_FIELD) or "").strip() for _, record in records)
    return False


def read_labelled(
    path: str | os.PathLike[str],
    names: Sequence[str] = ("negative", "positive"),
    max_review_bytes: int = MAX_REVIEW_BYTES,
    cut: list[int] | None = None,
) -> tuple[list[str], list[int]]:
    """Every review of a .tsv, .csv or .jsonl file and its label, the index of its name in ``names`` (a run's
    labels), in file order. For the binary ``names`` the label is 0/1 or negative/positive (1 positive, 0 negative).
    A review longer than ``max_review_bytes`` is cut there, as ``train`` cuts it (its line number goes to ``cut``);
    lines are read by the one bounded line reader, so a line's memory never grows past its bound.

    Raises ``ReviewlensError`` naming the file and line for a label that is not one of ``names`` (or 0/1,
    negative/positive), a row without a text or label, a CSV without a known header, or a file with no reviews.
    """
    known = {name: index for index, name in enumerate(names)}
    if tuple(names) == ("negative", "positive"):
        known = TEXT_LABELS
    path = Path(path)
    if not path.is_file():
        raise ReviewlensError(f"{path} is not a file; pass a .tsv, .csv or .jsonl of labelled reviews")
    name = _suffix(path)
    rows: Iterator[tuple[int, object, object]]
    if name.endswith(TSV_SUFFIXES):
        rows = _tsv_rows(path, max_review_bytes)
    elif name.endswith(CSV_SUFFIXES):
        rows = _csv_rows(path, max_review_bytes)
    elif name.endswith(JSONL_SUFFIXES):
        records = jsonl_records(path, "replace", max_review_bytes)
        rows = ((number, record.get("text"), record.get("label")) for number, record in records)
    else:
        raise ReviewlensError(f"{path} is not a .tsv, .csv or .jsonl; pass labelled reviews in one of those")
    texts: list[str] = []
    labels: list[int] = []
    for number, text, label in rows:
        where = f"{path} line {number}"
        if text is None or label is None:
            raise ReviewlensError(f"{where} lacks a text or a label; every row needs both")
        if not isinstance(text, str):
            raise ReviewlensError(f"{where}: the text must be a string, not {text!r}")
        word = str(label).strip().lower() if known is TEXT_LABELS else str(label).strip()
        if word not in known:
            expected = "0/1 or negative/positive" if known is TEXT_LABELS else "one of " + ", ".join(names)
            raise ReviewlensError(f"{where} has the label {label!r}; use {expected}")
        if len(text) * 4 > max_review_bytes and len(raw := text.encode("utf-8", "replace")) > max_review_bytes:
            text = cut_utf8(raw, max_review_bytes).decode("utf-8")
            if cut is not None:
                cut.append(number)
        texts.append(text)
        labels.append(known[word])
    if not texts:
        raise ReviewlensError(f"{path} holds no reviews; it needs one labelled review per line")
    return texts, labels


def _tsv_rows(path: Path, max_review_bytes: int) -> Iterator[tuple[int, object, object]]:
    with open(path, "rb") as handle:
        # A line past the bound keeps its head (the review, cut as it would be) and its tail (the label).
        for number, raw in bounded_lines(handle, max_review_bytes + 4096, tail=4096):
            if isinstance(raw, LongLine):
                _, found, end = raw.tail.rpartition(b"\t")
                if not found:
                    raise ReviewlensError(f"{path} line {number} has no tab near its end; write each review as "
                                          "text<TAB>label")  # fmt: skip
                yield number, raw.head.decode("utf-8", "replace"), end.decode("utf-8", "replace")
                continue
            line = raw.decode("utf-8", "replace")
            if not line.strip():
                continue
            text, tab, label = line.rpartition("\t")  # the label is after the last tab; the text may hold tabs
            if not tab:
                raise ReviewlensError(f"{path} line {number} has no tab; write each review as text<TAB>label")
            if number == 1 and (text.strip().lower(), label.strip().lower()) in _TSV_HEADERS:
                continue
            yield number, text, label


def _csv_rows(path: Path, max_review_bytes: int) -> Iterator[tuple[int, object, object]]:
    allow_csv_fields(4 * max_review_bytes + 1)  # an over-long review is cut, not refused
    reader = csv.DictReader(text_lines(path, 4 * max_review_bytes + (64 << 10), "replace"))
    try:
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        chosen = next(
            ((fields[text], fields[label]) for text, label in CSV_HEADERS if text in fields and label in fields),
            None,
        )
        if chosen is None:
            raise ReviewlensError(
                f"{path} needs a header with the columns review,sentiment or text,label "
                f"(found {', '.join(reader.fieldnames or []) or 'no header'})"
            )
        text_field, label_field = chosen
        for record in reader:
            yield reader.line_num, record.get(text_field), record.get(label_field)
    except csv.Error as error:
        raise ReviewlensError(f"{path} line {reader.line_num} is not valid CSV ({error})") from None
