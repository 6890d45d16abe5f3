"""`train --tensorboard DIR` and `--mlflow`: every epoch's figures, the settings and the run reach each destination."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reviewlens.errors import ReviewlensError
from reviewlens.runs import read_metadata
from reviewlens.tracking import MLflow, TensorBoard
from reviewlens.training import train

from .test_cli import run

pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData


@pytest.fixture(autouse=True)
def _file_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow 3 reads a file store only where asked (``train`` asks for itself; these tests read one)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


# A bag-of-words training tracked both ways, in a process of its own to see what it imports.
TRACKED_TRAIN = """
import json, sys
from pathlib import Path
from reviewlens.tracking import trackers
from reviewlens.training import train
data, out, logs, store = sys.argv[1:]
train("bow-bigram", data, out, epochs=2, trackers=trackers(Path(logs), store))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})))
"""


@pytest.fixture(scope="module")
def tracked(session_aclimdb: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, list[str]]:
    """A bow-bigram run of 2 epochs with TensorBoard and MLflow: the run, the log dir, the store, what it imported."""
    root = tmp_path_factory.mktemp("tracked")
    out, logs, store = root / "bigram", root / "tensorboard", root / "mlruns"
    done = subprocess.run(
        [sys.executable, "-c", TRACKED_TRAIN, str(session_aclimdb), str(out), str(logs), str(store)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return out, logs, store, json.loads(done.stdout.splitlines()[-1])


def _metadata(run_dir: Path) -> dict[str, object]:
    metadata: dict[str, object] = json.loads((run_dir / "metadata.json").read_text())
    return metadata


def test_tensorboard_holds_one_scalar_per_epoch_and_the_final_figures(tracked: tuple[Path, Path, Path, list[str]]):
    run_dir, logs, _, imported = tracked
    events = EventAccumulator(str(logs / run_dir.name))  # DIR/RUN-NAME: one TensorBoard run per reviewlens run
    events.Reload()
    history = json.loads((run_dir / "history.json").read_text())
    for tag in ("loss", "accuracy", "val_loss", "val_accuracy"):
        scalars = events.Scalars(tag)
        assert [event.step for event in scalars] == [1, 2]
        assert [event.value for event in scalars] == pytest.approx(history[tag], abs=1e-6)
    (test_accuracy,) = events.Scalars("test/accuracy")  # the test figure, once
    assert test_accuracy.value == pytest.approx(_metadata(run_dir)["test_accuracy"], abs=1e-6)
    session = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    assert session.session_start_info.hparams["recipe"].string_value == "bow-bigram"  # the HPARAMS tab
    assert imported == []  # the bag-of-words family still trains without importing TensorFlow


def test_mlflow_store_gets_the_settings_each_epoch_and_the_run_directory(tracked: tuple[Path, Path, Path, list[str]]):
    run_dir, _, store, _ = tracked
    client = MlflowClient(store.as_uri())
    (found,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert found.info.run_name == run_dir.name and found.info.status == "FINISHED"
    assert found.data.params["recipe"] == "bow-bigram" and found.data.params["epochs"] == "2"
    assert found.data.params["settings.learning_rate"] == "0.001"
    history = json.loads((run_dir / "history.json").read_text())
    for key in ("loss", "val_accuracy"):
        logged = sorted(client.get_metric_history(found.info.run_id, key), key=lambda metric: metric.step)
        assert [metric.step for metric in logged] == [1, 2]
        assert [metric.value for metric in logged] == pytest.approx(history[key], abs=1e-6)
    assert found.data.metrics["test/accuracy"] == pytest.approx(_metadata(run_dir)["test_accuracy"])
    assert found.data.metrics["validation/accuracy"] == pytest.approx(_metadata(run_dir)["val_accuracy"])
    artifacts = {Path(item.path).name for item in client.list_artifacts(found.info.run_id, "run")}
    assert {"metadata.json", "model.keras", "history.json", "curves.png"} <= artifacts


def test_a_resumed_training_continues_its_mlflow_run(trained_run: Path, tmp_path: Path) -> None:
    store, staging = tmp_path / "mlruns", tmp_path / ".run.partial"
    staging.mkdir()
    history = {"loss": [0.6, 0.5], "val_accuracy": [0.7, 0.8]}
    killed = MLflow(str(store))
    killed.start("run", {"recipe": "bow-bigram"}, staging, None)
    killed.epoch(1, {"loss": 0.6, "val_accuracy": 0.7})  # then killed after epoch 2's checkpoint, before its report
    resumed = MLflow(str(store))
    resumed.start("run", {"recipe": "bow-bigram"}, staging, history)  # what train --resume passes
    resumed.epoch(3, {"loss": 0.4, "val_accuracy": 0.85})
    resumed.finish(trained_run, read_metadata(trained_run))
    client = MlflowClient(store.as_uri())
    (found,) = client.search_runs([e.experiment_id for e in client.search_experiments()])  # one run, continued
    assert found.info.status == "FINISHED" and found.data.tags["reviewlens.resumed_after_epoch"] == "2"
    logged = sorted(client.get_metric_history(found.info.run_id, "val_accuracy"), key=lambda metric: metric.step)
    assert [(metric.step, metric.value) for metric in logged] == [(1, 0.7), (2, 0.8), (3, 0.85)]  # each epoch once


def test_mlflow_logs_to_mlflow_tracking_uri_else_to_mlruns_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert MLflow().uri == (tmp_path / "mlruns").as_uri()  # train --mlflow
    assert MLflow("store").uri == (tmp_path / "store").as_uri()  # train --mlflow-uri store: a path
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert MLflow().uri == "http://tracking.example:5000"


def test_an_unreachable_mlflow_server_is_one_line_before_any_data_is_read(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run("train", "--mlflow-uri", "http://127.0.0.1:9", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        "error: --mlflow: cannot reach the MLflow server at http://127.0.0.1:9"
    )
    assert "Traceback" not in result.stderr and "data:" not in result.stderr  # nothing read, nothing trained
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()
    assert time.monotonic() - started < 30  # the CLI's start-up included; the check itself is one connection


# `reviewlens train` in an environment where an extra's package cannot be imported.
WITHOUT = """
import sys
sys.modules[sys.argv[1]] = None  # as if not installed: find_spec gives None, import fails
from reviewlens.cli import main
sys.argv = ["reviewlens", "train", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize(
    ("module", "option", "extra"),
    [("tensorboardX", "--tensorboard=logs", "tensorboard"), ("mlflow", "--mlflow", "mlflow")],
)
def test_a_missing_extra_says_what_to_install(module: str, option: str, extra: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, module, option, "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {option.split('=')[0]} needs {module}, which is not installed; pip install 'reviewlens[{extra}]'"
    ]
    assert not (tmp_path / "run").exists()


def test_an_unwritable_tensorboard_dir_is_refused_before_training(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ReviewlensError, match=r"--tensorboard: cannot make the folder .*file/logs"):
        train("bow-bigram", tmp_path / "no-data", tmp_path / "run", trackers=[TensorBoard(tmp_path / "file" / "logs")])
