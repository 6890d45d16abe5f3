"""The model families: registered objects, found by name; nothing outside a family's module names its parts.

Each family module defines its ``Family``, registers it with ``register_family`` and registers its recipes
(``reviewlens.recipes.register``). Importing this package registers the built-in families; none of them
imports TensorFlow until it trains.
"""

from __future__ import annotations

from typing import TypeVar

from reviewlens.families.base import BestEpoch, Context, Family, Options, Trained
from reviewlens.registry import Registry

__all__ = ["FAMILIES", "BestEpoch", "Context", "Family", "Options", "Trained", "get_family", "register_family"]

FAMILIES: Registry[Family] = Registry("family")
F = TypeVar("F", bound=Family)


def register_family(family: F) -> F:
    FAMILIES.register(family.name, family)
    return family


def get_family(name: str) -> Family:
    return FAMILIES[name]


from reviewlens.families import (  # noqa: E402, F401 - registers the families
    bow,
    characters,
    ensemble,
    fasttext,
    linear,
    pretrained,
    sequence,
)
