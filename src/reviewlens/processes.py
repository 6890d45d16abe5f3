"""The processes reviewlens starts, and the signals it answers: children that never outlive their parent,
SIGTERM handled as Ctrl-C is, and TensorFlow's start-up lines kept off a user's terminal.

Children (the bag-of-words family's vectorizer and exporter, the service's helper) are started with ``spawn``
and run ``child_started(parent_pid)`` first: they ignore Ctrl-C, which a terminal sends to the whole process
group (the parent stops them: no child tracebacks), and a daemon thread ends the child within a second of its
parent's death, however the parent died (``kill -9`` included). A watcher rather than Linux's parent-death
signal: ``PR_SET_PDEATHSIG`` fires when the *thread* that started the child ends, and a process pool starts its
workers from whichever thread submits first (in the service, a batcher thread); a watcher needs no system call
and works on every platform.

Every child starts from ``spawn_context()``: spawn, but without the parent's main module. Plain spawn runs the
parent's ``__main__`` script again in each child (so that functions defined there can be unpickled), and a
script that calls ``reviewlens.train`` at module level, with no ``if __name__ == "__main__":`` guard, would train
again inside its vectorizer's child and break the pool. No child of reviewlens runs code from ``__main__``, so
its children skip that step and a plain script, a notebook or a thread needs no guard.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import multiprocessing.context
import multiprocessing.spawn
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from types import FrameType, ModuleType
from typing import Any

#: How often a child checks that its parent is alive, in seconds.
PARENT_POLL_S = 0.5


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM (``docker stop``, systemd, a CI runner), raised in the main thread: clean-up
    runs as for any exception, ``except Exception`` does not swallow it, and the command line says which signal
    stopped what and exits with 128 + its number. (Not a KeyboardInterrupt: click turns that into a silent
    exit.)"""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
        self.signal_name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def handle_signals() -> None:
    """From now on SIGINT and SIGTERM raise ``Interrupted`` in the main thread (a server installs its own)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupted)


@contextlib.contextmanager
def starting_children() -> Iterator[None]:
    """Children started inside inherit SIGINT blocked, so that a Ctrl-C at the terminal, which reaches the whole
    process group, cannot interrupt one before ``child_started`` makes it ignore SIGINT."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # first: starting it unblocks SIGINT and SIGTERM when it is done
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def child_started(parent_pid: int, on_parent_death: Callable[[], None] | None = None) -> None:
    """Run first in every child: ignore Ctrl-C (the parent stops its children), leave SIGTERM's default, and
    end when the parent is gone, after ``on_parent_death()`` where given (stopping what the child started)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by starting_children
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if os.environ.get("REVIEWLENS_QUIET_TENSORFLOW"):
        quiet_tensorflow()
    end_with_parent(parent_pid, on_parent_death)


def end_with_parent(parent_pid: int, on_parent_death: Callable[[], None] | None = None) -> None:
    """End this process (after ``on_parent_death()``) within ``PARENT_POLL_S`` of ``parent_pid``'s end, however
    it ends: a process of another's making (a uvicorn worker) calls it where ``child_started`` is not run."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        if on_parent_death is not None:
            on_parent_death()
        os._exit(0)  # the parent is gone: nobody waits for this child's work

    threading.Thread(target=watch, name="reviewlens-parent-watch", daemon=True).start()


#: Set in the thread starting one of reviewlens's children (``_SpawnProcess``), for ``_preparation_data``.
_starting_ours = threading.local()


class _SpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that is not sent the parent's main module to run (``_preparation_data``)."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # noqa: N802  (the standard library's name)
        _starting_ours.active = True
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            _starting_ours.active = False


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnProcess


def _preparation_data(name: str, _stdlib: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``multiprocessing.spawn.get_preparation_data``, less the main module for reviewlens's own children.

    The one place a child learns which ``__main__`` to run is this dict, computed inside the standard library's
    ``Popen._launch``; wrapping the function, in effect only for the thread starting one of our children, is the
    one way to change it without copying ``_launch`` (hiding ``sys.modules["__main__"]`` meanwhile would race with
    the program's other threads)."""
    data = _stdlib(name)
    if getattr(_starting_ours, "active", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


@functools.cache
def spawn_context() -> multiprocessing.context.SpawnContext:
    """The context every child of reviewlens starts from: spawn (nothing inherited from this process's threads),
    without running the parent's ``__main__`` in the child; other children of the program are left as they are."""
    stdlib = multiprocessing.spawn.get_preparation_data
    if getattr(stdlib, "func", None) is not _preparation_data:  # two threads' first calls wrap it once
        multiprocessing.spawn.get_preparation_data = functools.partial(_preparation_data, _stdlib=stdlib)
    return _SpawnContext()


class _ChildPool(ProcessPoolExecutor):
    """Starts its workers (on submit) inside ``starting_children``."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with starting_children():
            return super().submit(fn, *args, **kwargs)


def _start_worker(parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    child_started(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def process_pool(
    workers: int = 1, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A ``spawn_context`` process pool whose workers ignore Ctrl-C and end with this process
    (``child_started``), then run ``initializer(*initargs)``."""
    return _ChildPool(
        workers,
        mp_context=spawn_context(),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )


@contextlib.contextmanager
def stopping(pool: ProcessPoolExecutor) -> Iterator[ProcessPoolExecutor]:
    """Use ``pool`` and shut it down; on an exception (Ctrl-C, SIGTERM, an error), stop its workers at once
    instead of waiting for the task they are running."""
    try:
        yield pool
    except BaseException:
        # No public way to stop a pool's running workers before Python 3.14's terminate_workers().
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null: for native libraries that write there whatever their log level."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """A module's own loader, with stderr silenced while the module runs (attributes pass through)."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with quiet_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, get_data... of the real loader
        return getattr(self._loader, name)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as Python would and imports it with stderr silenced: its C++ start-up lines (absl's
    "All log messages before absl::InitializeLog() ...", oneDNN's and the CPU-feature notes) are written before
    any log level applies. Removes itself once used."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up lines off stderr in this process and the children it spawns (the CLI calls it
    first, unless ``REVIEWLENS_VERBOSE`` is set); a library user's process is left alone."""
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ or os.environ.get("REVIEWLENS_TF_LOG_LEVEL_SET"):
        # All of TensorFlow's C++ lines: info, warnings and the "errors" that are notes to its developers, such as
        # oneDNN's "E0000 ... supports DT_BOOL only on platforms with AVX-512" on the first boolean op. A real
        # failure reaches the command as a Python exception; --verbose shows everything.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ["REVIEWLENS_TF_LOG_LEVEL_SET"] = "3"
    os.environ["REVIEWLENS_QUIET_TENSORFLOW"] = "1"  # children (spawn) call this again: see child_started
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


def loud_tensorflow() -> None:
    """Undo ``quiet_tensorflow`` before TensorFlow is imported (``--verbose``)."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _QuietTensorFlow)]
    os.environ.pop("REVIEWLENS_QUIET_TENSORFLOW", None)
    if os.environ.pop("REVIEWLENS_TF_LOG_LEVEL_SET", None):
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
