"""Reading every source layout, the book's validation split, resolution, download, data info."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import random
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reviewlens.data import MAX_REVIEW_BYTES, Dataset, describe, download, resolve, sample_path
from reviewlens.data.download import ACLIMDB_FILENAME
from reviewlens.errors import ReviewlensError

from .conftest import write_aclimdb, write_archive, write_csv, write_jsonl
from .test_cli import run as run_cli


def test_directory_splits_are_the_books(aclimdb: Path) -> None:
    dataset = Dataset(aclimdb)
    counts = dataset.counts()
    assert counts["train"] == {0: 48, 1: 49}  # 61 positive files (one not UTF-8), 60 negative
    assert counts["validation"] == {0: 12, 1: 12}
    assert counts["test"] == {0: 40, 1: 40}
    # The book: per class, shuffle the file list with random.Random(1337); the last 20% validate.
    for category in ("neg", "pos"):
        ids = sorted(f"train/{category}/{p.name}" for p in (aclimdb / "train" / category).iterdir())
        random.Random(1337).shuffle(ids)
        held = int(0.2 * len(ids))
        assert set(ids[-held:]) <= dataset.ids("validation")
        assert set(ids[:-held]) <= dataset.ids("train")
    assert not dataset.ids("validation") & dataset.ids("test")


def test_iteration_is_deterministic_and_labels_follow_folders(aclimdb: Path) -> None:
    first = [(e.id, e.label) for e in Dataset(aclimdb).examples("test")]
    again = [(e.id, e.label) for e in Dataset(aclimdb).examples("test")]
    assert first == again
    assert all(label == (1 if id.startswith("test/pos/") else 0) for id, label in first)


def test_archive_reads_the_same_reviews_as_the_directory(aclimdb: Path, tmp_path: Path) -> None:
    archive = write_archive(aclimdb, tmp_path / "imdb.tar.gz")
    from_dir, from_tar = Dataset(aclimdb), Dataset(archive)
    for split in ("train", "validation", "test"):
        assert sorted((e.id, e.text, e.label) for e in from_dir.examples(split)) == sorted(
            (e.id, e.text, e.label) for e in from_tar.examples(split)
        )
    assert from_tar.read_report.undecodable == ["train/pos/999_9.txt"]


def test_undecodable_file_is_read_with_replacement_and_reported(aclimdb: Path) -> None:
    dataset = Dataset(aclimdb)
    texts = {e.id: e.text for e in dataset.examples("train")} | {e.id: e.text for e in dataset.examples("validation")}
    assert "\ufffd" in texts["train/pos/999_9.txt"]
    assert dataset.read_report.undecodable == ["train/pos/999_9.txt"]


def test_csv_like_the_50k_imdb_dataset(tmp_path: Path) -> None:
    rows = [(f"great film number {i}" if i % 2 else f"bad film number {i}", "positive" if i % 2 else "negative")
            for i in range(100)]  # fmt: skip
    dataset = Dataset(write_csv(tmp_path / "IMDB Dataset.csv", rows))
    counts = dataset.counts()
    assert counts["test"] == {0: 10, 1: 10}  # no split column: 20% per class held out as test
    assert counts["train"][0] + counts["validation"][0] == 40
    assert all(("great" in e.text) == (e.label == 1) for e in dataset.examples("train"))


def test_jsonl_with_split_field(tmp_path: Path) -> None:
    records = [{"text": f"review {i}", "label": i % 2, "split": "test" if i < 20 else "train"} for i in range(60)]
    dataset = Dataset(write_jsonl(tmp_path / "reviews.jsonl", records))
    assert dataset.counts()["test"] == {0: 10, 1: 10}
    assert sum(dataset.counts()["validation"].values()) == 8


def test_unlabeled_records_are_the_unsup_split_and_a_file_without_labels_is_for_pretraining(tmp_path: Path) -> None:
    rows = [(f"review {i}", ("negative", "positive")[i % 2]) for i in range(40)]
    marked = [{"text": f"spare {i}", "label": None, "split": ("unsup", "unlabeled")[i % 2]} for i in range(6)]
    mixed = Dataset(write_jsonl(tmp_path / "mixed.jsonl", [{"text": t, "label": lab} for t, lab in rows] + marked))
    assert len(mixed.ids("unsup")) == 6 and mixed.label_names == ("negative", "positive")
    labeled = sum(sum(mixed.counts()[split].values()) for split in ("train", "validation", "test"))
    assert labeled == 40 and mixed.read("unsup")[0] == [f"spare {i}" for i in range(6)]
    only = Dataset(write_csv(tmp_path / "only.csv", [(f"text {i}",) for i in range(5)], header=("review",)))  # type: ignore[list-item]
    assert not only.labeled and len(only.ids("unsup")) == 5 and not only.ids("train")
    assert describe(only).reviews == {"unsup": {"unlabeled": 5}}  # data info shows what pretraining reads
    assert describe(mixed).reviews["unsup"] == {"negative": 0, "positive": 0, "unlabeled": 6}
    with pytest.raises(ReviewlensError, match="holds only unlabeled reviews: `reviewlens pretrain"):
        only.label_names  # noqa: B018 - training a classifier asks for them
    with pytest.raises(ReviewlensError, match=r"line 2 has no label.*split unsup"):
        Dataset(write_jsonl(tmp_path / "gap.jsonl", [{"text": "a", "label": 1}, {"text": "b"}])).counts()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: ((p / "empty.csv").write_text("") and None) or p / "empty.csv", "is empty"),
        (lambda p: (p / "notimdb").mkdir() or p / "notimdb", "is not an aclImdb directory"),
        (lambda p: write_csv(p / "bad.csv", [("ok", "positive"), ("hm", " ")]), "line 3 has no label"),
        (lambda p: write_csv(p / "cols.csv", [("x", "positive")], header=("text", "stars")), "review,sentiment"),
        (lambda p: ((p / "bad.jsonl").write_text('{"text": "a", "label": 1}\n{oops\n') and None) or p / "bad.jsonl",
         "line 2 is not JSON"),
        (lambda p: ((p / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage" * 50) and None) or p / "broken.tar.gz",
         "is not a readable tar archive"),
    ],
)  # fmt: skip
def test_bad_sources_name_the_path(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ReviewlensError, match=message) as raised:
        Dataset(path).counts()
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("cut", ["at a member", "inside a header", "inside a review"])
def test_a_truncated_tar_is_refused_not_read_in_part(aclimdb: Path, tmp_path: Path, cut: str) -> None:
    whole = tmp_path / "whole.tar"
    with tarfile.open(whole, "w") as tar:  # plain tar: no compression to notice the end missing
        tar.add(aclimdb, arcname="aclImdb")
    data = whole.read_bytes()
    boundary = 512 * (len(data) // 512 // 3)  # some header or data block start
    while data[boundary + 257 : boundary + 262] != b"ustar":  # walk to the next header
        boundary += 512
    end = {"at a member": boundary, "inside a header": boundary + 100, "inside a review": boundary + 700}[cut]
    truncated = tmp_path / "copy.tar"
    truncated.write_bytes(data[:end])
    with pytest.raises(ReviewlensError, match=f"{truncated} is (truncated|not a readable tar archive)"):
        Dataset(truncated).counts()
    assert sum(sum(c.values()) for c in Dataset(whole).counts().values()) > 0  # the whole one reads


def test_jsonl_lone_surrogates_are_replaced_and_counted(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"review {i}", "label": i % 2}) for i in range(40)]
    lines[3] = '{"text": "great \\ud800 film \\udcff", "label": 1}'  # valid JSON, not valid Unicode
    path = tmp_path / "escapes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = Dataset(path)
    texts = {e.id: e.text for split in ("train", "validation", "test") for e in dataset.examples(split)}
    assert texts["line-4"] == "great \ufffd film \ufffd"
    assert dataset.read_report.undecodable == ["line-4"]


def test_a_deeply_nested_jsonl_line_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "fine", "label": 1}\n{"text": ' + "[" * 100_000 + "]" * 100_000 + ', "label": 0}\n')
    with pytest.raises(ReviewlensError, match=f"{path} line 2 is nested too deeply"):
        Dataset(path).counts()


def test_one_class_only_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pos.jsonl", [{"text": f"t{i}", "label": "positive"} for i in range(20)])
    with pytest.raises(ReviewlensError, match="no negative reviews"):
        Dataset(path).counts()


def test_resolution_order(aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.delenv("REVIEWLENS_DATA", raising=False)
    monkeypatch.setenv("REVIEWLENS_CACHE", str(cache))
    assert resolve().origin == "embedded sample"
    cache.mkdir()
    write_archive(aclimdb, cache / ACLIMDB_FILENAME)
    assert resolve().origin == "download cache"
    monkeypatch.setenv("REVIEWLENS_DATA", str(aclimdb))
    assert resolve().origin == "$REVIEWLENS_DATA"
    chosen = resolve(cache / ACLIMDB_FILENAME)
    assert chosen.origin == "--data"
    assert chosen.describe() == f"data: {cache / ACLIMDB_FILENAME} (--data)"


def test_embedded_sample_is_small_balanced_and_cited() -> None:
    path = sample_path()
    assert path.stat().st_size < 2_000_000
    dataset = Dataset(path)
    counts = dataset.counts()
    assert counts["train"][0] + counts["validation"][0] == 1000
    assert counts["train"][1] + counts["validation"][1] == 1000
    assert counts["test"] == {0: 500, 1: 500}
    import tarfile

    with tarfile.open(path) as archive:
        readme = archive.extractfile("aclImdb/README")
        assert readme is not None
        assert b"Maas" in readme.read()


def test_describe_counts_lengths_and_duplicates(tmp_path: Path) -> None:
    root = write_aclimdb(tmp_path, {"train": 30, "test": 20}, bad_utf8=True)
    duplicate = (root / "train" / "neg" / "0_2.txt").read_text()
    (root / "test" / "neg" / "500_1.txt").write_text(duplicate)
    (root / "test" / "neg" / "501_1.txt").write_text(duplicate)
    info = describe(Dataset(root))
    assert info.reviews["test"] == {"positive": 20, "negative": 22}
    assert info.duplicates_within["test"] == 1
    assert info.duplicates_across["train/test"] + info.duplicates_across["validation/test"] == 1
    assert info.undecodable == ["train/pos/999_9.txt"]
    assert 8 <= info.words["train"]["median"] <= 40


# -- download, against a server of our own on loopback ------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    payload = b"pretend archive " * 10_000
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "file.tar.gz").write_bytes(payload)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path / "served"), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/file.tar.gz", payload
    httpd.shutdown()


def test_download_verifies_and_reports_progress(server: tuple[str, bytes], tmp_path: Path) -> None:
    url, payload = server
    seen: list[int] = []
    target = tmp_path / "cache" / "archive.tar.gz"
    sha = hashlib.sha256(payload).hexdigest()
    path = download(target, url=url, sha256=sha, size=len(payload), progress=lambda done, total: seen.append(done))
    assert path.read_bytes() == payload
    assert seen[-1] == len(payload)
    assert download(target, url="http://127.0.0.1:9/never-fetched", sha256=sha, size=len(payload)) == target


def test_checksum_mismatch_leaves_nothing_that_looks_whole(server: tuple[str, bytes], tmp_path: Path) -> None:
    url, payload = server
    target = tmp_path / "cache" / "archive.tar.gz"
    with pytest.raises(ReviewlensError, match="corrupt"):
        download(target, url=url, sha256="0" * 64, size=len(payload))
    assert list(target.parent.iterdir()) == []


def test_no_network_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ReviewlensError, match=r"check the network.*--data PATH"):
        download(tmp_path / "a.tar.gz", url="http://127.0.0.1:9/aclImdb_v1.tar.gz", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_reading_several_splits_in_one_pass_equals_reading_each(aclimdb: Path, tmp_path: Path) -> None:
    archive = Dataset(write_archive(aclimdb, tmp_path / "imdb.tar.gz"))
    together = archive.read_splits("train", "validation", "test")
    for split in ("train", "validation", "test"):
        assert together[split] == archive.read(split) == Dataset(aclimdb).read(split)


# -- files as spreadsheets, scrapers and file systems make them -----------------------------------------------


def test_a_spreadsheet_csv_with_a_bom_crlf_and_spaced_header_reads(tmp_path: Path) -> None:
    rows = "".join(
        f'"{"great" if i % 2 else "bad"} film,\r\nline two {i}",{"positive" if i % 2 else "negative"}\r\n'
        for i in range(100)
    )
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f" Review ,SENTIMENT\r\n{rows}".encode())  # what spreadsheets write
    dataset = Dataset(path)
    assert dataset.counts()["test"] == {0: 10, 1: 10}
    texts = [e.text for split in ("train", "validation", "test") for e in dataset.examples(split)]
    assert len(texts) == 100 and all(t.endswith(tuple(f"line two {i}" for i in range(100))) for t in texts)
    assert all(("great" in e.text) == (e.label == 1) for e in dataset.examples("train"))


def test_a_tsv_is_read_by_tabs(tmp_path: Path) -> None:
    path = tmp_path / "reviews.tsv"
    path.write_text("review\tsentiment\n" + "".join(f"a film, {i}\t{i % 2}\n" for i in range(50)), encoding="utf-8")
    dataset = Dataset(path)
    assert sum(sum(c.values()) for c in dataset.counts().values()) == 50
    assert {e.text for e in dataset.examples("test")} <= {f"a film, {i}" for i in range(50)}


def test_files_that_are_not_reviews_are_skipped_and_named(aclimdb: Path) -> None:
    folder = aclimdb / "train" / "pos"
    os.mkfifo(folder / "fifo_1.txt")  # opening it would wait for a writer for ever
    (folder / "dangling_1.txt").symlink_to(folder / "gone.txt")
    (folder / "loop_1.txt").symlink_to(folder / "loop_1.txt")
    (folder / "folder_1.txt").mkdir()
    dataset = Dataset(aclimdb)
    read: list[int] = []
    reader = threading.Thread(target=lambda: read.append(len(dataset.read("train")[0])), daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert read == [sum(dataset.counts()["train"].values())], "reading the train split hung or failed"
    assert dataset.read_report.skipped == {
        "train/pos/dangling_1.txt": "a link to nothing",
        "train/pos/fifo_1.txt": "a FIFO",
        "train/pos/folder_1.txt": "a directory",
        "train/pos/loop_1.txt": "a link loop",
    }
    assert any("skipped 4 files" in line for line in dataset.read_report.warnings())


def test_an_overlong_review_is_cut_at_a_character_boundary(tmp_path: Path) -> None:
    long = "é" * 700 + " the end"  # 1,408 bytes; 1,000 falls inside no character, 999 would
    base = write_aclimdb(tmp_path, bad_utf8=False)
    (base / "train" / "pos" / "777_9.txt").write_text(long, encoding="utf-8")
    records = [{"text": long if i == 0 else f"review {i}", "label": i % 2, "split": "train" if i < 30 else "test"}
               for i in range(40)]  # fmt: skip
    for path in (base, write_jsonl(tmp_path / "long.jsonl", records)):
        dataset = Dataset(path, max_review_bytes=999)
        texts = [e.text for split in ("train", "validation") for e in dataset.examples(split)]
        cut = [t for t in texts if t.startswith("éé")]
        assert cut == ["é" * 499], path  # 998 bytes: the 999th would be half an "é"
        assert len(dataset.read_report.truncated) == 1
        assert "cut 1 reviews longer than 999 bytes" in dataset.read_report.warnings()[0]
    assert Dataset(base).examples("train") and len(long.encode()) < MAX_REVIEW_BYTES  # the default keeps it


def test_data_info_counts_what_was_cut_and_skipped(aclimdb: Path) -> None:
    (aclimdb / "train" / "neg" / "dangling_2.txt").symlink_to(aclimdb / "nowhere")
    result = run_cli("data", "info", str(aclimdb), "--max-review-bytes", "50", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["skipped"] == {"train/neg/dangling_2.txt": "a link to nothing"}
    assert len(info["truncated"]) > 100  # the generated reviews are longer than 50 bytes
    refused = run_cli("data", "info", str(aclimdb), "--max-review-bytes", "0")
    assert refused.returncode == 2 and "--max-review-bytes 0 must be at least 1" in refused.stderr
    assert "Traceback" not in refused.stderr
