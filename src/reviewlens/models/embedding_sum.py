"""Embedding-sum family (the modelkit tutorial): learned embeddings summed over the review -> Dense(1)."""

from __future__ import annotations

import keras

from reviewlens.models.layers import SumOverTime, output_layer


def padding_invariant(**_: object) -> bool:
    """The sum skips the padding: a review's score does not depend on it."""
    return True


def build(vocabulary_size: int, sequence_length: int, embedding: int = 64, outputs: int = 1) -> keras.Model:
    """Padding is masked out of the sum, so a review's score does not depend on how it was padded."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocabulary_size, embedding, mask_zero=True, name="embedding")(ids)
    x = SumOverTime(name="sum")(x)
    outputs = output_layer(outputs)(x)
    return keras.Model(ids, outputs, name="embedding_sum")
