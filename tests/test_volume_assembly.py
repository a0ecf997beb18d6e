"""Series assembly on generated series: enhanced multi-frame CT/MR, gaps, uneven spacing,
gantry tilt, mixed orientations, localizers, echoes, single slices and compressed pixel
data, each checked voxel by voxel against the position encoded in the stored values."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_synth import (
    position_values,
    write_enhanced,
    write_series,
)
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
)

from refrad_builder.engine.config import InputsConfig, RunConfig, VolumeConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import DeidSeries, VolumeRecord
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.engine.stage import StageContext, WorkItem
from refrad_builder.imaging.nifti import read_nifti
from refrad_builder.imaging.orientation import orientation_codes
from refrad_builder.imaging.series_volume import (
    VolumeError,
    read_series,
    read_series_canonical,
)
from refrad_builder.stages.volume import VolumeStage

AXIAL = {"row_cos": [1.0, 0.0, 0.0], "col_cos": [0.0, 1.0, 0.0]}


def _axial(folder: Path, zs, **kw) -> list[Path]:
    geo = {"rows": 10, "cols": 12, "spacing": (1.0, 1.5), **AXIAL}
    geo.update(kw)
    return write_series(folder, positions=[[-5.0, -4.0, float(z)] for z in zs], **geo)


def _expected(shape, affine: np.ndarray) -> np.ndarray:
    """The encoded value at every voxel centre of a grid, from its affine."""
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    ras = ijk @ affine[:3, :3].T + affine[:3, 3]
    return (ras * [-1.0, -1.0, 1.0]) @ np.array([2.0, 3.0, 5.0])


def _assert_encoded(vol, atol: float = 0.5 + 1e-3, mask=None) -> None:
    """Every voxel holds the value encoding its position, as the affine places it."""
    _assert_grid_encoded(vol.data, vol.affine, atol, mask)


def _assert_grid_encoded(data, affine, atol: float = 0.5 + 1e-3, mask=None) -> None:
    err = np.abs(np.asarray(data, dtype=float) - _expected(data.shape, affine))
    if mask is not None:
        err = err[mask]
    assert err.max() <= atol


# --- enhanced multi-frame -----------------------------------------------------------------


def test_enhanced_ct_frames_sorted_by_position_with_per_frame_rescale(tmp_path: Path):
    zs = [6.0, 0.0, 4.0, 2.0, 8.0]
    path = write_enhanced(
        tmp_path / "enh.dcm",
        rows=9,
        cols=11,
        spacing=(0.8, 1.2),
        positions=[[-3.0, -2.0, z] for z in zs],
        slopes=[1.0, 2.0, 0.5, 1.0, 4.0],
        **AXIAL,
    )
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert "ImagePositionPatient" not in ds and ds.NumberOfFrames == 5
    vol = read_series_canonical([path], "CT")
    assert vol.data.shape == (11, 9, 5)
    assert vol.affine[2, 2] == pytest.approx(2.0)
    assert vol.affine[2, 3] == pytest.approx(0.0)
    # Frame numbers stand in for instance numbers, in position order (z = 0, 2, 4, 6, 8).
    assert vol.instance_numbers == [2, 4, 3, 1, 5]
    # The encoding is rounded to whole HU, then to multiples of 4 HU by a slope of 4.
    _assert_encoded(vol, atol=2.5 + 1e-3)
    assert vol.skipped == {} and vol.resampled == []


def test_enhanced_mr_temporal_positions_and_localizer_frames(tmp_path: Path):
    zs = [0.0, 3.0, 6.0, 0.0, 3.0, 6.0, 20.0]
    path = write_enhanced(
        tmp_path / "dyn.dcm",
        modality="MR",
        rows=8,
        cols=8,
        spacing=(1.0, 1.0),
        positions=[[0.0, 0.0, z] for z in zs],
        temporal=[1, 1, 1, 2, 2, 2, 1],
        frame_types=["VOLUME"] * 6 + ["LOCALIZER"],
        **AXIAL,
    )
    vol = read_series_canonical([path], "MR")
    assert vol.units == "raw"
    assert vol.data.shape == (8, 8, 3)
    assert vol.skipped == {"localizer": 1, "other_phase": 3}
    _assert_encoded(vol)


def test_classic_multiframe_without_positions_is_a_clear_reject(tmp_path: Path):
    (path,) = _axial(tmp_path / "mf", [0.0])
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(path)
    with pytest.raises(VolumeError) as err:
        read_series([path], "CT")
    assert err.value.reason == "multiframe_unsupported"


# --- geometry repairs ---------------------------------------------------------------------


def test_gap_splits_and_keeps_the_longest_run(tmp_path: Path):
    zs = [0, 2, 4, 6, 12, 14, 16]  # 8 and 10 missing
    files = _axial(tmp_path / "gap", zs)
    vol = read_series_canonical(files, "CT")
    assert vol.data.shape[2] == 4
    assert vol.skipped == {"gap": 3}
    assert vol.file_reasons == {str(f): "gap" for f in files[4:]}
    assert vol.resampled == []
    assert vol.instance_numbers == [1, 2, 3, 4]
    _assert_encoded(vol)


def test_uneven_spacing_is_resampled_onto_the_median_step(tmp_path: Path):
    zs = [0.0, 2.0, 4.3, 6.0, 8.0, 9.6, 12.0]  # steps 2, 2.3, 1.7, 2, 1.6, 2.4
    files = _axial(tmp_path / "uneven", zs)
    vol = read_series_canonical(files, "CT", spacing_tolerance=0.1)
    assert vol.resampled == ["uneven_spacing"]
    assert vol.data.shape == (12, 10, 7)
    assert vol.affine[2, 2] == pytest.approx(2.0)
    # Linear interpolation reproduces the linear encoding between acquired slices.
    _assert_encoded(vol, atol=1.0)
    # Output slices at z = 0, 2, 6, 12 coincide with acquired images.
    assert vol.instance_numbers == [1, 2, None, 4, 5, None, 7]
    with pytest.raises(VolumeError):
        read_series(files[:0], "CT")
    regular = read_series_canonical(files, "CT", spacing_tolerance=0.25)
    assert regular.resampled == [] and regular.data.shape[2] == 7


@pytest.mark.parametrize("degrees", [15.0, -20.0])
def test_gantry_tilt_is_resampled_onto_an_orthogonal_grid(tmp_path: Path, degrees: float):
    t = np.deg2rad(degrees)
    files = write_series(
        tmp_path / "tilt",
        rows=30,
        cols=24,
        spacing=(1.0, 0.9),
        row_cos=[1.0, 0.0, 0.0],
        col_cos=[0.0, np.cos(t), np.sin(t)],
        positions=[[-10.0, -12.0, 3.0 * k] for k in range(8)],
        extra={"GantryDetectorTilt": degrees},
    )
    vol = read_series_canonical(files, "CT")
    assert vol.resampled == ["gantry_tilt"]
    assert vol.data.shape == (24, 30, 8)
    directions = vol.affine[:3, :3] / np.linalg.norm(vol.affine[:3, :3], axis=0)
    np.testing.assert_allclose(directions.T @ directions, np.eye(3), atol=1e-9)
    assert np.linalg.norm(vol.affine[:3, 2]) == pytest.approx(3.0 * np.cos(t))
    # Each slice keeps its acquired plane, shifted in-plane: where data were acquired the
    # encoding holds; what slid out of the field of view is filled with the minimum.
    filled = vol.data == vol.data.min()
    assert 0 < filled.mean() < 0.25
    _assert_encoded(vol, atol=1.0, mask=~filled)
    assert all(n is not None for n in vol.instance_numbers)


def test_slices_off_one_line_are_rejected(tmp_path: Path):
    positions = [[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [7.0, 0.0, 4.0], [0.0, 0.0, 6.0]]
    files = write_series(
        tmp_path / "zigzag", rows=6, cols=6, spacing=(1.0, 1.0), positions=positions, **AXIAL
    )
    with pytest.raises(VolumeError) as err:
        read_series(files, "CT")
    assert (err.value.reason, err.value.detail) == (
        "inconsistent_geometry",
        "slice positions not on one line",
    )


def test_mixed_orientations_localizers_echoes_and_duplicates(tmp_path: Path):
    axial = _axial(tmp_path / "ax", [0, 2, 4, 6])
    sagittal = write_series(
        tmp_path / "sag",
        rows=10,
        cols=12,
        spacing=(1.0, 1.0),
        row_cos=[0.0, 1.0, 0.0],
        col_cos=[0.0, 0.0, -1.0],
        positions=[[x, -4.0, 10.0] for x in (0.0, 3.0)],
        start_instance=50,
    )
    scout = _axial(
        tmp_path / "scout", [100], image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), prefix="s"
    )
    echo2 = _axial(tmp_path / "echo2", [0, 2, 4, 6], start_instance=10, extra={"EchoNumbers": 2})
    for f in axial:
        ds = pydicom.dcmread(f)
        ds.EchoNumbers = 1
        ds.save_as(f)
    dup = tmp_path / "dup.dcm"
    shutil.copy(axial[1], dup)
    vol = read_series_canonical([*echo2, *sagittal, *scout, dup, *axial], "CT")
    assert vol.data.shape == (12, 10, 4)
    assert vol.skipped == {
        "duplicate_position": 1,
        "localizer": 1,
        "other_orientation": 2,
        "other_phase": 4,
    }
    assert vol.instance_numbers == [1, 2, 3, 4]
    assert vol.file_reasons[str(scout[0])] == "localizer"
    assert vol.file_reasons[str(echo2[0])] == "other_phase"
    _assert_encoded(vol)
    with pytest.raises(VolumeError) as err:
        read_series(scout, "CT")
    assert err.value.reason == "localizer_only"


def test_single_slice_and_feet_first_order(tmp_path: Path):
    (one,) = _axial(tmp_path / "one", [5.0], extra={"SliceThickness": 3.0})
    vol = read_series_canonical([one], "CT")
    assert vol.data.shape == (12, 10, 1)
    assert vol.affine[2, 2] == pytest.approx(3.0)
    _assert_encoded(vol)
    # Feet first: positions decrease with the instance number; k still grows to the head.
    ffs = _axial(tmp_path / "ffs", [10, 8, 6, 4], row_cos=[-1.0, 0.0, 0.0])
    vol = read_series_canonical(ffs, "CT")
    assert orientation_codes(vol.affine) == ("L", "P", "S")
    assert vol.instance_numbers == [4, 3, 2, 1]
    _assert_encoded(vol)


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEG2000Lossless, JPEGLosslessSV1, JPEGBaseline8Bit]
)
def test_compressed_series_match_uncompressed(tmp_path: Path, syntax):
    geo = {"rows": 36, "cols": 40, "spacing": (0.7, 0.7)}
    # Values 0..255 so the 8-bit JPEG baseline holds them too.
    small = lambda pts: position_values(pts) - 1024 + 100  # noqa: E731
    plain = _axial(tmp_path / "plain", [0, 2, 4], values=small, **geo)
    packed = _axial(tmp_path / "packed", [0, 2, 4], values=small, transfer_syntax=syntax, **geo)
    assert pydicom.dcmread(packed[0]).file_meta.TransferSyntaxUID == syntax
    a = read_series_canonical(plain, "CT").data
    b = read_series_canonical(packed, "CT").data
    if syntax == JPEGBaseline8Bit:
        assert np.abs(a - b).max() <= 4  # lossy, at quality 95
    else:
        np.testing.assert_array_equal(a, b)


# --- through ingest, deid and the volume stage --------------------------------------------


def test_pipeline_enhanced_no_meta_and_compressed_series(tmp_path: Path):
    inputs = tmp_path / "inputs"
    (inputs / "enhanced").mkdir(parents=True)
    write_enhanced(
        inputs / "enhanced" / "mf.dcm",
        rows=12,
        cols=10,
        spacing=(1.0, 1.0),
        positions=[[0.0, 0.0, z] for z in (4.0, 0.0, 2.0)],
        **AXIAL,
    )
    nometa = _axial(inputs / "nometa", [0, 2, 4])
    for f in nometa:
        # A raw data set: no preamble, no file meta, implicit VR (as some archives export).
        ds = pydicom.dcmread(f)
        ds.preamble = None
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        pydicom.dcmwrite(f, ds, implicit_vr=True, little_endian=True)
        raw = f.read_bytes()
        assert raw[:2] == b"\x08\x00" and raw[128:132] != b"DICM"  # group 0008 first
    _axial(inputs / "jpeg_lossless", [0, 3, 6], transfer_syntax=JPEGLosslessSV1)
    (inputs / "broken.dcm").write_bytes(nometa[0].read_bytes()[:300])
    old = os.environ.get("REFRAD_SECRET")
    os.environ["REFRAD_SECRET"] = "assembly-test-secret-0123456789"
    try:
        cfg = RunConfig(
            work_dir=tmp_path / "work",
            out_dir=tmp_path / "out",
            inputs=InputsConfig(dicom=[inputs]),
        )
        runs = run_pipeline(
            cfg,
            stages=["ingest", "deid", "volume"],
            executor=LocalExecutor(),
            progress=lambda s: None,
        )
    finally:
        if old is None:
            os.environ.pop("REFRAD_SECRET", None)
        else:
            os.environ["REFRAD_SECRET"] = old
    by_stage = {r.stage: r.status for r in runs}
    assert by_stage["volume"]["done"] == 3 and by_stage["volume"]["dropped"] == {}
    assert all(r.status["failed"] == {} for r in runs)
    assert sum(by_stage["ingest"]["dropped"].values()) == 1
    shapes = []
    for _, _, recs in Ledger(cfg.work_dir / "volume").current_outputs():
        rec = VolumeRecord.model_validate(recs[0])
        data, affine = read_nifti(cfg.work_dir / rec.nifti)
        _assert_grid_encoded(data, affine)
        shapes.append(rec.shape)
    assert sorted(shapes) == [(10, 12, 3), (12, 10, 3), (12, 10, 3)]


def test_stage_records_resampling_reasons(tmp_path: Path):
    files = _axial(tmp_path / "deid" / "uneven", [0.0, 2.0, 4.6, 6.0, 8.0])
    rec = DeidSeries(
        series_id="s1",
        study_id="st",
        patient_id="p",
        modality="CT",
        files=[f.relative_to(tmp_path).as_posix() for f in files],
    )
    stage = VolumeStage(
        StageContext(RunConfig(work_dir=tmp_path, demo=True, volume=VolumeConfig()))
    )
    out = stage.process(WorkItem(id="s1", payload=rec.model_dump(), input_fingerprint="x"))
    assert isinstance(out, VolumeRecord)
    assert out.skipped == {"resampled:uneven_spacing": 1}
    assert out.shape == (12, 10, 5) and out.spacing[2] == pytest.approx(2.0)
    data, affine = read_nifti(tmp_path / out.nifti)
    _assert_grid_encoded(data, affine, atol=1.0)
