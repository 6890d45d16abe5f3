"""What a model family is: a registered object with typed per-run options that trains a recipe into a ``Trained``.

``reviewlens.training.train`` does what is the same for every family (resolving data, metrics, metadata,
writing the run directory atomically); a family does the rest and says which predictor kinds its runs
carry. ``BestEpoch`` is the one model-selection rule every family uses. After every finished epoch a family
saves a ``Checkpoint`` through ``Context.checkpoint`` and, where ``Context.resumed`` holds one (``train
--resume``), continues from it (``reviewlens.checkpoints``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from reviewlens.checkpoints import Checkpoint
from reviewlens.errors import ReviewlensError
from reviewlens.logs import Log, silent
from reviewlens.registry import Registry

if TYPE_CHECKING:
    from reviewlens.checkpoints import Staging
    from reviewlens.data import Dataset
    from reviewlens.recipes import Recipe
    from reviewlens.text.preprocessor import Preprocessor

EpochCallback = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, logs)
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """A family's per-run settings (``reviewlens train --max-length ...``): a frozen dataclass of optional fields.

    The base class has none; a family subclasses it with its own fields, checked in ``__post_init__``.
    ``UNCHECKED`` names those that do not change what is trained (where logs go): ``train --resume`` may
    change them.
    """

    UNCHECKED: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def parse(cls, values: Mapping[str, Any], recipe: Recipe) -> Self:
        """The options from a mapping of names to values; a name the family does not take is a user's mistake."""
        unsupported = sorted(set(values) - set(cls.names()))
        if unsupported:
            flags = ", ".join("--" + name.replace("_", "-") for name in unsupported)
            raise ReviewlensError(
                f"recipe {recipe.name!r} ({recipe.family} family) does not take {flags}; leave it out"
            )
        return cls(**values)

    def to_settings(self) -> dict[str, object]:
        """The options that were set and change what is trained: what a resumed run must keep."""
        return {name: value for name, value in self.to_metadata().items() if name not in self.UNCHECKED}

    def to_metadata(self) -> dict[str, object]:
        """The options that were set, as they go into a run's hyper-parameters."""
        return {
            name: str(value) if isinstance(value, Path) else value
            for name, value in dataclasses.asdict(self).items()
            if value is not None
        }


@dataclass
class Context:
    """What a family's ``train`` gets besides the recipe and the data."""

    epochs: int
    seed: int
    log: Log = silent
    options: Options = field(default_factory=Options)
    on_epoch: EpochCallback | None = None
    resources: ExitStack = field(default_factory=ExitStack)  # closed once the run is written
    timings: dict[str, float] = field(default_factory=dict)
    staging: Staging | None = None  # where checkpoints go; None: nowhere (a family trained outside ``train``)
    class_weight: tuple[float, ...] | None = None  # each label's weight in the loss (``train --class-weight``)
    labels: tuple[str, ...] = ("negative", "positive")  # the dataset's label names; more than two: a softmax
    select: str = "accuracy"  # the validation figure BestEpoch chooses by (``train --select``): a key of SELECTIONS
    _clock: float = field(default_factory=time.perf_counter)

    @property
    def resumed(self) -> Checkpoint | None:
        """The checkpoint of a killed run this one continues (``train --resume``); ``None`` when starting afresh."""
        return self.staging.resumed if self.staging is not None else None

    def checkpoint(
        self,
        epoch: int,
        history: Mapping[str, list[float]],
        best: BestEpoch[Any],
        arrays: Mapping[str, list[np.ndarray]],
        state: Mapping[str, Any] | None = None,
        step: int = 0,
    ) -> None:
        """Save where training stands after ``epoch`` finished epochs (and ``step`` steps of the next): the
        model and optimizer ``arrays`` (with the best epoch's snapshot), the history, ``best``'s state and the
        family's JSON ``state``; enough to continue exactly as if never stopped."""
        if self.staging is None:
            return
        key = best.key
        self.staging.save(
            Checkpoint(epoch, {k: list(v) for k, v in history.items()}, best.epoch, key, dict(arrays),
                       dict(state or {}), step)
        )  # fmt: skip

    def sample_weights(self, labels: Any) -> np.ndarray | None:
        """Each training review's weight in the loss, its label's ``class_weight`` (float32); ``None`` without
        class weights, where every review counts the same. Every family that trains with a loss weighs it so."""
        if self.class_weight is None:
            return None
        return np.asarray(self.class_weight, np.float32)[np.asarray(labels, np.int64)]

    def selection_logs(self, scores: Mapping[str, Any]) -> dict[str, float]:
        """An epoch's validation logs from its ``evaluation.metrics``: loss and accuracy, and the figure selected by
        where it is another (``val_macro_f1``), so that a default run's history stays as it always was."""
        logs = {"val_loss": float(scores["loss"]), "val_accuracy": float(scores["accuracy"])}
        if self.select == "macro-f1":
            logs["val_macro_f1"] = float(scores["macro_f1"])
        return logs

    def lap(self, name: str) -> None:
        """Record the seconds since the previous lap under ``name``."""
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 3)
        self._clock = now

    def epoch_done(self, epoch: int, logs: dict[str, float]) -> None:
        if self.on_epoch is not None:
            self.on_epoch(epoch, self.epochs, logs)


