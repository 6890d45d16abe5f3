"""The model families: registered objects, found by name; nothing outside a family's module names its parts.

Each family module defines its ``Family``, registers it with ``register_family`` (``reviewlens.families.base``) and
registers its recipes (``reviewlens.recipes.register``). Importing this package registers the built-in families;
none of them imports TensorFlow until it trains.
"""

from __future__ import annotations

from reviewlens.families import bow, characters, ensemble, fasttext, linear, pretrained, sequence
from reviewlens.families.base import (
    FAMILIES,
    BestEpoch,
    Context,
    Family,
    Options,
    Trained,
    get_family,
    register_family,
)

__all__ = ["FAMILIES", "BestEpoch", "Context", "Family", "Options", "Trained", "get_family", "register_family"]
BUILT_IN = (bow, characters, ensemble, fasttext, linear, pretrained, sequence)  # registered by their import
