"""The model families: registered objects, found by name; nothing outside a family's module names its parts.

Each family module defines its ``Family``, registers it with ``register_family`` and registers its recipes
(``reviewlens.recipes.register``). Importing this package registers the built-in families; none of them
imports TensorFlow until it trains.
"""

from __future__ import annotations

import difflib
from typing import TypeVar

from reviewlens.families.base import BestEpoch, Context, Family, Options, Trained

__all__ = ["FAMILIES", "BestEpoch", "Context", "Family", "Options", "Trained", "get_family", "register_family"]

FAMILIES: dict[str, Family] = {}
F = TypeVar("F", bound=Family)


def register_family(family: F) -> F:
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, FAMILIES, n=1)
        raise ValueError(f"no family {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")) from None


from reviewlens.families import bow, sequence  # noqa: E402, F401 - registers the built-in families
