"""Test-only stages whose worker process dies (SIGKILL, as the kernel's OOM killer does) on
the series named in the file ``$REFRAD_TEST_CRASH_FILE``; other series run as usual. The Ray
tests hand them to run_pipeline through ``stage_classes``; workers import them by name.
``CrashingVolume`` runs as Ray tasks, ``CrashingSegment`` in an actor pool."""

from __future__ import annotations

import os
import signal
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
