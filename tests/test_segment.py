"""Tests of the segment stage: precomputed TotalSegmentator outputs matched by geometry,
the classical CT fallback, and backend selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from volume_items import volume_item

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.config import RunConfig, SegmentConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import DeidSeries, SegmentRecord, VolumeRecord
from refrad_builder.engine.stage import Drop, StageContext, WorkItem
from refrad_builder.imaging import classical, precomputed, totalseg
from refrad_builder.imaging.nifti import read_nifti
from refrad_builder.imaging.orientation import orientation_codes, to_canonical
from refrad_builder.stages.segment import SegmentStage
from refrad_builder.stages.volume import VolumeStage

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT / "refrad_builder" / "demo" / "data" / "real_ct"
DATA = ROOT / "tests" / "data"


def _ctx(work: Path, **seg) -> StageContext:
    return StageContext(RunConfig(work_dir=work, demo=True, segment=SegmentConfig(**seg)))


_volume_item = volume_item


def _real_volume_item(work: Path) -> WorkItem:
    files = work / "deid" / "files" / "real"
    shutil.copytree(REAL_CT / "dicom", files)
    deid = DeidSeries(
        series_id="real",
        study_id="st",
        patient_id="p",
        modality="CT",
        files=[f.relative_to(work).as_posix() for f in sorted(files.iterdir())],
    )
    stage = VolumeStage(StageContext(RunConfig(work_dir=work, demo=True)))
    rec = stage.process(WorkItem(id="real", payload=deid.model_dump(), input_fingerprint="x"))
    assert isinstance(rec, VolumeRecord)
    return WorkItem(id="real", payload=rec.model_dump(mode="json"), input_fingerprint="fp")


def _labels(work: Path, rec: SegmentRecord) -> tuple[np.ndarray, np.ndarray]:
    data, affine = read_nifti(work / rec.labels_nifti)
    assert data.dtype == np.uint8
    return data, affine


def _reference_lps(path: Path, task: str) -> np.ndarray:
    """The reference mask reoriented independently: nibabel's RAS canonical, then the
    first two axes flipped to L, P; ids mapped with the schema's LUT."""
    ras = nib.as_closest_canonical(nib.load(path))
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    data = np.asarray(ras.dataobj)[::-1, ::-1, :]
    return schema().lut(task)[data]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


# --- precomputed --------------------------------------------------------------------------


def test_precomputed_matches_real_series_exactly(tmp_path: Path):
    item = _real_volume_item(tmp_path)
    stage = SegmentStage(_ctx(tmp_path, backend="precomputed", precomputed=[REAL_CT]))
    rec = stage.process(item)
    assert isinstance(rec, SegmentRecord)
    assert rec.segmenter == "precomputed:totalsegmentator"
    assert rec.segmenter_version == "total@2.18.0-snapshot"
    assert rec.schema_version == schema().version
    assert rec.labels_nifti == "segment/blobs/real.nii.gz"

    labels, affine = _labels(tmp_path, rec)
    vol_img = nib.load(tmp_path / item.payload["nifti"])
    assert labels.shape == vol_img.shape == (512, 512, 20)
    assert np.allclose(affine, vol_img.affine, atol=1e-4)
    assert orientation_codes(affine) == ("L", "P", "S")

    reference = _reference_lps(REAL_CT / "example_seg_dicom.nii.gz", "total")
    for k in range(labels.shape[2]):
        assert np.array_equal(labels[:, :, k], reference[:, :, k]), f"slice {k}"
    assert rec.classes == sorted(int(c) for c in np.unique(reference) if c)

    # The liver sits on the patient's right: RAS x > 0 (LPS x < 0).
    liver = np.argwhere(labels == schema().by_name["liver"].id)
    assert len(liver) > 1000
    centroid = affine[:3, :3] @ liver.mean(axis=0) + affine[:3, 3]
    assert centroid[0] > 0
    # ... and in canonical voxels that is the low-i half (i grows to the patient's left).
    assert liver[:, 0].mean() < labels.shape[0] / 2


