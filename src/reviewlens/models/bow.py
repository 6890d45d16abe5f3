"""Bag-of-words family: a stack of Dense layers over multi-hot, count or TF-IDF vectors."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def build(
    input_dim: int,
    hidden: Sequence[int] = (16,),
    dropout: float | None = 0.5,
    activation: str = "relu",
    outputs: int = 1,
) -> keras.Model:
    """Dense(h, activation) for each h in ``hidden`` (Dropout after the last one), then Dense(1, sigmoid), or
    Dense(outputs, softmax) for more than two labels.

    The input is one vector per review (TextVectorization's output in the exported model). ``activation``
    is ``relu`` (the book's) or ``linear`` (fastText's averaged embeddings).
    """
    inputs = keras.Input(shape=(input_dim,), name="vector")
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation=activation, name=f"dense_{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    head = keras.layers.Dense(outputs, activation="sigmoid" if outputs == 1 else "softmax", name="output")
    return keras.Model(inputs, head(x), name="bow")
