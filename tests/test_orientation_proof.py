"""Orientation proof on real anatomy.

The real CT series and TotalSegmentator's own output for it go through ingest, deid,
volume, segment (precomputed) and slices, with coronal and sagittal reformats on. Every
stored slice is then checked against an independent reference built with SimpleITK only:
the original DICOM series read by ``ImageSeriesReader`` and the reference mask resampled
onto it (nearest neighbour). Our slice is located in that reference by its pixel values
alone (which plane, which index, which flip or transpose), so no geometry of ours enters
the reference; then

* the stored mask agrees with the reference mask under the same mapping (IoU >= 0.99 per
  structure),
* the display follows the convention: patient left on the image's right (axial, coronal),
  anterior at the top (axial) or on the left (sagittal), the head at the top (coronal,
  sagittal), measured in SimpleITK's physical coordinates,
* left/right structures land on the matching side of the image.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.config import InputsConfig, RunConfig, SegmentConfig, SlicesConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import SliceRecord
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.imaging.png import decode_png
from refrad_builder.imaging.slicing import plane_slice

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT / "refrad_builder" / "demo" / "data" / "real_ct"
SECRET = "orientation-proof-secret-0123456789"
STAGES = ["ingest", "deid", "volume", "segment", "slices"]
# The 8 flips/transposes of a 2D array.
TRANSFORMS = {
    f"{'T' if t else ''}{'r' if r else ''}{'c' if c else ''}": (t, r, c)
    for t in (0, 1)
    for r in (0, 1)
    for c in (0, 1)
}


def _apply(a: np.ndarray, transform: str) -> np.ndarray:
    t, r, c = TRANSFORMS[transform]
    if t:
        a = a.T
    if r:
        a = a[::-1, :]
    if c:
        a = a[:, ::-1]
    return a


def _index_of(transform: str, shape: tuple[int, int], row: float, col: float):
    """Where pixel (row, col) of ``_apply(a, transform)`` (shape ``shape``) lies in ``a``."""
    t, r, c = TRANSFORMS[transform]
    if c:
        col = shape[1] - 1 - col
    if r:
        row = shape[0] - 1 - row
    return (col, row) if t else (row, col)


@pytest.fixture(scope="module")
def proof(tmp_path_factory):
    base = tmp_path_factory.mktemp("orientation")
    inputs = base / "inputs" / "real_ct"
    shutil.copytree(REAL_CT / "dicom", inputs)
    pre = base / "precomputed"
    pre.mkdir()
    shutil.copy(REAL_CT / "example_seg_dicom.nii.gz", pre / "example_seg_dicom.nii.gz")
    cfg = RunConfig(
        work_dir=base / "work",
        out_dir=base / "out",
        inputs=InputsConfig(dicom=[base / "inputs"]),
        segment=SegmentConfig(backend="precomputed", precomputed=[pre]),
        slices=SlicesConfig(
            planes=["axial", "coronal", "sagittal"],
            max_slices_per_series=8,
            # The series is 0.98 x 0.98 x 2 mm: allow its reformats for this proof.
            reformat_max_anisotropy=2.5,
        ),
    )
    old = os.environ.get("REFRAD_SECRET")
    os.environ["REFRAD_SECRET"] = SECRET
    try:
        runs = run_pipeline(cfg, stages=STAGES, executor=LocalExecutor(), progress=lambda s: None)
    finally:
        if old is None:
            os.environ.pop("REFRAD_SECRET", None)
        else:
            os.environ["REFRAD_SECRET"] = old
    records = [
        SliceRecord.model_validate(r)
        for _, _, recs in Ledger(cfg.work_dir / "slices").current_outputs()
        for r in recs
    ]

    # The independent reference: SimpleITK's own series reader and resampler.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(REAL_CT / "dicom")))
    ref_image = reader.Execute()
    seg = sitk.ReadImage(str(REAL_CT / "example_seg_dicom.nii.gz"))
    ref_mask = sitk.Resample(
        seg, ref_image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, seg.GetPixelID()
    )
    hu = np.maximum(sitk.GetArrayFromImage(ref_image).astype(np.int64), -1024)  # [z, y, x]
    labels = schema().lut("total")[sitk.GetArrayFromImage(ref_mask)]
    return {
        "runs": runs,
        "records": records,
        "work": cfg.work_dir,
        "ref_image": ref_image,
        "hu": hu,
        "labels": labels,
    }


def _locate(hu: np.ndarray, image: np.ndarray) -> list[tuple[int, int, str]]:
    """Every (array axis, index, transform) whose slice of ``hu`` equals ``image``.

    A slice's sum does not change under flips and transposes: only slices with the same
    sum are compared pixel by pixel.
    """
    total = int(image.sum())
    found = []
    for axis in range(3):
        sums = hu.sum(axis=tuple(d for d in range(3) if d != axis))
        for index in np.nonzero(sums == total)[0]:
            plane = hu[(slice(None),) * axis + (int(index),)]
            for transform in TRANSFORMS:
                candidate = _apply(plane, transform)
                if candidate.shape == image.shape and np.array_equal(candidate, image):
                    found.append((axis, int(index), transform))
    return found


def _physical(ref_image, axis: int, index: int, transform: str, shape, row, col) -> np.ndarray:
    """LPS position (SimpleITK) of a stored image pixel, through the located mapping."""
    a, b = _index_of(transform, shape, row, col)
    zyx = [0, 0, 0]
    zyx[axis] = index
    free = [d for d in range(3) if d != axis]
    zyx[free[0]], zyx[free[1]] = a, b
    return np.array(ref_image.TransformContinuousIndexToPhysicalPoint([zyx[2], zyx[1], zyx[0]]))


def test_pipeline_ran_every_stage(proof):
    for run in proof["runs"]:
        assert run.status["failed"] == {} and run.status["pending"] == 0, run.stage
        assert run.status["dropped"] == {}, run.stage
    planes = {r.plane for r in proof["records"]}
    assert planes == {"axial", "coronal", "sagittal"}


def test_masks_agree_with_simpleitk_reference_per_structure(proof):
    hu, labels, work = proof["hu"], proof["labels"], proof["work"]
    names = schema().by_id
    checked = 0
    worst = 1.0
    for rec in proof["records"]:
        stored = decode_png((work / rec.image_png).read_bytes()).astype(np.int64)
        image = stored * int(rec.rescale_slope) + int(rec.rescale_intercept)
        mask = decode_png((work / rec.mask_png).read_bytes())
        matches = _locate(hu, image)
        assert len(matches) == 1, (rec.plane, rec.index, matches)
        axis, index, transform = matches[0]
        reference = _apply(np.take(labels, index, axis=axis), transform)
        for cid in sorted(set(np.unique(reference)) | set(np.unique(mask)) - {0}):
            a, b = mask == cid, reference == cid
            iou = float((a & b).sum() / (a | b).sum())
            assert iou >= 0.99, (rec.plane, rec.index, names[int(cid)].name, iou)
            worst = min(worst, iou)
            checked += 1
    print(f"\n{len(proof['records'])} slices, {checked} structure checks, lowest IoU {worst:.4f}")
    assert checked > 50


def test_display_convention_in_physical_space(proof):
    """Moving right along a stored row goes to the patient's left (axial, coronal) or
    posterior (sagittal); moving down a column goes posterior (axial) or to the feet."""
    hu, work, ref = proof["hu"], proof["work"], proof["ref_image"]
    for rec in proof["records"]:
        stored = decode_png((work / rec.image_png).read_bytes()).astype(np.int64)
        image = stored * int(rec.rescale_slope) + int(rec.rescale_intercept)
        ((axis, index, transform),) = _locate(hu, image)
        shape = image.shape
        origin = _physical(ref, axis, index, transform, shape, 0, 0)
        right = _physical(ref, axis, index, transform, shape, 0, shape[1] - 1) - origin
        down = _physical(ref, axis, index, transform, shape, shape[0] - 1, 0) - origin
        # LPS: +x patient left, +y posterior, +z head.
        along_row = {"axial": 0, "coronal": 0, "sagittal": 1}[rec.plane]
        assert np.argmax(np.abs(right)) == along_row and right[along_row] > 0, rec.plane
        if rec.plane == "axial":
            assert np.argmax(np.abs(down)) == 1 and down[1] > 0
        else:
            assert np.argmax(np.abs(down)) == 2 and down[2] < 0, rec.plane


def test_left_and_right_structures_on_the_correct_side(proof):
    """Patient left is image right: each *_left structure lies right of its *_right twin,
    the spleen right of the liver, on axial and coronal slices."""
    work = proof["work"]
    by_name = schema().by_name
    pairs = [
        (n, n.replace("_left", "_right"))
        for n in by_name
        if "_left" in n and n.replace("_left", "_right") in by_name
    ]
    pairs.append(("spleen", "liver"))
    compared = 0
    for rec in proof["records"]:
        if rec.plane == "sagittal":
            continue
        mask = decode_png((work / rec.mask_png).read_bytes())
        for left, right in pairs:
            lcols = np.nonzero(mask == by_name[left].id)[1]
            rcols = np.nonzero(mask == by_name[right].id)[1]
            if lcols.size < 20 or rcols.size < 20:
                continue
            assert lcols.mean() > rcols.mean(), (rec.plane, rec.index, left, right)
            compared += 1
    print(f"\n{compared} left/right comparisons")
    assert compared >= 10


def test_reformat_planes_follow_the_display_rules():
    """On a marked canonical volume: coronal shows the head at the top and patient right on
    the left; sagittal the head at the top and anterior on the left."""
    vol = np.zeros((6, 5, 4), dtype=np.int16)  # i -> left, j -> posterior, k -> head
    vol[5, 0, 3] = 1  # left, anterior, head
    cor = plane_slice(vol, "coronal", 0)
    sag = plane_slice(vol, "sagittal", 5)
    assert cor.shape == (4, 6) and cor[0, 5] == 1  # top row, rightmost column
    assert sag.shape == (4, 5) and sag[0, 0] == 1  # top row, leftmost column
    assert plane_slice(vol, "axial", 3)[0, 5] == 1  # anterior row 0, left on the right


def _stage_item(work: Path, spacing: tuple[float, float, float], **slices_cfg):
    """A canonical CT volume with a LIVER block on the patient's right, anterior, cranial
    half, and the slices stage to run on it."""
    import nibabel as nib

    from refrad_builder.engine.stage import StageContext, WorkItem
    from refrad_builder.stages.slices import SlicesStage

    liver = schema().by_name["liver"].id
    hu = np.full((20, 16, 12), -1000, dtype=np.int16)
    hu[2:18, 2:14, 1:11] = 40
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[2:8, 3:9, 5:10] = liver  # low i = patient right; low j = anterior; high k = head
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    nib.save(nib.Nifti1Image(hu, affine), work / "vol.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), work / "seg.nii.gz")
    vol = {
        "series_id": "ser",
        "study_id": "st",
        "patient_id": "p",
        "modality": "CT",
        "nifti": "vol.nii.gz",
        "shape": list(hu.shape),
        "spacing": list(spacing),
        "affine": affine.tolist(),
        "instance_numbers": list(range(1, 13)),
        "units": "HU",
    }
    seg = {
        "series_id": "ser",
        "labels_nifti": "seg.nii.gz",
        "segmenter": "precomputed",
        "segmenter_version": "t",
        "schema_version": schema().version,
        "classes": [liver],
    }
    cfg = RunConfig(work_dir=work, demo=True, slices=SlicesConfig(**slices_cfg))
    item = WorkItem(
        id="ser",
        payload={"volume": vol, "segment": seg, "refs": [], "mentioned": []},
        input_fingerprint="fp",
    )
    return SlicesStage(StageContext(cfg)), item


def test_reformats_only_for_near_isotropic_volumes(tmp_path: Path):
    planes = ["axial", "coronal", "sagittal"]
    stage, item = _stage_item(tmp_path, (1.0, 1.0, 3.0), planes=planes, max_slices_per_series=3)
    recs = stage.process(item)
    assert {r.plane for r in recs} == {"axial"}  # anisotropy 3 > 1.5

    stage, item = _stage_item(tmp_path, (1.0, 1.2, 1.4), planes=planes, max_slices_per_series=3)
    recs = stage.process(item)
    by_plane = {p: [r for r in recs if r.plane == p] for p in planes}
    assert all(len(v) == 3 for v in by_plane.values())
    liver = schema().by_name["liver"].id
    for rec in by_plane["coronal"]:
        assert rec.instance_number is None and rec.pixel_spacing == (1.4, 1.0)
        assert (rec.width, rec.height) == (20, 12)
    for rec in by_plane["sagittal"]:
        assert rec.pixel_spacing == (1.4, 1.2) and (rec.width, rec.height) == (16, 12)
    cor = next(r for r in by_plane["coronal"] if r.boxes)
    sag = next(r for r in by_plane["sagittal"] if r.boxes)
    # Coronal: patient right (low i) on the image's left, the head (high k) at the top.
    (box,) = [b for b in cor.boxes if b.class_id == liver]
    assert box.bbox == (2, 12 - 10, 8, 12 - 5)
    # Sagittal: anterior (low j) on the image's left, the head at the top.
    (box,) = [b for b in sag.boxes if b.class_id == liver]
    assert box.bbox == (3, 12 - 10, 9, 12 - 5)
    assert len({r.slice_id for r in recs}) == len(recs)
