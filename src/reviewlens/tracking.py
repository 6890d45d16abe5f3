"""Tracked experiments: a training's settings, epochs and results sent to TensorBoard or MLflow as it trains.

``train(..., trackers=...)`` drives every ``Tracker`` through the same four calls, whatever the family:
``check`` before any data is read (a missing extra, an unreachable server: one line, nothing trained),
``start`` once the staging directory is taken (``resumed`` says after which epoch a killed run continues),
``epoch`` after every finished epoch (the logs the family reports through ``Context.epoch_done``), then
``finish`` with the written run directory and its metadata, or ``stop`` when training failed.

Both writers are optional extras and import nothing of TensorFlow: bag-of-words runs train without it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reviewlens.errors import ReviewlensError
from reviewlens.files import FileError, read_json

if TYPE_CHECKING:
    from reviewlens.runs import RunMetadata

#: ``--mlflow`` without a URI nor ``$MLFLOW_TRACKING_URI``: a file store in the working directory, as ``mlflow ui``
#: reads it.
DEFAULT_MLFLOW_URI = "./mlruns"
#: Where a tracker keeps, inside the staging directory, what a resumed run continues (the MLflow run's id).
MLFLOW_STATE_FILE = "mlflow.json"
#: Seconds to wait for a tracking server before refusing to train.
CONNECT_TIMEOUT_S = 5.0

Params = Mapping[str, object]


class Tracker(ABC):
    """Where a training reports: one per destination, driven by ``reviewlens.training.train``."""

    def check(self) -> None:  # noqa: B027 (optional: most destinations have nothing to check)
        """Refuse before any work (with ``ReviewlensError``) what would fail later: a missing extra, no server."""

    @abstractmethod
    def start(self, name: str, params: Params, staging: Path, resumed: Mapping[str, list[float]] | None) -> None:
        """Begin run ``name`` trained with ``params`` in the ``staging`` directory; ``resumed`` is the history of
        the killed run it continues (its epochs are already finished), ``None`` when starting afresh."""

    @abstractmethod
    def epoch(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Record the figures of finished ``epoch`` (1-based): loss, accuracy, val_loss, val_accuracy..."""

    @abstractmethod
    def finish(self, run_dir: Path, metadata: RunMetadata) -> None:
        """Record the final validation and test figures and the written run directory; close."""

    @abstractmethod
    def stop(self) -> None:
        """Training failed or was stopped: close, saying so where the destination can."""


def flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """Nested settings as dotted names of scalars (``model.hidden`` -> ``"[16]"``): what both destinations take."""
    found: dict[str, str | int | float | bool] = {}
    for name, value in params.items():
        if isinstance(value, Mapping):
            found |= flat(value, f"{prefix}{name}.")
        elif isinstance(value, str | int | float | bool):
            found[f"{prefix}{name}"] = value
        elif value is not None:
            found[f"{prefix}{name}"] = json.dumps(value, default=str)
    return found


