"""Tests of the volume stage: DICOM -> canonical volume, checked against SimpleITK and
against geometry-encoded synthetic series."""

from __future__ import annotations

import copy
import random
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from refrad_builder.engine.config import RunConfig, VolumeConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import DeidSeries, VolumeRecord
from refrad_builder.engine.stage import Drop, StageContext, WorkItem
from refrad_builder.imaging.nifti import read_nifti, storage_dtype, write_nifti
from refrad_builder.imaging.orientation import (
    orientation_codes,
    resample_to,
    to_canonical,
)
from refrad_builder.imaging.series_volume import read_series_canonical
from refrad_builder.stages.volume import VolumeStage

ROOT = Path(__file__).resolve().parents[1]
REAL_DICOM = ROOT / "refrad_builder" / "demo" / "data" / "real_ct" / "dicom"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_slices() -> list[tuple[pydicom.Dataset, np.ndarray]]:
    """The real series decoded once: (uncompressed dataset, stored pixels) per file."""
    out = []
    for path in sorted(REAL_DICOM.iterdir()):
        ds = pydicom.dcmread(path)
        ds.decompress()
        out.append((ds, ds.pixel_array.copy()))
    return out


def _series_item(work: Path, files: list[Path], series_id: str = "s0", modality: str = "CT"):
    rel = [f.relative_to(work).as_posix() for f in files]
    rec = DeidSeries(
        series_id=series_id,
        study_id="st0",
        patient_id="p0",
        modality=modality,
        series_number=3,
        files=rel,
        sex="F",
        age_years=61,
        body_part="ABDOMEN",
        contrast=True,
    )
    return WorkItem(id=series_id, payload=rec.model_dump(mode="json"), input_fingerprint="fp")


def _stage(work: Path, **volume_cfg) -> VolumeStage:
    cfg = RunConfig(work_dir=work, demo=True, volume=VolumeConfig(**volume_cfg))
    return VolumeStage(StageContext(cfg))


def _copy_real(work: Path) -> list[Path]:
    dst = work / "deid" / "files" / "s0"
    shutil.copytree(REAL_DICOM, dst)
    return sorted(dst.iterdir())


