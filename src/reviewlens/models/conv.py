"""Convolutional family: a residual stack of depthwise-separable 1D convolutions over learned embeddings."""

from __future__ import annotations

import keras

from reviewlens.models.layers import MaxOverTokens, ZeroPadding, output_layer


def padding_invariant(**_: object) -> bool:
    """Padding steps are zeroed before every convolution and left out of the pooling: it cannot move a score."""
    return True


def build(
    vocabulary_size: int,
    sequence_length: int,
    embedding: int = 128,
    filters: int = 128,
    kernel_size: int = 5,
    blocks: int = 3,
    dropout: float = 0.5,
    outputs: int = 1,
) -> keras.Model:
    """Each block adds two separable convolutions (relu, then linear) to its input, then relu; global
    max pooling keeps each filter's strongest match anywhere in the review (the book's suggestion, ch. 11).

    Every convolution reads zeros at the padding steps, as it reads zeros past the end of its input,
    and the pooling skips them: a review scores the same whatever padding follows it (tested), so
    training can pad each batch only to its longest review.
    """
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocabulary_size, embedding, name="embedding")(ids)
    if embedding != filters:
        x = keras.layers.Dense(filters, name="project")(x)
    x = ZeroPadding(name="zero_padding")([x, ids])
    for block in range(blocks):
        residual = x
        x = keras.layers.SeparableConv1D(filters, kernel_size, padding="same", activation="relu",
                                         name=f"block{block}_conv1")(x)  # fmt: skip
        x = ZeroPadding(name=f"block{block}_zero_padding1")([x, ids])
        x = keras.layers.SeparableConv1D(filters, kernel_size, padding="same", name=f"block{block}_conv2")(x)
        x = keras.layers.Activation("relu", name=f"block{block}_relu")(keras.layers.Add()([x, residual]))
        x = ZeroPadding(name=f"block{block}_zero_padding2")([x, ids])
    x = MaxOverTokens(name="max_pool")([x, ids])
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = output_layer(outputs)(x)
    return keras.Model(ids, outputs, name="conv")
