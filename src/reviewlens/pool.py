"""Large model calls shared with helper processes, so one big batch uses several cores despite the GIL: the pool that
``serve`` (``reviewlens.serving.models``) and ``score`` (``reviewlens.scoring.engines``) both use.

Each helper is spawned (nothing inherited from the server's threads; it ends with the server, however the
server ends: ``reviewlens.processes``) and loads its own copy of the run
with its NumPy predictor. A call of at least ``2 * min_chunk`` texts is cut into contiguous chunks: the helpers score
all but the first, which the calling thread scores meanwhile; smaller calls never leave the process.
A helper that dies (killed, out of memory) breaks the pool: the call it was part of is scored in this
process instead, and a fresh pool of helpers takes the next calls (``on_restart`` counts it).
Helpers do not run the parent's main module (``spawn_context``): a script that builds the app needs no guard.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from reviewlens.processes import process_pool
from reviewlens.runs import Run

_run: Run | None = None  # in each helper process


def load_helper_run(run_dir: str) -> None:
    """A helper process's initializer (the service's and ``score``'s): load the run with its NumPy predictor."""
    global _run
    _run = Run(run_dir, runtime="numpy")


def helper_predict(texts: Sequence[str]) -> np.ndarray:
    """In a helper process: the loaded run's probabilities of each label for ``texts`` (``Run.predict_proba``)."""
    assert _run is not None, "the helper process has no run loaded"
    return _run.predict_proba(texts)


class PooledPredict:
    """``run.predict_proba`` for the batcher, with large calls split over ``processes`` helpers and this one."""

    def __init__(self, run: Run, processes: int, min_chunk: int = 128, on_restart: Callable[[], None] | None = None):
        if run.runtime != "numpy":
            raise ValueError("only NumPy predictors are shared with helper processes")
        self.run = run
        self.processes = processes
        self.min_chunk = min_chunk
        self.on_restart = on_restart
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = process_pool(self.processes, initializer=load_helper_run, initargs=(str(self.run.run_dir),))
        # Start the helpers now, in the background: the server is ready without waiting for them.
        self._warming: list[Future[np.ndarray]] = [
            pool.submit(helper_predict, ["warm up"]) for _ in range(self.processes)
        ]
        return pool

    def __call__(self, texts: list[str]) -> np.ndarray:
        parts = min(self.processes + 1, len(texts) // self.min_chunk)
        if parts < 2:
            return self.run.predict_proba(texts)
        bounds = np.linspace(0, len(texts), parts + 1).astype(int)
        chunks = [texts[start:end] for start, end in itertools.pairwise(bounds)]
        try:
            helped = [self._pool.submit(helper_predict, chunk) for chunk in chunks[1:]]
            first = self.run.predict_proba(chunks[0])
            return np.concatenate([first, *(future.result() for future in helped)])
        except BrokenProcessPool:  # a helper died: replace them all, and answer this call here
            self._restart()
            return self.run.predict_proba(texts)

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()
        if self.on_restart is not None:
            self.on_restart()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
