"""Custom Keras layers of reviewlens' recipes' models, registered so saved models load in safe mode.

``reviewlens.predictors.keras_model.load_keras_model`` imports this module (and ``reviewlens.text.keras``, which
holds the layers from raw strings to a model's input) before loading any ``model.keras``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

_register = keras.saving.register_keras_serializable(package="reviewlens")


@_register
class OneHot(keras.layers.Layer):
    """Token ids to one-hot vectors (the book's ``tf.one_hot`` as a layer that saves safely)."""

    def __init__(self, depth: int, **kwargs: object):
        super().__init__(**kwargs)
        self.depth = depth

    def call(self, ids: object) -> object:
        return ops.one_hot(ops.cast(ids, "int32"), self.depth)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "depth": self.depth}


@_register
class SumOverTime(keras.layers.Layer):
    """The sum of a sequence's vectors over time, skipping masked (padding) steps."""

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, vectors: object, mask: object = None) -> object:
        if mask is not None:
            vectors = vectors * ops.cast(mask, vectors.dtype)[:, :, None]  # type: ignore[attr-defined]
        return ops.sum(vectors, axis=1)

    def compute_mask(self, inputs: object, mask: object = None) -> None:
        return None


def _max_over(vectors: object, keep: object) -> object:
    """Max over the steps where ``keep`` (batch, steps) is true; zeros for a row with none."""
    keep = keep[:, :, None]  # type: ignore[index]
    pooled = ops.max(ops.where(keep, vectors, ops.full_like(vectors, float("-inf"))), axis=1)
    return ops.where(ops.any(keep, axis=1), pooled, ops.zeros_like(pooled))


@_register
class MaxOverTime(keras.layers.Layer):
    """Global max pooling over the unmasked steps (all zeros for a review with none)."""

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, vectors: object, mask: object = None) -> object:
        if mask is None:
            return ops.max(vectors, axis=1)
        return _max_over(vectors, ops.cast(mask, "bool"))

    def compute_mask(self, inputs: object, mask: object = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[2])


@_register
class ZeroPadding(keras.layers.Layer):
    """``[vectors, ids]`` -> the vectors with every padding step (id 0) set to zero.

    A convolution with ``padding="same"`` reads zeros past the ends of its input; zeroing the padding
    steps before each convolution makes it read the same zeros past the end of the review, so the
    review's outputs do not depend on how much padding follows.
    """

    def call(self, inputs: list[object]) -> object:
        vectors, ids = inputs
        return vectors * ops.cast(ops.not_equal(ids, 0), vectors.dtype)[:, :, None]  # type: ignore[attr-defined]

    def compute_output_shape(self, input_shapes: list[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        return input_shapes[0]


@_register
class MaxOverTokens(keras.layers.Layer):
    """``[vectors, ids]`` -> global max pooling over the review's steps (ids other than 0); zeros if none."""

    def call(self, inputs: list[object]) -> object:
        vectors, ids = inputs
        return _max_over(vectors, ops.not_equal(ids, 0))

    def compute_output_shape(self, input_shapes: list[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        return (input_shapes[0][0], input_shapes[0][2])


@_register
class PositionalEmbedding(keras.layers.Layer):
    """Token embeddings plus learned position embeddings (the book's); padding (id 0) is masked."""

    def __init__(self, sequence_length: int, input_dim: int, output_dim: int, **kwargs: object):
        super().__init__(**kwargs)
        self.sequence_length, self.input_dim, self.output_dim = sequence_length, input_dim, output_dim
        self.tokens = keras.layers.Embedding(input_dim, output_dim, name="tokens")
        self.positions = keras.layers.Embedding(sequence_length, output_dim, name="positions")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.tokens.build(input_shape)
        self.positions.build(input_shape)
        super().build(input_shape)

    def call(self, ids: object) -> object:
        positions = ops.arange(ops.shape(ids)[-1])
        return self.tokens(ids) + self.positions(positions)[None, :, :]

    def compute_mask(self, ids: object, mask: object = None) -> object:
        return ops.not_equal(ids, 0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape, self.output_dim)

    def get_config(self) -> dict[str, object]:
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
        }


@_register
class TransformerEncoder(keras.layers.Layer):
    """The book's encoder block: self-attention and a dense projection, each with a residual and LayerNorm."""

    def __init__(self, embed_dim: int, dense_dim: int, num_heads: int, **kwargs: object):
        super().__init__(**kwargs)
        self.embed_dim, self.dense_dim, self.num_heads = embed_dim, dense_dim, num_heads
        self.supports_masking = True
        self.attention = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim, name="attention")
        self.dense_proj = keras.Sequential(
            [keras.layers.Dense(dense_dim, activation="relu"), keras.layers.Dense(embed_dim)], name="dense_proj"
        )
        self.layernorm_1 = keras.layers.LayerNormalization(name="layernorm_1")
        self.layernorm_2 = keras.layers.LayerNormalization(name="layernorm_2")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.attention.build(input_shape, input_shape)
        self.layernorm_1.build(input_shape)
        self.dense_proj.build(input_shape)
        self.layernorm_2.build(input_shape)
        super().build(input_shape)

    def call(self, inputs: object, mask: object = None) -> object:
        attention_mask = None if mask is None else ops.cast(mask[:, None, :], "bool")  # type: ignore[index]
        attended = self.attention(inputs, inputs, attention_mask=attention_mask)
        projected = self.layernorm_1(inputs + attended)
        return self.layernorm_2(projected + self.dense_proj(projected))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, object]:
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "dense_dim": self.dense_dim,
            "num_heads": self.num_heads,
        }


