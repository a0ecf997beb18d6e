"""Test-only stages whose worker process dies (SIGKILL, as the kernel's OOM killer does) on
the series named in the file ``$REFRAD_TEST_CRASH_FILE``; other series run as usual. The Ray
tests hand them to run_pipeline through ``stage_classes``; workers import them by name.
``CrashingVolume`` runs as Ray tasks, ``CrashingSegment`` in an actor pool.
``IdleDyingSegment``'s first actor dies while it waits for work (as on a node that went away).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from refrad_builder.stages.segment import SegmentStage
from refrad_builder.stages.volume import VolumeStage


def crash_target() -> str:
    path = os.environ.get("REFRAD_TEST_CRASH_FILE")
    return Path(path).read_text().strip() if path and Path(path).exists() else ""


def _maybe_die(item) -> None:
    if item.id == crash_target():
        os.kill(os.getpid(), signal.SIGKILL)


class CrashingVolume(VolumeStage):
    def process(self, item):
        _maybe_die(item)
        return super().process(item)


class CrashingSegment(SegmentStage):
    def process(self, item):
        _maybe_die(item)
        return super().process(item)


class IdleDyingSegment(SegmentStage):
    """The first of its workers to start dies (SIGKILL) a second after setup, before a series
    reaches it; every later one (a restarted actor, an isolated task) lives."""

    def setup(self):
        super().setup()
        marker = Path(os.environ["REFRAD_TEST_CRASH_FILE"]).with_name("idle-death")
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGKILL)).start()