def _write_variant(work: Path, real_slices, transform: str, name: str) -> list[Path]:
    """Rewrite the real slices with another in-plane orientation describing the same
    physical voxels (pixels flipped/transposed, IOP/IPP changed to match)."""
    folder = work / "deid" / "files" / name
    folder.mkdir(parents=True)
    paths = []
    for n, (ds0, arr) in enumerate(real_slices):
        ds = copy.deepcopy(ds0)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        row, col = iop[:3], iop[3:]
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        rs, cs = (float(v) for v in ds.PixelSpacing)
        rows, cols = arr.shape
        if transform == "flip_rows":
            new = arr[::-1, :]
            ipp = ipp + (rows - 1) * rs * col
            col = -col
        elif transform == "flip_cols":  # as a feet-first scan stores the same anatomy
            new = arr[:, ::-1]
            ipp = ipp + (cols - 1) * cs * row
            row = -row
        elif transform == "transpose":
            new = arr.T
            row, col = col, row
            ds.PixelSpacing = [cs, rs]
            ds.Rows, ds.Columns = cols, rows
        else:
            raise ValueError(transform)
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([row, col])]
        ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.PixelData = np.ascontiguousarray(new).tobytes()
        path = folder / f"img{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _synthetic_series(
    folder: Path,
    *,
    rows: int,
    cols: int,
    spacing: tuple[float, float],
    row_cos,
    col_cos,
    origin,
    step,
    n: int,
    value=None,
    start_instance: int = 1,
) -> list[Path]:
    """Uncompressed CT slices whose stored value encodes each pixel's LPS position:
    HU = round(2x + 3y + 5z) unless ``value`` gives a constant."""
    folder.mkdir(parents=True, exist_ok=True)
    row_cos, col_cos = np.asarray(row_cos, float), np.asarray(col_cos, float)
    origin, step = np.asarray(origin, float), np.asarray(step, float)
    r_idx, c_idx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    paths = []
    for s in range(n):
        ipp = origin + s * step
        pos = (
            ipp[None, None, :]
            + c_idx[..., None] * spacing[1] * row_cos
            + r_idx[..., None] * spacing[0] * col_cos
        )
        hu = (
            np.rint(pos @ np.array([2.0, 3.0, 5.0]))
            if value is None
            else np.full((rows, cols), value, float)
        )
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"f{s:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.InstanceNumber = start_instance + s
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([row_cos, col_cos])]
        ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.SliceThickness = float(np.linalg.norm(step))
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (hu + 1024).astype(np.int16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _sitk_canonical(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: SimpleITK's series reader, LPS geometry converted to RAS."""
    folder = str(paths[0].parent)
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(folder)
    reader.SetFileNames(files)
    img = reader.Execute()
    direction = np.array(img.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    data = np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))
    return to_canonical(data, LPS_TO_RAS @ lps)


# --- the real series ----------------------------------------------------------------------


def test_real_series_volume_matches_simpleitk(tmp_path: Path):
    files = _copy_real(tmp_path)
    stage = _stage(tmp_path)
    rec = stage.process(_series_item(tmp_path, files))
    assert isinstance(rec, VolumeRecord)
    assert rec.shape == (512, 512, 20)
    assert rec.units == "HU"
    assert (rec.sex, rec.age_years, rec.body_part, rec.contrast) == ("F", 61, "ABDOMEN", True)
    assert rec.nifti == "volume/blobs/s0.nii.gz"
    assert rec.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))

    img = nib.load(tmp_path / rec.nifti)
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    assert img.get_data_dtype() == np.int16
    data = np.asarray(img.dataobj)
    assert data.min() == -1024  # air outside the scan circle
    body = data[200:300, 200:300, :]  # centre of an abdomen: soft tissue
    assert -200 < np.median(body) < 200
    assert np.allclose(img.affine, rec.affine, atol=1e-4)

    ref_data, ref_affine = _sitk_canonical(files)
    assert np.allclose(np.array(rec.affine), ref_affine, atol=1e-3)
    assert np.array_equal(data, ref_data)


def test_instance_numbers_follow_canonical_k(tmp_path: Path):
    files = _copy_real(tmp_path)
    rec = _stage(tmp_path).process(_series_item(tmp_path, files))
    affine = np.array(rec.affine)
    z_by_instance = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        z_by_instance[int(ds.InstanceNumber)] = float(ds.ImagePositionPatient[2])
    top = max(z_by_instance, key=z_by_instance.get)
    assert rec.instance_numbers[-1] == top  # k grows superior
    for k, inst in enumerate(rec.instance_numbers):
        world_z = (affine @ [0, 0, k, 1])[2]
        assert world_z == pytest.approx(z_by_instance[inst], abs=1e-3)


def test_shuffled_files_give_identical_volume(tmp_path: Path):
    files = _copy_real(tmp_path)
    ordered = read_series_canonical(files, "CT")
    shuffled = list(files)
    random.Random(7).shuffle(shuffled)
    again = read_series_canonical(shuffled, "CT")
    assert np.array_equal(ordered.data, again.data)
    assert np.array_equal(ordered.affine, again.affine)
    assert ordered.instance_numbers == again.instance_numbers


@pytest.mark.parametrize("transform", ["flip_rows", "flip_cols", "transpose"])
def test_other_in_plane_orientations_give_same_canonical_voxels(
    tmp_path: Path, real_slices, transform
):
    reference = read_series_canonical(_copy_real(tmp_path), "CT")
    files = _write_variant(tmp_path, real_slices, transform, transform)
    variant = read_series_canonical(list(reversed(files)), "CT")
    assert np.array_equal(variant.data, reference.data)
    assert np.allclose(variant.affine, reference.affine, atol=1e-4)
    assert variant.instance_numbers == reference.instance_numbers