@_register
class WithMask(keras.layers.Layer):
    """``[vectors, ids] -> vectors`` with the mask ``ids != 0``: padding is skipped by the layers after it."""

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: list[object]) -> object:
        return inputs[0]

    def compute_mask(self, inputs: list[object], mask: object = None) -> object:
        return ops.not_equal(inputs[1], 0)

    def compute_output_shape(self, input_shapes: list[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        return input_shapes[0]


@_register
class AddPositions(keras.layers.Layer):
    """Vectors plus learned position embeddings (up to ``sequence_length`` positions); the mask passes through."""

    def __init__(self, sequence_length: int, output_dim: int, **kwargs: object):
        super().__init__(**kwargs)
        self.sequence_length, self.output_dim = sequence_length, output_dim
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.positions = self.add_weight(
            shape=(self.sequence_length, self.output_dim), initializer="uniform", name="positions"
        )

    def call(self, vectors: object) -> object:
        return vectors + self.positions[None, : ops.shape(vectors)[1], :]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "sequence_length": self.sequence_length, "output_dim": self.output_dim}


@_register
class ReverseTokens(keras.layers.Layer):
    """Each row's tokens in reverse order, its padding (0, after the tokens) kept at the end: what a backward
    language model reads (``reviewlens pretrain --direction backward``). Its own inverse."""

    def call(self, ids: Any) -> Any:
        lengths = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1, keepdims=True)
        steps = ops.arange(ops.shape(ids)[1], dtype="int32")[None, :]
        return ops.take_along_axis(ids, ops.where(steps < lengths, lengths - 1 - steps, steps), axis=1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


@_register
class ConcatPooling(keras.layers.Layer):
    """ULMFiT's concat pooling over the unpadded steps: ``[last state, max, mean]`` (tail padding)."""

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, states: Any, mask: Any = None) -> Any:
        if mask is None:
            mask = ops.ones(ops.shape(states)[:2], "bool")
        keep = ops.cast(mask, states.dtype)[:, :, None]
        count = ops.maximum(ops.sum(keep, axis=1), 1.0)
        mean = ops.sum(states * keep, axis=1) / count
        largest = ops.max(ops.where(keep > 0, states, -1e9), axis=1)
        largest = ops.where(ops.sum(keep, axis=1) > 0, largest, 0.0)
        last = ops.maximum(ops.cast(ops.sum(keep[:, :, 0], axis=1), "int32") - 1, 0)
        chosen = ops.take_along_axis(states, last[:, None, None] * ops.ones_like(states[:, :1, :], "int32"), axis=1)
        return ops.concatenate([chosen[:, 0, :], largest, mean], axis=-1)

    def compute_mask(self, inputs: object, mask: object = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], 3 * int(input_shape[-1] or 0))


def output_layer(outputs: int = 1) -> keras.layers.Dense:
    """A model's last layer: Dense(1, sigmoid), the probability of positive, for two labels; a softmax over
    ``outputs`` labels for more."""
    return keras.layers.Dense(outputs, activation="sigmoid" if outputs == 1 else "softmax", name="output")
