"""Train a recipe on a dataset and write its run directory, atomically.

``train()`` is the same for every model family: it resolves the data, hands the recipe to the
registered family (``reviewlens.families``), measures validation and test, and writes the run
directory. It trains in a hidden sibling, ``.NAME.partial`` (``reviewlens.checkpoints``), that keeps a
checkpoint of every finished epoch, so that ``resume=True`` continues a killed run; the finished run is
renamed into place from there, so a run directory is complete or absent.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reviewlens.calibration import fit_temperature, scale
from reviewlens.checkpoints import Staging
from reviewlens.data import MAX_REVIEW_BYTES, Dataset, LabelKind, Resolved, fingerprint, resolve
from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import DEFAULT_THRESHOLD, expected_calibration_error, metrics, plot_curves
from reviewlens.families import FAMILIES, BestEpoch, Context, Trained, get_family
from reviewlens.families.base import SELECTIONS, EpochCallback
from reviewlens.files import check_writable
from reviewlens.imbalance import ClassWeight, ThresholdRule
from reviewlens.logs import Log, silent
from reviewlens.predictors import binary_columns
from reviewlens.recipes import Recipe, get_recipe
from reviewlens.runs import (
    CURVES_FILE,
    FORMAT_VERSION,
    HISTORY_FILE,
    METADATA_FILE,
    PREDICTIONS_FILE,
    RunMetadata,
    file_digests,
    library_versions,
    write_json,
)
from reviewlens.text.preprocessor import save_preprocessor
from reviewlens.tracking import Tracker
from reviewlens.version import __version__


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    metadata: RunMetadata


def default_run_dir(recipe: str, root: Path = Path("runs")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return root / f"{recipe}-{stamp}"


def configured(recipe: str | Recipe, batch_size: int | None = None, learning_rate: float | None = None) -> Recipe:
    """The recipe (looked up by name) with this run's batch size and learning rate where given."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if batch_size is not None:
        if batch_size < 1:
            raise ReviewlensError(f"--batch-size {batch_size} must be at least 1")
        recipe = dataclasses.replace(recipe, batch_size=batch_size)
    if learning_rate is not None:
        if not 0 < learning_rate < math.inf:
            raise ReviewlensError(f"--learning-rate {learning_rate} must be a positive number")
        recipe = dataclasses.replace(recipe, learning_rate=learning_rate)
    return recipe


