"""The recipe registry: each recipe is data (vectorizer, model, training settings) with its source.

A recipe names everything needed to reproduce a published figure. Each family's module registers its
own recipes (importing this module imports the built-in families); ``reviewlens recipes`` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from reviewlens.errors import ReviewlensError
from reviewlens.registry import Registry

BOOK = "Chollet, Deep Learning with Python, 2nd ed."


@dataclass(frozen=True)
class Range:
    """A setting ``reviewlens tune`` searches between ``low`` and ``high`` (integers where both are; on a log
    scale where ``log``)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """A setting ``reviewlens tune`` chooses among ``values`` (numbers, strings or booleans)."""

    values: tuple[float | str | bool, ...]


#: A recipe's search space: each setting by name (a ``Recipe`` field such as ``learning_rate``, or a key of its
#: ``vectorizer`` or ``model``, dotted: ``model.dropout``) with the values ``reviewlens tune`` may try.
Search = Mapping[str, Range | Choice]


@dataclass(frozen=True)
class Recipe:
    """A named configuration: how text becomes vectors, which model, how it is trained.

    ``book_*`` fields are the recipe as its source wrote it; where reviewlens trains differently
    (to be faster at the same accuracy) the difference is in ``batch_size`` / ``learning_rate``
    and said in ``notes``.
    """

    name: str
    summary: str
    source: str
    expected_accuracy: float | None  # the source's test accuracy
    family: str  # the name of a registered family (reviewlens.families)
    vectorizer: dict[str, object]
    model: dict[str, object]
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    book_batch_size: int = 32
    notes: str = ""
    slow: bool = False
    tags: tuple[str, ...] = field(default=())
    search: Search = field(default_factory=dict)  # what `reviewlens tune` may change; empty: not tunable

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


RECIPES: Registry[Recipe] = Registry("recipe", ReviewlensError, "run `reviewlens recipes` to list them")
#: What `train` without --recipe, `quickstart` and `make run` use: the most accurate supervised recipe that
#: trains in well under a minute on 2 cores (92.3% on IMDB in about 17 s); the book's recipes are a flag away.
DEFAULT_RECIPE = "nbsvm-plus"


def register(recipe: Recipe) -> Recipe:
    return RECIPES.register(recipe.name, recipe)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a user's typo gets the closest names."""
    return RECIPES[name]


from reviewlens import families  # noqa: E402, F401 - the built-in families register their recipes
