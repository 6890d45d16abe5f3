"""Resumable training: the staging directory a run trains in, its epoch checkpoints, the killed runs left behind.

``train`` makes ``.NAME.partial`` beside the run directory ``NAME`` before it trains. ``state.json`` says what is
trained (the recipe and its settings, epochs, seed, options, the data's path and catalog digest, the reviewlens
version, when, by which process); after every finished epoch the family saves a ``Checkpoint`` through its
``Context``: the model's weights and optimizer state, the best epoch's snapshot, the history and the family's
own state (its random generator), in one ``checkpoint.npz`` written to a temporary name, synced and renamed
over the last (arrays only, so it loads with ``allow_pickle=False``). The finished run is written into ``run/``
inside it and renamed into place, then the staging directory goes: a run directory is complete or absent.

A training process holds ``lock`` (``filelock``: an OS lock, freed by the kernel when the process dies, however
it dies) while it trains, so a staging directory whose lock is free was left by a killed or failed run:
``train --resume`` continues it, ``reviewlens runs --clean`` removes it. A hidden ``.NAME.partial`` folder is
taken for one only where reviewlens made it (its ``state.json`` carries the staging mark, or it holds nothing but
the lock of a run killed as it began) and it is a folder, not a link: a user's own folder of that name, or a link
to one, is never listed, locked or removed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
from filelock import FileLock, Timeout

from reviewlens.errors import ReviewlensError
from reviewlens.files import FileError, decode_json, read_json

SUFFIX = ".partial"
STATE_FILE = "state.json"
CHECKPOINT_FILE = "checkpoint.npz"
LOCK_FILE = "lock"
#: In every ``state.json``: what marks a staging directory as made by reviewlens (and so one ``--clean`` removes).
MARK = {"staging": "reviewlens"}
_PROCESS_KEYS = {"pid", "host", "started"}  # what every state.json has named, from before the mark was written
RUN_SUBDIR = "run"  # where the finished run is written before it is renamed into place
_PROGRESS = "progress"  # the checkpoint's JSON member
T = TypeVar("T")


def staging_dir(run_dir: Path) -> Path:
    """The hidden sibling a run trains in: ``runs/bow-1`` -> ``runs/.bow-1.partial``."""
    return run_dir.parent / f".{run_dir.name}{SUFFIX}"


def run_name(staging: Path) -> str:
    """The run directory's name a staging directory is for: ``.bow-1.partial`` -> ``bow-1``."""
    return staging.name.removeprefix(".").removesuffix(SUFFIX)


