"""``keras.v1``: the run's end-to-end ``model.keras`` (raw strings in), run by Keras on TensorFlow.

Every recipe saves one. Texts go through the whole saved model; token ids (the model library's chain)
go through its layers after the text-vectorization ones. TensorFlow is imported only when a run is
loaded with this kind.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from scipy import sparse

from reviewlens.errors import ReviewlensError
from reviewlens.predictors.base import Predictor, binary_columns, register_predictor
from reviewlens.text import valid_text
from reviewlens.text.preprocessor import Preprocessor
from reviewlens.text.sequences import SequenceVectorizer

if TYPE_CHECKING:
    from reviewlens.runs import RunMetadata

MODEL_FILE = "model.keras"
PREDICT_BATCH = 256
#: The layers of a saved model that turn strings into the core model's input: a sequence run's, then others'.
_SEQUENCE_LAYERS = ("TextVectorization", "FitLength")
_PREPROCESSING_LAYERS = (*_SEQUENCE_LAYERS, "RowMean", "CharacterIds")


def load_keras_model(path: Path) -> Any:
    """A reviewlens ``model.keras`` (imports TensorFlow), loaded in safe mode."""
    import keras

    import reviewlens.models.characters
    import reviewlens.models.layers
    import reviewlens.text.keras  # noqa: F401 - registers the recipes' custom layers

    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError, KeyError, TypeError) as error:
        raise ReviewlensError(f"{path} cannot be loaded ({error}); train the model again") from None


def save_text_model(path: Path, core: Any, preprocessor: Preprocessor) -> None:
    """Save ``core`` behind the preprocessor's Keras layers as one model.keras: raw strings in, its output out."""
    import keras

    from reviewlens.text.keras import keras_layers

    text = keras.Input(shape=(1,), dtype="string", name="text")
    x = text
    for layer in keras_layers(preprocessor):
        x = layer(x)
    keras.Model(text, core(x), name=f"{core.name}_text").save(path)


@register_predictor
class KerasPredictor(Predictor):
    kind = "keras.v1"
    runtime = "keras"
    files = (MODEL_FILE,)

    def __init__(self, model: Any, preprocessor: Preprocessor, labels: Sequence[str] = ("negative", "positive")):
        super().__init__(preprocessor, labels)
        self.model = model
        self._core: Any = None
        self._lock = threading.Lock()  # Keras builds its predict function on first use: one call at a time

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        import tensorflow as tf

        batch = tf.reshape(tf.constant([valid_text(text) for text in texts], dtype=tf.string), (-1, 1))
        with self._lock:
            outputs = self.model.predict(batch, batch_size=1024, verbose=0)
        return self.calibrated(self._columns(outputs))

    def predict_vectors(self, x: Any) -> np.ndarray:
        if sparse.issparse(x):
            x = x.toarray()
        with self._lock:
            outputs = self.core.predict(x, batch_size=PREDICT_BATCH, verbose=0)
        return self._columns(outputs)

    @property
    def core(self) -> Any:
        """The saved model without its text-vectorization layers: preprocessed input in, probabilities out."""
        if self._core is None:
            import keras

            layers = [layer for layer in self.model.layers if not isinstance(layer, keras.layers.InputLayer)]
            rest = [layer for layer in layers if type(layer).__name__ not in _PREPROCESSING_LAYERS]
            self._core = keras.Sequential(rest, name=f"{self.model.name}_core")
        return self._core

    def _columns(self, outputs: Any) -> np.ndarray:
        outputs = np.asarray(outputs, np.float32)
        return binary_columns(outputs[:, 0]) if outputs.shape[1] == 1 else outputs

    def save(self, directory: Path) -> None:
        self.model.save(directory / MODEL_FILE)

    @classmethod
    def load(cls, directory: Path, metadata: RunMetadata, preprocessor: Preprocessor | None) -> Self:
        model = load_keras_model(directory / MODEL_FILE)
        return cls(model, preprocessor or _sequences_of(model, metadata), metadata.labels)


def _sequences_of(model: Any, metadata: RunMetadata) -> SequenceVectorizer:
    """A sequence run's preprocessing read back from its saved layers (runs before format 2 kept it there only)."""
    by_type = {type(layer).__name__: layer for layer in model.layers}
    if set(_SEQUENCE_LAYERS) - set(by_type):
        raise ReviewlensError(f"run {metadata.name!r} has no vectorizer.json; train the model again")
    fit = by_type["FitLength"]
    words = [str(word) for word in by_type["TextVectorization"].get_vocabulary()[2:]]  # after padding and OOV
    max_tokens = int(metadata.recipe_config.get("vectorizer", {}).get("max_tokens") or len(words) + 2)
    return SequenceVectorizer(max_tokens, fit.length, fit.truncate, fit.padding, words)
