"""Where a job's shards are scored: here, batches predicted by helper processes (``LocalEngine``), or by Ray actors."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reviewlens.errors import ReviewlensError
from reviewlens.scoring.base import Engine, Events, ScoreJob, Shard, ShardResult
from reviewlens.scoring.stream import ready, score_shard

if TYPE_CHECKING:
    from reviewlens.runs import Run


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalEngine:
    """Scores shards one after another. With ``workers`` above 1 and at least ``MIN_SHARED_BYTES`` of input, a
    run with a NumPy predictor is predicted in that many helper processes (spawned at the first batch of
    ``MIN_SHARED`` texts or more, as ``serve``'s are, and ending with this one) while this process reads,
    checks and writes, a batch per helper ahead; a helper that dies leaves its batches to this process. Less
    input is scored here: starting a helper (a second or two) would cost more than it saves. A Keras run
    predicts here, where TensorFlow uses every core."""

    MIN_SHARED = 256
    MIN_SHARED_BYTES = 16 << 20  # about 12,000 IMDB reviews

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ReviewlensError(f"--workers {workers}: pass 1 or more, the processes that predict")
        self.workers = workers

    def score(self, job: ScoreJob, shards: Sequence[Shard], events: Events) -> Iterator[ShardResult]:
        from reviewlens.runs import load

        if not shards:
            return
        run = load(job.run_dir)
        size = sum(shard.path.stat().st_size for shard in shards)
        shared = self.workers > 1 and run.runtime == "numpy" and size >= self.MIN_SHARED_BYTES
        predictions = _Helpers(run, self.workers if shared else 0)
        try:
            for shard in shards:
                yield score_shard(run, job, shard, events, predictions)
        finally:
            predictions.close()


class _Helpers:
    """``Predictions`` in ``processes`` helper processes, or in this one when there are none, too few texts to
    share, or the helpers died."""

    def __init__(self, run: Run, processes: int):
        self.run, self.processes = run, processes
        self.ahead = processes
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        from reviewlens.pool import (
            helper_predict,
            load_helper_run,
        )  # the helpers serve starts: the run, NumPy predictor
        from reviewlens.processes import process_pool

        if self._pool is None and self.processes and len(texts) >= LocalEngine.MIN_SHARED:
            self._pool = process_pool(self.processes, initializer=load_helper_run, initargs=(str(self.run.run_dir),))
        if self._pool is not None:
            try:
                return self._pool.submit(helper_predict, texts)
            except BrokenProcessPool:
                self.close()
                self.processes = 0
        return ready(self.run.predict_proba(texts))

    def result(self, future: Future[np.ndarray], texts: list[str]) -> np.ndarray:
        try:
            return future.result()
        except BrokenProcessPool:  # a helper died (killed, out of memory): this process scores the batch
            return self.run.predict_proba(texts)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


#: How long ``--address`` may take to answer before the job is refused.
RAY_CONNECT_SECONDS = 10.0


class RayEngine:
    """Scores shards with a pool of ``workers`` Ray actors, each holding the run (loaded once, from a tar of
    the run directory put in Ray's object store, so the workers need no shared disk). This process reads,
    checks and writes every shard with ``score_shard``, as ``LocalEngine`` does, so the outputs, resuming
    and bad-row reports are the same; only the texts of each batch travel to an actor and its scores back.
    ``address`` joins a running cluster (``host:6379``, ``ray://host:10001`` or ``auto``); without it a
    local Ray starts here and stops at the end."""

    def __init__(self, workers: int = 1, address: str | None = None):
        if workers < 1:
            raise ReviewlensError(f"--workers {workers}: pass 1 or more, the Ray actors that predict")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ReviewlensError(
                "--engine ray needs Ray; pip install 'reviewlens[ray]' (here and on every worker)"
            ) from None
        if address is not None:
            _check_answers(address)
        self.workers, self.address = workers, address

    def score(self, job: ScoreJob, shards: Sequence[Shard], events: Events) -> Iterator[ShardResult]:
        import ray

        from reviewlens.runs import load

        if not shards:
            return
        run = load(job.run_dir)
        with contextlib.ExitStack() as stack:
            if not ray.is_initialized():
                where = f"--address {self.address}" if self.address is not None else "a local Ray"
                try:  # without --address: the head a keeper process starts, which ends with this one
                    address = self.address if self.address is not None else stack.enter_context(_local_ray())
                    ray.init(address=address, logging_level=logging.ERROR)
                except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError...
                    what = str(error).splitlines()[0] if str(error) else type(error).__name__
                    raise ReviewlensError(f"{where}: Ray did not start or join ({what})") from None
                stack.callback(ray.shutdown)  # this driver leaves before the keeper stops the head
            cpus = ray.cluster_resources().get("CPU", 0)
            if cpus < self.workers:
                raise ReviewlensError(
                    f"--workers {self.workers}: the Ray cluster has {cpus:g} CPUs; pass --workers {int(cpus) or 1}"
                    " or fewer, or add nodes"
                )
            predictions = _RayActors(run, self.workers)
            stack.callback(predictions.close)
            for shard in shards:
                yield score_shard(run, job, shard, events, predictions)


#: How long a local Ray's keeper may take to start the head, and to stop it.
RAY_START_SECONDS = 120.0


@contextlib.contextmanager
def _local_ray() -> Iterator[str]:
    """A local Ray head for one job: its address while the job runs.

    ``ray.init`` started in this process leaves Ray's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``,
    children of the raylet that Ray's parent-death signal does not reach) running for good when this process is
    killed. So a keeper process (``_keep_ray_head``) starts the head in a process group of its own, and ends the
    whole group when told to or when this process is gone, however it ended: Ray's processes cannot outlive it.
    """
    from reviewlens.processes import spawn_context, starting_children

    context = spawn_context()
    ours, theirs = context.Pipe()
    with starting_children():
        keeper = context.Process(target=_keep_ray_head, args=(os.getpid(), theirs), name="reviewlens-ray-head")
        keeper.start()
    theirs.close()
    try:
        if not ours.poll(RAY_START_SECONDS):
            raise TimeoutError(f"no head within {RAY_START_SECONDS:g} s")
        started, value, auth_mode = ours.recv()  # EOFError: the keeper died
        if not started:
            raise RuntimeError(value)
        if auth_mode is not None and os.environ.get("RAY_AUTH_MODE") != auth_mode:
            # A new local Ray turns token authentication on (Ray 2.52+); a driver given its address does not, so
            # this one is told as Ray tells itself (ray._private.authentication: the variable, then the config).
            from ray._raylet import Config  # type: ignore[attr-defined,unused-ignore]  # ray is optional

            os.environ["RAY_AUTH_MODE"] = auth_mode
            Config.initialize("")
        yield value
    finally:
        ours.close()  # the keeper's pipe closes: it stops the head
        keeper.join(RAY_START_SECONDS)
        if keeper.is_alive():
            keeper.kill()


def _keep_ray_head(parent_pid: int, connection: Any) -> None:
    """A local Ray's keeper: start the head in this process group, send its address and authentication mode, and
    end the group (every process of Ray's but its workers, which end with their raylet) when the pipe closes or
    the parent is gone."""
    import signal

    os.setpgid(0, 0)  # before Ray starts: its processes join this group; the session stays the parent's

    def end_group() -> None:
        os.killpg(0, signal.SIGKILL)  # this process with them

    from reviewlens.processes import child_started

    child_started(parent_pid, on_parent_death=end_group)
    import ray

    try:
        ray.init(include_dashboard=False, logging_level=logging.ERROR)
    except Exception as error:
        connection.send((False, str(error).splitlines()[0] if str(error) else type(error).__name__, None))
        end_group()
    connection.send((True, ray.get_runtime_context().gcs_address, os.environ.get("RAY_AUTH_MODE")))
    with contextlib.suppress(EOFError, OSError):
        connection.recv()  # nothing is sent: this returns when the parent closes its end or dies
    if os.getppid() == parent_pid:  # a finished job: Ray stops in order first
        ray.shutdown()
    end_group()


def _check_answers(address: str) -> None:
    """Refuse an address where nothing listens, in seconds (``ray.init`` would retry for minutes)."""
    import socket

    where = address.removeprefix("ray://")
    if address == "auto" or ":" not in where:
        return
    host, _, port = where.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_SECONDS):
            pass
    except ValueError:
        raise ReviewlensError(
            f"--address {address}: pass HOST:PORT of the Ray head (ray://HOST:PORT for Ray client)"
        ) from None
    except OSError as error:
        raise ReviewlensError(
            f"--address {address}: no Ray cluster answers there ({error.strerror or error}); "
            "start one (ray start --head) or pass its head's address"
        ) from None


def _run_archive(run_dir: Path) -> bytes:
    """The run directory as an uncompressed tar, in memory."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(run_dir, arcname=run_dir.name or "run")
    return buffer.getvalue()


class _RunActor:
    """A Ray actor's state: the run, unpacked from the archive into a temporary folder and loaded once."""

    def __init__(self, archive: bytes):
        import io
        import tarfile
        import tempfile

        from reviewlens.runs import load

        self._folder = tempfile.TemporaryDirectory(prefix="reviewlens-run-")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(self._folder.name, filter="data")
            (name,) = {Path(member.name).parts[0] for member in tar.getmembers()}
        self.run = load(Path(self._folder.name) / name)

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.run.predict_proba(texts)


class _RayActors:
    """``Predictions`` on Ray actors, batches dealt round-robin, two per actor ahead; an actor that dies leaves
    its batches to this process."""

    def __init__(self, run: Run, workers: int):
        import ray

        self.run = run
        self.ahead = 2 * workers
        archive = ray.put(_run_archive(run.run_dir))
        actor = ray.remote(num_cpus=1)(_RunActor)
        self._actors: list[Any] = [actor.remote(archive) for _ in range(workers)]
        self._next = 0

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        if not self._actors:
            return ready(self.run.predict_proba(texts))
        self._next = (self._next + 1) % len(self._actors)
        future: Future[np.ndarray] = self._actors[self._next].predict.remote(texts).future()
        return future

    def result(self, future: Future[np.ndarray], texts: list[str]) -> np.ndarray:
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return future.result()
        except RayTaskError as error:  # the run failed on these texts: as it would here
            raise error.as_instanceof_cause() from None
        except RayActorError:  # killed, out of memory, its node gone
            return self.run.predict_proba(texts)

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []


ENGINES: dict[str, Callable[[int], Engine]] = {"local": LocalEngine, "ray": RayEngine}
