"""Transformer family (the book's ch. 11): embeddings (optionally with learned positions) -> encoder -> max pool.

Padding is masked in the attention and in the pooling, so a review's score does not depend on its padding.
"""

from __future__ import annotations

import keras

from reviewlens.models.layers import MaxOverTime, PositionalEmbedding, TransformerEncoder, output_layer


def padding_invariant(**_: object) -> bool:
    """Attention and pooling skip the (tail) padding: a review's score does not depend on it."""
    return True


def build(
    vocabulary_size: int,
    sequence_length: int,
    embedding: int = 256,
    dense: int = 32,
    heads: int = 2,
    positional: bool = False,
    dropout: float = 0.5,
    outputs: int = 1,
) -> keras.Model:
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    if positional:
        x = PositionalEmbedding(sequence_length, vocabulary_size, embedding, name="embedding")(ids)
    else:
        x = keras.layers.Embedding(vocabulary_size, embedding, mask_zero=True, name="embedding")(ids)
    x = TransformerEncoder(embedding, dense, heads, name="encoder")(x)
    x = MaxOverTime(name="max_pool")(x)  # skips the padding, unlike the book's GlobalMaxPooling1D
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = output_layer(outputs)(x)
    return keras.Model(ids, outputs, name="transformer")
