"""Faults of a multi-node cluster, on the loopback cluster of ``ray_cluster.py`` (a head and
two worker nodes, token authentication).

- A worker node stopped mid-run: the run completes on the remaining nodes (or fails cleanly
  and the rerun completes); the shards equal the undisturbed reference.
- TotalSegmentator's weights missing on one node: that node runs in a mount namespace of its
  own in which an empty tmpfs hides the weights folder (as a node with its own disk lacks
  them); the segment actors are placed on it by the custom resource it advertises. Its items
  fail as transient (`WeightsMissing`), `refrad status` exits 1 with the hint, and once the
  weights appear on that node (the tmpfs unmounted inside its namespace, the node running on)
  the next run segments them with the real TotalSegmentator code and a tiny random network.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from faults_common import REFRAD, SECRET, env, run_args, shard_bytes, tail
from ray_cluster import LoopbackCluster
from totalseg_tiny import build_tiny_weights

pytestmark = pytest.mark.slow

ACCEL = "refrad_test_accel"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ts_weights")
    build_tiny_weights(folder, "total", fast=True)
    build_tiny_weights(folder, "total_mr", fast=True)
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, weights):
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m): a node cannot lack a shared folder")
    hide = f'mount -t tmpfs tmpfs {weights} && exec "$0" "$@"'
    workers = {
        "spare": {},
        "no-weights": {"resources": {ACCEL: 1}, "wrap": ["unshare", "-m", "sh", "-c", hide]},
    }
    mp = pytest.MonkeyPatch()
    mp.setenv("REFRAD_SECRET", SECRET)  # the nodes' environment: workers read the key there
    root = tmp_path_factory.mktemp("fault_cluster")
    try:
        with LoopbackCluster(root, workers=workers) as c:
            yield c
    finally:
        mp.undo()


def _driver_env(cluster: LoopbackCluster) -> dict[str, str]:
    return env(
        **{
            k: v
            for k, v in cluster.env(RAY_ADDRESS=cluster.address).items()
            if k.startswith("RAY_")
        }
    )


def test_worker_node_stopped_mid_run(fault_demo, fault_reference, cluster, tmp_path):
    work, out, log = tmp_path / "work", tmp_path / "out", tmp_path / "log"
    args = REFRAD + run_args(fault_demo / "config.yaml", work, out)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=_driver_env(cluster))
        deadline = time.monotonic() + 600
        while not (work / "volume").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, tail(log)
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before the node could be stopped"
        cluster.stop_node("spare")
        try:
            rc = proc.wait(900)
        finally:  # a driver left running would hold its workers for the next test
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if rc != 0:  # failed cleanly: the rerun on the remaining nodes completes
        assert "Traceback" not in log.read_text(errors="replace"), tail(log)
        with open(log, "ab") as fh:
            rc = subprocess.run(
                args, stdout=fh, stderr=subprocess.STDOUT, env=_driver_env(cluster), timeout=900
            ).returncode
    assert rc == 0, tail(log)
    assert shard_bytes(out) == shard_bytes(fault_reference)


def test_model_missing_on_one_node_fails_transient_then_completes(
    fault_demo, cluster, weights, tmp_path
):
    work, out, log = tmp_path / "work", tmp_path / "out", tmp_path / "log"
    settings = [
        "segment.backend=totalsegmentator",
        f"segment.totalseg_weights={weights}",
        "segment.totalseg_device=cpu",
        f"segment.ray_resources.{ACCEL}=1",
    ]
    args = run_args(fault_demo / "config.yaml", work, out, *settings)
    status_args = REFRAD + ["status", *args[1:]]

    def run() -> int:
        with open(log, "ab") as fh:
            return subprocess.run(
                REFRAD + [*args, "--until", "segment"],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=_driver_env(cluster),
                timeout=900,
            ).returncode

    assert run() == 0, tail(log)
    status = subprocess.run(status_args, capture_output=True, text=True, env=env())
    assert status.returncode == 1, status.stdout
    assert "failed WeightsMissing" in status.stdout
    assert "weights are missing on a node: install them there" in status.stdout

    # the weights arrive on that node (the node keeps running)
    pid = cluster.pid("no-weights")
    subprocess.run(["nsenter", "-t", str(pid), "-m", "umount", str(weights)], check=True)
    assert run() == 0, tail(log)
    status = subprocess.run([*status_args, "--json"], capture_output=True, env=env())
    (seg,) = [s for s in json.loads(status.stdout) if s["stage"] == "segment"]
    assert seg["failed"] == {} and seg["done"] == seg["planned"] > 0, seg
