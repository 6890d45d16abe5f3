"""The predictor protocol and the registry of kinds (``reviewlens.predictors`` registers the built-in ones).

A run's ``metadata.json`` names the predictor kinds it can be loaded with (``"predictors"``, the default
first); ``PREDICTORS`` maps each kind, a versioned name such as ``"dense.v1"``, to its class. Every consumer
(``reviewlens.load``, the CLI, the model library, the service and its helper processes) goes through
``Predictor`` alone. Kinds register themselves with ``register_predictor``; a kind whose model needs
TensorFlow imports it only when a run is loaded with it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar

import numpy as np

from reviewlens.calibration import scale
from reviewlens.explain import Explanation, occlusion
from reviewlens.registry import Registry
from reviewlens.text.preprocessor import Preprocessor

if TYPE_CHECKING:
    from reviewlens.runs import RunMetadata

#: What a predictor kind computes with: NumPy alone (never TensorFlow) or Keras. A run is loaded with a ``Runtime``
#: (``reviewlens.runs``), which adds ``auto``: the first of its kinds.
PredictorRuntime = Literal["numpy", "keras"]


class Predictor(ABC):
    """Probabilities of a run's labels for raw texts (``predict_proba``) or token ids (``predict_proba_ids``).

    Subclasses set ``kind``, ``runtime`` (``"numpy"``: no TensorFlow) and ``files`` (what ``load`` reads
    besides the metadata), and write ``predict_vectors``, ``save`` and ``load``. ``explain`` is occlusion
    unless the kind can do better. ``temperature`` is the run's calibration (``reviewlens.calibration``):
    the public methods return calibrated probabilities, ``predict_vectors`` the model's own.
    """

    kind: ClassVar[str]
    runtime: ClassVar[PredictorRuntime]
    #: How a predictor that holds whole runs (an ensemble's members) opens one: ``reviewlens.runs.Run``, which
    #: ``reviewlens.runs`` sets when it is imported (runs sit above the predictors they load).
    open_run: ClassVar[Callable[..., Any]]
    files: ClassVar[tuple[str, ...]]
    #: Whether ``predict_proba_ids`` works: the model library's tokenizer -> vectorizer -> classifier chain.
    accepts_ids: ClassVar[bool] = True

    def __init__(self, preprocessor: Preprocessor, labels: Sequence[str]):
        self.preprocessor = preprocessor
        self.labels = tuple(labels)
        self.temperature = 1.0

    def calibrated(self, probabilities: np.ndarray) -> np.ndarray:
        """The model's probabilities with the run's temperature applied."""
        return scale(probabilities, self.temperature)

    @abstractmethod
    def predict_vectors(self, x: Any) -> np.ndarray:
        """Probabilities, shape ``(rows, len(labels))`` float32, for rows of the preprocessor's output."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities of each label (columns in ``labels`` order) for each text, float32."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.calibrated(self.predict_vectors(self.preprocessor.transform(texts)))

    def predict_proba_ids(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        """``predict_proba`` for texts already turned into token ids by ``preprocessor.token_ids``."""
        if len(rows) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.calibrated(self.predict_vectors(self.preprocessor.transform_ids(rows)))

    def explain(self, text: str, top: int | None = None) -> Explanation:
        """The text's score and the words that moved it most (by occlusion: each word removed in turn, the first
        ``reviewlens.explain.MAX_OCCLUDED_WORDS`` of the text)."""
        return occlusion(self, text, top)

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the files the kind needs (the preprocessor is saved with the run, not here)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, metadata: RunMetadata, preprocessor: Preprocessor | None) -> Self:
        """The predictor of a checked run directory; ``preprocessor`` is the run's, where it has one."""


def binary_columns(positive: np.ndarray) -> np.ndarray:
    """``(n, 2)`` probabilities of (negative, positive) from the probability of positive."""
    positive = np.asarray(positive, np.float32).reshape(-1)
    columns = np.empty((len(positive), 2), np.float32)
    columns[:, 1] = positive
    np.subtract(1.0, positive, out=columns[:, 0])
    return columns


PREDICTORS: Registry[type[Predictor]] = Registry("predictor kind")
P = TypeVar("P", bound=type[Predictor])


def register_predictor(cls: P) -> P:
    """Class decorator: make a predictor kind loadable by its ``kind`` name."""
    PREDICTORS.register(cls.kind, cls)
    return cls
