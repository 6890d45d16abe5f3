"""Cross-request batching: texts from requests that arrive together go to the model in one call.

One asyncio task per model takes the first waiting request, then every request that arrives until the
call holds ``max_batch`` texts or ``max_wait`` seconds have passed (with 0, whatever queued while the
previous call ran), and runs the model in its own thread so the event loop keeps accepting requests.
A request's texts are never split across calls; each caller gets its own slice of the scores back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

Predict = Callable[[list[str]], np.ndarray]


@dataclass
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[np.ndarray] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BatcherClosedError(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


class MicroBatcher:
    def __init__(
        self,
        predict: Predict,
        max_batch: int = 256,
        max_wait: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
        name: str = "model",
    ):
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be at least 1 and max_wait at least 0")
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predict-{name}")
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def predict_many(self, texts: Sequence[str]) -> np.ndarray:
        """Scores for ``texts``, computed in a model call shared with whichever requests arrive alongside."""
        if self._closing:
            raise BatcherClosedError("the server is shutting down")
        if not texts:
            return np.zeros(0, np.float32)
        job = _Job(texts)
        self._queue.put_nowait(job)
        return await job.future

    async def close(self) -> None:
        """Answer every queued request, then stop."""
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
        self._executor.shutdown(wait=True)

    async def _gather(self, first: _Job) -> tuple[list[_Job], _Job | None, bool]:
        """The jobs for one call, the job that did not fit (it starts the next), and whether to stop after."""
        loop = asyncio.get_running_loop()
        jobs, size = [first], len(first.texts)
        deadline = loop.time() + self.max_wait
        while size < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if job is None:
                return jobs, None, True
            if size + len(job.texts) > self.max_batch:
                return jobs, job, False
            jobs.append(job)
            size += len(job.texts)
        return jobs, None, False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Job | None = None
        stop = False
        while not stop:
            first = carry if carry is not None else await self._queue.get()
            if first is None:
                break
            jobs, carry, stop = await self._gather(first)
            texts = [text for job in jobs for text in job.texts]
            if self.on_batch is not None:
                self.on_batch(len(texts))
            try:
                scores = await loop.run_in_executor(self._executor, self.predict, texts)
            except Exception as error:  # the model failed: every caller in the call hears why
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            start = 0
            for job in jobs:
                if not job.future.done():  # a caller that went away has a cancelled future
                    job.future.set_result(scores[start : start + len(job.texts)])
                start += len(job.texts)
