"""The ``tokenization-layer`` package's import name: ``from reviewlens import tokenization_layer``.

Code written for the published package (its IMDB example: ``tokenization_layer.one_hot_str`` mapped over a
``tf.data`` dataset, ``TokenizationLayer``, ``EmbeddingLayer``, a custom ``tf.GradientTape`` loop) runs with
that one import line changed; the names are ``reviewlens.models.tokenization``'s.
"""

from __future__ import annotations

from typing import Any

import keras

from reviewlens.models.tokenization import (
    EmbeddingLayer,
    PatternsInitializerGaussian,
    PatternsInitializerMaxCover,
    PatternsInitilizerMaxCover,
    TokenizationLayer,
    one_hot_str,
)

__all__ = [
    "EmbeddingLayer",
    "PatternsInitializerGaussian",
    "PatternsInitializerMaxCover",
    "PatternsInitilizerMaxCover",
    "TokenizationLayer",
    "one_hot_str",
]


def _reset_states(metric: keras.metrics.Metric) -> Any:
    """Keras 2's name for ``reset_state``, which the published example calls at each epoch's end."""
    return metric.reset_state()


# The package was written for Keras 2, whose metrics had ``reset_states``; Keras 3 has only ``reset_state``.
# Importing this module (and only this one) gives the old name back where Keras lacks it, as a call of the new.
if not hasattr(keras.metrics.Metric, "reset_states"):
    setattr(keras.metrics.Metric, "reset_states", _reset_states)  # noqa: B010
