"""Every custom Keras layer reviewlens registers saves to ``.keras``, loads back in safe mode, predicts the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import reviewlens.models.characters as characters
import reviewlens.models.layers as layers
import reviewlens.models.tokenization as tokenization
import reviewlens.text.keras as text_layers

IDS = np.array([[3, 5, 2, 0, 0], [1, 4, 4, 6, 2], [0, 0, 0, 0, 0]], "int32")  # one all-padding row
VECTORS = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")


def _on_ids(layer: keras.layers.Layer) -> tuple[Any, list[np.ndarray]]:
    ids = keras.Input((None,), dtype="int32")
    return keras.Model(ids, layer(ids)), [IDS]


def _on_vectors_and_ids(layer: keras.layers.Layer) -> tuple[Any, list[np.ndarray]]:
    vectors, ids = keras.Input((None, 4)), keras.Input((None,), dtype="int32")
    return keras.Model([vectors, ids], layer([vectors, ids])), [VECTORS, IDS]


def _on_counts(layer: keras.layers.Layer) -> tuple[Any, list[np.ndarray]]:
    counts = keras.Input((5,))
    return keras.Model(counts, layer(counts)), [np.abs(IDS).astype("float32")]  # the all-zero row stays zeros


def _after_masked_embedding(layer: keras.layers.Layer) -> tuple[Any, list[np.ndarray]]:
    ids = keras.Input((None,), dtype="int32")
    return keras.Model(ids, layer(keras.layers.Embedding(8, 4, mask_zero=True)(ids))), [IDS]


#: One small model around each registered layer. A layer registered without an entry here fails the test below.
def _on_strings(layer: keras.layers.Layer) -> tuple[Any, list[np.ndarray]]:
    text = keras.Input((1,), dtype="string")
    return keras.Model(text, layer(text)), [tf.constant([["A cab!"], [""], ["cab<br />xyz abcabc"]])]


EXAMPLES: dict[str, Callable[[], tuple[Any, list[np.ndarray]]]] = {
    "FitLength": lambda: _on_ids(text_layers.FitLength(4, truncate="head", padding="head")),
    "OneHot": lambda: _on_ids(layers.OneHot(8)),
    "ReverseTokens": lambda: _on_ids(layers.ReverseTokens()),
    "RowMean": lambda: _on_counts(text_layers.RowMean()),
    "SumOverTime": lambda: _after_masked_embedding(layers.SumOverTime()),
    "MaxOverTime": lambda: _after_masked_embedding(layers.MaxOverTime()),
    "ZeroPadding": lambda: _on_vectors_and_ids(layers.ZeroPadding()),
    "MaxOverTokens": lambda: _on_vectors_and_ids(layers.MaxOverTokens()),
    "PositionalEmbedding": lambda: _on_ids(layers.PositionalEmbedding(5, 8, 4)),
    "TransformerEncoder": lambda: _after_masked_embedding(layers.TransformerEncoder(4, 6, 2)),
    # The pretrained encoders': the mask from the ids, learned positions, concat pooling of the unpadded steps.
    "WithMask": lambda: _on_vectors_and_ids(layers.WithMask()),
    "AddPositions": lambda: _after_masked_embedding(layers.AddPositions(5, 4)),
    "ConcatPooling": lambda: _after_masked_embedding(layers.ConcatPooling()),
    # The tokenization layer's: patterns over 7 character ids (7 is a blank), as a map and counted.
    "TokenizationLayer": lambda: _on_ids(
        tokenization.TokenizationLayer(4, tokenization.PatternsInitializerGaussian(seed=1), 2, num_chars=7)
    ),
    "EmbeddingLayer": lambda: _on_counts(tokenization.EmbeddingLayer(3)),
    "Log1p": lambda: _on_counts(characters.Log1p()),
    "CharacterIds": lambda: _on_strings(tokenization.CharacterIds("abc <UNK>", 6, drop_unknown=False)),
}


def registered_layers() -> list[str]:
    return sorted(
        name.split(">", 1)[1]
        for name, obj in keras.saving.get_custom_objects().items()
        if name.startswith("reviewlens>") and isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
    )


def test_every_registered_layer_has_a_round_trip_example() -> None:
    assert registered_layers() == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_layer_round_trips_through_a_keras_file_in_safe_mode(name: str, tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    model, inputs = EXAMPLES[name]()
    expected = model.predict(inputs, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert any(type(layer).__name__ == name for layer in loaded.layers)
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), expected, atol=1e-6)
