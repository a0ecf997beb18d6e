"""Shared fixtures: real data shipped with the project and pydicom's bundled test files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT / "refrad_builder" / "demo" / "data" / "real_ct"
TEST_DATA = ROOT / "tests" / "data"

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def real_ct_dir(tmp_path: Path) -> Path:
    """A copy of the real Siemens CT series (20 JPEG 2000 slices, empty UIDs)."""
    dst = tmp_path / "inputs" / "real_ct" / "series_1"
    shutil.copytree(REAL_CT / "dicom", dst)
    return tmp_path / "inputs"


@pytest.fixture(scope="session")
def small_demo_shards(tmp_path_factory) -> Path:
    """Shards of a small demo run (4 slices per series, several shards per split). Shared
    by several test files: read it, or copy it before changing anything."""
    from refrad_builder.demo import make_demo
    from refrad_builder.engine.config import load_config
    from refrad_builder.engine.runner import LocalExecutor, run_pipeline

    root = tmp_path_factory.mktemp("small_demo")
    make_demo(root / "demo", studies=2)
    cfg = load_config(
        root / "demo" / "config.yaml",
        [
            f"work_dir={root / 'work'}",
            f"out_dir={root / 'shards'}",
            "execution.executor=local",
            "slices.max_slices_per_series=4",
            "shards.max_samples_per_shard=5",
        ],
    )
    with pytest.MonkeyPatch.context() as mp:
        # this key gives the demo patients two splits
        mp.setenv("REFRAD_SECRET", "validate-test-secret-0123456789abcdef")
        run_pipeline(cfg, executor=LocalExecutor(), progress=lambda _line: None)
    return root / "shards"


@pytest.fixture(scope="session")
def fault_demo(tmp_path_factory) -> Path:
    """The fault tests' demo inputs (two synthetic studies, CT and MR); read it, never change."""
    from refrad_builder.demo import make_demo

    root = tmp_path_factory.mktemp("fault_demo")
    make_demo(root, studies=2, seed=5, include_real=False)
    return root


@pytest.fixture(scope="session")
def fault_reference(fault_demo, tmp_path_factory) -> Path:
    """One undisturbed run of the fault demo (the `refrad` command, in-process executor): the
    shards folder every fault test must reproduce byte for byte."""
    from faults_common import refrad, run_args, tail

    base = tmp_path_factory.mktemp("fault_reference")
    args = run_args(fault_demo / "config.yaml", base / "work", base / "shards")
    proc = refrad([*args, "--executor", "local"], base / "log")
    assert proc.returncode == 0, tail(base / "log")
    return base / "shards"
