"""Predictors: how a trained run turns texts into probabilities, one protocol for every kind of model.

A run's ``metadata.json`` names the predictor kinds it can be loaded with (``"predictors"``, the default
first); ``PREDICTORS`` maps each kind, a versioned name such as ``"dense.v1"``, to its class. Every consumer
(``reviewlens.load``, the CLI, the model library, the service and its helper processes) goes through
``Predictor`` alone (``reviewlens.predictors.base``). Importing this package registers the built-in kinds; a kind
whose model needs TensorFlow imports it only when a run is loaded with it.
"""

from reviewlens.predictors import dense, ensemble, keras_model
from reviewlens.predictors.base import PREDICTORS, Predictor, PredictorRuntime, binary_columns, register_predictor

__all__ = ["PREDICTORS", "Predictor", "PredictorRuntime", "binary_columns", "register_predictor"]
BUILT_IN = (dense, ensemble, keras_model)  # registered by their import
