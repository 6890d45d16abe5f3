"""``reviewlens score --engine ray``: a local Ray's actors give the local engine's output, row for row; an
address where no cluster answers is one line; a killed job leaves none of its Ray's processes. Skipped where Ray
is not installed (``reviewlens[ray]``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from reviewlens.errors import ReviewlensError
from reviewlens.scoring import ScoreJob, score
from tests.test_cli import run as cli
from tests.test_processes import _session, _wait_for
from tests.test_score import Recorded, read_output

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_ray_actors_score_as_the_local_engine_row_for_row(
    local_ray: None, trained_run: Path, session_aclimdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewlens.data import resolve
    from reviewlens.scoring import engines as scoring

    on_actors: list[int] = []  # every batch's scores come from an actor: none falls back to this process
    monkeypatch.setattr(
        scoring._RayActors, "result", lambda self, future, texts: on_actors.append(len(texts)) or future.result()
    )

    texts = resolve(session_aclimdb).dataset.read("test")[0][:60]
    inputs = tmp_path / "in"
    inputs.mkdir()
    ids = [f"r{i}" for i in range(len(texts))]
    pa_csv.write_csv(pa.table({"id": ids, "text": texts}), inputs / "a.csv")
    lines = [json.dumps({"id": i, "text": t}) for i, t in zip(ids, texts, strict=True)]
    lines[7] = '{"id": "bad", "text": ""}'  # a bad row: reported alike by both
    (inputs / "b.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    outputs = {}
    for engine in ("local", "ray"):
        recorded = Recorded()
        job = ScoreJob(trained_run, tmp_path / engine, format="jsonl")
        summary = score(job, [inputs], recorded, engine=engine, workers=2)
        assert (summary.rows, summary.rows_skipped) == (2 * len(texts) - 1, 1)
        outputs[engine] = ({n: read_output(job.out / f"{n}.jsonl").to_pylist() for n in "ab"}, recorded.bad)
    assert sum(on_actors) == 2 * len(texts) - 1
    local, on_ray = outputs["local"], outputs["ray"]
    assert on_ray[1] == local[1] and [str(b) for b in local[1]] == [f"{inputs / 'b.jsonl'}:8: a blank text"]
    for name in "ab":
        assert len(on_ray[0][name]) == len(local[0][name]) > 0
        for mine, theirs in zip(on_ray[0][name], local[0][name], strict=True):
            assert mine == pytest.approx(theirs, abs=1e-6)


def test_ray_settings_are_refused_in_one_line(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("A fine film.\n", encoding="utf-8")
    with pytest.raises(ReviewlensError, match="--workers 0: pass 1 or more"):
        score(ScoreJob(trained_run, tmp_path / "out"), [tmp_path / "in.txt"], Recorded(), engine="ray", workers=0)
    with pytest.raises(ReviewlensError, match="--address names a Ray cluster"):
        score(ScoreJob(trained_run, tmp_path / "out"), [tmp_path / "in.txt"], Recorded(), address="127.0.0.1:9")
    assert not (tmp_path / "out").exists()
    started = time.monotonic()
    args = ["score", str(trained_run), str(tmp_path / "in.txt"), "--output", str(tmp_path / "out")]
    nobody = cli(*args, "--engine", "ray", "--address", "127.0.0.1:9")
    assert time.monotonic() - started < 30
    assert nobody.returncode == 2 and len(nobody.stderr.strip().splitlines()) == 1, nobody.stderr
    assert nobody.stderr.startswith("error: --address 127.0.0.1:9: no Ray cluster answers there")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_kill_9_of_score_on_a_local_ray_leaves_no_process(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("A fine film, well acted.\n" * 2000, encoding="utf-8")
    command = [sys.executable, "-m", "reviewlens.cli", "score", str(trained_run), str(tmp_path / "in.txt"),
               "--output", str(tmp_path / "out"), "--engine", "ray", "--workers", "1"]  # fmt: skip
    job = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # Ray is up once the raylet has started its agents, which a killed driver's Ray used to leave behind
        agents = {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}
        _wait_for(lambda: agents <= {_name(pid) for pid in _session(job.pid)}, 90, "Ray's agents to start")
    finally:
        job.kill()
        job.wait()
    _wait_for(lambda: not _session(job.pid), 15, "every process of the killed job's Ray to end")


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""