def final_figures(metadata: RunMetadata) -> dict[str, float]:
    """The run's validation and test figures (accuracy, loss, ROC AUC...) as ``validation/accuracy``..."""
    return {
        f"{split}/{name}": float(value)
        for split in ("validation", "test")
        for name, value in metadata.metrics.get(split, {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool) and name != "examples"
    }


class TensorBoard(Tracker):
    """Event files under ``DIR/RUN-NAME`` (``tensorboard --logdir DIR`` shows every run of DIR): one scalar per
    epoch for each figure the family logs, the final validation and test figures, the settings as hyper-parameters.

    Written with tensorboardX: the ``tensorboard`` package's own writer reads and writes files through
    ``tf.io.gfile`` and so imports TensorFlow wherever it is installed; tensorboardX needs only protobuf.
    """

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self._writer: Any = None
        self._params: dict[str, str | int | float | bool] = {}

    def check(self) -> None:
        require_extra("tensorboardX", "tensorboard", "--tensorboard")
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ReviewlensError(
                f"--tensorboard: cannot make the folder {self.logdir} ({error.strerror or error}); choose another"
            ) from None
        if not os.access(self.logdir, os.W_OK | os.X_OK):
            raise ReviewlensError(f"--tensorboard: the folder {self.logdir} is not writable; choose another")

    def start(self, name: str, params: Params, staging: Path, resumed: Mapping[str, list[float]] | None) -> None:
        from tensorboardX import FileWriter

        folder = self.logdir / name
        fresh = not any(folder.glob("events.out.tfevents.*"))
        self._writer = FileWriter(str(folder))
        self._params = flat(params)
        if resumed and fresh:  # tracking began with the resumption: the killed run's epochs first
            replay(self, resumed)

    def epoch(self, epoch: int, logs: Mapping[str, float]) -> None:
        from tensorboardX import summary

        for key, value in logs.items():
            self._writer.add_summary(summary.scalar(key, float(value)), epoch)
        self._writer.flush()

    def finish(self, run_dir: Path, metadata: RunMetadata) -> None:
        from tensorboardX import summary

        figures = final_figures(metadata)
        step = metadata.best_epoch or 0
        for summary_pb in summary.hparams(self._params, figures):  # the HPARAMS tab: settings against figures
            self._writer.add_summary(summary_pb)
        for key, value in figures.items():
            self._writer.add_summary(summary.scalar(key, value), step)
        self._writer.close()

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()


class MLflow(Tracker):
    """An MLflow run named after the run directory: the settings as parameters, every epoch's figures as metrics
    with the epoch as step, the final validation and test figures, and the run directory as artifacts (``run/``).

    A resumed training continues the MLflow run its killed run began (the id is kept in the staging directory),
    tagged ``reviewlens.resumed_after_epoch``, with any finished epoch the killed run had not logged; where there is
    none (tracking began with the resumption, or another URI) a new run gets the killed run's epochs first.
    """

    def __init__(self, uri: str | None = None):
        uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URI
        scheme = urlsplit(uri).scheme
        if len(scheme) <= 1 or scheme == "file":  # a path (C:\ too), or a file URI: as an absolute file URI
            uri = Path(urlsplit(uri).path if scheme == "file" else uri).resolve().as_uri()
        self.uri = uri
        self._client: Any = None
        self._run_id: str | None = None

    def check(self) -> None:
        require_extra("mlflow", "mlflow", "--mlflow")
        parts = urlsplit(self.uri)
        if parts.scheme == "file":
            folder = Path(parts.path)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ReviewlensError(
                    f"--mlflow: cannot make the MLflow store {folder} ({error.strerror or error}); "
                    "pass another --mlflow-uri"
                ) from None
        elif parts.scheme in ("http", "https"):
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                socket.create_connection((parts.hostname or "localhost", port), timeout=CONNECT_TIMEOUT_S).close()
            except OSError as error:
                raise ReviewlensError(
                    f"--mlflow: cannot reach the MLflow server at {self.uri} ({error.strerror or error}); start it, "
                    "or pass another --mlflow-uri (without one: a local ./mlruns store)"
                ) from None
        import mlflow
        from mlflow.exceptions import MlflowException

        if parts.scheme == "file":  # MLflow 3 keeps its file store where asked (it prefers a database)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            self._client = mlflow.MlflowClient(self.uri)
            self._client.get_experiment_by_name("Default")  # the store opens (a database is made or migrated)
        except MlflowException as error:
            raise ReviewlensError(f"--mlflow-uri {self.uri}: {str(error).strip().splitlines()[0]}") from None
        except ImportError as error:  # a database store without SQLAlchemy: mlflow-skinny has none
            raise ReviewlensError(
                f"--mlflow-uri {self.uri} needs {error.name or error}, which is not installed; pip install mlflow"
            ) from None

    def start(self, name: str, params: Params, staging: Path, resumed: Mapping[str, list[float]] | None) -> None:
        from mlflow.exceptions import MlflowException

        if self._client is None:  # not checked (``check`` opens the store)
            self.check()
        state_file = staging / MLFLOW_STATE_FILE
        saved = _read_json(state_file) if resumed is not None else {}
        try:
            if saved.get("uri") == self.uri and saved.get("run_id"):  # continue the killed run's MLflow run
                self._run_id = str(saved["run_id"])
                self._client.update_run(self._run_id, status="RUNNING")
                logged = self._client.get_metric_history(self._run_id, "val_accuracy")
                done = max((metric.step for metric in logged), default=0)
            else:
                experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "Default")
                found = self._client.get_experiment_by_name(experiment)
                run = self._client.create_run(
                    found.experiment_id if found is not None else self._client.create_experiment(experiment),
                    run_name=name,
                    tags={"reviewlens.run": name},
                )
                self._run_id, done = run.info.run_id, 0
                self._client.log_batch(self._run_id, params=_params(flat(params)))
                state_file.write_text(json.dumps({"uri": self.uri, "run_id": self._run_id}) + "\n", encoding="utf-8")
            if resumed is not None:  # the killed run's epochs not logged yet (it may have died before reporting)
                replay(self, resumed, after=done)
                self._client.set_tag(self._run_id, "reviewlens.resumed_after_epoch", str(finished(resumed)))
        except MlflowException as error:
            raise ReviewlensError(f"--mlflow-uri {self.uri}: {str(error).splitlines()[0]}") from None

    def epoch(self, epoch: int, logs: Mapping[str, float]) -> None:
        self._log(logs, epoch)

    def finish(self, run_dir: Path, metadata: RunMetadata) -> None:
        self._log(final_figures(metadata), metadata.best_epoch or 0)
        self._client.set_tag(self._run_id, "reviewlens.run_dir", str(run_dir.resolve()))
        self._client.log_artifacts(self._run_id, str(run_dir), "run")
        self._client.set_terminated(self._run_id, "FINISHED")

    def stop(self) -> None:
        if self._run_id is not None:
            self._client.set_terminated(self._run_id, "KILLED")

    def _log(self, figures: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        assert self._run_id is not None
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in figures.items()]
        self._client.log_batch(self._run_id, metrics=metrics)


def finished(history: Mapping[str, list[float]]) -> int:
    """How many epochs a history holds."""
    return len(next(iter(history.values()), []))


def replay(tracker: Tracker, history: Mapping[str, list[float]], after: int = 0) -> None:
    """Send ``tracker`` the epochs of ``history`` (a killed run's) that come after epoch ``after``."""
    for index in range(after, finished(history)):
        tracker.epoch(index + 1, {key: values[index] for key, values in history.items()})


def _params(values: Mapping[str, object]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(name, str(value)) for name, value in values.items()]


def _read_json(path: Path) -> dict[str, Any]:
    """A killed run's tracker state; ``{}`` where it cannot be read (a new tracked run then starts)."""
    try:
        found = read_json(path, "")
    except FileError:
        return {}
    return found if isinstance(found, dict) else {}


def require_extra(module: str, extra: str, option: str) -> None:
    """The extra ``option`` needs is installed, or one line saying what to install."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ReviewlensError(f"{option} needs {module}, which is not installed; pip install 'reviewlens[{extra}]'")


def trackers(tensorboard: Path | None = None, mlflow: str | None = None) -> list[Tracker]:
    """The trackers ``train --tensorboard DIR --mlflow [--mlflow-uri URI]`` asks for (``mlflow=""``: the default
    store)."""
    found: list[Tracker] = []
    if tensorboard is not None:
        found.append(TensorBoard(tensorboard))
    if mlflow is not None:
        found.append(MLflow(mlflow or None))
    return found
