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