#: A full disk, a quota, a read-only file system: the user's to fix, not a bug.
_CANNOT_WRITE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def train(
    recipe: str | Recipe,
    data: str | os.PathLike[str] | Dataset | Resolved | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    epochs: int | None = None,
    seed: int = 1337,
    log: Log = silent,
    on_epoch: EpochCallback | None = None,
    options: dict[str, Any] | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    calibrate: bool = False,
    max_review_bytes: int = MAX_REVIEW_BYTES,
    resume: bool = False,
    class_weight: str | Mapping[str, float] | None = None,
    threshold: str | float | None = None,
    trackers: Sequence[Tracker] = (),
    labels: LabelKind = "sentiment",
    select: str = "accuracy",
) -> TrainResult:
    """Train ``recipe`` and write a run directory; return where it is and its metadata.

    ``data`` is a path, a ``Dataset`` or ``None`` (resolved as the CLI does). Model selection sees
    the validation split only; the test split is scored once, after training. ``options`` are per-run
    settings the recipe's family honours (the sequence families' ``max_length``, ``truncate``...);
    ``batch_size`` and ``learning_rate`` replace the recipe's for this run. ``calibrate`` fits a
    temperature on the validation predictions (``reviewlens.calibration``) that the run then applies.
    A review longer than ``max_review_bytes`` is cut there; the run's metadata counts them. ``labels`` is what an
    aclImdb review's label is where ``data`` is a path (``"rating"``: its 1-10 rating); the run records the
    dataset's label names, and more than two train a softmax over them.

    ``class_weight`` weighs each training review's loss by its label (``reviewlens.imbalance.ClassWeight``:
    ``"balanced"``, ``"negative=9,positive=1"`` or a mapping); ``threshold`` chooses the run's decision threshold
    on the validation predictions (``ThresholdRule``: ``"best-f1"``, ``"precision=0.9"`` or a number). Both are
    recorded in the metadata; the validation and test metrics decide with the chosen threshold.

    ``select`` is the validation figure the best epoch is chosen by: ``"accuracy"`` or ``"macro-f1"`` (for families
    that compute it every epoch: bag-of-words, linear, fastText); the run's metadata records the rule.

    ``resume`` continues a run of the same ``out`` that was killed or failed, from its last finished epoch,
    with its optimizer state; the recipe, settings and data must be the same. Without it, a killed run's
    staging directory for ``out`` is an error that says so.

    ``trackers`` (``reviewlens.tracking``: TensorBoard, MLflow) get the settings, every epoch's figures and the
    written run; each is checked (its extra installed, its server reachable) before any data is read.
    """
    recipe = configured(recipe, batch_size, learning_rate)
    if epochs is not None and epochs < 1:
        raise ReviewlensError(f"--epochs {epochs} must be at least 1")
    if resume and out is None:
        raise ReviewlensError("--resume continues a killed run: pass its --out (`reviewlens runs` lists them)")
    if not 0 <= seed < 2**32:
        raise ReviewlensError(f"--seed {seed} must be an integer from 0 to {2**32 - 1}")
    run_dir = Path(out) if out is not None else default_run_dir(recipe.name)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ReviewlensError(f"{run_dir} already exists and is not empty; choose another --out or remove it")
    check_writable(run_dir.parent)  # before any data is read or any epoch trained
    for tracker in trackers:
        tracker.check()
    family = get_family(recipe.family)
    if select not in SELECTIONS:
        raise ReviewlensError(f"--select {select}: choose one of {', '.join(SELECTIONS)}")
    if select not in family.selects:
        able = ", ".join(name for name, each in FAMILIES.items() if select in each.selects)
        raise ReviewlensError(
            f"--select {select}: recipe {recipe.name!r} ({family.name} family) chooses its epoch by validation "
            f"{' or '.join(family.selects)}; leave --select out or choose a recipe of the {able} families"
        )
    parsed = family.options.parse(options or {}, recipe)
    if class_weight is not None and not family.weighs_classes:
        raise ReviewlensError(
            f"recipe {recipe.name!r} fits no loss a class weight would change; train its runs with --class-weight"
        )
    rule = ThresholdRule.parse(threshold) if threshold is not None else None
    if isinstance(data, Resolved):
        resolved = data
    elif isinstance(data, Dataset):
        resolved = Resolved(data, "argument")
    else:
        resolved = resolve(
            data if data is not None else family.default_data(parsed), max_review_bytes=max_review_bytes, labels=labels
        )
    dataset = resolved.dataset
    names = dataset.label_names
    if len(names) > 2 and rule is not None:
        raise ReviewlensError(
            f"--threshold {rule.spec}: a threshold decides between two labels, and the data has {len(names)} "
            "(each review gets its most probable label); leave --threshold out"
        )
    weighing = ClassWeight.parse(class_weight, names) if class_weight is not None else None
    staging = Staging(run_dir)
    context = Context(
        epochs=epochs or recipe.epochs, seed=seed, log=log, on_epoch=_reporting(on_epoch, trackers),
        options=parsed, staging=staging, labels=names, select=select,
    )  # fmt: skip
    if weighing is not None:  # balanced: from the train split's counts, which the catalog knows without reading
        context.class_weight = weighing.resolve(dataset.counts().get("train", {}), names)
    settings = _settings(recipe, context, dataset, weighing)
    try:
        staging.begin(settings, resume)
    except OSError as error:
        if error.errno not in _CANNOT_WRITE and error.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise
        raise ReviewlensError(
            f"--out: cannot make {staging.path} ({error.strerror or error}); choose another --out"
        ) from None
    if staging.resumed is not None:
        log(f"resuming {staging.path} after epoch {staging.resumed.epoch} of {context.epochs}")
    elif resume:
        log(f"{staging.path} holds no finished epoch: training from the start")
    started = time.perf_counter()
    begun: list[Tracker] = []
    try:
        for tracker in trackers:
            tracker.start(run_dir.name, {**settings, "calibrate": calibrate}, staging.path,
                          staging.resumed.history if staging.resumed is not None else None)  # fmt: skip
            begun.append(tracker)
        with context.resources:
            log(resolved.describe())
            trained = family.train(recipe, dataset, context)
            metadata = _metadata(run_dir, trained, recipe, resolved, context, calibrate, weighing, rule)
            log(f"writing {run_dir}")
            written = staging.finish(lambda directory: write_run(directory, trained, metadata, started))
    except OSError as error:
        _stop(staging, begun, log)
        if error.errno not in _CANNOT_WRITE:
            raise
        raise ReviewlensError(
            f"writing in {staging.path} failed ({error.strerror}); free space or choose another --out, then train "
            "again (with --resume where a checkpoint was kept)"
        ) from None
    except BaseException:
        _stop(staging, begun, log)
        raise
    for tracker in trackers:
        tracker.finish(run_dir, written)
    return TrainResult(run_dir, written)


