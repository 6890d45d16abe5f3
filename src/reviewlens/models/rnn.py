"""Recurrent family: token ids -> one-hot or (learned, masked, pretrained) embeddings -> (Bi)LSTM -> Dense(1)."""

from __future__ import annotations

import keras
import numpy as np

from reviewlens.models.layers import OneHot


def padding_invariant(embedding: int | None = 256, mask_zero: bool = False, pretrained: object = None,
                      **_: object) -> bool:  # fmt: skip
    """Whether a review's score is the same however much padding follows it: masked embeddings only."""
    return mask_zero and (embedding is not None or pretrained is not None)


def build(
    vocabulary_size: int,
    sequence_length: int,
    embedding: int | None = 256,
    units: int = 32,
    bidirectional: bool = True,
    mask_zero: bool = False,
    recurrent_input_dropout: float = 0.0,
    dropout: float | None = 0.5,
    pretrained: np.ndarray | None = None,
) -> keras.Model:
    """``embedding=None`` feeds one-hot tokens (the book's first BiLSTM); ``pretrained`` is a frozen
    (vocabulary_size, dim) matrix that replaces the learned embedding."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    if pretrained is not None:
        layer = keras.layers.Embedding(
            vocabulary_size, pretrained.shape[1], mask_zero=mask_zero, trainable=False, name="embedding"
        )
        x = layer(ids)
        layer.set_weights([pretrained])
    elif embedding is None:
        x = OneHot(vocabulary_size, name="one_hot")(ids)
    else:
        x = keras.layers.Embedding(vocabulary_size, embedding, mask_zero=mask_zero, name="embedding")(ids)
    lstm = keras.layers.LSTM(units, dropout=recurrent_input_dropout, name="lstm")
    x = (keras.layers.Bidirectional(lstm, name="bidirectional") if bidirectional else lstm)(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="output")(x)
    return keras.Model(ids, outputs, name="rnn")
