"""``ensemble.v1`` and ``ensemble-keras.v1``: trained runs combined by a logistic regression on their logits.

An ensemble run keeps a copy of each member run under ``members/`` and, in ``ensemble.json``, the members'
directories, the SHA-256 of each member's ``metadata.json`` (which holds the checksum of every member
file, so the ensemble's own checksum of ``ensemble.json`` covers the members too), and the combination:
``p = sigmoid(sum_i w_i * logit(p_i) + b)``, fitted on validation predictions (``reviewlens.calibration``);
for more than two labels (``"combination": "mean"``) each label's probability averaged over the members.
``ensemble.v1`` loads every member with its NumPy predictor (no TensorFlow); ``ensemble-keras.v1`` with
its ``model.keras``. Ensembles take raw texts: each member tokenizes in its own way, so there are no
shared token ids (``accepts_ids`` is false) and explanations are by occlusion, with the first member's
tokenization.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from scipy.special import expit

from reviewlens.calibration import logits
from reviewlens.errors import ReviewlensError
from reviewlens.files import METADATA_FILE, read_bytes, read_json
from reviewlens.predictors.base import Predictor, PredictorRuntime, binary_columns, register_predictor
from reviewlens.text.preprocessor import Preprocessor

if TYPE_CHECKING:
    from reviewlens.runs import Run, RunMetadata

ENSEMBLE_FILE = "ensemble.json"
#: How members' probabilities are combined: stacking (two labels) or each label's mean (more).
COMBINATIONS = ("stacking", "mean")
MEMBERS_DIR = "members"


@register_predictor
class EnsemblePredictor(Predictor):
    kind = "ensemble.v1"
    runtime: ClassVar[PredictorRuntime] = "numpy"
    files = (ENSEMBLE_FILE,)
    accepts_ids = False
    #: The runtime each member is loaded with.
    member_runtime: ClassVar[PredictorRuntime] = "numpy"

    def __init__(
        self,
        members: Sequence[Run],
        weights: Sequence[float],
        bias: float,
        labels: Sequence[str],
        combination: str = "stacking",
    ):
        if len(members) != len(weights) or len(members) < 2:
            raise ValueError("one weight per member, and at least two members")
        if combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}, not {combination!r}")
        preprocessor = members[0].predictor.preprocessor
        super().__init__(preprocessor, labels)
        self.members = list(members)
        self.weights = np.asarray(weights, np.float64)
        self.bias = float(bias)
        self.combination = combination

    def combine(self, member_positive: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, 2)`` probabilities from each member's probabilities of positive."""
        stacked = np.stack([logits(p) for p in member_positive], axis=1)
        return binary_columns(expit(stacked @ self.weights + self.bias))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.combination == "mean":  # more than two labels: each label's probability averaged
            columns = np.mean([member.predict_proba(texts) for member in self.members], axis=0, dtype=np.float64)
            return self.calibrated(np.asarray(columns, np.float32))
        return self.calibrated(self.combine([member.predict(texts) for member in self.members]))

    def predict_vectors(self, x: Any) -> np.ndarray:
        raise TypeError("an ensemble predicts from texts (predict_proba): its members vectorize them each their way")

    def predict_proba_ids(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        raise ReviewlensError(
            "an ensemble's members tokenize each in their own way, so it takes texts, not token ids; "
            "use the library's imdb_sentiment model, reviewlens.load or reviewlens serve"
        )

    def save(self, directory: Path) -> None:
        save_ensemble(directory, [member.run_dir for member in self.members], self.weights, self.bias, self.combination)

    @classmethod
    def load(cls, directory: Path, metadata: RunMetadata, preprocessor: Preprocessor | None) -> Self:
        path = directory / ENSEMBLE_FILE
        config = read_json(path, "train the ensemble again")
        try:
            entries, weights, bias = config["members"], config["weights"], float(config["bias"])
            combination = str(config.get("combination", "stacking"))  # ensembles before "mean" stacked
            names = [str(entry["directory"]) for entry in entries]
            digests = [str(entry["metadata_sha256"]) for entry in entries]
        except (ValueError, KeyError, TypeError) as error:
            raise ReviewlensError(f"{path} cannot be read ({error}); train the ensemble again") from None
        members = []
        for name, digest in zip(names, digests, strict=True):
            if name in ("", ".", "..") or "/" in name or "\\" in name:
                raise ReviewlensError(f"{path} names the member {name!r}, which is not a folder of {MEMBERS_DIR}/")
            member_dir = directory / MEMBERS_DIR / name
            meta = member_dir / METADATA_FILE
            held = read_bytes(meta, "train the ensemble again") if meta.is_file() else b""
            if hashlib.sha256(held).hexdigest() != digest:
                raise ReviewlensError(f"{member_dir} is missing or altered; train the ensemble again")
            members.append(cls.open_run(member_dir, runtime=cls.member_runtime))
        if combination not in COMBINATIONS:
            raise ReviewlensError(f"{path} names the combination {combination!r}; train the ensemble again")
        return cls(members, weights, bias, metadata.labels, combination)


def save_ensemble(
    directory: Path,
    members: Sequence[Path],
    weights: np.ndarray | Sequence[float],
    bias: float,
    combination: str = "stacking",
) -> None:
    """Copy each member run into ``directory/members/`` and write ``ensemble.json`` (``"combination"`` only where
    it is not stacking, so a binary ensemble's file is as it always was)."""
    entries = []
    for index, member in enumerate(members):
        name = f"{index}-" + re.sub(r"[^A-Za-z0-9._-]+", "-", member.resolve().name)
        shutil.copytree(member, directory / MEMBERS_DIR / name)
        digest = hashlib.sha256((member / METADATA_FILE).read_bytes()).hexdigest()
        entries.append({"directory": name, "metadata_sha256": digest})
    config: dict[str, object] = {"members": entries, "weights": [float(w) for w in weights], "bias": float(bias)}
    if combination != "stacking":
        config["combination"] = combination
    (directory / ENSEMBLE_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


@register_predictor
class KerasEnsemblePredictor(EnsemblePredictor):
    kind = "ensemble-keras.v1"
    runtime = "keras"
    member_runtime = "keras"
