"""One driver per work folder (two processes), stale locks taken over, and paths resolved on
the driver: absolute everywhere, relative ones refused on a multi-node run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refrad_builder.engine.config import RelativePathOnCluster, load_config, resolve_paths
from refrad_builder.engine.lock import RunLock, RunLocked

HOLDER = """
import sys, time
from refrad_builder.engine.lock import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(work: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(work)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_driver_is_refused_and_a_dead_ones_lock_taken_over(tmp_path):
    work = tmp_path / "work"
    proc = _hold(work)
    try:
        with pytest.raises(RunLocked, match=f"pid {proc.pid}"):
            RunLock(work).acquire()
        # the CLI says so too, and exits 2 before doing anything
        res = subprocess.run(
            [sys.executable, "-m", "refrad_builder.cli", "run", "--work", str(work)]
            + ["--demo", "--executor", "local", "--no-validate"],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 2 and "another refrad run holds the work folder" in res.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the holder died without releasing: its record is left, its kernel lock is gone
    assert json.loads((work / "run" / "lock.json").read_text())["pid"] == proc.pid
    lock = RunLock(work).acquire()
    try:
        assert lock.took_over["pid"] == proc.pid
    finally:
        lock.release()
    assert not (work / "run" / "lock.json").exists()


def test_lock_from_another_host_waits_for_its_heartbeat(tmp_path):
    work = tmp_path / "work"
    (work / "run").mkdir(parents=True)
    record = work / "run" / "lock.json"
    now = time.time()
    record.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": now, "heartbeat": now}))
    with pytest.raises(RunLocked, match="host elsewhere"):
        RunLock(work, stale_s=60).acquire()
    record.write_text(
        json.dumps({"pid": 1, "host": "elsewhere", "started": now, "heartbeat": now - 61})
    )
    lock = RunLock(work, stale_s=60).acquire()
    lock.release()


def test_heartbeat_is_refreshed(tmp_path):
    lock = RunLock(tmp_path, heartbeat_s=0.1).acquire()
    try:
        first = json.loads((tmp_path / "run" / "lock.json").read_text())["heartbeat"]
        time.sleep(0.5)
        assert json.loads((tmp_path / "run" / "lock.json").read_text())["heartbeat"] > first
    finally:
        lock.release()


def test_paths_resolved_on_the_driver(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(
        None,
        [
            "work_dir=out/work",
            "out_dir=out/shards",
            "inputs.dicom=[in/dicom, /abs/dicom]",
        ],
    )
    resolved = resolve_paths(cfg)
    assert resolved.work_dir == tmp_path / "out" / "work"
    assert resolved.out_dir == tmp_path / "out" / "shards"
    assert resolved.inputs.dicom == [tmp_path / "in" / "dicom", Path("/abs/dicom")]
    with pytest.raises(RelativePathOnCluster, match="work_dir=out/work is a relative path"):
        resolve_paths(cfg, multi_node=True)
    absolute = load_config(None, [f"work_dir={tmp_path}/w", f"out_dir={tmp_path}/o"])
    assert resolve_paths(absolute, multi_node=True).work_dir == tmp_path / "w"


def test_relative_work_refused_against_a_cluster(tmp_path):
    env = dict(os.environ, RAY_ADDRESS="127.0.0.1:1")  # refused before connecting
    res = subprocess.run(
        [sys.executable, "-m", "refrad_builder.cli", "run", "--demo", "--no-validate"]
        + ["--work", "out/work", "--out", "out/shards"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "relative path" in res.stderr and "several Ray nodes" in res.stderr
    assert not (tmp_path / "out").exists()
