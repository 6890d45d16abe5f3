"""Deprecated: ``reviewlens.text.keras`` (``import reviewlens.keras_text`` still registers every layer a reviewlens
``model.keras`` holds, as it did, and warns once)."""

import warnings

import reviewlens.models.characters
import reviewlens.models.layers  # noqa: F401 - the models' layers, which this import registered too
from reviewlens.text.keras import *  # noqa: F403
from reviewlens.text.keras import keras_layers as keras_layers

warnings.warn(
    "reviewlens.keras_text is now reviewlens.text.keras; import that instead", DeprecationWarning, stacklevel=2
)
