"""Processes and signals: no child outlives reviewlens, SIGTERM and Ctrl-C stop a run with one line, and
TensorFlow's start-up lines stay off a user's terminal. These tests kill real processes and look for survivors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from .test_cli import run as run_cli


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid`` (a test starts each command in a session of its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session
                members.append(int(entry.name))
    return members


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _train(aclimdb: Path, out: Path) -> subprocess.Popen[str]:
    environment = {**os.environ, "COLUMNS": "200"}
    environment.pop("REVIEWLENS_DATA", None)
    command = [sys.executable, "-m", "reviewlens.cli", "train", "--recipe", "bow-bigram", "--data", str(aclimdb),
               "--out", str(out), "--epochs", "50"]  # fmt: skip
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment, start_new_session=True)


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_a_pool_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import time
        from reviewlens.processes import process_pool

        pool = process_pool(1)
        print(pool.submit(__import__("os").getpid).result(), flush=True)
        pool.submit(time.sleep, 600)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    assert len(_session(parent.pid)) >= 3  # the parent, its worker and multiprocessing's resource tracker
    parent.kill()
    parent.wait()
    _wait_for(lambda: not _session(parent.pid), 10, f"the worker {worker} and the tracker to end")


def test_kill_9_of_train_leaves_no_process(aclimdb: Path, tmp_path: Path) -> None:
    train = _train(aclimdb, tmp_path / "run")
    _wait_for(lambda: len(_session(train.pid)) >= 2, 60, "train to start its children")
    train.kill()
    train.wait()
    _wait_for(lambda: not _session(train.pid), 10, "the children of a killed train to end")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_a_signal_stops_train_with_one_line(aclimdb: Path, tmp_path: Path, signum: int, code: int, name: str) -> None:
    train = _train(aclimdb, tmp_path / "run")
    assert train.stderr is not None
    _wait_for(lambda: len(_session(train.pid)) >= 2, 60, "train to start its children")
    time.sleep(1.0)  # into its work
    if signum == signal.SIGINT:
        os.killpg(train.pid, signum)  # what a terminal does: Ctrl-C reaches the whole process group
    else:
        train.send_signal(signum)  # what docker stop, systemd and CI runners do
    stderr = train.stderr.read()
    assert train.wait(timeout=30) == code, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1] == f"interrupted by {name}: reviewlens train stopped"
    [kept] = [line for line in lines if line.startswith("training stopped")]
    _wait_for(lambda: not _session(train.pid), 10, "the children of a stopped train to end")
    left = sorted(p.name for p in tmp_path.iterdir())
    if kept == "training stopped before its first epoch finished; nothing was kept":
        assert left == ["aclImdb"]
    else:  # a checkpoint that --resume continues, and nothing that looks like a run
        assert kept.startswith("training stopped; ") and "run the same command with --resume" in kept, stderr
        assert left == [".run.partial", "aclImdb"]


def test_tensorflow_start_up_lines_stay_off_stderr(aclimdb: Path, tmp_path: Path) -> None:
    # Pretraining imports TensorFlow (absl's and oneDNN's start-up lines) and its first boolean op has oneDNN log
    # "E0000 ... supports DT_BOOL only on platforms with AVX-512" on most CPUs: notes to TensorFlow's developers.
    pretrained = run_cli("pretrain", "--data", str(aclimdb), "--out", str(tmp_path / "encoder"), "--epochs", "1")
    assert pretrained.returncode == 0, pretrained.stderr
    for line in pretrained.stderr.splitlines():  # reviewlens' own lines only
        assert not line.startswith(("E0000", "I0000", "W0000", "WARNING: All log")) and "oneDNN" not in line, line


def test_kill_9_of_serve_leaves_no_process(trained_run: Path) -> None:
    environment = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "reviewlens.cli", "serve", str(trained_run), "--port", "0", "--processes", "1"]
    serve = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=environment, start_new_session=True)
    # The server, its helper process and multiprocessing's resource tracker.
    _wait_for(lambda: len(_session(serve.pid)) >= 3, 60, "serve to start its helper")
    serve.kill()
    serve.wait()
    _wait_for(lambda: not _session(serve.pid), 10, "the helper of a killed serve to end")


def test_kill_9_of_serve_with_workers_leaves_no_process(trained_run: Path) -> None:
    environment = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "reviewlens.cli", "serve", str(trained_run), "--port", "0", "--workers", "2"]
    serve = subprocess.Popen(command, stderr=subprocess.PIPE, env=environment, start_new_session=True, text=True)
    assert serve.stderr is not None
    started = 0
    for line in serve.stderr:  # uvicorn's line per worker once it is serving
        started += "Application startup complete" in line
        if started == 2:
            break
    assert started == 2
    assert len(_session(serve.pid)) >= 3  # the server and its two workers (and the resource tracker)
    serve.kill()
    serve.wait()
    _wait_for(lambda: not _session(serve.pid), 10, "the workers of a killed serve to end")


# The "From Python" example (README, docs/python.md) as a user pastes it: no ``if __name__ == "__main__":`` guard.
README_EXAMPLE = """
import threading
import reviewlens

def example(data, out):
    result = reviewlens.train("bow-bigram", data=data, out=out, epochs=1)
    run = reviewlens.load(result.run_dir)
    print(run.label(float(run.predict(["That was an excellent movie, I loved it."])[0])), flush=True)

example({data!r}, {out!r} + "-script")
thread = threading.Thread(target=example, args=({data!r}, {out!r} + "-thread"))
thread.start()
thread.join()
print("done", flush=True)
"""


def test_the_readme_example_runs_from_a_script_and_a_thread_without_a_main_guard(aclimdb: Path, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(README_EXAMPLE.format(data=str(aclimdb), out=str(tmp_path / "run")))
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "BrokenProcessPool" not in done.stderr
    lines = done.stdout.split()
    assert len(lines) == 3 and lines[-1] == "done" and set(lines[:2]) <= {"positive", "negative"}, done.stdout
    assert (tmp_path / "run-script" / "metadata.json").is_file() and (
        tmp_path / "run-thread" / "metadata.json"
    ).is_file()


def test_only_reviewlens_children_skip_the_main_module() -> None:
    """A program's own spawned children still run its ``__main__`` (so they can unpickle what it defines)."""
    program = (  # a program of its own, whose __main__ is a script (a test runner's worker may have none)
        "import multiprocessing.spawn\n"
        "from reviewlens.processes import spawn_context\n"
        "before = multiprocessing.spawn.get_preparation_data('child')\n"
        "spawn_context()\n"
        "assert multiprocessing.spawn.get_preparation_data('child') == before\n"
        "assert 'init_main_from_path' in before, before.keys()\n"
        "print('sent')\n"
    )
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "program.py"
        script.write_text(program)
        environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=environment)
    assert done.returncode == 0 and done.stdout == "sent\n", done.stderr
