"""The peak memory of one command in a child process: what a memory bound is tested against.

The child reports its own ``VmHWM`` (the peak resident set of its address space, begun at ``exec``) as it
exits: ``ru_maxrss`` from ``wait4`` would also count the test process's size at the ``fork``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

MB = 1024 * 1024

_REPORTING = """
import atexit, os, runpy, sys

def report():
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    with open(os.environ["REVIEWLENS_TEST_PEAK"], "w") as out:
        out.write(peak.split()[1])

atexit.register(report)
flag, target, *rest = sys.argv[1:]
sys.argv = [target, *rest]
if flag == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
"""


def cli_peak(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``reviewlens ARGS`` in a child process; its result and its peak resident memory in bytes."""
    return python_peak("-m", "reviewlens.cli", *args, timeout=timeout)


def python_peak(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``python -m MODULE ARGS`` or ``python -c CODE ARGS``; its result and its peak resident memory in bytes."""
    with tempfile.TemporaryDirectory() as folder:
        peak = Path(folder) / "peak"
        environment = {**os.environ, "COLUMNS": "200", "REVIEWLENS_TEST_PEAK": str(peak)}
        environment.pop("REVIEWLENS_DATA", None)
        result = subprocess.run([sys.executable, "-c", _REPORTING, *args], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, env=environment, timeout=timeout)  # fmt: skip
        return result, int(peak.read_text()) * 1024  # kB
