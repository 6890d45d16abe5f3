"""Pretrained encoders: an LSTM language model or a small masked-token Transformer over token ids, and the
classifier built on one (concat pooling -> Dense), with virtual adversarial training's loss on its embeddings.

The encoder is ``ids -> Embedding -> WithMask -> body -> states``; ``WithMask`` carries the padding mask from the
ids, so the body can also be run on perturbed embeddings (``vat_loss``). Every custom layer is registered, so
the encoder and the classifier round-trip through ``.keras`` in safe mode.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from reviewlens.models.layers import (
    AddPositions,
    ConcatPooling,
    ReverseTokens,
    TransformerEncoder,
    WithMask,
    output_layer,
)

OBJECTIVES = ("lm", "mlm")  # next-token LSTM language model; masked-token Transformer
DIRECTIONS = ("forward", "backward")  # the order a language model reads each review in (ULMFiT's two models)


def encoder(
    vocabulary_size: int, objective: str = "lm", embedding: int = 128, units: int = 256, layers: int = 1,
    heads: int = 2, dense: int = 256, length: int = 128,
) -> keras.Model:  # fmt: skip
    """``ids -> states``. ``vocabulary_size`` counts padding and OOV; the masked-token objective adds one row, its
    [MASK] token (id ``vocabulary_size``), which a classifier never sees."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    rows = vocabulary_size + (objective == "mlm")
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(rows, embedding, name="embedding")(ids)
    x = WithMask(name="with_mask")([x, ids])
    if objective == "lm":
        for i in range(layers):
            x = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{i}")(x)
    else:
        x = AddPositions(length, embedding, name="positions")(x)
        for i in range(layers):
            x = TransformerEncoder(embedding, dense, heads, name=f"transformer_{i}")(x)
    return keras.Model(ids, x, name=f"encoder_{objective}")


def body_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The encoder's layers after its embedding and mask: what runs on (perturbed) embeddings."""
    return [layer for layer in model.layers if layer.name.startswith(("lstm_", "positions", "transformer_"))]


def classifier(
    encoder_model: keras.Model, dropout: float = 0.5, outputs: int = 1, backward: bool = False
) -> tuple[keras.Model, keras.Model]:
    """The classifier on ``encoder_model``'s layers (shared, so its weights are the encoder's): ``ids -> probability``,
    and the same network from ``[embeddings, ids]`` (for virtual adversarial training). Both share every layer. A
    ``backward`` encoder reads each review from its end: the classifier reverses the ids before embedding them (the
    second network takes the embeddings of reversed ids, see ``ReverseTokens``)."""
    embedding = encoder_model.get_layer("embedding")
    with_mask = WithMask(name="with_mask")
    body = body_layers(encoder_model)
    pooling = ConcatPooling(name="concat_pooling")
    drop = keras.layers.Dropout(dropout, name="dropout")
    head = output_layer(outputs)

    def tail(vectors: Any, ids: Any) -> Any:
        x = with_mask([vectors, ids])
        for layer in body:
            x = layer(x)
        return head(drop(pooling(x)))

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    read = ReverseTokens(name="reverse_tokens")(ids) if backward else ids
    model = keras.Model(ids, tail(embedding(read), read), name="pretrained_classifier")
    vectors = keras.Input(shape=(None, embedding.output_dim), name="vectors")
    ids_again = keras.Input(shape=(None,), dtype="int32", name="ids_again")
    return model, keras.Model([vectors, ids_again], tail(vectors, ids_again), name="from_embeddings")


def _label_kl(p: Any, q: Any) -> Any:
    """KL(p || q) of each row's label distribution; a single column is the probability of positive (binary)."""
    eps = 1e-7
    if int(p.shape[-1]) == 1:
        p, q = ops.concatenate([1.0 - p, p], axis=-1), ops.concatenate([1.0 - q, q], axis=-1)
    p, q = ops.clip(p, eps, 1.0), ops.clip(q, eps, 1.0)
    return ops.sum(p * (ops.log(p) - ops.log(q)), axis=-1)


def _unit(d: Any, ids: Any) -> Any:
    """``d`` zeroed on padding and scaled to norm 1 over each review's whole sequence (Miyato et al.); scaled by its
    largest value first, so a tiny gradient (KL's, at a small ``xi``) is not lost to the norm's epsilon."""
    d = d * ops.cast(ops.not_equal(ids, 0), d.dtype)[:, :, None]
    d = d / (1e-12 + ops.max(ops.abs(d), axis=(1, 2), keepdims=True))
    return d / ops.sqrt(1e-6 + ops.sum(ops.square(d), axis=(1, 2), keepdims=True))


def adversarial_direction(tail: keras.Model, vectors: Any, ids: Any, clean: Any, xi: float, noise: Any) -> Any:
    """One power iteration from ``noise``: the unit perturbation of the embeddings that most raises KL(clean ||
    perturbed), to first order (TensorFlow backend: its gradient is taken with ``tf.GradientTape``)."""
    import tensorflow as tf

    d = _unit(noise, ids)
    with tf.GradientTape() as tape:
        tape.watch(d)
        divergence = ops.mean(_label_kl(clean, tail([vectors + xi * d, ids], training=False)))
    return _unit(tf.stop_gradient(tape.gradient(divergence, d)), ids)


def vat_loss(tail: keras.Model, vectors: Any, ids: Any, epsilon: float, xi: float, noise: Any) -> Any:
    """Virtual adversarial training's loss: mean KL(p(x) || p(x + r_adv)), r_adv = ``epsilon`` times the adversarial
    direction; p(x) is held constant. ``epsilon`` 0 gives 0 (and no gradient): plain training."""
    import tensorflow as tf

    clean = tf.stop_gradient(tail([vectors, ids], training=False))
    direction = adversarial_direction(tail, tf.stop_gradient(vectors), ids, clean, xi, noise)
    return ops.mean(_label_kl(clean, tail([vectors + epsilon * direction, ids], training=False)))


def log_uniform(vocabulary_size: int) -> np.ndarray:
    """The log-uniform (Zipf) probability of each id 0..V-1, the sampled softmax's proposal for a vocabulary in
    frequency order (TensorFlow's ``log_uniform_candidate_sampler``)."""
    k = np.arange(vocabulary_size, dtype=np.float64)
    return ((np.log(k + 2) - np.log(k + 1)) / np.log(vocabulary_size + 1)).astype(np.float32)
