"""`refrad validate` checks the RefRad2D export too: each kind of breakage is caught."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.publish.refrad2d.export import relocate
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


def _copy(good, tmp_path, relocated=True):
    """A copy of the good output; ``relocated``: its paths pointed at the copy, as documented."""
    dst = tmp_path / "out"
    shutil.copytree(good, dst)
    if relocated:
        relocate(dst / "refrad2d")
    return dst, dst / "refrad2d"


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _first_with(exp, modality, pred):
    path = exp / "refrad2d_segment" / f"rsopid_2_segment_v3_{modality}.json"
    data = json.loads(path.read_text())
    return path, next(k for k, e in data.items() if pred(e))


def test_the_good_export_passes_after_a_move(good, tmp_path):
    out, _ = _copy(good, tmp_path)
    assert validate_dir(out).ok


def test_copy_without_relocate_points_outside(good, tmp_path):
    out, _ = _copy(good, tmp_path, relocated=False)
    assert _codes(out) == {"export_path_outside"}


def test_relative_and_missing_paths(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    path, key = _first_with(exp, "ct", lambda e: True)
    _edit_json(path, lambda d: d[key].update(segment_slice_path="refrad2d_segment/x.npy"))
    assert _codes(out) == {"export_path_not_absolute"}
    _edit_json(path, lambda d: d[key].update(segment_slice_path=str(exp / "nothing.npy")))
    assert _codes(out) == {"export_path_missing"}


def test_null_text_and_empty_vqa(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    parquet = exp / "refrad2d_vqa_dataset.parquet"
    frame = pl.read_parquet(parquet)
    rows = frame.to_dicts()
    rows[0]["german"]["ReportFragestellungCleaned"] = None
    rows[1]["english"]["dicom_vqa"] = []
    rows[1]["english"]["snippet_vqa"] = []
    pl.DataFrame(rows, schema=frame.schema).write_parquet(parquet)
    assert _codes(out) == {"export_text_null", "export_vqa_empty"}


def test_label_ids_must_be_the_published_ones(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    labels = json.loads((exp / "label_map.json").read_text())
    labels["vertebrae"], labels["intervertebral_discs"] = 120, 121  # the old, swapped ids
    (exp / "label_map.json").write_text(json.dumps(labels))
    assert _codes(out) == {"export_label_map_mismatch"}


def test_keyword_rules(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    path, key = _first_with(exp, "ct", lambda e: e["keywords_eng"])
    entry = json.loads(path.read_text())[key]
    phrase, name, cid = entry["keywords_eng"][0]
    _edit_json(path, lambda d: d[key]["keywords_eng"].append(["zebra", name, cid]))
    assert _codes(out) == {"export_keyword_not_in_caption"}
    _edit_json(path, lambda d: d[key]["keywords_eng"].__setitem__(-1, [phrase, "body", 122]))
    assert _codes(out) == {"export_unpublished_class", "export_keyword_class_absent"}


def test_every_mask_class_needs_its_box(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    path, key = _first_with(exp, "mr", lambda e: len(e["bboxes"]) > 1)
    _edit_json(path, lambda d: d[key]["bboxes"].pop())
    assert _codes(out) == {"export_box_missing"}


def test_sampled_index_is_required(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    sampled = exp / "refrad2d_segment" / "refrad2d_sampled_dataset_v3_mr.json"
    _edit_json(sampled, lambda d: d.pop(next(iter(d))))
    assert _codes(out) == {"export_sampled_missing"}
    sampled.unlink()
    assert _codes(out) == {"export_sampled_missing"}


def test_snippet_keys_must_differ_between_ct_and_mr(good, tmp_path):
    out, exp = _copy(good, tmp_path)
    splits = exp / "splits"
    for split in ("train", "val", "test"):
        ct = json.loads(
            (splits / f"filtered_ct_splits/snippet2rsopids_{split}_ct_only.json").read_text()
        )
        mr_path = splits / f"filtered_mr_splits/snippet2rsopids_{split}_mr_only.json"
        mr = json.loads(mr_path.read_text())
        if ct and mr:
            mr[next(iter(ct))] = mr.pop(next(iter(mr)))
            mr_path.write_text(json.dumps(mr))
            assert _codes(out) == {"export_snippet_key_collision"}
            return
    pytest.skip("no split holds both modalities in this small export")


def test_demo_fills_every_split_of_both_modalities(tmp_path):
    """With three patients of each modality the demo's balanced split gives every split of
    both modalities snippets; an emptied split is reported."""
    make_demo(tmp_path / "demo", studies=6, seed=0, include_real=False)  # as `make shards`
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFRAD_SECRET", "export-validate-secret-0123456789")
        cfg = load_config(
            tmp_path / "demo" / "config.yaml",
            [f"work_dir={tmp_path / 'work'}", f"out_dir={tmp_path / 'out'}"],
        )
        run_pipeline(cfg, executor=LocalExecutor(), progress=lambda s: None)
    out = tmp_path / "out"
    assert validate_dir(out).ok
    splits = out / "refrad2d" / "splits"
    for modality in ("ct", "mr"):
        for split in ("train", "val", "test"):
            path = (
                splits / f"filtered_{modality}_splits/snippet2rsopids_{split}_{modality}_only.json"
            )
            assert json.loads(path.read_text()), (modality, split)
    path.write_text("{}")
    assert _codes(out) == {"export_split_empty"}


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
