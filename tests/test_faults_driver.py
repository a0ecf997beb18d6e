"""The driver killed (SIGKILL) at five points of one run, each rerun killed at the next: during
ingest, segment and text, half-way through writing a shard, and half-way through the final index.
Before each rerun `refrad validate` refuses the folder (nothing truncated passes as complete);
the last rerun completes with the reference's bytes and leaves no temp file under work/ or out/.

The kills are real SIGKILLs of the `refrad` process (the in-process executor: the driver
does the items itself), made by the test-only hook of ``engine/faults.py``.
"""

from __future__ import annotations

import json

import pytest
from faults_common import refrad, run_args, shard_bytes, tail, temp_files, validates

from refrad_builder.engine import faults
from refrad_builder.publish.validate import _read_tar, validate_dir

pytestmark = pytest.mark.slow

KILL_POINTS = ["item:ingest", "item:segment", "item:text", "write:*.tar@2", "write:shards.json"]


def test_driver_killed_at_five_points_resumes_to_identical_bytes(
    fault_demo, fault_reference, tmp_path
):
    work, out, log, marks = tmp_path / "work", tmp_path / "out", tmp_path / "log", tmp_path / "m"
    marks.mkdir()
    args = [*run_args(fault_demo / "config.yaml", work, out), "--executor", "local"]
    leftovers = {}
    for point in KILL_POINTS:
        fault = {faults.ENV: point, faults.DIR_ENV: str(marks)}
        proc = refrad(args, log, fault)
        assert proc.returncode == -9, f"{point}: exit {proc.returncode}\n{tail(log)}"
        assert faults.fired(point.partition("@")[0], marks)
        # never presented as complete: the index is missing, and no final-named shard is cut
        assert not validate_dir(out).ok, point  # what `refrad validate` runs
        assert not (out / "shards.json").exists()
        for tar in out.glob("*.tar"):
            assert _read_tar(tar.read_bytes()) is not None, f"{point}: {tar.name} truncated"
        leftovers[point] = len(temp_files(work, out))
    # the kills during writes left a half-written temp file each (the later run removes it)
    assert leftovers["write:*.tar@2"] >= 1 and leftovers["write:shards.json"] >= 1

    proc = refrad(args, log)
    assert proc.returncode == 0, tail(log)
    assert "temp file(s) left by an interrupted run" in log.read_text()
    assert shard_bytes(out) == shard_bytes(fault_reference)
    assert temp_files(work, out) == []
    assert validates(out, log)
    # it resumed: every item was done before the last kill (in the final index), so the last
    # run recomputed nothing and only wrote the index, card and shards.json again
    ran = {r["stage"]: r["processed"] for r in json.loads((work / "run/last_run.json").read_text())}
    assert sum(ran.values()) == 0, ran
