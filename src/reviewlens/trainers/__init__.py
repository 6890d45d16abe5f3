"""Family trainers: each turns a recipe and a dataset into a ``Trained`` (``reviewlens.training``).

``TRAINERS`` maps a recipe's ``family`` to the module that trains it; ``train()`` does the rest
(resolving data, metrics, metadata, writing the run directory atomically) the same for every family.
"""

from __future__ import annotations

TRAINERS: dict[str, str] = {
    "bow": "reviewlens.trainers.bow",
    **dict.fromkeys(("rnn", "conv", "transformer", "embedding-sum"), "reviewlens.trainers.sequence"),
}
