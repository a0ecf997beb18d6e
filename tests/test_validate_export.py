"""`refrad validate` checks the RefRad2D export too: each kind of breakage is caught."""

from __future__ import annotations

import json
import shutil

import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.publish.validate import validate_dir


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    make_demo(root / "demo", studies=2, seed=2, include_real=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("REFRAD_SECRET", "export-validate-secret-0123456789")
    cfg = load_config(
        root / "demo" / "config.yaml", [f"work_dir={root / 'work'}", f"out_dir={root / 'out'}"]
    )
    run_pipeline(cfg, executor=LocalExecutor(), progress=lambda s: None)
    mp.undo()
    report = validate_dir(root / "out")
    assert report.ok, report.summary()
    return root / "out"


def _copy(good, tmp_path):
    dst = tmp_path / "out"
    shutil.copytree(good, dst)
    return dst, dst / "refrad2d"


def _codes(path):
    return validate_dir(path).codes


def test_missing_dicom(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    next((exp / "dicoms_anon").rglob("*.dcm.zst")).unlink()
    assert _codes(out) == {"export_dicom"}


def test_box_not_mask_extent(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    seg = next((exp / "refrad2d_segment").glob("rsopid_2_segment_*_ct.json"))
    data = json.loads(seg.read_text())
    entry = next(e for e in data.values() if e["bboxes"])
    entry["bboxes"][0][2] += 1
    seg.write_text(json.dumps(data))
    assert _codes(out) == {"export_box_not_mask_extent"}


def test_manifest_and_label_map(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    labels = json.loads((exp / "label_map.json").read_text())
    labels["liver"] = 99
    (exp / "label_map.json").write_text(json.dumps(labels))
    assert _codes(out) == {"export_label_map_mismatch"}
    manifest = json.loads((exp / "manifest.json").read_text())
    del manifest["label_schema"]
    (exp / "manifest.json").write_text(json.dumps(manifest))
    assert _codes(out) == {"export_schema"}


def test_snippet_in_wrong_split_and_phi(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    files = sorted((exp / "splits").rglob("snippet2rsopids_*_ct_only.json"))
    src = next(f for f in files if json.loads(f.read_text()))
    dst = next(f for f in files if f != src)
    moved = json.loads(src.read_text())
    dst.write_text(json.dumps(moved))
    assert "export_snippet_slice" in _codes(out)
    out2, exp2 = _copy(good, tmp_path / "b")
    target = next(f for f in sorted((exp2 / "splits").rglob("*.json")) if json.loads(f.read_text()))
    data = json.loads(target.read_text())
    text, ids = next(iter(data.items()))
    data["Herr Mustermann, " + text] = ids
    target.write_text(json.dumps(data))
    assert _codes(out2) == {"phi_pattern_salutation_name"}


def test_run_summary_is_checked(good, tmp_path):
    out, _ = _copy(good, tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    summary["samples"] += 1
    (out / "summary.json").write_text(json.dumps(summary))
    assert _codes(out) == {"summary_mismatch"}
    del summary["by_split"]
    (out / "summary.json").write_text(json.dumps(summary))
    assert _codes(out) == {"summary_schema"}
