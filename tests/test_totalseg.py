"""The TotalSegmentator backend, run end to end with the real TotalSegmentator code on CPU.

A tiny random-weight network (``totalseg_tiny``) sits in TotalSegmentator's weight folder
layout, so ``totalsegmentator()`` loads it through nnU-Net exactly as it would load the real
weights; an API change in either library breaks these tests. The weights are random, so the
tests check geometry and label ids, never anatomy. No network is used: downloads and HTTP
requests are patched to fail loudly.
"""

from __future__ import annotations

import json
import logging
import os
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip(
    "totalsegmentator",
    reason="totalsegmentator is not installed (pip install torch==2.13.0 "
    "'totalsegmentator==2.18.*'; make test installs it)",
)

from totalseg_tiny import build_tiny_weights  # noqa: E402
from volume_items import volume_item

from refrad_builder.anatomy.labels import schema  # noqa: E402
from refrad_builder.engine.config import RunConfig, SegmentConfig  # noqa: E402
from refrad_builder.engine.ledger import Ledger, item_fingerprint  # noqa: E402
from refrad_builder.engine.records import SegmentRecord  # noqa: E402
from refrad_builder.engine.runner import run_item  # noqa: E402
from refrad_builder.engine.stage import StageContext  # noqa: E402
from refrad_builder.imaging import totalseg  # noqa: E402
from refrad_builder.imaging.nifti import read_nifti  # noqa: E402
from refrad_builder.stages.segment import SegmentStage  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
ENV_KEYS = (
    "TOTALSEG_HOME_DIR",
    "TOTALSEG_WEIGHTS_PATH",
    "nnUNet_raw",
    "nnUNet_preprocessed",
    "nnUNet_results",
)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """Random-weight models for ``total`` and ``total_mr`` (fast) in the expected layout."""
    weights = tmp_path_factory.mktemp("totalseg_weights")
    build_tiny_weights(weights, "total", fast=True)
    build_tiny_weights(weights, "total_mr", fast=True)
    return weights


@pytest.fixture
def offline(monkeypatch):
    """Fail on any weight download or HTTP request; restore the variables TotalSegmentator
    and nnU-Net set. Yields the list of attempted downloads and requests."""
    import requests
    from totalsegmentator import libs, python_api

    attempts: list[str] = []

    def no_download(*args, **kwargs):
        attempts.append(f"download {args}")
        raise AssertionError("a weight download was attempted")

    def no_request(self, method, url, *args, **kwargs):
        attempts.append(f"{method} {url}")
        raise requests.ConnectionError("network use in a test")

    monkeypatch.setattr(libs, "download_pretrained_weights", no_download)
    monkeypatch.setattr(libs, "download_url_and_unpack", no_download)
    monkeypatch.setattr(python_api, "download_pretrained_weights", no_download)
    monkeypatch.setattr(requests.Session, "request", no_request)
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    yield attempts
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _ctx(work: Path, **seg) -> StageContext:
    seg = {"backend": "totalsegmentator", **seg}
    return StageContext(RunConfig(work_dir=work, demo=True, segment=SegmentConfig(**seg)))


_volume_item = volume_item


def _spy_predict(monkeypatch) -> list[tuple[nib.Nifti1Image, nib.Nifti1Image]]:
    """Record (input, TotalSegmentator's own output) of every real call."""
    calls = []
    real = totalseg.TotalSegmentatorBackend.predict

    def spy(self, image, task):
        out = real(self, image, task)
        calls.append((image, out))
        return out

    monkeypatch.setattr(totalseg.TotalSegmentatorBackend, "predict", spy)
    return calls