def _reporting(on_epoch: EpochCallback | None, trackers: Sequence[Tracker]) -> EpochCallback | None:
    """The one epoch hook every family calls: the trackers first, then the caller's ``on_epoch``."""
    if not trackers:
        return on_epoch

    def report(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        for tracker in trackers:
            tracker.epoch(epoch, logs)
        if on_epoch is not None:
            on_epoch(epoch, epochs, logs)

    return report


def _stop(staging: Staging, trackers: Sequence[Tracker], log: Log) -> None:
    """After a failure: keep what a resume continues, and tell the trackers that the training stopped."""
    staging.stop(log)
    for tracker in trackers:
        tracker.stop()


def _settings(recipe: Recipe, context: Context, dataset: Dataset, weighing: ClassWeight | None) -> dict[str, Any]:
    """What a checkpoint was trained with, for ``state.json``; a resumed run must match it (the decision
    threshold is not: it is chosen after training)."""
    return {
        "recipe": recipe.name,
        "settings": {
            name: value
            for name, value in recipe.to_dict().items()
            if name in ("family", "vectorizer", "model", "optimizer", "learning_rate", "batch_size")
        },
        "epochs": context.epochs,
        "seed": context.seed,
        "options": context.options.to_settings(),
        "data": {"path": str(dataset.path.resolve()), "catalog": dataset.catalog_digest()},
        "reviewlens": __version__,
        # None where unset, which a checkpoint from before class weights reads too: it still resumes.
        "class_weight": weighing.spec if weighing is not None else None,
    } | ({"select": context.select} if context.select != "accuracy" else {})  # absent, as before, by default


def _metadata(
    run_dir: Path,
    trained: Trained,
    recipe: Recipe,
    resolved: Resolved,
    context: Context,
    calibrate: bool,
    weighing: ClassWeight | None = None,
    rule: ThresholdRule | None = None,
) -> dict[str, Any]:
    """Measure the trained model (calibrating it first where asked): the run's metadata, but for its files."""
    dataset, log, family = resolved.dataset, context.log, get_family(recipe.family)
    for warning in (*dataset.read_report.warnings(), *dataset.warnings()):  # what was read, rare or missing labels
        log(f"warning: {warning}")
    temperature = 1.0
    if calibrate:
        temperature = _calibrate(trained, log)
    threshold = DEFAULT_THRESHOLD
    if rule is not None:  # on validation only; test is scored once, with what was chosen
        threshold = rule.choose(trained.val_probabilities, trained.val_labels)
        log(f"decision threshold {threshold:.6g} ({rule.spec}, chosen on validation)")
        trained.hyperparameters["threshold"] = {"rule": rule.spec, "chosen_on": "validation", "value": threshold}
    if weighing is not None and context.class_weight is not None:
        weights = dict(zip(dataset.label_names, (round(w, 6) for w in context.class_weight), strict=True))
        trained.hyperparameters["class_weight"] = {"rule": weighing.spec, "weights": weights}
    names = dataset.label_names
    val_metrics = metrics(trained.val_probabilities, trained.val_labels, threshold, names)
    test_metrics = metrics(trained.test_probabilities, trained.test_labels, threshold, names)
    context.lap("evaluate_s")
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": run_dir.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": recipe.name,
        "family": family.name,
        "predictors": list(trained.predictors or family.predictors),
        "labels": list(dataset.label_names),
        "threshold": threshold,
        "temperature": temperature,
        "recipe_config": recipe.to_dict(),
        "hyperparameters": {
            "epochs": context.epochs,
            "batch_size": recipe.batch_size,
            "optimizer": recipe.optimizer,
            "learning_rate": recipe.learning_rate,
            "seed": context.seed,
            "selection": BestEpoch.RULES[context.select],
            "validation_fraction": dataset.validation_fraction,
            **trained.hyperparameters,
        },
        "data": {
            "path": str(dataset.path.resolve()),  # where `evaluate` without --data finds it, from any folder
            "origin": resolved.origin,
            "labels": dataset.label_kind,
            "fingerprint": fingerprint(*trained.digests),
            "train": trained.train_size,
            "validation": len(trained.val_labels),
            "test": len(trained.test_labels),
            "undecodable": len(dataset.read_report.undecodable),
            "truncated": len(dataset.read_report.truncated),
            "skipped": len(dataset.read_report.skipped),
        },
        "best_epoch": trained.best_epoch,
        "val_accuracy": val_metrics["accuracy"],
        "test_accuracy": test_metrics["accuracy"],
        "metrics": {"validation": val_metrics, "test": test_metrics},
        "timings": context.timings,
        "versions": library_versions(),
    }
    if context.resumed is not None:  # the timings are the last process's
        metadata["hyperparameters"]["resumed_after_epoch"] = context.resumed.epoch
    return metadata


