"""The recipe registry: each recipe is data (vectorizer, model, training settings) with its source.

A recipe names everything needed to reproduce a published figure. Each family's module registers its
own recipes (importing this module imports the built-in families); ``reviewlens recipes`` lists them.
"""

from __future__ import annotations

import importlib
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

    @property
    def measured(self) -> Measured | None:
        """reviewlens' own figure for this recipe (BENCHMARKS.md), where one was measured."""
        return MEASURED.get(self.name)


#: Where every ``MEASURED`` figure comes from: the full IMDB data, as BENCHMARKS.md records each run.
MEASURED_ON = "IMDB test (25,000 reviews), 2 shared cores, no GPU (BENCHMARKS.md)"


@dataclass(frozen=True)
class Measured:
    """A recipe's test accuracy and training time (train, evaluate and save) as reviewlens measured them."""

    accuracy: float
    seconds: float
    on: str = MEASURED_ON


#: reviewlens' own figures, beside each source's: the recipes BENCHMARKS.md measured on the full data.
MEASURED: dict[str, Measured] = {
    name: Measured(accuracy, seconds)
    for name, accuracy, seconds in (
        ("bow-unigram", 0.8852, 25.2),
        ("bow-bigram", 0.9000, 29.9),
        ("tfidf-bigram", 0.8928, 19.1),
        ("dense-10k", 0.8815, 18.7),
        ("fasttext", 0.9050, 34.0),
        ("nbsvm", 0.9187, 32.8),
        ("nbsvm-plus", 0.9228, 31.9),
        ("nbsvm-plus-unlabeled", 0.9267, 40.5),
        ("sum-embedding", 0.7796, 145),
        ("conv1d", 0.8697, 793),
        ("bilstm-onehot", 0.8754, 872),
        ("bilstm-embedding", 0.8422, 1059),
        ("bilstm-masked", 0.8694, 824),
        ("bilstm-pretrained", 0.8685, 679),
        ("transformer", 0.8831, 1427),
        ("transformer-posemb", 0.8757, 1252),
    )
}


RECIPES: Registry[Recipe] = Registry("recipe", ReviewlensError, "run `reviewlens recipes` to list them")
#: What `train` without --recipe, `quickstart` and `make run` use: the most accurate supervised recipe that
#: trains in well under a minute on 2 cores (92.3% on IMDB in about 17 s); the book's recipes are a flag away.
DEFAULT_RECIPE = "nbsvm-plus"


def register(recipe: Recipe) -> Recipe:
    return RECIPES.register(recipe.name, recipe)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a user's typo gets the closest names."""
    return catalogue()[name]


def catalogue() -> Registry[Recipe]:
    """Every recipe, the built-in families' included. They register themselves when ``reviewlens.families`` is
    imported, which this does by name on first use (as spaCy's registry fills itself): the catalogue sits below the
    families that fill it, and no import points back up."""
    importlib.import_module("reviewlens.families")
    return RECIPES
