"""Saving the end-to-end Keras model (raw strings in, probability out) for a trained bag-of-words run.

Importing TensorFlow takes seconds of one core; the bag-of-words family trains without it. So
``Exporter`` starts a child process that imports TensorFlow on the other core while the parent
reads, vectorizes and trains, and then builds and saves the ``.keras`` file from the weights.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from reviewlens.processes import child_started, quiet_stderr, spawn_context, starting_children
from reviewlens.text import BagOfWords


def keras_model(
    vectorizer: BagOfWords, model_config: dict[str, Any], kernels: list[np.ndarray], biases: list[np.ndarray]
) -> Any:
    """The book's exported model: TextVectorization (our vocabulary) then the trained Dense layers."""
    import keras

    from reviewlens.models import bow

    core = bow.build(len(vectorizer.vocabulary), **model_config)
    dense = [layer for layer in core.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) != len(kernels):
        raise ValueError(f"{len(kernels)} trained layers for a model with {len(dense)} Dense layers")
    for layer, kernel, bias in zip(dense, kernels, biases, strict=True):
        layer.set_weights([kernel, bias])
    text = keras.Input(shape=(1,), dtype="string", name="text")
    x = text
    for layer in [*vectorizer.keras_layers(), *core.layers[1:]]:
        x = layer(x)
    return keras.Model(text, x, name=core.name)


def _serve(connection: Any, parent_pid: int) -> None:
    """The child: import TensorFlow now, then save each model it is sent until told to stop."""
    child_started(parent_pid)
    try:  # TensorFlow logs its start-up to stderr whatever the log level; failures travel the pipe
        with quiet_stderr():
            import keras  # noqa: F401 - the slow part, done while the parent works
    except Exception:
        connection.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            request = connection.recv()
        except EOFError:  # the parent is gone
            return
        if request is None:
            return
        path, vectorizer_config, model_config, kernels, biases = request
        try:
            vectorizer = BagOfWords.from_config(vectorizer_config)
            keras_model(vectorizer, model_config, kernels, biases).save(path)
            connection.send(("ok", str(path)))
        except Exception:
            connection.send(("error", traceback.format_exc()))


class Exporter:
    """A child process, started early, that saves ``.keras`` models: ``with Exporter() as e: e.save(...)``."""

    def __init__(self) -> None:
        context = spawn_context()
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, os.getpid()), name="reviewlens-export", daemon=True)
        with starting_children():
            self._process.start()
        child.close()

    def save(
        self,
        path: Path,
        vectorizer: BagOfWords,
        model_config: dict[str, Any],
        kernels: list[np.ndarray],
        biases: list[np.ndarray],
    ) -> None:
        """Build and save the end-to-end model at ``path``; raises with the child's traceback if it fails."""
        self._connection.send((path, vectorizer.get_config(), model_config, kernels, biases))
        try:
            status, detail = self._connection.recv()
        except EOFError:
            raise RuntimeError(f"the export process died (exit code {self._process.exitcode})") from None
        if status != "ok":
            raise RuntimeError(f"saving {path} failed in the export process:\n{detail}")

    def close(self, at_once: bool = False) -> None:
        """Stop the child: it finishes what it was sent, or stops now (``at_once``: an error or a signal)."""
        if at_once:
            self._process.terminate()
        if self._process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._connection.send(None)
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
        self._connection.close()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close(at_once=kind is not None)