@dataclass
class Trained:
    """What a family hands back: the best epoch's predictions, the preprocessing, a way to save the model."""

    history: dict[str, list[float]]
    best_epoch: int
    val_labels: list[int]
    val_probabilities: np.ndarray  # the best epoch's: probability of positive, or of each label (label_scores_of)
    test_labels: list[int]
    test_probabilities: np.ndarray
    digests: tuple[bytes, ...]  # split_digest of train, validation and test
    train_size: int
    hyperparameters: dict[str, object]  # family-specific, added to the recipe's
    preprocessor: Preprocessor | None  # saved as the run's vectorizer.json; None where the model has its own
    write_model: Callable[[Path], None]  # writes the files of the family's predictors into a directory
    predictors: tuple[str, ...] | None = None  # the kinds this run carries, where not the family's


#: What ``BestEpoch`` may choose by (``train --select``): the name, the log it reads.
SELECTIONS: dict[str, str] = {"accuracy": "val_accuracy", "macro-f1": "val_macro_f1"}


class BestEpoch(Generic[T]):
    """The one model-selection rule: the epoch of highest validation accuracy (or ``select``'s figure: macro-F1),
    a tie going to the lower loss.

    ``offer`` each epoch's logs with a function that snapshots what to keep (weights, predictions); the
    snapshot is taken only for a new best.
    """

    RULE: ClassVar[str] = "highest validation accuracy, ties to lower validation loss"
    RULES: ClassVar[dict[str, str]] = {
        "accuracy": RULE,
        "macro-f1": "highest validation macro-F1, ties to lower validation loss",
    }

    def __init__(self, select: str = "accuracy") -> None:
        self._best = (-math.inf, -math.inf)
        self.epoch = 0
        self.kept: T | None = None
        self._log = SELECTIONS[select]

    @property
    def key(self) -> tuple[float, float]:
        """The best epoch's (validation figure, -validation loss): what a checkpoint saves to resume the rule."""
        return self._best

    def restore(self, epoch: int, key: tuple[float, float], kept: T | None) -> None:
        """Continue from a checkpoint: the best so far was ``epoch`` with ``key``, its snapshot ``kept``."""
        self._best, self.epoch, self.kept = key, epoch, kept

    def offer(self, epoch: int, logs: Mapping[str, float], snapshot: Callable[[], T]) -> bool:
        key = (float(logs[self._log]), -float(logs["val_loss"]))
        if key <= self._best:
            return False
        self._best, self.epoch, self.kept = key, epoch, snapshot()
        return True


@dataclass(frozen=True)
class Family(ABC):
    """A registered model family: its name, its options type, the predictor kinds its runs carry (default first)."""

    name: str
    summary: str
    predictors: tuple[str, ...]
    options: type[Options] = Options
    #: Whether it trains with a loss that ``Context.class_weight`` weighs (``train --class-weight``).
    weighs_classes: bool = True
    #: What its ``BestEpoch`` can choose by (``train --select``; ``SELECTIONS``): accuracy only, where the family
    #: has no validation predictions per epoch to compute more from.
    selects: tuple[str, ...] = ("accuracy",)

    @abstractmethod
    def train(self, recipe: Recipe, dataset: Dataset, context: Context) -> Trained:
        """Fit ``recipe`` on the dataset's train split, choosing the epoch on validation; score test once."""

    def default_data(self, options: Options) -> Path | None:
        """The data a run of these options trains on when none is given (``None``: the usual resolution)."""
        return None


FAMILIES: Registry[Family] = Registry("family")
F = TypeVar("F", bound=Family)


def register_family(family: F) -> F:
    FAMILIES.register(family.name, family)
    return family


def get_family(name: str) -> Family:
    return FAMILIES[name]
