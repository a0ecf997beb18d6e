"""One driver per work folder: an exclusive lock on ``<work>/run/lock`` plus a record of who
holds it (``<work>/run/lock.json``: pid, host, start, heartbeat).

On one host the kernel lock (``flock``) decides: it is released when its process dies, so a
killed driver never blocks the next run. Across hosts (a shared filesystem whose ``flock`` may
not reach other machines) the record decides: a lock from another host is taken over only when
its heartbeat is older than ``stale_s``. A background thread refreshes the heartbeat.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from refrad_builder.engine.io import atomic_write_json, read_json


class RunLocked(RuntimeError):
    """Another driver runs on this work folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(work): ...`` holds the work folder for one driver."""

    def __init__(self, work: Path, stale_s: float = 120.0, heartbeat_s: float | None = None):
        self.dir = Path(work) / "run"
        self.lock_path = self.dir / "lock"
        self.record_path = self.dir / "lock.json"
        self.stale_s = stale_s
        self.heartbeat_s = heartbeat_s or max(1.0, stale_s / 6)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.took_over: dict[str, Any] | None = None

    def _holder(self) -> dict[str, Any] | None:
        try:
            return read_json(self.record_path)
        except (FileNotFoundError, ValueError):
            return None

    @staticmethod
    def _describe(rec: dict[str, Any] | None) -> str:
        if not rec:
            return "another process"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.get("started", 0)))
        return f"pid {rec.get('pid')} on host {rec.get('host')} (started {started})"

    def acquire(self) -> RunLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(
                f"another refrad run holds the work folder {self.dir.parent}: "
                f"{self._describe(self._holder())}. Wait for it to finish, or stop it first."
            ) from None
        rec = self._holder()
        if rec and not self._stale(rec):
            os.close(fd)
            raise RunLocked(
                f"another refrad run holds the work folder {self.dir.parent}: "
                f"{self._describe(rec)}, heartbeat {time.time() - rec.get('heartbeat', 0):.0f}s "
                f"ago. If that driver is gone, the lock is taken over once its heartbeat is "
                f"older than {self.stale_s:.0f}s (execution.lock_stale_s)."
            )
        self.took_over = rec
        self._fd = fd
        now = time.time()
        self._record = {"pid": self.pid, "host": self.host, "started": now, "heartbeat": now}
        atomic_write_json(self.record_path, self._record)
        self._thread = threading.Thread(target=self._beat, name="refrad-lock", daemon=True)
        self._thread.start()
        return self

    def _stale(self, rec: dict[str, Any]) -> bool:
        """Whether the recorded holder is gone: on this host its pid is not alive (we hold the
        kernel lock too, so this matters only where flock is a no-op); on another host its
        heartbeat is older than ``stale_s``."""
        if rec.get("host") == self.host:
            pid = int(rec.get("pid") or 0)
            return pid <= 0 or pid == self.pid or not _pid_alive(pid)
        return time.time() - float(rec.get("heartbeat", 0)) > self.stale_s

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self._record["heartbeat"] = time.time()
            with contextlib.suppress(OSError):
                atomic_write_json(self.record_path, self._record)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fd is not None:
            rec = self._holder()
            if rec and rec.get("pid") == self.pid and rec.get("host") == self.host:
                self.record_path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
