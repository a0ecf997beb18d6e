"""A Ray worker process killed with SIGKILL while it processes an item of deid, volume,
segment and text (one kill in each, in one run on a local Ray): the run completes, nothing
is left failed, and the shards folder is byte-identical to the undisturbed reference.

The kills are real: the test-only hook of ``engine/faults.py`` makes the worker that first
reaches an item of the stage kill its own process; its marker file keeps the retry alive.
"""

from __future__ import annotations

import pytest
from faults_common import refrad, run_args, shard_bytes, tail

from refrad_builder.engine import faults

pytestmark = pytest.mark.slow

STAGES = ("deid", "volume", "segment", "text")


def test_worker_sigkill_in_each_stage_gives_identical_shards(fault_demo, fault_reference, tmp_path):
    work, out, log, marks = tmp_path / "work", tmp_path / "out", tmp_path / "log", tmp_path / "m"
    marks.mkdir()
    fault = {faults.ENV: ";".join(f"item:{s}" for s in STAGES), faults.DIR_ENV: str(marks)}
    args = run_args(fault_demo / "config.yaml", work, out, "execution.num_cpus=2")
    proc = refrad([*args, "--executor", "ray"], log, fault)
    assert proc.returncode == 0, tail(log)
    text = log.read_text()
    # streamed, one death stops the stream (which cannot tell in which stage the worker was)
    streamed = "streaming stopped (worker_died)" in text
    for stage in STAGES:
        assert faults.fired(f"item:{stage}", marks), stage
        assert streamed or f"{stage}: a worker failed (worker_died)" in text, (stage, tail(log))
    assert shard_bytes(out) == shard_bytes(fault_reference)
    status = refrad(["status", *args[1:]], log)
    assert status.returncode == 0, tail(log)  # nothing failed, nothing pending
