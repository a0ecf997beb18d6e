"""A test-only volume stage whose worker process dies (SIGKILL, as the kernel's OOM killer
does) on the series named in the file ``$REFRAD_TEST_CRASH_FILE``; other series run as usual.
The Ray tests hand it to run_pipeline through ``stage_classes``; workers import it by name."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from refrad_builder.stages.volume import VolumeStage


def crash_target() -> str:
    path = os.environ.get("REFRAD_TEST_CRASH_FILE")
    return Path(path).read_text().strip() if path and Path(path).exists() else ""


class CrashingVolume(VolumeStage):
    def process(self, item):
        if item.id == crash_target():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().process(item)