# --- synthetic geometry -------------------------------------------------------------------


def test_oblique_anisotropic_series_geometry(tmp_path: Path):
    """Non-square pixels, a non-square matrix and an oblique plane: every voxel's value
    (which encodes its LPS position) must agree with where the affine puts it."""
    angle = np.deg2rad(20)
    row_cos = [np.cos(angle), np.sin(angle), 0.0]
    col_cos = [0.0, 0.0, -1.0]  # coronal-ish oblique: rows run feet-wards
    normal = np.cross(row_cos, col_cos)
    files = _synthetic_series(
        tmp_path / "deid" / "obl",
        rows=12,
        cols=17,
        spacing=(0.7, 1.3),
        row_cos=row_cos,
        col_cos=col_cos,
        origin=[-10.0, 5.0, 20.0],
        step=normal * 2.5,
        n=9,
    )
    vol = read_series_canonical(files, "CT")
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in vol.data.shape], indexing="ij"), -1)
    ras = ijk @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    lps = ras * [-1, -1, 1]
    expected = lps @ np.array([2.0, 3.0, 5.0])
    assert np.abs(vol.data - expected).max() <= 0.5 + 1e-3
    # Not axial: canonical k is no acquired slice.
    assert vol.instance_numbers == [None] * vol.data.shape[2]
    ref_data, ref_affine = _sitk_canonical(files)
    assert np.allclose(vol.affine, ref_affine, atol=1e-3)
    assert np.array_equal(vol.data, ref_data.astype(np.float32))


def test_localizer_and_duplicates_are_dropped(tmp_path: Path):
    folder = tmp_path / "deid" / "mixed"
    axial = _synthetic_series(
        folder / "ax",
        rows=8,
        cols=8,
        spacing=(1.0, 1.0),
        row_cos=[1, 0, 0],
        col_cos=[0, 1, 0],
        origin=[0, 0, 0],
        step=[0, 0, 3.0],
        n=5,
    )
    localizer = _synthetic_series(
        folder / "loc",
        rows=8,
        cols=8,
        spacing=(1.0, 1.0),
        row_cos=[1, 0, 0],
        col_cos=[0, 0, -1],
        origin=[0, 50, 0],
        step=[0, 1, 0],
        n=1,
        start_instance=100,
    )
    duplicate = folder / "dup.dcm"
    shutil.copy(axial[2], duplicate)
    vol = read_series_canonical([*axial, *localizer, duplicate], "CT")
    assert vol.data.shape == (8, 8, 5)
    assert vol.skipped == {"other_orientation": 1, "duplicate_position": 1}
    assert vol.instance_numbers == [1, 2, 3, 4, 5]


