"""Test-only fault injection: a process kills itself (SIGKILL) once at a named point.

Unset in normal use, and then free: every hook returns after one environment lookup. The fault
tests set ``REFRAD_TEST_FAULT`` to ``;``-separated points and ``REFRAD_TEST_FAULT_DIR`` to a
folder for one marker file per point. The first process to reach a point creates its marker
(``O_EXCL``: exactly one process wins, also across Ray workers and nodes sharing the folder)
and dies with SIGKILL, as the kernel's OOM killer or a pre-empted node ends it; every later
arrival finds the marker and goes on, so the retry or rerun succeeds.

Points: ``item:<stage>`` (a worker, or the driver with the local executor, about to process
an item of that stage) and ``write:<file name glob>`` (an atomic write of a matching file, after
half of its bytes are in the temp file). A point may end in ``@N``: fire at its N-th arrival
in one process (default 1).
"""

from __future__ import annotations

import collections
import fnmatch
import os
import signal
from pathlib import Path

ENV = "REFRAD_TEST_FAULT"
DIR_ENV = "REFRAD_TEST_FAULT_DIR"

_arrivals: collections.Counter[str] = collections.Counter()


def _specs() -> list[tuple[str, int]]:
    out = []
    for raw in os.environ.get(ENV, "").split(";"):
        raw = raw.strip()
        if raw:
            point, _, nth = raw.partition("@")
            out.append((point, int(nth) if nth else 1))
    return out


def _marker(point: str, folder: Path | None = None) -> Path:
    safe = "".join(c if c.isalnum() else "_" for c in point)
    return Path(folder if folder is not None else os.environ.get(DIR_ENV, ".")) / f"fired-{safe}"


def should_fire(point: str) -> bool:
    """Whether this process is the one that dies at ``point`` (claims its marker if so)."""
    if not os.environ.get(ENV):
        return False
    for spec, nth in _specs():
        if not fnmatch.fnmatchcase(point, spec):
            continue
        _arrivals[spec] += 1
        if _arrivals[spec] != nth:
            continue
        try:
            os.close(os.open(_marker(spec), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        return True
    return False


def die() -> None:
    """End this process at once, as SIGKILL does: no cleanup, no ``finally``."""
    os.kill(os.getpid(), signal.SIGKILL)


def maybe_die(point: str) -> None:
    """SIGKILL this process if a test armed ``point`` and no process has died there yet."""
    if should_fire(point):
        die()


def fired(point: str, folder: Path) -> bool:
    """Whether some process died at ``point`` (for the tests' assertions)."""
    return _marker(point, folder).exists()