def test_precomputed_on_another_grid_is_resampled(tmp_path: Path):
    """A segmentation stored twice as fine and in another orientation still lines up."""
    item = _volume_item(tmp_path, DATA / "example_ct_sm.nii.gz", "ct", "CT")
    seg = nib.load(DATA / "example_seg.nii.gz")
    fine = np.asarray(seg.dataobj).repeat(2, 0).repeat(2, 1).repeat(2, 2)
    fine_aff = seg.affine.copy()
    fine_aff[:3, :3] = seg.affine[:3, :3] / 2
    fine_aff[:3, 3] = seg.affine[:3, :3] @ [-0.25, -0.25, -0.25] + seg.affine[:3, 3]
    # Store it flipped left-right and upside down (an "LAI" file).
    flipped = fine[::-1, :, ::-1]
    n_i, _, n_k = fine.shape
    flip = np.array([[-1, 0, 0, n_i - 1], [0, 1, 0, 0], [0, 0, -1, n_k - 1], [0, 0, 0, 1]])
    folder = tmp_path / "pre"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.ascontiguousarray(flipped), fine_aff @ flip), folder / "x.nii.gz")

    index = precomputed.PrecomputedIndex([folder])
    vol = VolumeRecord.model_validate(item.payload)
    labels, match, task = precomputed.labels_for_volume(
        index, vol.shape, np.array(vol.affine), "CT", 1.0
    )
    assert not match.identical_grid and task == "total"
    expected = _reference_lps(DATA / "example_seg.nii.gz", "total")
    assert np.array_equal(labels, expected)

    rec = SegmentStage(_ctx(tmp_path, precomputed=[folder])).process(item)
    assert rec.segmenter == "precomputed:totalsegmentator"
    assert np.array_equal(_labels(tmp_path, rec)[0], expected)


def test_mask_folder_and_image_files_in_the_same_folder(tmp_path: Path):
    """TotalSegmentator's default output (one file per class) is one candidate; a CT on
    the same grid in the searched folders is not mistaken for a label map."""
    item = _volume_item(tmp_path, DATA / "example_ct_sm.nii.gz", "ct", "CT")
    seg = nib.load(DATA / "example_seg.nii.gz")
    ts = np.asarray(seg.dataobj)
    masks = tmp_path / "pre" / "case1"
    masks.mkdir(parents=True)
    for name in ("liver", "spleen", "lung_lower_lobe_left"):
        ts_id = next(i for i, n in schema().ts_maps["total"].items() if n == name)
        mask = (ts == ts_id).astype(np.uint8)
        nib.save(nib.Nifti1Image(mask, seg.affine), masks / f"{name}.nii.gz")
    shutil.copy(DATA / "example_ct_sm.nii.gz", tmp_path / "pre" / "ct_image.nii.gz")

    rec = SegmentStage(
        _ctx(tmp_path, backend="precomputed", precomputed=[tmp_path / "pre"])
    ).process(item)
    assert isinstance(rec, SegmentRecord)
    ids = schema().by_name
    assert rec.classes == sorted(ids[n].id for n in ("liver", "spleen", "lung_lower_lobe_left"))
    labels = _labels(tmp_path, rec)[0]
    reference = _reference_lps(DATA / "example_seg.nii.gz", "total")
    liver = ids["liver"].id
    assert np.array_equal(labels == liver, reference == liver)


def test_mr_precomputed_uses_total_mr(tmp_path: Path):
    item = _volume_item(tmp_path, DATA / "example_mr_sm.nii.gz", "mr", "MR")
    rec = SegmentStage(_ctx(tmp_path, precomputed=[DATA])).process(item)
    assert isinstance(rec, SegmentRecord)
    assert rec.segmenter_version == "total_mr@2.18.0-snapshot"
    labels = _labels(tmp_path, rec)[0]
    assert np.array_equal(labels, _reference_lps(DATA / "example_seg_mr.nii.gz", "total_mr"))
    # total_mr's own lung classes keep their unified ids.
    mr_map = schema().ts_maps["total_mr"]
    assert schema().lut("total_mr")[[k for k, v in mr_map.items() if v == "liver"][0]] == 5


# --- classical ----------------------------------------------------------------------------


def test_classical_lungs_agree_with_totalsegmentator():
    img = nib.load(DATA / "example_ct_sm.nii.gz")
    hu, affine = to_canonical(np.asarray(img.dataobj), img.affine)
    labels = classical.segment_ct(hu, affine)
    reference = _reference_lps(DATA / "example_seg.nii.gz", "total")
    s = schema()
    for side in ("left", "right"):
        lobes = np.isin(reference, [s.by_name[n].id for n in s.members(f"lung_{side}")])
        assert _dice(labels == s.by_name[f"lung_{side}"].id, lobes) >= 0.9, side
    body = labels > 0
    assert body.sum() > 0.2 * body.size
    assert (hu[~body] < -500).mean() > 0.95  # outside the body is air
    bone = labels == s.by_name["bone"].id
    skeleton = np.isin(reference, [c.id for c in s.classes if c.parent in ("bone", "vertebrae")])
    assert (bone & skeleton).sum() / bone.sum() > 0.7  # what is called bone mostly is bone
    with pytest.raises(ValueError):
        classical.segment_ct(hu, img.affine)  # not canonical


def test_classical_sides_follow_the_patient(tmp_path: Path):
    """Mirror the patient left-right: the lungs swap labels."""
    img = nib.load(DATA / "example_ct_sm.nii.gz")
    hu, affine = to_canonical(np.asarray(img.dataobj), img.affine)
    s = schema()
    left, right = s.by_name["lung_left"].id, s.by_name["lung_right"].id
    labels = classical.segment_ct(hu, affine)
    mirrored = classical.segment_ct(np.ascontiguousarray(hu[::-1]), affine)[::-1]
    assert np.array_equal(labels == left, mirrored == right)
    assert np.array_equal(labels == right, mirrored == left)


