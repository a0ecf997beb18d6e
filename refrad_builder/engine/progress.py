"""Live progress per stage: items done/total, rate and ETA.

On a terminal one line is rewritten in place (at most a few times a second); elsewhere (a log
file, CI) a plain line is printed every ``interval_s`` seconds and when the stage ends.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):  # NaN or unknown
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Ticker:
    """``tick = ticker.start(stage, total)``; ``tick(n)`` per finished items; ``finish()``."""

    def __init__(
        self, stream: TextIO | None = None, interval_s: float = 10.0, tty: bool | None = None
    ):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval_s = interval_s if not self.tty else 0.25
        self.stage = ""
        self.total = 0
        self.done = 0
        self.t0 = 0.0
        self._last = 0.0

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.stage:8s} {self.done:6d}/{self.total:<6d} {pct:5.1f}%  "
            f"{rate:7.2f} items/s  ETA {_eta(eta)}"
        )

    def start(self, stage: str, total: int):
        self.stage, self.total, self.done = stage, total, 0
        self.t0 = self._last = time.perf_counter()
        if not self.tty:
            self._emit()
        return self.tick

    def tick(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        now = time.perf_counter()
        if now - self._last >= self.interval_s:
            self._last = now
            self._emit()

    def _emit(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        self._emit()
        if self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
