"""A killed training continues with `train --resume`; `reviewlens runs` finds and cleans what killed runs left."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reviewlens.checkpoints import CHECKPOINT_FILE, Checkpoint, Staging, staging_dir

from .test_cli import run

# `reviewlens train` that stops for good after saving its first epoch's checkpoint, to be killed there.
STALLED_TRAIN = """
import sys, time
from reviewlens.families.base import Context
save = Context.checkpoint
def stall(self, epoch, *args, **kwargs):
    save(self, epoch, *args, **kwargs)
    if epoch == 1:
        time.sleep(600)
Context.checkpoint = stall
from reviewlens.cli import main
sys.argv = ["reviewlens", "train", *sys.argv[1:]]
main()
"""


def _kill_after_first_epoch(*args: str, out: Path) -> int:
    """Start `reviewlens train *args --out out`, SIGKILL it once its first checkpoint is written; its pid."""
    environment = {key: value for key, value in os.environ.items() if key != "REVIEWLENS_DATA"}
    process = subprocess.Popen(
        [sys.executable, "-c", STALLED_TRAIN, *args, "--out", str(out)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoint = staging_dir(out) / CHECKPOINT_FILE
    deadline = time.monotonic() + 240
    while not checkpoint.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no checkpoint came: {process.communicate()[1].decode()[-2000:]}")
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return process.pid


def _history(run_dir: Path) -> dict[str, list[float]]:
    history: dict[str, list[float]] = json.loads((run_dir / "history.json").read_text())
    return history


def test_a_killed_bag_of_words_run_resumes_to_the_uninterrupted_result(
    trained_run: Path, session_aclimdb: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    settings = ["--recipe", "bow-bigram", "--data", str(session_aclimdb), "--epochs", "4"]  # as trained_run
    pid = _kill_after_first_epoch(*settings, out=out)
    assert not out.exists()

    listed = json.loads(run("runs", str(tmp_path), "--json").stdout)
    assert listed["runs"] == []
    [killed] = listed["killed"]
    assert killed["run_dir"] == str(out) and killed["recipe"] == "bow-bigram"
    assert (killed["epoch"], killed["epochs"], killed["pid"], killed["live"]) == (1, 4, pid, False)

    again = run("train", *settings, "--out", str(out))  # without --resume: said, not overwritten
    assert again.returncode == 2 and "a killed run of" in again.stderr and "--resume" in again.stderr
    assert "Traceback" not in again.stderr
    changed = run("train", *settings, "--out", str(out), "--resume", "--learning-rate", "0.01")
    assert changed.returncode == 2 and "learning_rate was 0.001, now 0.01" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    weighted = run("train", *settings, "--out", str(out), "--resume", "--class-weight", "balanced")
    assert weighted.returncode == 2 and 'class_weight was null, now "balanced"' in weighted.stderr

    # The threshold is chosen after training: a resumed run may choose it, the epochs are the same.
    resumed = run("train", *settings, "--out", str(out), "--resume", "--threshold", "best-f1")
    assert resumed.returncode == 0, resumed.stderr
    assert "after epoch 1 of 4" in resumed.stderr
    # The same optimizer state and random generator: exactly the uninterrupted run's epochs and choice.
    assert _history(out) == _history(trained_run)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["best_epoch"] == json.loads((trained_run / "metadata.json").read_text())["best_epoch"]
    assert metadata["hyperparameters"]["resumed_after_epoch"] == 1
    assert metadata["hyperparameters"]["threshold"]["rule"] == "best-f1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the staging directory is gone


def test_a_killed_sequence_run_resumes(sequence_run: Path, session_aclimdb: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = ["--recipe", "sum-embedding", "--data", str(session_aclimdb), "--epochs", "2"]  # as sequence_run
    _kill_after_first_epoch(*settings, out=out)
    kept = Checkpoint.load(staging_dir(out) / CHECKPOINT_FILE)
    assert kept.epoch == 1 and len(kept.history["loss"]) == 1
    assert {"model", "optimizer", "best"} <= set(kept.arrays) and kept.arrays["optimizer"][0] > 0  # iterations

    resumed = run("train", *settings, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    history = _history(out)
    assert len(history["loss"]) == 2 and history["loss"][0] == kept.history["loss"][0]
    assert history["val_loss"] == pytest.approx(_history(sequence_run)["val_loss"], rel=1e-4)
    assert not staging_dir(out).exists()


def test_runs_lists_killed_runs_and_cleans_only_dead_ones(trained_run: Path, tmp_path: Path) -> None:
    shutil.copytree(trained_run, tmp_path / "finished")
    live, dead = Staging(tmp_path / "live"), Staging(tmp_path / "dead")
    for staging in (live, dead):
        staging.begin({"recipe": "bow-bigram", "epochs": 3}, resume=False)
    Checkpoint(2, {"loss": [0.5, 0.4]}, 2, (0.9, -0.4)).save(dead.checkpoint_path)
    dead.stop(lambda message: None)  # keeps it (it holds a finished epoch) and lets go of it, as a killed run
    try:
        shown = run("runs", str(tmp_path))
        assert shown.returncode == 0, shown.stderr
        assert "finished" in shown.stdout and "bow-bigram" in shown.stdout
        assert f"killed run: {tmp_path / 'dead'} (bow-bigram, epoch 2/3 finished, pid {os.getpid()} is gone)" in (
            shown.stdout.replace("\n", "")
        )
        assert f"pid {os.getpid()} is training in it" in shown.stdout

        cleaned = json.loads(run("runs", str(tmp_path), "--clean", "--json").stdout)
        assert [k["path"] for k in cleaned["removed"]] == [str(dead.path)]
        assert [(k["path"], k["live"]) for k in cleaned["killed"]] == [(str(live.path), True)]
        assert not dead.path.exists() and live.path.is_dir() and (tmp_path / "finished").is_dir()
    finally:
        live.remove()


def test_runs_clean_removes_only_what_reviewlens_made_and_follows_no_link(tmp_path: Path) -> None:
    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    (runs / ".notes.partial").mkdir(parents=True)
    (runs / ".notes.partial" / "f").write_text("x")  # a user's own folder that happens to be named so
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("y")
    (runs / ".x.partial").symlink_to(elsewhere, target_is_directory=True)
    killed = Staging(runs / "killed")
    killed.begin({"recipe": "bow-bigram", "epochs": 3}, resume=False)
    killed._lock.release()  # as a killed run leaves it
    cleaned = run("runs", str(runs), "--clean", "--json")
    assert cleaned.returncode == 0, cleaned.stderr
    assert [k["path"] for k in json.loads(cleaned.stdout)["removed"]] == [str(killed.path)]
    assert json.loads(cleaned.stdout)["killed"] == []  # nor is a user's folder or a link listed as a killed run
    assert (runs / ".notes.partial" / "f").read_text() == "x"
    assert (runs / ".x.partial").is_symlink() and sorted(p.name for p in elsewhere.iterdir()) == ["keep"]
    # Training into the name of a user's folder says it is in the way, and writes nothing into it.
    for resume in ([], ["--resume"]):
        refused = run("train", "--recipe", "bow-bigram", "--out", str(runs / "notes"), *resume)
        assert refused.returncode == 2 and "was not made by reviewlens" in refused.stderr, refused.stderr
    assert sorted(p.name for p in (runs / ".notes.partial").iterdir()) == ["f"]


def test_runs_of_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = run("runs", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "nowhere is not a folder of runs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
