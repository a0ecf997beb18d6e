"""Disk full while writing: the work and output folders on a small tmpfs (mounted for the test;
where the machine refuses mounts, the nearest real equivalent: a kernel-enforced file size
limit, RLIMIT_FSIZE, on the run's process, so its large writes fail with EFBIG).

The full run ends with a clear one-line error or a count of failed items (no traceback, no
PHI), `refrad validate` refuses the folder, and after the disk grows the rerun completes with
the reference's bytes and no temp file left.
"""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import subprocess
from pathlib import Path

import pytest
from faults_common import refrad, run_args, shard_bytes, tail, temp_files, validates

pytestmark = pytest.mark.slow

SMALL = 2 * 2**20  # the demo run needs more: it fails part-way


def _mount(point: Path, size: int) -> bool:
    point.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@contextlib.contextmanager
def small_disk(point: Path):
    """Yields a preexec_fn for the run (None on a tmpfs) and a function that makes room."""
    if _mount(point, SMALL):
        try:
            yield (
                None,
                lambda: subprocess.run(
                    ["mount", "-o", "remount,size=512m", str(point)], check=True
                ),
            )
        finally:
            subprocess.run(["umount", "-l", str(point)], check=False)
        return

    def limit() -> None:  # runs in the child before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    yield limit, lambda: None


def test_disk_full_is_a_clear_error_and_the_rerun_completes(fault_demo, fault_reference, tmp_path):
    disk, log = tmp_path / "disk", tmp_path / "log"
    work, out = disk / "work", disk / "out"
    args = [*run_args(fault_demo / "config.yaml", work, out), "--executor", "local"]
    with small_disk(disk) as (preexec, make_room):
        proc = refrad(args, log, preexec_fn=preexec)
        text = log.read_text(errors="replace")
        assert proc.returncode != 0, tail(log)
        assert "Traceback" not in text, tail(log)
        assert "refrad: error:" in text or "failed" in text, tail(log)
        planted = json.loads((fault_demo / "planted_phi.json").read_text())
        assert not [p for p in planted if len(p) > 3 and p in text]
        assert not validates(out, log)  # nothing presented as complete

        make_room()
        proc = refrad(args, log)
        assert proc.returncode == 0, tail(log)
        assert shard_bytes(out) == shard_bytes(fault_reference)
        assert temp_files(work, out) == []
