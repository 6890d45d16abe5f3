"""Saving the end-to-end Keras model (raw strings in, probability out) for a trained bag-of-words run.

Importing TensorFlow takes seconds of one core; the bag-of-words family trains without it. So
``Exporter`` starts a child process that imports TensorFlow on the other core while the parent
reads, vectorizes and trains, and then builds and saves the ``.keras`` file from the weights.
``shared_exporter()`` keeps that process for the trainings that follow in the same process (``tune``'s
trials, ``compare``'s recipes, a notebook's next run): TensorFlow is imported once, and the child ends
``IDLE_S`` seconds after its last save.
"""

from __future__ import annotations

import contextlib
import os
import threading
import traceback
from collections.abc import Iterator
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
    from reviewlens.text.keras import keras_layers

    core = bow.build(len(vectorizer.vocabulary), **model_config)
    dense = [layer for layer in core.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) != len(kernels):
        raise ValueError(f"{len(kernels)} trained layers for a model with {len(dense)} Dense layers")
    for layer, kernel, bias in zip(dense, kernels, biases, strict=True):
        layer.set_weights([kernel, bias])
    text = keras.Input(shape=(1,), dtype="string", name="text")
    x = text
    for layer in [*keras_layers(vectorizer), *core.layers[1:]]:
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
        self._lock = threading.Lock()  # one request and its answer at a time on the pipe
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
        with self._lock:
            try:
                self._connection.send((path, vectorizer.get_config(), model_config, kernels, biases))
                status, detail = self._connection.recv()
            except (EOFError, BrokenPipeError):
                raise RuntimeError(f"the export process died (exit code {self._process.exitcode})") from None
        if status != "ok":
            raise RuntimeError(f"saving {path} failed in the export process:\n{detail}")

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

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


#: Seconds a shared exporter waits for another save before its process ends.
IDLE_S = 60.0

_shared: Exporter | None = None
_idle: threading.Timer | None = None
_shared_lock = threading.Lock()


@contextlib.contextmanager
def shared_exporter() -> Iterator[Exporter]:
    """This process's exporter for one training: started on first use (its TensorFlow import overlapping the
    training), kept for the next one, ended ``IDLE_S`` after its last use. A training that fails or is stopped
    ends it at once, as its own exporter did; the next training starts another."""
    global _shared, _idle
    with _shared_lock:
        if _idle is not None:
            _idle.cancel()
            _idle = None
        if _shared is None or not _shared.alive:
            _shared = Exporter()
        exporter = _shared
    try:
        yield exporter
    except BaseException:
        with _shared_lock:
            if _shared is exporter:
                _shared = None
        exporter.close(at_once=True)
        raise
    with _shared_lock:
        if _shared is exporter:
            _idle = threading.Timer(IDLE_S, _end_idle, args=(exporter,))
            _idle.daemon = True
            _idle.start()


def _end_idle(exporter: Exporter) -> None:
    global _shared
    with _shared_lock:
        if _shared is not exporter:
            return
        _shared = None
    exporter.close()