def _run_real(tmp_path, monkeypatch, offline, tiny_weights, source, modality, task):
    from totalsegmentator.map_to_binary import class_map

    item = _volume_item(tmp_path, source, f"s{modality.lower()}", modality)
    calls = _spy_predict(monkeypatch)
    stage = SegmentStage(_ctx(tmp_path, totalseg_weights=tiny_weights))
    stage.setup()
    rec = stage.process(item)

    assert isinstance(rec, SegmentRecord), rec
    assert len(calls) == 1
    image, raw = calls[0]
    volume = nib.load(tmp_path / item.payload["nifti"])
    # TotalSegmentator's own output: the input's grid, uint8, ids of the task's class map.
    raw_ids = np.asarray(raw.dataobj)
    assert raw.shape == volume.shape
    assert np.allclose(raw.affine, volume.affine, atol=1e-4)
    assert raw_ids.dtype == np.uint8
    assert set(np.unique(raw_ids).tolist()) <= {0, *class_map[task]}

    # The stage's output: the same grid, uint8, unified ids that ``task`` maps to.
    labels, affine = read_nifti(tmp_path / rec.labels_nifti)
    assert labels.shape == volume.shape
    assert np.allclose(affine, volume.affine, atol=1e-4)
    assert labels.dtype == np.uint8
    lut = schema().lut(task)
    assert np.array_equal(labels, lut[raw_ids])
    present = sorted(int(c) for c in np.unique(labels) if c)
    assert present, "the tiny network labelled nothing: the real call did not run"
    assert set(present) <= set(lut[1:].tolist())
    assert rec.classes == present

    version = metadata.version("TotalSegmentator")
    assert rec.segmenter == "totalsegmentator"
    assert rec.segmenter_version.split()[0] == version
    assert f"task={task}" in rec.segmenter_version.split()
    assert "fast" in rec.segmenter_version.split()
    assert f"classmap={totalseg.class_map_hash(class_map[task])}" in rec.segmenter_version
    assert rec.schema_version == schema().version

    # Offline: statistics off in the run's own home, no request, no download.
    home = json.loads((tmp_path / "segment" / "totalseg_home" / "config.json").read_text())
    assert home["send_usage_stats"] is False
    assert home["prediction_counter"] == 1
    assert offline == []
    assert os.environ.get("TOTALSEG_WEIGHTS_PATH") != str(tiny_weights)
    return stage


def test_ct_end_to_end_with_real_totalsegmentator(tmp_path, monkeypatch, offline, tiny_weights):
    stage = _run_real(
        tmp_path, monkeypatch, offline, tiny_weights, DATA / "example_ct_sm.nii.gz", "CT", "total"
    )
    import torch

    assert stage.totalseg.device == ("gpu" if torch.cuda.is_available() else "cpu")


def test_mr_end_to_end_with_real_totalsegmentator(tmp_path, monkeypatch, offline, tiny_weights):
    _run_real(
        tmp_path,
        monkeypatch,
        offline,
        tiny_weights,
        DATA / "example_mr_sm.nii.gz",
        "MR",
        "total_mr",
    )


def test_missing_weights_fail_fast_with_install_help(tmp_path, monkeypatch, offline, caplog):
    empty = tmp_path / "no_weights"
    empty.mkdir()
    ct = _volume_item(tmp_path, DATA / "example_ct_sm.nii.gz", "ct", "CT")
    mr = _volume_item(tmp_path, DATA / "example_mr_sm.nii.gz", "mr", "MR")
    stage = SegmentStage(_ctx(tmp_path, totalseg_weights=empty))
    stage.setup()

    # A node without the weights: the item fails (transient) with the install help, and
    # the next run retries it; it is never a permanent drop.
    with pytest.raises(totalseg.WeightsMissing) as err:
        stage.process(ct)
    detail = str(err.value)
    assert "Dataset297_TotalSegmentator_total_3mm_1559subj" in detail
    assert str(empty) in detail
    assert "totalseg_download_weights -t total_fast" in detail
    assert "Nothing is downloaded" in detail
    with pytest.raises(totalseg.WeightsMissing) as err_mr:
        stage.process(mr)
    assert "Dataset852_TotalSegMRI_total_3mm_1088subj" in str(err_mr.value)
    assert "totalseg_download_weights -t total_fast_mr" in str(err_mr.value)
    with pytest.raises(totalseg.WeightsMissing, match="totalseg_download_weights"):
        stage.totalseg.require("total")

    # Weights removed after the check: the guard inside the real call still refuses to
    # download (TotalSegmentator's own download would be reached next).
    stage.totalseg._problems["total"] = None
    with pytest.raises(totalseg.WeightsMissing, match="nothing is downloaded"):
        stage.totalseg.predict(nib.load(tmp_path / ct.payload["nifti"]), "total")
    assert offline == []
    assert not any(empty.iterdir())

    # Through the runner's ledger: failed (retried by the next run), and finalize warns.
    stage = SegmentStage(_ctx(tmp_path, totalseg_weights=empty))
    ledger = Ledger(stage.out_dir)
    for it in (ct, mr):
        it.fingerprint = item_fingerprint("segment", stage.version, "c", it.input_fingerprint)
        assert run_item(stage, it) == {"id": it.id, "outcome": "error", "reason": "WeightsMissing"}
    ledger.write_manifest({it.id: it.fingerprint for it in (ct, mr)}, stage.version, "c")
    status = ledger.status("segment")
    assert (status.dropped, status.failed, status.done) == ({}, {"WeightsMissing": 2}, 0)
    with caplog.at_level(logging.WARNING, logger="refrad_builder.stages.segment"):
        stage.finalize()
    assert "2 volume(s) failed (WeightsMissing)" in caplog.text
    assert "totalseg_download_weights -t total_fast" in caplog.text


