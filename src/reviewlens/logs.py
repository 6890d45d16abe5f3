"""``Log``: where the library's progress lines go (the CLI passes its printer; a library user, anything that takes a
line), and ``silent``, the log that says nothing, every function's default."""

from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]


def silent(message: str) -> None:
    """Say nothing (the default ``log`` of training, tuning and pretraining)."""
