"""Ensemble family: runs already trained on the same data, combined into one run (``--members RUN,RUN``).

The combination is stacking: a logistic regression on the members' logits, fitted on their validation
predictions (``predictions.npz``, which every run keeps), so it both weighs the members and calibrates
the result; test predictions are the members' test predictions combined, scored once. The validation
figures are out-of-fold (each fifth of the validation split scored by weights fitted on the other four),
so they are not flattered by the fit. Members must come from the same data (the same fingerprint) and use
the same labels; the ensemble keeps a copy of each (``reviewlens.predictors.ensemble``). Members of more than
two labels are averaged instead: each label's probability is the mean of the members' (nothing is fitted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from reviewlens.calibration import fit_stacking, logits
from reviewlens.data import Dataset, fingerprint, split_digest
from reviewlens.errors import ReviewlensError
from reviewlens.evaluation import metrics
from reviewlens.families.base import Context, Family, Options, Trained, register_family
from reviewlens.predictors import PREDICTORS
from reviewlens.predictors.ensemble import EnsemblePredictor, KerasEnsemblePredictor, save_ensemble
from reviewlens.recipes import Recipe, register

FOLDS = 5


@dataclass(frozen=True)
class EnsembleOptions(Options):
    members: tuple[Path, ...] | None = None  # run directories

    def __post_init__(self) -> None:
        if not self.members:
            raise ReviewlensError("the ensemble recipe combines trained runs: pass --members RUN,RUN[,...]")
        object.__setattr__(self, "members", tuple(Path(member) for member in self.members))  # str from Python
        if len(self.members) < 2:
            raise ReviewlensError("--members needs at least two run directories, separated by commas")
        resolved = [member.resolve() for member in self.members]
        for index, member in enumerate(resolved):
            if member in resolved[:index]:
                raise ReviewlensError(f"--members names {self.members[index]} twice; give each run once")
        _members(self.members, with_predictions=False)  # each a complete run, with the same labels


@dataclass(frozen=True)
class Member:
    path: Path
    metadata: Any  # RunMetadata
    predictions: dict[str, np.ndarray]


@dataclass(frozen=True)
class EnsembleFamily(Family):
    options: type[Options] = EnsembleOptions

    def default_data(self, options: Options) -> Path | None:
        """The members' data, when no --data is given."""
        members = getattr(options, "members", None)
        if not members:
            return None
        from reviewlens.runs import read_metadata

        return read_metadata(members[0]).trained_on()

    def train(self, recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
        options = context.options
        assert isinstance(options, EnsembleOptions) and options.members
        members = _members(options.members)
        context.log(f"reading {dataset.path} to check it is the members' data")
        splits = dataset.read_splits("train", "validation", "test")
        digests = tuple(split_digest(*splits[name]) for name in ("train", "validation", "test"))
        _check_data(members, fingerprint(*digests), dataset.path)
        _check_predicting(members, splits["validation"][0][:CHECKED_REVIEWS])
        context.lap("read_s")

        val_labels, test_labels = splits["validation"][1], splits["test"][1]
        if len(dataset.label_names) > 2:
            return _averaged(members, splits, digests, context)
        val_x = np.stack([logits(m.predictions["val_probabilities"]) for m in members], axis=1)
        test_x = np.stack([logits(m.predictions["test_probabilities"]) for m in members], axis=1)
        y_val = np.asarray(val_labels)
        out_of_fold = _out_of_fold(val_x, y_val, context.seed)
        weights, bias = fit_stacking(val_x, y_val)
        context.lap("fit_s")
        scores = metrics(out_of_fold, y_val)
        context.log(
            f"weights {np.round(weights, 3).tolist()}, bias {bias:.3f}; out-of-fold validation {scores['accuracy']:.2%}"
        )

        numpy_members = all(any(PREDICTORS[kind].runtime == "numpy" for kind in m.metadata.predictors) for m in members)
        kinds = (
            (EnsemblePredictor.kind, KerasEnsemblePredictor.kind) if numpy_members else (KerasEnsemblePredictor.kind,)
        )

        def write_model(directory: Path) -> None:
            save_ensemble(directory, [m.path for m in members], weights, bias)

        return Trained(
            history={"val_loss": [float(scores["loss"])], "val_accuracy": [float(scores["accuracy"])]},  # type: ignore[arg-type]
            best_epoch=1,
            val_labels=list(val_labels),
            val_probabilities=out_of_fold.astype(np.float32),
            test_labels=list(test_labels),
            test_probabilities=expit(test_x @ weights + bias).astype(np.float32),
            digests=digests,
            train_size=len(splits["train"][1]),
            hyperparameters={
                "members": [
                    {"run": m.metadata.name, "recipe": m.metadata.recipe, "weight": round(float(w), 6)}
                    for m, w in zip(members, weights, strict=True)
                ],
                "bias": round(bias, 6),
                "combination": "logistic regression on the members' logits, fitted on validation predictions",
                "validation_metrics": f"out-of-fold over {FOLDS} folds of the validation split",
            },
            preprocessor=None,
            write_model=write_model,
            predictors=kinds,
        )


#: The validation reviews each member predicts when an ensemble is built, checked against its stored predictions.
CHECKED_REVIEWS = 32


def _members(paths: Sequence[Path], with_predictions: bool = True) -> list[Member]:
    """The member runs, checked: complete, not ensembles, with one set of labels."""
    from reviewlens.runs import read_metadata, read_predictions

    members = []
    for path in paths:
        metadata = read_metadata(path)
        if metadata.family == "ensemble":
            raise ReviewlensError(f"{path} is an ensemble itself; give its members instead")
        members.append(Member(path, metadata, read_predictions(path) if with_predictions else {}))
    first = members[0]
    for member in members[1:]:
        if member.metadata.labels != first.metadata.labels:
            raise ReviewlensError(
                f"{member.path} has the labels {member.metadata.labels} and {first.path} {first.metadata.labels}: "
                "runs trained with different label conventions cannot be combined"
            )
    return members


def _averaged(
    members: Sequence[Member],
    splits: dict[str, tuple[list[str], list[int]]],
    digests: tuple[bytes, ...],
    context: Context,
) -> Trained:
    """More than two labels: each label's probability is the mean of the members' (``combination: mean``)."""
    val_probabilities = np.asarray(np.mean([m.predictions["val_probabilities"] for m in members], axis=0))
    test_probabilities = np.asarray(np.mean([m.predictions["test_probabilities"] for m in members], axis=0))
    val_labels, test_labels = splits["validation"][1], splits["test"][1]
    scores = metrics(val_probabilities, val_labels, names=context.labels)
    context.lap("fit_s")
    context.log(f"each label's probability averaged over {len(members)} members; validation {scores['accuracy']:.2%}")
    weights = np.full(len(members), 1.0 / len(members))
    numpy_members = all(any(PREDICTORS[kind].runtime == "numpy" for kind in m.metadata.predictors) for m in members)
    kinds = (EnsemblePredictor.kind, KerasEnsemblePredictor.kind) if numpy_members else (KerasEnsemblePredictor.kind,)

    def write_model(directory: Path) -> None:
        save_ensemble(directory, [m.path for m in members], weights, 0.0, combination="mean")

    return Trained(
        history={"val_loss": [float(scores["loss"])], "val_accuracy": [float(scores["accuracy"])]},  # type: ignore[arg-type]
        best_epoch=1,
        val_labels=list(val_labels),
        val_probabilities=val_probabilities.astype(np.float32),
        test_labels=list(test_labels),
        test_probabilities=test_probabilities.astype(np.float32),
        digests=digests,
        train_size=len(splits["train"][1]),
        hyperparameters={
            "members": [{"run": m.metadata.name, "recipe": m.metadata.recipe} for m in members],
            "combination": "the mean of each label's probability over the members",
        },
        preprocessor=None,
        write_model=write_model,
        predictors=kinds,
    )


def _check_predicting(members: Sequence[Member], texts: Sequence[str]) -> None:
    """Each member loads and gives finite probabilities for the first validation reviews: the ensemble is fitted on
    the predictions the members stored, and a member that cannot predict would only fail once the ensemble is
    loaded or served. (Its stored validation predictions are not compared: a refit recipe stores the held-out
    predictions of the model it had before refitting on train and validation.)"""
    from reviewlens.runs import Run

    for member in members:
        got = np.asarray(Run(member.path).predict_proba(list(texts)), np.float64)
        if got.shape != (len(texts), len(member.metadata.labels)) or not np.isfinite(got).all():
            raise ReviewlensError(
                f"{member.path} gives no probabilities for validation reviews ({'not finite' if got.size else 'none'}"
                "); it cannot serve in an ensemble: train it again"
            )


def _check_data(members: Sequence[Member], data_fingerprint: str, path: Path) -> None:
    for member in members:
        if member.metadata.data.get("fingerprint") != data_fingerprint:
            trained_on = member.metadata.data.get("path", "other data")
            raise ReviewlensError(
                f"{member.path} was trained on {trained_on}, not on the splits of {path}; train every member "
                f"on the same data and pass it with --data"
            )


def _out_of_fold(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Each validation review's probability from weights fitted on the folds it is not in."""
    if len(y) < 2 * FOLDS:  # too few reviews to hold any out
        weights, bias = fit_stacking(x, y)
        return expit(x @ weights + bias)
    folds = np.random.default_rng(seed).permutation(len(y)) % FOLDS
    result = np.empty(len(y), np.float64)
    for fold in range(FOLDS):
        held = folds == fold
        weights, bias = fit_stacking(x[~held], y[~held])
        result[held] = expit(x[held] @ weights + bias)
    return result


ENSEMBLE = register_family(
    EnsembleFamily(
        name="ensemble",
        summary="trained runs combined by a logistic regression on their logits, fitted on validation",
        predictors=(EnsemblePredictor.kind, KerasEnsemblePredictor.kind),
        weighs_classes=False,  # its members were trained; it fits no loss a class weight would change
    )
)

register(
    Recipe(
        name="ensemble",
        summary="combine trained runs (--members RUN,RUN,...): stacking fitted on their validation predictions",
        source="stacking (Wolpert 1992); Mesnil et al. 2015 combine NBSVM with neural models (92.57%)",
        expected_accuracy=None,
        family="ensemble",
        vectorizer={},
        model={"combination": "logistic regression on logits", "folds": FOLDS},
        epochs=1,
        notes="Weights are fitted on the members' validation predictions; the validation figures are out-of-fold. "
        "Members must be trained on the same data with the same labels.",
        tags=("ensemble",),
    )
)