def test_unset_weights_path_says_so(tmp_path, offline):
    item = _volume_item(tmp_path, DATA / "example_ct_sm.nii.gz", "ct", "CT")
    with pytest.raises(totalseg.WeightsMissing, match="segment.totalseg_weights is not set"):
        SegmentStage(_ctx(tmp_path)).process(item)


def test_required_models_follow_totalsegmentator_task_table():
    from totalsegmentator.bin.totalseg_download_weights import TASK_TO_ID
    from totalsegmentator.python_api import get_task_config

    for task in ("total", "total_mr"):
        for fast in (True, False):
            lib = get_task_config(task, fast=fast, quiet=True, plans="nnUNetPlans")
            ids = lib["task_id"] if isinstance(lib["task_id"], list) else [lib["task_id"]]
            models = totalseg.required_models(task, fast)
            assert [m.task_id for m in models] == ids
            for m in models:
                assert m.model == f"{lib['trainer']}__nnUNetPlans__{lib['model']}"
                assert m.folds == tuple(lib["folds"])
                assert m.dataset.startswith(f"Dataset{m.task_id}_")
            assert set(ids) <= set().union(
                *(TASK_TO_ID[n] for n in totalseg._download_task_names(set(ids)))
            )
    # roi_subset adds the cropping model totalsegmentator() runs first.
    assert [m.task_id for m in totalseg.required_models("total", True, ["liver"])] == [297, 298]
    assert [m.task_id for m in totalseg.required_models("total_mr", True, ["liver"])] == [852]
    assert 852 in [m.task_id for m in totalseg.required_models("total_mr", False, ["liver"])]


def test_weight_files_enter_the_fingerprint(tmp_path, tiny_weights):
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = totalseg.input_signature(SegmentConfig(totalseg_weights=empty), "CT")
    present_cfg = SegmentConfig(totalseg_weights=tiny_weights)
    present = totalseg.input_signature(present_cfg, "CT")
    assert missing != present
    assert totalseg.input_signature(present_cfg, "CT") == present
    assert totalseg.input_signature(present_cfg, "MR") != present
    ckpt = next(tiny_weights.glob("Dataset297_*/*/fold_0/checkpoint_final.pth"))
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert totalseg.input_signature(present_cfg, "CT") != present


def test_configuration_errors_raise_in_setup(tmp_path, tiny_weights):
    with pytest.raises(ValueError, match="unknown classes"):
        SegmentStage(_ctx(tmp_path, totalseg_roi_subset=["livre"])).setup()
    with pytest.raises(ValueError, match="not in the unified label schema"):
        SegmentStage(_ctx(tmp_path, totalseg_task_ct="total_v3")).setup()
    # A CT-only class leaves MR without a subset: MR volumes are dropped, not mis-run.
    stage = SegmentStage(
        _ctx(tmp_path, totalseg_weights=tiny_weights, totalseg_roi_subset=["trachea"])
    )
    stage.setup()
    assert stage.totalseg.problem("total_mr")[0] == "roi_subset_not_in_task"
    home = json.loads((tmp_path / "segment" / "totalseg_home" / "config.json").read_text())
    assert home["send_usage_stats"] is False and home["statistics_disclaimer_shown"] is True