@dataclass
class Checkpoint:
    """Where training stands after ``epoch`` finished epochs (and ``step`` steps of the next, for a family
    that saves within an epoch): what a resumed run continues from."""

    epoch: int
    history: dict[str, list[float]]
    best_epoch: int  # ``BestEpoch``'s state: its epoch and key
    best_key: tuple[float, float]
    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)  # named groups: "model", "optimizer", "best"
    state: dict[str, Any] = field(default_factory=dict)  # the family's own, JSON (random generators' states)
    step: int = 0

    def save(self, path: Path) -> None:
        """Write to ``path`` atomically: a temporary name, synced, renamed over the previous checkpoint."""
        progress = {name: value for name, value in dataclasses.asdict(self).items() if name != "arrays"}
        progress["groups"] = {group: len(arrays) for group, arrays in self.arrays.items()}
        members = {f"{group}:{i}": np.asarray(a) for group, arrays in self.arrays.items() for i, a in enumerate(arrays)}
        members[_PROGRESS] = np.frombuffer(json.dumps(progress).encode(), np.uint8)
        _write_atomically(path, lambda file: np.savez(file, **members))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        with np.load(path, allow_pickle=False) as saved:
            progress = decode_json(saved[_PROGRESS].tobytes(), path, "remove the staging directory")
            groups: dict[str, int] = progress.pop("groups")
            arrays = {group: [saved[f"{group}:{i}"] for i in range(n)] for group, n in groups.items()}
        return cls(**{**progress, "best_key": tuple(progress["best_key"]), "arrays": arrays})


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` a file to a temporary name beside ``path``, sync it, and rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:  # a full disk, a signal: the last whole file stays, no half one beside it
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    content = (json.dumps(state, indent=2, ensure_ascii=False) + "\n").encode()
    _write_atomically(path, lambda file: file.write(content))


def read_state(staging: Path) -> dict[str, Any] | None:
    """The staging directory's ``state.json``; ``None`` where it is missing or unreadable (killed as it began)."""
    try:
        state = read_json(staging / STATE_FILE, "")
    except FileError:
        return None
    return state if isinstance(state, dict) else None


def differences(saved: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list[str]:
    """What differs between two settings, each as "name was A, now B" (nested mappings by dotted name)."""
    found = []
    for name in sorted(set(saved) | set(wanted)):
        was, now = saved.get(name), wanted.get(name)
        if isinstance(was, Mapping) and isinstance(now, Mapping):
            found += differences(was, now, f"{prefix}{name}.")
        elif was != now:
            found.append(f"{prefix}{name} was {json.dumps(was)}, now {json.dumps(now)}")
    return found


class Staging:
    """The staging directory of one run directory: held (locked) by the process that trains in it."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = staging_dir(run_dir)
        self.resumed: Checkpoint | None = None  # what ``begin(..., resume=True)`` found
        self._lock = FileLock(self.path / LOCK_FILE, timeout=0, thread_local=False)

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def begin(self, settings: dict[str, Any], resume: bool) -> None:
        """Take the staging directory for a run of ``settings`` (JSON): a new one, or with ``resume`` the one a
        killed run of the same settings left, whose last checkpoint becomes ``resumed``."""
        settings = json.loads(json.dumps(settings, default=str))  # as state.json holds them: paths as text
        process = {**MARK, "pid": os.getpid(), "host": socket.gethostname(),
                   "started": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        if not resume:
            try:
                self.path.mkdir(parents=True)
            except FileExistsError:
                raise ReviewlensError(self._found_message()) from None
            self._hold()
            write_state(self.path / STATE_FILE, {**settings, **process})
            return
        if not self.path.is_dir():
            raise ReviewlensError(
                f"--resume: there is no killed run of {self.run_dir} to continue ({self.path} does not exist); "
                "pass the --out of the killed run (`reviewlens runs` lists them), or train without --resume"
            )
        if not is_staging(self.path):
            raise ReviewlensError(self._not_ours_message())
        self._hold()
        try:
            saved = read_state(self.path)
            if saved is not None:
                changed = differences({k: saved.get(k) for k in settings}, settings)
                if changed:
                    raise ReviewlensError(
                        f"--resume: {self.path} was trained with other settings ({'; '.join(changed)}); resume with "
                        f"the same ones, or remove it (`reviewlens runs {self.path.parent} --clean`) and train afresh"
                    )
            if self.checkpoint_path.is_file():
                try:
                    self.resumed = Checkpoint.load(self.checkpoint_path)
                except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, FileError) as error:
                    raise ReviewlensError(
                        f"--resume: {self.checkpoint_path} is unreadable ({error}); remove {self.path} "
                        f"(`reviewlens runs {self.path.parent} --clean`) and train afresh"
                    ) from None
            write_state(self.path / STATE_FILE, {**settings, **process, "resumed_from_epoch": self.epoch})
        except BaseException:
            self._lock.release()
            raise

    def _hold(self) -> None:
        try:
            self._lock.acquire()
        except Timeout:
            state = read_state(self.path) or {}
            raise ReviewlensError(
                f"{self.path} is in use: a run (pid {state.get('pid', '?')}) is training into {self.run_dir} now; "
                "wait for it, or choose another --out"
            ) from None

    def _not_ours_message(self) -> str:
        return (f"{self.path} is in the way and was not made by reviewlens (no staging state in it, or a link); "
                "move it away, or choose another --out")  # fmt: skip

    def _found_message(self) -> str:
        if not is_staging(self.path):
            return self._not_ours_message()
        state = read_state(self.path) or {}
        epoch = _last_epoch(self.path)
        if is_live(self.path):
            return (f"{self.path} is in use: a run (pid {state.get('pid', '?')}) is training into {self.run_dir} "
                    "now; wait for it, or choose another --out")  # fmt: skip
        return (
            f"a killed run of {self.run_dir} was found ({self.path}, {epoch} epoch(s) finished); pass --resume to "
            f"continue it, or remove it with `reviewlens runs {self.path.parent} --clean`"
        )

    @property
    def epoch(self) -> int:
        """Epochs finished so far (by the killed run, when resuming)."""
        return self.resumed.epoch if self.resumed is not None else 0

    def save(self, checkpoint: Checkpoint) -> None:
        checkpoint.save(self.checkpoint_path)

    def finish(self, write: Callable[[Path], T]) -> T:
        """``write`` the run into the staging directory's ``run/``, rename that into place, remove the rest."""
        inside = self.path / RUN_SUBDIR
        if inside.exists():  # a run written halfway before a kill
            shutil.rmtree(inside)
        inside.mkdir()
        written = write(inside)
        if self.run_dir.exists():  # an empty directory the user made for us
            self.run_dir.rmdir()
        os.replace(inside, self.run_dir)
        self.remove()
        return written

    def stop(self, log: Callable[[str], None]) -> None:
        """After a failure: keep the staging directory if it holds a finished epoch (and say how to resume),
        else remove it (there is nothing to continue); either way let go of it."""
        if self.path.is_dir() and self.checkpoint_path.is_file():
            self._lock.release()
            log(
                f"training stopped; {self.path} keeps its last finished epoch ({_last_epoch(self.path)}): run the "
                f"same command with --resume to continue, or `reviewlens runs {self.path.parent} --clean` to remove it"
            )
        else:
            self.remove()
            log("training stopped before its first epoch finished; nothing was kept")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.release()


def is_live(staging: Path) -> bool:
    """Whether a process holds the staging directory's lock (is training in it now)."""
    lock = FileLock(staging / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:  # cannot even open the lock file (a read-only folder): not ours to judge, say live
        return True
    lock.release()
    return False


def _last_epoch(staging: Path) -> int:
    """Finished epochs of the staging directory's checkpoint (0 without one), read from its progress only."""
    try:
        with np.load(staging / CHECKPOINT_FILE, allow_pickle=False) as saved:
            return int(decode_json(saved[_PROGRESS].tobytes(), staging / CHECKPOINT_FILE, "")["epoch"])
    except (OSError, ValueError, KeyError, TypeError, FileError):
        return 0


@dataclass(frozen=True)
class Killed:
    """A staging directory left by a killed or failed run (or still in use by a live one)."""

    path: Path
    run_dir: Path
    recipe: str | None
    epoch: int  # last finished epoch
    epochs: int | None
    pid: int | None
    started: str | None
    live: bool

    def to_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "path": str(self.path), "run_dir": str(self.run_dir)}


def is_staging(path: Path) -> bool:
    """Whether ``path`` is a staging directory reviewlens made: a folder (not a link to one) whose ``state.json``
    carries ``MARK`` (or names its process, as states did before the mark), or that holds only the empty lock a run
    killed before it wrote its state leaves. Anything else named ``.NAME.partial`` is a user's."""
    if path.is_symlink() or not path.is_dir():
        return False
    state = read_state(path)
    if state is not None:
        return all(state.get(key) == value for key, value in MARK.items()) or state.keys() >= _PROCESS_KEYS
    try:
        inside = list(path.iterdir())
        lock = path / LOCK_FILE
        return inside == [lock] and not lock.is_symlink() and lock.is_file() and lock.stat().st_size == 0
    except OSError:
        return False


def staged(directory: Path) -> Iterator[Killed]:
    """The staging directories reviewlens made in ``directory`` (``is_staging``), by name."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f".*{SUFFIX}")):
        if not is_staging(path):
            continue
        state = read_state(path) or {}
        yield Killed(
            path=path,
            run_dir=directory / run_name(path),
            recipe=state.get("recipe"),
            epoch=_last_epoch(path),
            epochs=state.get("epochs"),
            pid=state.get("pid"),
            started=state.get("started"),
            live=is_live(path),
        )


def clean(directory: Path) -> list[Killed]:
    """Remove the staging directories in ``directory`` that no live process holds; return what was removed.

    Each is removed while holding its lock, so a ``train --resume`` cannot start in it meanwhile; one that stopped
    being a staging directory meanwhile (replaced by a link) is left."""
    removed = []
    for killed in staged(directory):
        lock = FileLock(killed.path / LOCK_FILE, timeout=0)
        try:
            lock.acquire()
        except (Timeout, OSError):
            continue
        try:
            shutil.rmtree(killed.path)  # never follows a link: it refuses one at the top, unlinks those inside
        except OSError:
            continue
        finally:
            lock.release()
        removed.append(dataclasses.replace(killed, live=False))
    return removed


def keras_arrays(model: Any, optimizer: Any) -> dict[str, list[np.ndarray]]:
    """A Keras model's weights and its optimizer's variables (iterations, learning rate, slots), for a checkpoint."""
    return {"model": model.get_weights(), "optimizer": [np.asarray(v.numpy()) for v in optimizer.variables]}


def restore_keras(model: Any, optimizer: Any, arrays: Mapping[str, list[np.ndarray]]) -> None:
    """Put ``keras_arrays``' weights and optimizer variables back: training goes on with the same optimizer state."""
    model.set_weights(arrays["model"])
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    for variable, value in zip(optimizer.variables, arrays["optimizer"], strict=True):
        variable.assign(value)
