"""Reviews in text files are read a line at a time by one bounded reader (``reviewlens.files.bounded_lines``): a
line far past its bound is cut or refused in one line, read in memory that does not grow with it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from reviewlens.data import Dataset
from reviewlens.errors import ReviewlensError
from reviewlens.files import LongLine, bounded_lines

from .memory import MB, cli_peak
from .test_cli import run as run_cli

LONG = 40 * MB  # the review: 1.8 GB to evaluate before it was cut


def test_the_reader_keeps_a_long_lines_head_and_tail_and_every_other_line_whole() -> None:
    data = b"\xef\xbb\xbfab\r\n" + b"x" * 50 + b"\tlabel\r\n" + b"short\n\n" + b"y" * 11 + b"\nend"
    lines = list(bounded_lines(io.BytesIO(data), 10, tail=8))
    assert lines == [
        (1, b"ab"),
        (2, LongLine(56, b"x" * 10, b"\tlabel")),  # its end (\r\n) is not counted or kept
        (3, b"short"),
        (4, b""),
        (5, LongLine(11, b"y" * 10, b"y" * 7)),
        (6, b"end"),
    ]
    assert list(bounded_lines(io.BytesIO(b"a" * 10 + b"\r\n" + b"b" * 10), 10)) == [(1, b"a" * 10), (2, b"b" * 10)]
    kept = list(bounded_lines(io.BytesIO(b'"a\r\nb"\r\nc'), 10, keep_ends=True))
    assert kept == [(1, b'"a\r\n'), (2, b'b"\r\n'), (3, b"c")]  # for the csv module: CRLF inside a quoted field


def _write_long_tsv(path: Path) -> Path:
    with path.open("wb") as out:
        out.write(b"A superb, wonderful film.\t1\n")
        for _ in range(LONG // MB):
            out.write(b"dull " * (MB // 5))
        out.write(b"\t0\nBoring and dull.\t0\n")
    return path


def test_evaluate_cuts_a_long_review_as_train_does_in_fixed_memory(trained_run: Path, tmp_path: Path) -> None:
    data = _write_long_tsv(tmp_path / "long.tsv")
    result, peak = cli_peak("evaluate", str(trained_run), "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    per_label = json.loads(result.stdout)["test"]["per_label"]
    assert per_label["positive"]["support"] + per_label["negative"]["support"] == 3
    assert "cut 1 reviews longer than 1,000,000 bytes, as train does (line 2)" in result.stderr
    assert peak < 600 * MB, f"peak {peak / MB:.0f} MB for a {LONG // MB} MB review"


def test_predict_file_cuts_a_long_line_and_keeps_each_answer_on_its_line(trained_run: Path, tmp_path: Path) -> None:
    data = tmp_path / "reviews.txt"
    with data.open("wb") as out:
        out.write(b"A superb film.\n")
        for _ in range(LONG // MB):
            out.write(b"good " * (MB // 5))
        out.write(b"\n\nDull.\n")
    result, peak = cli_peak("predict", str(trained_run), "--file", str(data), "--json")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [a.get("line") for a in answers] == [1, 2, 3, 4]
    assert len(answers[1]["text"].encode()) <= 1_000_000 and answers[2]["label"] is None  # the blank line
    assert peak < 600 * MB, f"peak {peak / MB:.0f} MB for a {LONG // MB} MB line"


def test_a_dataset_line_past_any_reviews_bound_is_one_line(tmp_path: Path) -> None:
    jsonl = tmp_path / "long.jsonl"
    jsonl.write_bytes(b'{"text": "fine", "label": 1}\n{"text": "' + b"a" * 7 * MB + b'", "label": 0}\n')
    with pytest.raises(ReviewlensError, match=r"long\.jsonl line 2 is [\d,]+ bytes, over the [\d,]+ a record may take"):
        Dataset(jsonl).read("test")
    csv = tmp_path / "long.csv"
    rows = b"".join(b"fine film %d,positive\nawful film %d,negative\n" % (i, i) for i in range(20))
    csv.write_bytes(b"review,sentiment\n" + rows + b"b" * 5 * MB + b",negative\n")
    with pytest.raises(ReviewlensError, match=r"long\.csv line 42 is [\d,]+ bytes"):
        Dataset(csv).read("test")
    cut = Dataset(csv, max_review_bytes=2 * MB)  # a bound the line fits: the review is cut to it, as before
    texts = [text for split in ("train", "validation", "test") for text in cut.read(split)[0]]
    assert len(texts) == 41 and max(len(text.encode()) for text in texts) == 2 * MB
    result = run_cli("train", "--recipe", "bow-bigram", "--data", str(jsonl), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "raise --max-review-bytes" in result.stderr
