"""Recurrent family: token ids -> one-hot or (learned, masked, pretrained) embeddings -> (Bi)LSTM -> Dense(1)."""

from __future__ import annotations

import keras
import numpy as np

from reviewlens.models.layers import OneHot, output_layer


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
    dense_one_hot: bool = False,
    outputs: int = 1,
) -> keras.Model:
    """``embedding=None`` feeds one-hot tokens (the book's first BiLSTM), by row lookups unless
    ``dense_one_hot`` asks for the book's 20,000-wide vectors; ``pretrained`` is a frozen
    (vocabulary_size, dim) matrix that replaces the learned embedding."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    if embedding is None and not dense_one_hot and not recurrent_input_dropout:
        x = _one_hot_lstms(ids, vocabulary_size, units, bidirectional)
    else:
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
    outputs = output_layer(outputs)(x)
    return keras.Model(ids, outputs, name="rnn")


def _one_hot_lstms(ids: object, vocabulary_size: int, units: int, bidirectional: bool) -> object:
    """(Bi)LSTM(units) over one-hot tokens, computed without making the one-hot vectors.

    An LSTM multiplies each step's input by its kernel: for a one-hot input that picks the kernel's row
    of the token. Each direction keeps that kernel as an Embedding of ``4 * units`` columns (the same
    shape and Glorot-uniform initialization as the kernel it stands for) and its LSTM gets a frozen
    identity kernel, so the model is the book's function and parameters without the 20,000-wide
    matrix products. ``OneHot`` + ``LSTM`` with the weights moved over gives the same scores (tested).
    """
    gates = 4 * units
    directions = ("forward", "backward") if bidirectional else ("forward",)
    outputs = []
    for direction in directions:
        kernel = keras.layers.Embedding(
            vocabulary_size, gates, embeddings_initializer="glorot_uniform", name=f"{direction}_kernel_rows"
        )
        lstm = keras.layers.LSTM(units, go_backwards=direction == "backward", name=f"{direction}_lstm")
        outputs.append(lstm(kernel(ids)))
        lstm.cell.kernel.assign(np.eye(gates, dtype="float32"))
        lstm.cell.kernel.trainable = False
    return keras.layers.Concatenate(name="bidirectional")(outputs) if bidirectional else outputs[0]