def test_drop_reasons(tmp_path: Path):
    stage = _stage(tmp_path, min_slices=3)
    base = dict(spacing=(1.0, 1.0), row_cos=[1, 0, 0], col_cos=[0, 1, 0], origin=[0, 0, 0])

    few = _synthetic_series(tmp_path / "few", rows=4, cols=4, step=[0, 0, 1], n=2, **base)
    out = stage.process(_series_item(tmp_path, few, "few"))
    assert out == Drop("too_few_slices", "2 < 3")

    size = _synthetic_series(tmp_path / "size", rows=4, cols=4, step=[0, 0, 1], n=3, **base)
    size += _synthetic_series(
        tmp_path / "size2", rows=6, cols=4, step=[0, 0, 1], n=1, **{**base, "origin": [0, 0, 9]}
    )
    out = stage.process(_series_item(tmp_path, size, "size"))
    assert isinstance(out, Drop) and out.reason == "inconsistent_geometry"

    gap = _synthetic_series(tmp_path / "gap", rows=4, cols=4, step=[0, 0, 1], n=4, **base)
    gap[3].unlink()
    gap = gap[:3] + _synthetic_series(
        tmp_path / "gap2", rows=4, cols=4, step=[0, 0, 1], n=1, **{**base, "origin": [0, 0, 7]}
    )
    out = stage.process(_series_item(tmp_path, gap, "gap"))
    assert isinstance(out, VolumeRecord) and out.shape[2] == 3 and out.skipped == {"gap": 1}

    nopix = _synthetic_series(tmp_path / "nopix", rows=4, cols=4, step=[0, 0, 1], n=3, **base)
    for p in nopix:
        ds = pydicom.dcmread(p)
        del ds.PixelData
        ds.save_as(p)
    out = stage.process(_series_item(tmp_path, nopix, "nopix"))
    assert isinstance(out, Drop) and out.reason == "no_image_data"

    multi = _synthetic_series(tmp_path / "multi", rows=4, cols=4, step=[0, 0, 1], n=1, **base)
    ds = pydicom.dcmread(multi[0])
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(multi[0])
    out = stage.process(_series_item(tmp_path, multi, "multi"))
    assert isinstance(out, Drop) and out.reason == "multiframe_unsupported"

    files = _copy_real(tmp_path)[:4]
    ds = pydicom.dcmread(files[1])
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:300]])  # a truncated JPEG 2000 codestream
    ds.save_as(files[1])
    out = stage.process(_series_item(tmp_path, files, "broken"))
    assert isinstance(out, Drop) and out.reason == "undecodable_pixels"
    assert not (tmp_path / "volume" / "blobs" / "broken.nii.gz").exists()


def test_plan_reads_deid_ledger(tmp_path: Path):
    files = _copy_real(tmp_path)
    item = _series_item(tmp_path, files, "sid1")
    ledger = Ledger(tmp_path / "deid")
    ledger.write_manifest({"study1": "fpA"}, "1", "cfg")
    digest = ledger.mark_ok("study1", "fpA", [item.payload])
    planned = _stage(tmp_path).plan()
    assert [(w.id, w.input_fingerprint) for w in planned] == [("sid1", digest)]
    assert planned[0].payload["files"] == item.payload["files"]


# --- helpers of the imaging package -------------------------------------------------------


def test_nifti_roundtrip_and_storage_dtype(tmp_path: Path):
    hu = np.array([[[-1024.0, 0.0], [35.0, 3000.0]]], dtype=np.float32)
    assert storage_dtype(hu) == np.int16
    assert storage_dtype(hu + 0.5) == np.float32
    assert storage_dtype(np.array([70000.0])) == np.float32
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    write_nifti(tmp_path / "a.nii.gz", hu, affine, dtype=np.int16)
    data, aff = read_nifti(tmp_path / "a.nii.gz")
    assert data.dtype == np.int16 and np.array_equal(data, hu.astype(np.int16))
    assert np.allclose(aff, affine)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_resample_to_general_and_permutation_paths():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 5, size=(6, 7, 8)).astype(np.uint8)
    src_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    # A flipped and shifted copy of the grid: exact copy via the permutation path.
    flip = np.array([[-2.0, 0, 0, 10.0], [0, 2.0, 0, 0], [0, 0, 2.0, 4.0], [0, 0, 0, 1]])
    out = resample_to(src, src_aff, (6, 7, 8), flip)
    assert np.array_equal(out[:, :, :6], src[::-1, :, 2:])
    assert (out[:, :, 6:] == 0).all()
    # Twice as fine: each source voxel repeats (interpolating path), same extent.
    fine_aff = np.diag([1.0, 1.0, 1.0, 1.0])
    fine_aff[:3, 3] = -0.5  # the first fine voxel's centre: half a fine voxel inside the edge
    fine = resample_to(src, src_aff, (12, 14, 16), fine_aff)
    assert np.array_equal(fine[::2, ::2, ::2], src)
    assert np.array_equal(fine[1::2, 1::2, 1::2], src)
    assert orientation_codes(np.diag([-1, -1, 1, 1])) == ("L", "P", "S")
