"""The micro-batcher: concurrent requests share model calls, and every caller gets its own scores back."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from reviewlens.serving.batcher import BatcherClosedError, MicroBatcher


class Recorder:
    """A model that scores a text as float(text), slowly enough for requests to pile up, and logs its calls."""

    def __init__(self, delay: float = 0.02, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self.lock:
            self.calls.append(list(texts))
        time.sleep(self.delay)
        if self.fail_on in texts:
            raise ValueError(f"cannot score {self.fail_on}")
        return np.array([float(text) for text in texts], np.float32)


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_calls_and_get_their_own_results():
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model, max_batch=64)
        batcher.start()
        requests = [[str(i)] if i % 3 else [str(i), str(i + 0.5)] for i in range(40)]
        results = await asyncio.gather(*(batcher.predict_many(texts) for texts in requests))
        await batcher.close()
        return requests, results

    requests, results = run(main())
    for texts, scores in zip(requests, results, strict=True):
        assert scores.tolist() == [float(t) for t in texts]
    assert len(model.calls) < len(requests) / 4  # 40 requests, a handful of calls
    assert sorted(t for call in model.calls for t in call) == sorted(t for texts in requests for t in texts)


def test_max_batch_caps_a_call_and_never_splits_a_request():
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model, max_batch=5)
        batcher.start()
        requests = [["1", "2", "3"], ["4", "5", "6"], ["7"], [str(i) for i in range(8, 20)], ["20"]]
        results = await asyncio.gather(*(batcher.predict_many(texts) for texts in requests))
        await batcher.close()
        return requests, results

    requests, results = run(main())
    assert [r.tolist() for r in results] == [[float(t) for t in texts] for texts in requests]
    calls = [tuple(call) for call in model.calls]
    for texts in requests:  # each request's texts are one contiguous run inside one call
        assert any(tuple(texts) == call[i : i + len(texts)] for call in calls for i in range(len(call)))
    assert all(len(call) <= 5 for call in calls if len(call) != 12)  # only the oversized request goes alone
    assert ("8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19") in calls


def test_max_wait_lets_later_requests_join_the_call():
    model = Recorder(delay=0.0)

    async def main(max_wait: float):
        model.calls.clear()
        batcher = MicroBatcher(model, max_batch=64, max_wait=max_wait)
        batcher.start()

        async def later(text: str, delay: float):
            await asyncio.sleep(delay)
            return await batcher.predict_many([text])

        await asyncio.gather(later("1", 0), later("2", 0.02), later("3", 0.04))
        await batcher.close()
        return len(model.calls)

    assert run(main(0.2)) == 1
    assert run(main(0.0)) == 3


def test_a_failing_call_fails_its_callers_only_and_the_batcher_goes_on():
    model = Recorder(fail_on="13")

    async def main():
        batcher = MicroBatcher(model, max_batch=2)
        batcher.start()
        results = await asyncio.gather(
            batcher.predict_many(["12"]), batcher.predict_many(["13"]), return_exceptions=True
        )
        after = await batcher.predict_many(["14"])
        await batcher.close()
        return results, after

    (first, second), after = run(main())
    assert isinstance(second, ValueError) and "13" in str(second)
    assert isinstance(first, ValueError)  # it shared the call that failed
    assert after.tolist() == [14.0]


def test_a_caller_that_goes_away_does_not_disturb_the_others():
    model = Recorder(delay=0.05)

    async def main():
        batcher = MicroBatcher(model)
        batcher.start()
        blocker = asyncio.ensure_future(batcher.predict_many(["1"]))
        await asyncio.sleep(0.01)  # the first call is running; the next two queue up together
        gone = asyncio.ensure_future(batcher.predict_many(["2"]))
        stays = asyncio.ensure_future(batcher.predict_many(["3"]))
        await asyncio.sleep(0)
        gone.cancel()
        result = await stays
        await blocker
        await batcher.close()
        return result

    assert run(main()).tolist() == [3.0]


def test_close_answers_what_is_queued_then_refuses():
    model = Recorder(delay=0.05)

    async def main():
        batcher = MicroBatcher(model, max_batch=1)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.predict_many([str(i)])) for i in range(3)]
        await asyncio.sleep(0)
        await batcher.close()
        answered = [task.result().tolist() for task in pending]
        with pytest.raises(BatcherClosedError):
            await batcher.predict_many(["9"])
        return answered

    assert run(main()) == [[0.0], [1.0], [2.0]]


def test_empty_request_needs_no_model_call():
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model)
        batcher.start()
        result = await batcher.predict_many([])
        await batcher.close()
        return result

    assert run(main()).shape == (0,)
    assert model.calls == []
