"""Search a recipe's settings within a time budget (``reviewlens tune``), on the validation split only.

Optuna drives the search: its TPE sampler proposes settings from the space the recipe declares
(``Recipe.search``), its median pruner stops a trial whose validation accuracy after an epoch is below the
median of earlier trials at that epoch, and its SQLite storage keeps the study in ``OUT/study.db``, so the same
command run again (after a kill, or with a larger budget) continues it. The first trial of a study is the recipe's
own settings, the baseline the search must beat.

Each trial is a ``reviewlens.training.train`` into ``OUT/trials/NNN``: a whole run directory, chosen on its
validation accuracy. A trial killed with the process is tried again with the same settings, continuing its
checkpoint (``train --resume``). After every trial the best one's run is copied to ``OUT/best`` and every
trial is listed in ``trials.csv`` and ``trials.json``. Every run scores its test split once, as ``train``
does; the search never reads those figures: only the chosen run's is reported, at the end.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from reviewlens.checkpoints import differences, staging_dir
from reviewlens.data import Dataset, Resolved, resolve
from reviewlens.errors import ReviewlensError
from reviewlens.families import get_family
from reviewlens.files import check_writable
from reviewlens.logs import Log, silent
from reviewlens.recipes import Choice, Recipe, catalogue, get_recipe
from reviewlens.runs import METADATA_FILE, read_metadata
from reviewlens.tracking import require_extra
from reviewlens.training import train

if TYPE_CHECKING:
    import optuna

STUDY_FILE = "study.db"
TRIALS_DIR = "trials"
BEST_DIR = "best"
TABLE_CSV = "trials.csv"
TABLE_JSON = "trials.json"
LOCK_FILE = "lock"
_STUDY_NAME = "reviewlens-tune"
_UNITS = {"h": 3600, "m": 60, "s": 1}
TrialEpoch = Callable[[int, int, int, dict[str, float]], None]  # (trial, epoch, epochs, logs)


def parse_budget(text: str) -> float:
    """Seconds from a duration such as ``90s``, ``10m``, ``1h`` or ``1h30m``; anything else is one line."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip())
    if not text.strip() or match is None:
        raise ReviewlensError(f"--budget {text!r} is not a duration; write one such as 90s, 10m, 1h or 1h30m")
    seconds = sum(float(part) * unit for part, unit in zip(match.groups(), _UNITS.values(), strict=True) if part)
    if seconds <= 0:
        raise ReviewlensError(f"--budget {text} leaves no time to search; give a positive duration such as 10m")
    return seconds


def duration(seconds: float) -> str:
    """``600`` -> ``10m``, ``90`` -> ``1m30s``: a budget as ``--budget`` takes it."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, rest = divmod(rest, 60)
    shown = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{rest}s" if rest else "")
    return shown or "0s"


def tunable() -> list[str]:
    """The recipes that declare a search space."""
    return [name for name, recipe in catalogue().items() if recipe.search]


def with_settings(recipe: Recipe, params: Mapping[str, Any]) -> Recipe:
    """``recipe`` with each searched setting replaced: a field (``learning_rate``) or a dotted key of its
    ``vectorizer`` or ``model`` (``model.dropout``)."""
    fields: dict[str, Any] = {}
    for name, value in params.items():
        top, _, key = name.partition(".")
        if key:
            fields[top] = {**fields.get(top, getattr(recipe, top)), key: value}
        else:
            fields[top] = value
    return dataclasses.replace(recipe, **fields)


def own_settings(recipe: Recipe) -> dict[str, Any]:
    """The recipe's own value of each setting it searches: the study's first trial."""
    values = {}
    for name in recipe.search:
        top, _, key = name.partition(".")
        values[name] = getattr(recipe, top)[key] if key else getattr(recipe, top)
    return values


def _suggest(trial: optuna.Trial, recipe: Recipe) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, space in recipe.search.items():
        if isinstance(space, Choice):
            params[name] = trial.suggest_categorical(name, space.values)
        elif isinstance(space.low, int) and isinstance(space.high, int):
            params[name] = trial.suggest_int(name, space.low, space.high, log=space.log)
        else:
            params[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
    return params


@dataclass(frozen=True)
class TrialRow:
    """One trial as the table lists it."""

    number: int
    state: str  # complete, pruned, stopped (budget), failed or killed, running, waiting
    val_accuracy: float | None
    epochs: int  # epochs finished (a pruned trial's fewer than its recipe's)
    seconds: float | None
    params: dict[str, Any]
    run_dir: str | None  # relative to the tune folder; complete trials only
    baseline: bool = False  # the recipe's own settings


@dataclass(frozen=True)
class TuneResult:
    out: Path
    recipe: str
    best: TrialRow  # the highest validation accuracy
    test_accuracy: float | None  # the chosen run's, read once, after choosing
    trials: list[TrialRow] = field(default_factory=list)
    spent_s: float = 0.0

    @property
    def baseline(self) -> TrialRow | None:
        return next((row for row in self.trials if row.baseline and row.state == "complete"), None)

    def to_json(self) -> dict[str, Any]:
        baseline = self.baseline
        return {
            "out": str(self.out),
            "recipe": self.recipe,
            "best": dataclasses.asdict(self.best),
            "best_run": str(self.out / BEST_DIR),
            "baseline": dataclasses.asdict(baseline) if baseline is not None else None,
            "test_accuracy": self.test_accuracy,
            "selection": "highest validation accuracy; test scored for the chosen run only",
            "spent_s": round(self.spent_s, 1),
            "trials": [dataclasses.asdict(row) for row in self.trials],
        }


@dataclass(frozen=True)
class _Clock:
    """The study's budget: ``spent`` by earlier runs of the command, this one ``started`` at a monotonic time."""

    budget: float
    spent: float
    started: float = field(default_factory=time.monotonic)

    @property
    def used(self) -> float:
        return self.spent + time.monotonic() - self.started

    @property
    def left(self) -> float:
        return self.budget - self.used

    def record(self, study: optuna.Study) -> None:
        """Keep the time used in the study (after every epoch: a kill loses at most one epoch's time)."""
        study.set_user_attr("spent_s", self.used)


