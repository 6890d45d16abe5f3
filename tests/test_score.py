"""``reviewlens score``: every input format gives ``Run.predict``'s scores with ids carried; a rerun resumes; bad
rows are reported by file and row; a user's mistake is one line."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import reviewlens
from reviewlens.data import resolve
from reviewlens.errors import ReviewlensError
from reviewlens.scoring import LOCK_FILE, MANIFEST_FILE, READERS, SOURCES_FILE, BadRow, ScoreJob, Shard, score
from tests.test_cli import run as cli


class Recorded:
    """Events kept for the test; ``stop_after`` rows, it raises as a kill would stop the job."""

    def __init__(self, stop_after: int | None = None):
        self.rows, self.bad, self.stop_after = 0, list[BadRow](), stop_after

    def advance(self, shard: Shard, bytes_read: int, rows: int) -> None:
        self.rows += rows
        if self.stop_after is not None and self.rows >= self.stop_after:
            raise KeyboardInterrupt

    def bad_row(self, bad: BadRow) -> None:
        self.bad.append(bad)


@pytest.fixture(scope="module")
def texts(session_aclimdb: Path) -> list[str]:
    return resolve(session_aclimdb).dataset.read("test")[0][:40]


def write_inputs(folder: Path, texts: list[str]) -> dict[str, list[str]]:
    """The same reviews in every input format; ids ``f{i}`` where the format has columns. By output name."""
    folder.mkdir()
    ids = [f"f{i}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": texts})
    pa_csv.write_csv(table, folder / "a.csv")
    with gzip.open(folder / "b.csv.gz", "wb") as handle:
        handle.write((folder / "a.csv").read_bytes())
    lines = "".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in zip(ids, texts, strict=True))
    (folder / "c.jsonl").write_text(lines, encoding="utf-8")
    with gzip.open(folder / "d.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(lines)
    pq.write_table(table, folder / "e.parquet", row_group_size=7)
    one_per_line = "".join(t.replace("\n", " ") + "\n" for t in texts)
    (folder / "f.txt").write_text(one_per_line, encoding="utf-8")
    with gzip.open(folder / "g.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write(one_per_line)
    shards = folder / "shards"
    shards.mkdir()
    pq.write_table(table.slice(0, 25), shards / "part-0.parquet")
    pq.write_table(table.slice(25), shards / "part-1.parquet")
    (shards / "_SUCCESS").write_text("")  # what Spark leaves: not a shard
    return {"a": ids, "b": ids, "c": ids, "d": ids, "e": ids, "f": [], "g": [], "shards": ids}


def read_output(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types={"id": pa.string()}))
    return pa.Table.from_pylist([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])


@pytest.mark.parametrize("output_format", ["parquet", "csv", "jsonl"])
def test_every_input_format_scores_as_predict_with_ids_carried(
    trained_run: Path, texts: list[str], tmp_path: Path, output_format: str
) -> None:
    inputs = tmp_path / "in"
    ids = write_inputs(inputs, texts)
    given = [p for p in inputs.iterdir() if p.is_file()] + [inputs / "shards"]
    summary = score(ScoreJob(trained_run, tmp_path / "out", output_format), given, Recorded())  # type: ignore[arg-type]
    run = reviewlens.load(trained_run)
    expected = run.predict(texts)
    assert summary.shards == 9 and summary.rows == 8 * len(texts) and summary.rows_skipped == 0
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        table = read_output(tmp_path / "out" / f"{name}.{output_format}")
        np.testing.assert_allclose(table.column("score").to_numpy(), expected, atol=1e-6)
        assert table.column("label").to_pylist() == [run.label(p) for p in expected.tolist()]
        assert set(table.column("run").to_pylist()) == {run.name}
        if ids[name]:
            assert table.column("id").to_pylist() == ids[name]
        else:  # plain text has no ids: the file and line carry them
            assert table.column("row").to_pylist() == list(range(1, len(texts) + 1))
            assert set(table.column("file").to_pylist()) == {str(next(inputs.glob(f"{name}.*")))}
    parts = [read_output(tmp_path / "out" / f"part-{i}.{output_format}") for i in (0, 1)]
    assert pa.concat_tables(parts).column("id").to_pylist() == ids["shards"]
    np.testing.assert_allclose(np.concatenate([p.column("score").to_numpy() for p in parts]), expected, atol=1e-6)


def test_a_sequence_run_scores_through_its_keras_model(sequence_run: Path, texts: list[str], tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet")
    score(ScoreJob(sequence_run, tmp_path / "out"), [tmp_path / "in.parquet"], Recorded())
    scores = pq.read_table(tmp_path / "out" / "in.parquet").column("score").to_numpy()
    np.testing.assert_allclose(scores, reviewlens.load(sequence_run).predict(texts), atol=1e-6)


def test_helper_processes_share_the_batches_and_give_the_same_scores(
    trained_run: Path, texts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewlens import processes
    from reviewlens.scoring import LocalEngine

    monkeypatch.setattr(LocalEngine, "MIN_SHARED_BYTES", 0)  # a test-sized input is shared too
    pools = []
    start = processes.process_pool
    monkeypatch.setattr(processes, "process_pool", lambda *args, **kwargs: pools.append(args) or start(*args, **kwargs))
    many = texts * 10  # batches large enough to be cut between this process and a helper
    pq.write_table(pa.table({"text": many}), tmp_path / "in.parquet")
    score(ScoreJob(trained_run, tmp_path / "out"), [tmp_path / "in.parquet"], Recorded(), workers=2)
    assert [args[0] for args in pools] == [2]  # the batch went to two helper processes
    scores = pq.read_table(tmp_path / "out" / "in.parquet").column("score").to_numpy()
    np.testing.assert_allclose(scores, reviewlens.load(trained_run).predict(many), atol=1e-6)
    with pytest.raises(ReviewlensError, match="--workers 0: pass 1 or more"):
        score(ScoreJob(trained_run, tmp_path / "other"), [tmp_path / "in.parquet"], Recorded(), workers=0)
    assert not (tmp_path / "other").exists()


def test_a_killed_job_resumes_where_it_stopped(trained_run: Path, texts: list[str], tmp_path: Path) -> None:
    shards = tmp_path / "in"
    shards.mkdir()
    for i in range(3):
        (shards / f"part-{i}.txt").write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
    job = ScoreJob(trained_run, tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):  # stopped inside the second shard
        score(job, [shards], Recorded(stop_after=len(texts) + 1))
    assert sorted(p.name for p in job.out.iterdir() if not p.name.startswith(".")) == ["part-0.parquet", MANIFEST_FILE]
    (job.out / ".part-1.parquet.partial").write_bytes(b"PAR1 half a shard, as SIGKILL leaves it")
    done_before = (job.out / "part-0.parquet").stat().st_mtime_ns
    summary = score(job, [shards], Recorded())
    assert (summary.shards, summary.shards_done_before, summary.rows) == (3, 1, 2 * len(texts))
    assert (job.out / "part-0.parquet").stat().st_mtime_ns == done_before
    for i in range(3):
        assert pq.read_table(job.out / f"part-{i}.parquet").num_rows == len(texts)
    assert not list(job.out.glob(".*.partial"))
    assert not (job.out / LOCK_FILE).exists()  # a clean finish leaves no lock behind


def test_an_output_folder_being_written_is_refused_and_freed_after(
    trained_run: Path, texts: list[str], tmp_path: Path
) -> None:
    from filelock import FileLock

    (tmp_path / "a.txt").write_text("superb\nawful\n", encoding="utf-8")
    job = ScoreJob(trained_run, tmp_path / "out")
    job.out.mkdir()
    busy = pytest.raises(ReviewlensError, match="another reviewlens score is writing")
    with FileLock(job.out / LOCK_FILE), busy:  # another score writing there
        score(job, [tmp_path / "a.txt"], Recorded())
    assert score(job, [tmp_path / "a.txt"], Recorded()).rows == 2
    # no lock left behind: the scores, the manifest and the record of what each shard was made from
    assert sorted(p.name for p in job.out.iterdir()) == [SOURCES_FILE, "a.parquet", MANIFEST_FILE]


def test_a_rerun_scores_again_the_shards_whose_input_changed(
    trained_run: Path, texts: list[str], tmp_path: Path
) -> None:
    shards, out = tmp_path / "d", tmp_path / "o"
    shards.mkdir()
    for i in range(3):
        (shards / f"part-0{i}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[i::3]))
    args = ["score", str(trained_run), str(shards), "--output", str(out), "--json"]
    assert cli(*args).returncode == 0
    rewritten = texts[:5]
    (shards / "part-00.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rewritten))
    touched = shards / "part-01.jsonl"  # a new modification time, the same content: still done
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "scoring 1 shard(s) again: their input changed" in again.stderr and "skipped 2 shard(s)" in again.stderr
    summary = json.loads(again.stdout)
    assert (summary["shards_done_before"], summary["shards_rescored"], summary["rows"]) == (2, 1, len(rewritten))
    scores = pq.read_table(out / "part-00.parquet").column("score").to_numpy()
    np.testing.assert_allclose(scores, reviewlens.load(trained_run).predict(rewritten), atol=1e-6)
    (shards / "part-02.jsonl").write_text(json.dumps({"text": "A new review."}) + "\n")
    plain = cli(*args[:-1])  # the closing line says so too
    assert plain.returncode == 0 and "2 were done before; 1 rescored because their input changed" in plain.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_kill_9_mid_job_then_a_rerun_gives_the_uninterrupted_output(
    trained_run: Path, texts: list[str], tmp_path: Path
) -> None:
    from tests.test_processes import _session, _wait_for

    shards = tmp_path / "in"
    shards.mkdir()  # 4 shards of 4 MB: past MIN_SHARED_BYTES, so the killed job had helper processes too
    lines = "".join(t.replace("\n", " ") + "\n" for t in texts)
    lines *= (4 << 20) // len(lines) + 1
    for i in range(4):
        (shards / f"part-{i}.txt").write_text(lines, encoding="utf-8")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "reviewlens.cli", "score", str(trained_run), str(shards), "--output", str(out)]
    job = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: any(out.glob("part-*.parquet")), 60, "the first shard to be written")
    finally:
        job.kill()
        job.wait()
    done = sorted(p.name for p in out.glob("part-*.parquet"))
    assert 1 <= len(done) < 4, done
    _wait_for(lambda: not _session(job.pid), 10, "the killed job's helper processes to end")
    rerun = cli(*command[3:], "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["shards_done_before"] == len(done)
    whole = score(ScoreJob(trained_run, tmp_path / "whole"), [shards], Recorded())
    assert whole.shards == 4
    for i in range(4):
        assert pq.read_table(out / f"part-{i}.parquet").equals(pq.read_table(tmp_path / "whole" / f"part-{i}.parquet"))
    assert not list(out.glob(".*.partial"))


def test_bad_rows_are_reported_by_file_and_row_and_skipped(trained_run: Path, tmp_path: Path) -> None:
    rows = [
        b'{"id": 1, "text": "A superb film."}',
        b'{"id": 2, "text": "   "}',
        b'{"id": 3, "text": 5}',
        b'{"id": 4, "text": "bad \xff byte"}',
        b'{"id": 5, "text": "' + b"long " * 40 + b'"}',
        b'{"id": 6}',
        b"not json",
        b'{"id": 8, "text": "Dull."}',
    ]
    (tmp_path / "r.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    (tmp_path / "s.csv").write_bytes(b"id,text\n1,fine film\n2,one,too many\n3,\n")
    args = ["score", str(trained_run), str(tmp_path / "r.jsonl"), str(tmp_path / "s.csv"), "--max-review-bytes", "100"]
    result = cli(*args, "--output", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["rows_skipped"]) == (3, 8)
    assert [(Path(b["file"]).name, b["row"]) for b in summary["bad_rows"]] == [
        ("r.jsonl", 2), ("r.jsonl", 3), ("r.jsonl", 4), ("r.jsonl", 5), ("r.jsonl", 6), ("r.jsonl", 7),
        ("s.csv", 2), ("s.csv", 3),
    ]  # fmt: skip
    reasons = {(Path(b["file"]).name, b["row"]): b["reason"] for b in summary["bad_rows"]}
    assert reasons == {
        ("r.jsonl", 2): "a blank text",
        ("r.jsonl", 3): "a text that is not a string but int",
        ("r.jsonl", 4): "not valid UTF-8",
        ("r.jsonl", 5): "a text of 200 bytes, over --max-review-bytes 100",
        ("r.jsonl", 6): "no text",
        ("r.jsonl", 7): reasons[("r.jsonl", 7)],
        ("s.csv", 2): "a record with the wrong number of fields",
        ("s.csv", 3): "a blank text",
    }
    assert reasons[("r.jsonl", 7)].startswith("not valid JSON")
    assert f"{tmp_path / 'r.jsonl'}:4: not valid UTF-8" in result.stderr
    assert pq.read_table(tmp_path / "out" / "r.parquet").column("id").to_pylist() == ["1", "8"]

    again = cli(*args, "--output", str(tmp_path / "out"), "--json")  # the same command again: nothing left to do
    assert again.returncode == 0, again.stderr
    assert "skipped 2 shard(s) already scored in the output folder" in again.stderr
    assert {k: json.loads(again.stdout)[k] for k in ("rows", "rows_skipped", "shards_done_before")} == {
        "rows": 0, "rows_skipped": 0, "shards_done_before": 2,
    }  # fmt: skip

    strict = cli(*args, "--output", str(tmp_path / "strict"), "--strict")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert strict.stderr.strip().splitlines() == [f"error: {tmp_path / 'r.jsonl'}:2: a blank text (--strict); fix or "
                                                  "drop the row, or score without --strict"]  # fmt: skip
    assert not list((tmp_path / "strict").glob("*.parquet")) and not list((tmp_path / "strict").glob(".*.partial"))


def test_mistakes_are_one_line(trained_run: Path, tmp_path: Path) -> None:
    pq.write_table(pa.table({"review": ["A fine film."]}), tmp_path / "in.parquet")
    missing = cli("score", str(trained_run), str(tmp_path / "in.parquet"), "--output", str(tmp_path / "out"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == (
        f"error: {tmp_path / 'in.parquet'} has no column 'text' (it has: review); pass --text-column NAME"
    )
    (tmp_path / "broken.csv.gz").write_bytes(b"not gzip at all")
    unreadable = cli("score", str(trained_run), str(tmp_path / "broken.csv.gz"), "--output", str(tmp_path / "o2"))
    assert unreadable.returncode == 2 and len(unreadable.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "broken.csv.gz") in unreadable.stderr


def test_an_output_folder_of_another_run_is_refused(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("A fine film.\n", encoding="utf-8")
    out = tmp_path / "out"
    score(ScoreJob(trained_run, out), [tmp_path / "in.txt"], Recorded())
    other = tmp_path / "other-run"
    shutil.copytree(trained_run, other)
    metadata = json.loads((other / "metadata.json").read_text())
    (other / "metadata.json").write_text(json.dumps({**metadata, "name": "other-run"}))
    with pytest.raises(ReviewlensError, match=r"holds the scores of another run \(bigram\)"):
        score(ScoreJob(other, out), [tmp_path / "in.txt"], Recorded())
    with pytest.raises(ReviewlensError, match="was scored with format 'parquet', not 'csv'"):
        score(ScoreJob(trained_run, out, "csv"), [tmp_path / "in.txt"], Recorded())
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.md").write_text("mine")
    with pytest.raises(ReviewlensError, match="does not hold scores"):
        score(ScoreJob(trained_run, tmp_path / "notes"), [tmp_path / "in.txt"], Recorded())


def test_reading_a_large_parquet_shard_holds_a_few_row_groups_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    with pq.ParquetWriter(path, pa.schema([("text", pa.string())]), compression="none") as writer:
        for _ in range(40):  # 40 row groups of 1,000 incompressible 250-byte texts: 10 MB
            writer.write_table(pa.table({"text": [os.urandom(125).hex() for _ in range(1000)]}))
    peak, rows = 0, 0
    for batch in READERS["parquet"](Shard(path, "big", "parquet", False), ScoreJob(Path("run"), tmp_path / "out")):
        peak, rows = max(peak, pa.total_allocated_bytes()), rows + len(batch.rows)
    assert rows == 40_000
    assert peak < path.stat().st_size / 4, f"{peak:,} bytes held while reading a {path.stat().st_size:,}-byte file"


def test_a_line_far_over_the_bound_is_a_bad_row_read_in_fixed_memory(trained_run: Path, tmp_path: Path) -> None:
    from tests.memory import MB, cli_peak

    huge = 256 * MB  # one line of it, where --max-review-bytes is 1 MB: the reader stops keeping it at its bound
    with gzip.open(tmp_path / "big.jsonl.gz", "wb", compresslevel=1) as out:
        out.write(b'{"text": "A superb film."}\n{"text": "')
        for _ in range(huge // MB):
            out.write(b"a" * MB)
        out.write(b'"}\n{"text": ' + b"[" * 3000 + b"]" * 3000 + b'}\n{"text": "Dull."}\n')
    with gzip.open(tmp_path / "long.txt.gz", "wb", compresslevel=1) as out:
        out.write(b"A superb film.\n")
        for _ in range(huge // MB):
            out.write(b"b" * MB)
        out.write(b"\nDull.")
    args = [str(tmp_path / "big.jsonl.gz"), str(tmp_path / "long.txt.gz"), "--output", str(tmp_path / "out"), "--json"]
    result, peak = cli_peak("score", str(trained_run), *args)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["rows_skipped"]) == (4, 3)
    reasons = {(Path(b["file"]).name, b["row"]): b["reason"] for b in summary["bad_rows"]}
    limit = 6 * 1_000_000 + 64 * 1024
    assert reasons == {
        ("big.jsonl.gz", 2): f"a line of {huge + 12:,} bytes, over the {limit:,} a record may take "
        "(--max-review-bytes)",
        ("big.jsonl.gz", 3): "nested too deeply (a record is a flat object)",
        ("long.txt.gz", 2): f"a text of {huge:,} bytes, over --max-review-bytes 1,000,000",
    }
    assert pq.read_table(tmp_path / "out" / "long.parquet").num_rows == 2
    assert peak < 320 * MB, f"peak {peak / MB:.0f} MB for a {huge // MB} MB line"  # 180 MB measured; 164 without it


def test_inputs_that_are_not_what_their_names_say_are_one_line(trained_run: Path, tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(b'{"text": "A fine film number %d."}\n' % i for i in range(5000)))
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # a download that stopped halfway
    (tmp_path / "plain.txt.gz").write_bytes(b"A fine film.\nnot gzip at all\n")
    (tmp_path / "wide.csv").write_bytes("text\nA fine film.\n".encode("utf-16"))
    for name in ("cut.jsonl.gz", "plain.txt.gz", "wide.csv"):
        result = cli("score", str(trained_run), str(tmp_path / name), "--output", str(tmp_path / f"out-{name}"))
        assert result.returncode == 2, (name, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, (name, result.stderr)
        assert str(tmp_path / name) in result.stderr and "check the file" in result.stderr, result.stderr


def test_a_file_name_that_is_not_utf8_is_scored_and_named(trained_run: Path, tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9 reviews.jsonl")  # a Latin-1 name on a UTF-8 system
    (tmp_path / name).write_bytes(b'{"text": "A superb film."}\n{"text": 5}\n')
    result = cli("score", str(trained_run), str(tmp_path / name), "--output", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["rows_skipped"]) == (1, 1)
    shown = f"{tmp_path}/caf\\xe9 reviews.jsonl"  # the name's bytes that are not UTF-8, escaped
    assert f"{shown}:2: a text that is not a string" in result.stderr and "Traceback" not in result.stderr
    (output,) = (tmp_path / "out").glob("*.parquet")
    assert pq.read_table(pa.OSFile(os.fsencode(output))).column("file").to_pylist() == [shown]


def test_a_full_disk_is_one_line_and_keeps_the_finished_shards(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from reviewlens.scoring import stream as scoring

    for name in ("a", "b"):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / f"{name}.jsonl").write_text('{"text": "A superb film."}\n')
    written = scoring._Writer.write

    def fills_up(self: scoring._Writer, table: pa.Table) -> None:
        if self.path.name.startswith(".b."):
            raise OSError(errno.ENOSPC, "No space left on device")
        written(self, table)

    monkeypatch.setattr(scoring._Writer, "write", fills_up)
    job = ScoreJob(trained_run, tmp_path / "out", "parquet")
    events = type("Quiet", (), {"advance": lambda *a: None, "bad_row": lambda *a: None})()
    with pytest.raises(ReviewlensError, match=r"the disk is full .* the 1 shard\(s\) finished are kept") as full:
        score(job, [tmp_path / "in"], events)
    assert "\n" not in str(full.value)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "a.parquet" in names and not [n for n in names if n.startswith(("b", ".b"))]  # no half-written shard
    monkeypatch.undo()
    again = score(job, [tmp_path / "in"], events)
    assert (again.rows, again.shards_done_before) == (1, 1)


def test_inputs_that_are_there_but_not_files_say_what_they_are(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "loop.jsonl").symlink_to(tmp_path / "loop.jsonl")
    (tmp_path / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    (tmp_path / "zero.jsonl").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.jsonl")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "A fine film."}\n')
    os.mkfifo(folder / "b.jsonl")
    cases = {
        "loop.jsonl": "is a symbolic link that loops back on itself",
        "gone.jsonl": f"is a symbolic link to {tmp_path / 'nowhere.jsonl'}, which does not exist",
        "zero.jsonl": "is a device, not a file of reviews",
        "pipe.jsonl": "is a pipe (FIFO)",
        "folder": f"{folder / 'b.jsonl'} in {folder} is a pipe (FIFO)",
    }
    for name, said in cases.items():
        result = cli("score", str(trained_run), str(tmp_path / name), "--output", str(tmp_path / f"out-{name}"))
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (name, result.stderr)
        assert said in result.stderr, (name, result.stderr)


def test_one_rule_for_rows_without_text_and_lines_that_are_not_json(trained_run: Path, tmp_path: Path) -> None:
    rows = [b'{"id": 1, "review": "no text field"}', b"", b'{"id": 2, "text": "A superb film."}', b"   ",
            b'{"id": 3, "text": "\\ud800 lone"}', b'{"id": 4, "text": "cut sho', b'{"id": 5}']  # fmt: skip
    (tmp_path / "r.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    result = cli("score", str(trained_run), str(tmp_path / "r.jsonl"), "--output", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    reasons = {b["row"]: b["reason"] for b in summary["bad_rows"]}
    assert reasons == {1: "no text", 5: "not valid UTF-8 (a lone surrogate)",
                       6: "not valid JSON (the record is cut short)", 7: "no text"}  # fmt: skip
    assert summary["rows"] == 1  # the blank lines hold no record: no bad rows
    assert pq.read_table(tmp_path / "out" / "r.parquet").column("id").to_pylist() == ["2"]
    (tmp_path / "named.jsonl").write_text('{"review": "A fine film."}\n{"review": "Dull."}\n')
    named = cli("score", str(trained_run), str(tmp_path / "named.jsonl"), "--output", str(tmp_path / "o2"))
    assert named.returncode == 2 and "has no field 'text' (it has: review); pass --text-column NAME" in named.stderr


def test_a_csv_field_far_over_the_bound_is_one_line(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "big.csv").write_bytes(b"text\nA fine film.\n" + b"x" * (50 << 20) + b"\n")
    result = cli("score", str(trained_run), str(tmp_path / "big.csv"), "--output", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "longer than score parses at a time" in result.stderr and "block size" not in result.stderr
    fits = cli("score", str(trained_run), str(tmp_path / "big.csv"), "--output", str(tmp_path / "o2"), "--json",
               "--max-review-bytes", str(20 << 20))  # fmt: skip
    assert fits.returncode == 0 and json.loads(fits.stdout)["rows_skipped"] == 1  # parsed whole: a bad row