# --- stage --------------------------------------------------------------------------------


def test_backend_selection_and_drops(tmp_path: Path):
    ct = _volume_item(tmp_path, DATA / "example_ct_sm.nii.gz", "ct", "CT")
    mr = _volume_item(tmp_path, DATA / "example_mr_sm.nii.gz", "mr", "MR")
    empty = tmp_path / "nothing"
    empty.mkdir()

    auto = SegmentStage(_ctx(tmp_path, precomputed=[empty]))
    rec = auto.process(ct)
    assert rec.segmenter == "classical" and rec.segmenter_version == "classical-1"
    ids = schema().by_name
    assert {ids[n].id for n in ("body", "bone", "lung_left", "lung_right")} == set(rec.classes)
    assert auto.process(mr) == Drop("no_segmentation_for_mr")

    only_pre = SegmentStage(_ctx(tmp_path, backend="precomputed", precomputed=[empty]))
    assert only_pre.process(ct).reason == "no_precomputed_match"
    only_classical = SegmentStage(_ctx(tmp_path, backend="classical", precomputed=[DATA]))
    assert only_classical.process(ct).segmenter == "classical"
    assert only_classical.process(mr) == Drop("no_segmentation_for_mr")
    ts = SegmentStage(_ctx(tmp_path, backend="totalsegmentator"))
    with pytest.raises(totalseg.TotalSegError):  # the node's problem: transient, retried
        ts.process(ct)

    # Two different label maps on the volume's grid: never guess.
    twins = tmp_path / "twins"
    twins.mkdir()
    seg = nib.load(DATA / "example_seg.nii.gz")
    data = np.asarray(seg.dataobj)
    nib.save(nib.Nifti1Image(data, seg.affine), twins / "a.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros_like(data), seg.affine), twins / "b.nii.gz")
    strict = SegmentStage(_ctx(tmp_path, backend="precomputed", precomputed=[twins]))
    assert strict.process(ct).reason == "ambiguous_precomputed"
    assert SegmentStage(_ctx(tmp_path, precomputed=[twins])).process(ct).segmenter == "classical"
    # ... unless one is named after the series.
    shutil.move(twins / "a.nii.gz", twins / "seg_ct.nii.gz")
    named = SegmentStage(_ctx(tmp_path, backend="precomputed", precomputed=[twins]))
    assert named.process(ct).segmenter == "precomputed:totalsegmentator"


def test_plan_fingerprint_tracks_precomputed_files(tmp_path: Path):
    item = _volume_item(tmp_path, DATA / "example_ct_sm.nii.gz", "ct", "CT")
    ledger = Ledger(tmp_path / "volume")
    ledger.write_manifest({"ct": "fpV"}, "1", "cfg")
    digest = ledger.mark_ok("ct", "fpV", [item.payload])
    folder = tmp_path / "pre"
    folder.mkdir()
    stage = SegmentStage(_ctx(tmp_path, precomputed=[folder]))
    first = stage.plan()
    assert [w.id for w in first] == ["ct"]
    shutil.copy(DATA / "example_seg.nii.gz", folder / "seg.nii.gz")
    second = stage.plan()
    assert second[0].input_fingerprint != first[0].input_fingerprint
    classical_only = SegmentStage(_ctx(tmp_path, backend="classical"))
    assert classical_only.plan()[0].input_fingerprint == digest  # the volume's output hash


def test_classical_labels_fall_back_to_wide_ints_and_count_like_bincount():
    """Components are stored as uint16 when they fit; beyond 65,535 scipy's int32 is used,
    and the slab-wise counts and lookups equal numpy's whole-volume answers."""
    rng = np.random.default_rng(3)
    few = rng.random((70, 40, 9)) > 0.7
    many = np.zeros((300, 300, 6), bool)
    many[::2, ::2, ::2] = True  # 135,000 isolated voxels
    for mask, dtype in ((few, np.uint16), (many, np.int32)):
        labels, n = classical._label(mask)
        assert labels.dtype == dtype
        reference, n_ref = ndimage.label(mask, structure=classical._STRUCT_3D)
        assert n == n_ref and np.array_equal(labels, reference)
        sizes = classical._label_sizes(labels, n)
        assert np.array_equal(sizes, np.bincount(reference.ravel(), minlength=n + 1))
        values = rng.normal(size=mask.shape)
        below = classical._label_sizes(labels, n, below=(values, 0.0))
        expected = np.bincount(reference[values < 0.0], minlength=n + 1)
        assert np.array_equal(below, expected)
        keep = sizes > 2
        assert np.array_equal(classical._keep_labels(labels, keep), keep[reference])
