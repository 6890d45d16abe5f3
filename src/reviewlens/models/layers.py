"""Custom Keras layers of reviewlens' recipes, registered so saved models load in safe mode.

``reviewlens.runs.load_keras_model`` imports this module (and ``reviewlens.keras_text``) before
loading any ``model.keras``; every custom layer a recipe uses is defined here.
"""

from __future__ import annotations
