"""reviewlens: train, compare and serve sentiment classifiers of review text.

>>> import reviewlens
>>> result = reviewlens.train("bow-bigram")          # the embedded sample unless data is given
>>> model = reviewlens.load(result.run_dir)
>>> model.predict(["A wonderful film.", "Dull and far too long."])
"""

from __future__ import annotations

import os

# The one place reviewlens sets its environment: before any of its modules (or a helper process that
# imports one) can import TensorFlow, which reads this once, at import.
if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:  # the user's own setting is kept; this one is marked as ours
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ["REVIEWLENS_TF_LOG_LEVEL_SET"] = "2"

from typing import TYPE_CHECKING, Any

from reviewlens.errors import ReviewlensError
from reviewlens.runs import Run, load
from reviewlens.version import __version__

__all__ = ["ReviewlensError", "Run", "TrainResult", "__version__", "load", "train"]

if TYPE_CHECKING:
    from reviewlens.training import TrainResult


def train(*args: Any, **kwargs: Any) -> TrainResult:
    """Train a recipe and write its run directory; see ``reviewlens.training.train``."""
    from reviewlens.training import train as _train

    return _train(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "TrainResult":
        from reviewlens.training import TrainResult

        return TrainResult
    raise AttributeError(f"module 'reviewlens' has no attribute {name!r}")
