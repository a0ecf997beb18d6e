"""The demo on a real multi-node Ray cluster (head + two workers on the loopback range, token
authentication as the README tells users): through RAY_ADDRESS and through ``ray job submit``
the shards folder is byte-identical to a local run's; segment actors land on the node that
advertises the stand-in accelerator; relative folders are refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from ray_cluster import BIN, LoopbackCluster

from refrad_builder.demo import make_demo

pytestmark = pytest.mark.slow

ACCEL = "refrad_test_accel"
RUN_SETTINGS = [
    "slices.max_slices_per_series=4",
    "shards.max_samples_per_shard=5",
    f"segment.ray_resources.{ACCEL}=1",
]


def _tree(folder: Path) -> dict[str, str]:
    """sha256 of every file; the RefRad2D export writes absolute paths (RadGrounder's loaders
    need them), so the folder's own location is replaced by a marker before hashing."""
    root = str(folder).encode()
    return {
        str(p.relative_to(folder)): hashlib.sha256(
            p.read_bytes().replace(root, b"<OUT>")
        ).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("multinode")
    make_demo(root / "demo", studies=2)
    secret = root / "secret.key"  # on "shared storage": every node reads the same file
    secret.write_bytes(b"multinode-test-secret-0123456789abcdef")
    secret.chmod(0o600)
    return {"root": root, "config": root / "demo" / "config.yaml", "secret": secret}


def _args(demo: dict[str, Path], work: Path, out: Path) -> list[str]:
    args = ["run", "--config", str(demo["config"]), "--work", str(work), "--out", str(out)]
    for s in [*RUN_SETTINGS, f"secret_file={demo['secret']}"]:
        args += ["--set", s]
    return args


@pytest.fixture(scope="module")
def local_run(demo) -> Path:
    """The reference: the same run in-process (no Ray at all)."""
    root = demo["root"] / "local"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    subprocess.run(
        [str(BIN / "refrad"), *_args(demo, root / "work", root / "shards"), "--executor", "local"],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )
    return root / "shards"


@pytest.fixture(scope="module")
def cluster(demo):
    workers = {"cpu-worker": {}, "accel-worker": {"resources": {ACCEL: 1}}}
    with LoopbackCluster(demo["root"] / "cluster", workers=workers, dashboard=True) as c:
        yield c


def _segment_nodes(work: Path) -> set[str]:
    """The Ray nodes the segment items ran on, as the ledger records them."""
    from refrad_builder.engine.ledger import Ledger

    ledger = Ledger(work / "segment")
    entries = [ledger.entry(item_id) for item_id in ledger.manifest()]
    assert entries and all(e["outcome"] == "ok" for e in entries)
    return {e["worker"]["node"] for e in entries}


def _accel_node(cluster: LoopbackCluster) -> str:
    (node,) = [n["id"] for n in cluster.alive_nodes() if ACCEL in n["resources"]]
    return node


def test_ray_address_run_matches_local(demo, local_run, cluster):
    root = demo["root"] / "via_address"
    out = subprocess.run(
        [str(BIN / "refrad"), *_args(demo, root / "work", root / "shards")],
        env=cluster.env(RAY_ADDRESS=cluster.address),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _tree(root / "shards") == _tree(local_run)
    assert _segment_nodes(root / "work") == {_accel_node(cluster)}


def test_job_submit_matches_local(demo, local_run, cluster, tmp_path):
    root = demo["root"] / "via_job"
    job_dir = tmp_path / "job"  # the user's project folder: only what the job needs
    job_dir.mkdir()
    cmd = [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard_url]
    cmd += ["--working-dir", str(job_dir), "--", str(BIN / "refrad")]
    cmd += _args(demo, root / "work", root / "shards")
    out = subprocess.run(cmd, env=cluster.env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert _tree(root / "shards") == _tree(local_run)
    assert _segment_nodes(root / "work") == {_accel_node(cluster)}


def test_relative_folders_are_refused_on_a_cluster(demo, cluster, tmp_path):
    args = _args(demo, Path("rel/work"), Path("rel/shards"))
    out = subprocess.run(
        [str(BIN / "refrad"), *args],
        env=cluster.env(RAY_ADDRESS=cluster.address),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "relative" in out.stderr and "absolute" in out.stderr
    assert not (tmp_path / "rel").exists()