def _calibrate(trained: Trained, log: Log) -> float:
    """Fit a temperature on the validation predictions and apply it to them and to the test ones (a softmax
    temperature over every label's column where there are more than two)."""
    before = expected_calibration_error(trained.val_probabilities, trained.val_labels)
    temperature = fit_temperature(trained.val_probabilities, trained.val_labels)
    for split in ("val_probabilities", "test_probabilities"):
        probabilities = np.asarray(getattr(trained, split))
        if probabilities.ndim == 2:  # more than two labels: one column each
            calibrated = scale(probabilities, temperature)
        else:
            calibrated = scale(binary_columns(probabilities), temperature)[:, 1]
        setattr(trained, split, calibrated)
    after = expected_calibration_error(trained.val_probabilities, trained.val_labels)
    log(f"calibrated on validation: temperature {temperature:.3f}, calibration error {before:.4f} -> {after:.4f}")
    trained.hyperparameters["calibration"] = {
        "method": "temperature scaling",
        "fitted_on": "validation",
        "temperature": round(temperature, 6),
        "validation_ece_before": round(before, 6),
        "validation_ece_after": round(after, 6),
    }
    return temperature


def write_run(directory: Path, trained: Trained, metadata: dict[str, Any], started: float) -> RunMetadata:
    """Write the run's files into ``directory`` (a staging directory, renamed into place afterwards); return the
    metadata, checked against the schema every reader checks."""
    trained.write_model(directory)
    if trained.preprocessor is not None:
        save_preprocessor(trained.preprocessor, directory)
    np.savez(
        directory / PREDICTIONS_FILE,
        val_labels=np.asarray(trained.val_labels, np.int8),
        val_probabilities=np.asarray(trained.val_probabilities, np.float32),
        test_labels=np.asarray(trained.test_labels, np.int8),
        test_probabilities=np.asarray(trained.test_probabilities, np.float32),
    )
    write_json(directory / HISTORY_FILE, trained.history)
    plot_curves(trained.history, directory / CURVES_FILE, title=f"{metadata['recipe']} ({metadata['name']})")
    metadata["timings"]["total_s"] = round(time.perf_counter() - started, 3)
    metadata["files"] = file_digests(directory)
    validated = RunMetadata.from_dict(metadata)
    write_json(directory / METADATA_FILE, validated.to_json())
    return validated
