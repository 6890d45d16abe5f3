"""The catalogue of recipes: filled in one place (the families register theirs when imported), lazily, and
holding exactly the recipes reviewlens ships."""

from __future__ import annotations

import subprocess
import sys

from reviewlens.errors import ReviewlensError

#: Every built-in recipe, by the family that trains it: adding or renaming one is a change to this list.
SHIPPED = {
    "bow": ["bow-unigram", "bow-bigram", "tfidf-bigram", "dense-10k"],
    "characters": ["char-tokenization", "char-tokens", "char-cnn"],
    "ensemble": ["ensemble"],
    "fasttext": ["fasttext"],
    "linear": ["nbsvm", "nbsvm-plus", "nbsvm-plus-unlabeled"],
    "pretrained": ["pretrained-vat", "pretrained-finetune"],
    "rnn": ["lstm", "bilstm-onehot", "bilstm-embedding", "bilstm-masked", "bilstm-pretrained"],
    "embedding-sum": ["sum-embedding"],
    "conv": ["conv1d"],
    "transformer": ["transformer", "transformer-posemb"],
}


def test_the_catalogue_holds_the_shipped_recipes_each_of_a_registered_family() -> None:
    from reviewlens.families import FAMILIES
    from reviewlens.recipes import DEFAULT_RECIPE, catalogue, get_recipe

    recipes = catalogue()
    by_family: dict[str, list[str]] = {}
    for name, recipe in recipes.items():
        by_family.setdefault(recipe.family, []).append(name)
    assert by_family == SHIPPED
    assert set(by_family) <= set(FAMILIES) and get_recipe(DEFAULT_RECIPE).name == "nbsvm-plus"
    try:
        get_recipe("nbsvm-pluss")
    except ReviewlensError as error:
        assert "did you mean nbsvm-plus" in str(error)
    else:
        raise AssertionError("an unknown recipe was found")


def test_the_catalogue_fills_itself_on_first_use_not_on_import() -> None:
    script = """
import sys
import reviewlens.recipes as recipes
assert not any(m.startswith("reviewlens.families") for m in sys.modules), "imported with the catalogue"
assert len(recipes.catalogue()) == 23 and "reviewlens.families.bow" in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