class _Stopped(Exception):  # noqa: N818 - not an error: a trial stopped on purpose
    """Raised from a trial's epoch hook to stop its training: ``train`` keeps its checkpoint, the tuner decides."""

    def __init__(self, epoch: int, epochs: int):
        super().__init__(f"stopped after epoch {epoch} of {epochs}")
        self.epoch, self.epochs = epoch, epochs


class _Pruned(_Stopped):
    """The pruner judged the trial worse than earlier ones at this epoch."""


class _OutOfTime(_Stopped):
    """The budget ran out during the trial."""


def tune(
    recipe: str | Recipe,
    data: str | os.PathLike[str] | Dataset | Resolved | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    budget: float,
    trials: int | None = None,
    seed: int = 1337,
    log: Log = silent,
    on_epoch: TrialEpoch | None = None,
    on_trial: Callable[[TrialRow], None] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    options: Mapping[str, Any] | None = None,
) -> TuneResult:
    """Search ``recipe``'s settings for ``budget`` seconds (and at most ``trials`` trials in all) into ``out``
    (default ``runs/tune-RECIPE``); continue the study found there. Return the best trial (by validation
    accuracy) and every trial; the best run is ``out/best``.

    The budget counts every run of the same study: a trial still training when it runs out is stopped after
    its epoch. If the study has no finished trial then (the budget cannot fit one), nothing is kept and the
    error says so. ``pruner`` replaces the median pruner (tests use a deterministic one). ``options`` are the
    family's options every trial trains with (``--encoder`` for the pretrained recipes); the study keeps them.
    """
    require_extra("optuna", "tune", "reviewlens tune")
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if not recipe.search:
        raise ReviewlensError(f"recipe {recipe.name!r} declares no search space; tune one of {', '.join(tunable())}")
    if trials is not None and trials < 1:
        raise ReviewlensError(f"--trials {trials} must be at least 1")
    # A missing --encoder fails here, before any trial; what the options change is what the study keeps.
    kept = get_family(recipe.family).options.parse(dict(options or {}), recipe).to_settings()
    folder = Path(out) if out is not None else Path("runs") / f"tune-{recipe.name}"
    check_writable(folder)
    lock = FileLock(folder / LOCK_FILE, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise ReviewlensError(
            f"{folder} is in use by another `reviewlens tune`; wait for it, or choose another --out"
        ) from None
    try:
        return _tune(recipe, data, folder, budget, trials, seed, log, on_epoch, on_trial, pruner, dict(options or {}),
                     kept)  # fmt: skip
    finally:
        lock.release()
        if not (folder / STUDY_FILE).exists():  # nothing was kept: leave no folder that looks like a study
            (folder / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()


def _open_study(folder: Path, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """The study in ``folder/study.db``, made or continued; a file that is not a whole SQLite database (cut short,
    overwritten) is one line saying what to do, never SQLAlchemy's traceback."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    path = folder / STUDY_FILE
    try:
        return optuna.create_study(
            storage=f"sqlite:///{path.resolve()}", study_name=_STUDY_NAME, direction="maximize", load_if_exists=True,
            pruner=pruner,
        )  # fmt: skip
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise ReviewlensError(
            f"{path} is damaged ({reason}); its trials cannot be read: move it away to start the study again, "
            "or choose another --out"
        ) from None


def _tune(
    recipe: Recipe, data: str | os.PathLike[str] | Dataset | Resolved | None, folder: Path, budget: float,
    trials: int | None, seed: int, log: Log, on_epoch: TrialEpoch | None,
    on_trial: Callable[[TrialRow], None] | None, pruner: optuna.pruners.BasePruner | None, options: dict[str, Any],
    kept: dict[str, object],
) -> TuneResult:  # fmt: skip
    import optuna

    if isinstance(data, Resolved):
        resolved = data
    elif isinstance(data, Dataset):
        resolved = Resolved(data, "argument")
    else:
        resolved = resolve(data)  # once: every trial trains on what it resolved to
    log(resolved.describe())
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the CLI shows the progress its own way
    fresh = not (folder / STUDY_FILE).exists()
    study = _open_study(folder, pruner or optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))
    settings = {
        "recipe": recipe.name,
        "search": json.loads(json.dumps(recipe.to_dict()["search"])),  # as the study's JSON holds it
        "seed": seed,
        "data": {"path": str(resolved.dataset.path.resolve()), "catalog": resolved.dataset.catalog_digest()},
    }
    if kept:  # a study without options records none, as studies always have
        settings["options"] = kept
    if fresh or "settings" not in study.user_attrs:
        study.set_user_attr("settings", settings)
        study.enqueue_trial(own_settings(recipe), user_attrs={"baseline": True})
    elif changed := differences(study.user_attrs["settings"], settings):
        raise ReviewlensError(
            f"{folder} holds a study of other settings ({'; '.join(changed)}); run it with the same ones, "
            "or choose another --out"
        )
    # Seeded by the trials so far: a continued study does not propose its first trials again.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials), n_startup_trials=5)
    _retry_killed(study, folder, log)

    clock = _Clock(budget, float(study.user_attrs.get("spent_s", 0.0)))
    retried = {t.user_attrs.get("retry_of") for t in study.trials}
    # A killed trial does not count: its retry (queued, or run) does.
    finished = [t for t in study.trials if t.state.is_finished() and t.number not in retried]
    left = None if trials is None else trials - len(finished)
    if clock.left <= 0:
        log(f"{folder} has spent its budget ({duration(clock.spent)} of {duration(budget)}); pass a larger --budget "
            "to search further")  # fmt: skip
    elif left is not None and left <= 0:
        log(f"{folder} has run its {len(finished)} trial(s) (--trials {trials}); pass a larger --trials to search "
            "further")  # fmt: skip
    else:
        log(f"searching {', '.join(recipe.search)} for {duration(clock.left)} in {folder}")

        def objective(trial: optuna.Trial) -> float:
            return _trial(trial, recipe, resolved, folder, seed, clock, on_epoch, study, options)

        def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            clock.record(study)
            _write_results(study, folder)
            if on_trial is not None:
                on_trial(_row(trial))

        study.optimize(objective, n_trials=left, timeout=max(clock.left, 0.0),
                       catch=(_OutOfTime,), callbacks=[after])  # fmt: skip

    rows = [_row(trial) for trial in study.trials]
    if not any(row.state == "complete" for row in rows):
        _discard(folder)
        stopped = next((t.user_attrs["stopped"] for t in study.trials if "stopped" in t.user_attrs), None)
        if stopped is not None or not rows:
            raise ReviewlensError(
                f"--budget {duration(budget)} cannot fit one trial of {recipe.name} (the first ran out of time "
                f"{stopped or 'before it began'}); nothing was kept: give a larger --budget"
            )
        raise ReviewlensError(f"no trial of {recipe.name} finished ({len(rows)} pruned or failed); nothing was kept")
    _write_results(study, folder)
    best = _row(study.best_trial)
    test_accuracy = read_metadata(folder / BEST_DIR).test_accuracy  # read once, after choosing on validation
    return TuneResult(folder, recipe.name, best, test_accuracy, rows, float(study.user_attrs.get("spent_s", 0.0)))


def _trial(
    trial: optuna.Trial, recipe: Recipe, resolved: Resolved, folder: Path, seed: int, clock: _Clock,
    on_epoch: TrialEpoch | None, study: optuna.Study, options: dict[str, Any],
) -> float:  # fmt: skip
    """Train one trial's settings into ``trials/NNN``; its validation accuracy is the objective."""
    import optuna

    params = _suggest(trial, recipe)
    run_dir = folder / TRIALS_DIR / f"{trial.number:03d}"
    trial.set_user_attr("run_dir", str(run_dir.relative_to(folder)))

    def report(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        trial.report(logs["val_accuracy"], epoch)
        trial.set_user_attr("epochs", epoch)
        if on_epoch is not None:
            on_epoch(trial.number, epoch, epochs, logs)
        clock.record(study)
        if clock.left < 0:
            raise _OutOfTime(epoch, epochs)
        if trial.should_prune():
            raise _Pruned(epoch, epochs)

    try:
        result = train(with_settings(recipe, params), resolved, run_dir, seed=seed, on_epoch=report,
                       resume=staging_dir(run_dir).is_dir(), options=options or None)  # fmt: skip
    except _Stopped as stop:
        shutil.rmtree(staging_dir(run_dir), ignore_errors=True)  # nothing to continue: not a killed run
        if isinstance(stop, _Pruned):
            raise optuna.TrialPruned(str(stop)) from None
        trial.set_user_attr("stopped", f"after epoch {stop.epoch} of {stop.epochs}")
        study.stop()
        raise
    assert result.metadata.val_accuracy is not None  # every tunable recipe chooses its epoch on validation
    trial.set_user_attr("epochs", result.metadata.hyperparameters["epochs"])  # a resumed trial's too
    return result.metadata.val_accuracy


def _retry_killed(study: optuna.Study, folder: Path, log: Log) -> None:
    """Trials left running by a killed process (this one holds the folder's lock): failed, and queued again with
    the same settings; the new trial continues the killed one's last checkpoint."""
    import optuna

    for killed in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(killed.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(killed.params, user_attrs={"baseline": killed.user_attrs.get("baseline", False),
                                                       "retry_of": killed.number})  # fmt: skip
        again = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))[-1]
        old, new = (staging_dir(folder / TRIALS_DIR / f"{number:03d}") for number in (killed.number, again.number))
        if old.is_dir():
            os.replace(old, new)
        log(f"trial {killed.number} was killed; trial {again.number} tries it again" +
            (" from its last checkpoint" if new.is_dir() else ""))  # fmt: skip


def _row(trial: optuna.trial.FrozenTrial) -> TrialRow:
    state = trial.state.name.lower()
    if state == "fail":
        state = "stopped (budget)" if "stopped" in trial.user_attrs else "failed or killed"
    seconds = None
    if trial.datetime_start is not None and trial.datetime_complete is not None:
        seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
    complete = state == "complete"
    return TrialRow(
        number=trial.number,
        state=state,
        val_accuracy=trial.value if complete else None,
        epochs=int(trial.user_attrs.get("epochs", 0)),
        seconds=seconds,
        params=dict(trial.params),
        run_dir=trial.user_attrs.get("run_dir") if complete else None,
        baseline=bool(trial.user_attrs.get("baseline", False)),
    )


def _write_results(study: optuna.Study, folder: Path) -> None:
    """The table of every trial (``trials.csv``, ``trials.json``) and the best trial's run as ``best/``."""
    rows = [_row(trial) for trial in study.trials]
    names = sorted({name for row in rows for name in row.params})
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["trial", "state", "val_accuracy", "epochs", "seconds", *names, "baseline", "run_dir"])
    for row in rows:
        writer.writerow([row.number, row.state, row.val_accuracy, row.epochs, row.seconds,
                         *(row.params.get(name) for name in names), row.baseline, row.run_dir])  # fmt: skip
    _replace(folder / TABLE_CSV, table.getvalue())
    _replace(folder / TABLE_JSON, json.dumps([dataclasses.asdict(row) for row in rows], indent=2) + "\n")
    if not any(row.state == "complete" for row in rows):
        return
    chosen = folder / str(study.best_trial.user_attrs["run_dir"])
    best = folder / BEST_DIR
    if (best / METADATA_FILE).is_file() and read_metadata(best).name == chosen.name:
        return
    partial, old = folder / f".{BEST_DIR}.partial", folder / f".{BEST_DIR}.old"
    for leftover in (partial, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(chosen, partial)
    if best.exists():
        os.replace(best, old)
    os.replace(partial, best)
    shutil.rmtree(old, ignore_errors=True)


def _replace(path: Path, content: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(content, encoding="utf-8")
    os.replace(partial, path)


def _discard(folder: Path) -> None:
    """Remove what the tuner wrote in ``folder`` (no trial finished: nothing there is a result)."""
    for name in (STUDY_FILE, TABLE_CSV, TABLE_JSON):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / TRIALS_DIR, ignore_errors=True)
