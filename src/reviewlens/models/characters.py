"""Keras models over character ids: the published tokenization-layer model, its pooled successor, a character CNN.

``build(kind, num_chars, length, corpus=None, **config)`` gives a model from (batch, length) int32 ids to the
probability of positive. ``corpus`` (training texts) feeds the max-cover initializer; without it (rebuilding
a saved run) the patterns start at zero and get their trained values from the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from reviewlens.models.tokenization import EmbeddingLayer, PatternsInitializerMaxCover, TokenizationLayer
from reviewlens.text.characters import GRAM_LENGTHS

_register = keras.saving.register_keras_serializable(package="reviewlens")
KINDS = ("published", "pooled", "cnn")


@_register
class Log1p(keras.layers.Layer):
    """log(1 + x): token counts to a scale where one more occurrence of a frequent token matters less."""

    def call(self, x: Any) -> Any:
        return keras.ops.log1p(x)


def _patterns(
    corpus: Sequence[str] | None, alphabet: str, gram_lens: Sequence[int], strategy: str, padding: str, seed: int
) -> Any:
    if corpus is None:
        return "zeros"
    return PatternsInitializerMaxCover(corpus, alphabet, gram_lens, strategy=strategy, padding=padding, seed=seed)


def build(
    kind: str,
    num_chars: int,
    length: int,
    alphabet: str = "",
    corpus: Sequence[str] | None = None,
    seed: int = 1337,
    patterns: int = 500,
    pattern_len: int = 13,
    gram_lens: Sequence[int] = GRAM_LENGTHS,
    strategy: str = "sample",
    padding: str = "noise",
    constrain: bool = False,
    dense: int = 64,
    dropout: float = 0.0,
    embedding: int = 16,
    filters: int = 256,
    kernel_size: int = 7,
    outputs: int = 1,
) -> Any:
    """A character model of ``kind`` (one of ``KINDS``); ``outputs`` 1 ends in Dense(1, sigmoid), the probability of
    positive, more ends in a softmax over that many labels."""
    ids = keras.Input((length,), dtype="int32", name="characters")
    if kind == "published":
        # TokenizationLayer(500) -> (batch, length, 500) -> EmbeddingLayer(1) -> Flatten -> BatchNorm -> Dense(64)
        # -> Dense(1, sigmoid), as the package's IMDB script; its Lambda transpose is a Reshape and a Permute.
        init = _patterns(corpus, alphabet, gram_lens, strategy, padding, seed)
        x = TokenizationLayer(patterns, init, pattern_len, num_chars=num_chars, constrain=constrain,
                              name="tokenization")(ids)  # fmt: skip
        x = keras.layers.Reshape((patterns, length))(x)
        x = keras.layers.Permute((2, 1))(x)
        x = EmbeddingLayer(1, name="embedding")(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Dense(dense, name="dense")(x)
    elif kind == "pooled":
        # Each token's count in the review (no 2,000-wide flatten), on a log scale, then a linear read-out.
        init = _patterns(corpus, alphabet, gram_lens, strategy, padding, seed)
        x = TokenizationLayer(patterns, init, pattern_len, num_chars=num_chars, pooling="sum", constrain=constrain,
                              name="tokenization")(ids)  # fmt: skip
        x = Log1p(name="log_counts")(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    elif kind == "cnn":
        # A plain character CNN of similar size: learned character vectors, one convolution, max over the text.
        x = keras.layers.Embedding(num_chars + 1, embedding, name="embedding")(ids)
        x = keras.layers.Conv1D(filters, kernel_size, activation="relu", name="convolution")(x)
        x = keras.layers.GlobalMaxPooling1D()(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    else:
        raise ValueError(f"unknown character model {kind!r}; one of {KINDS}")
    out = keras.layers.Dense(outputs, activation="sigmoid" if outputs == 1 else "softmax", name="out")(x)
    return keras.Model(ids, out, name=f"characters_{kind}")


def tokenization_layer(model: Any) -> TokenizationLayer | None:
    """The model's tokenization layer, if it has one."""
    return next((layer for layer in model.layers if isinstance(layer, TokenizationLayer)), None)
