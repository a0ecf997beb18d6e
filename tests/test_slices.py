"""The slices stage: slice choice, stored 16-bit PNGs, windows, masks and boxes."""

from __future__ import annotations

import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.config import RunConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import SliceRecord, Window
from refrad_builder.engine.stage import Drop, StageContext, WorkItem
from refrad_builder.imaging.boxes import mask_extent
from refrad_builder.imaging.png import decode_png, encode_png
from refrad_builder.imaging.slicing import (
    ChosenSlice,
    body_slices,
    choose_slices,
    label_areas,
    referenced_indices,
)
from refrad_builder.imaging.windows import (
    apply_ct_windows,
    mr_percentile_scale,
    percentile_window,
    stored_to_display,
)
from refrad_builder.stages.slices import (
    SlicesStage,
    report_hints,
    slice_id,
    storage_params,
    to_stored,
)

DATA = Path(__file__).parent / "data"
LIVER = schema().by_name["liver"].id
SPLEEN = schema().by_name["spleen"].id


# --- helpers ------------------------------------------------------------------------------


def _canonical_affine(spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """voxel (i, j, k) -> RAS with i toward patient Left, j Posterior, k Superior."""
    return np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])


def _reorient_lps(img: nib.Nifti1Image) -> nib.Nifti1Image:
    target = axcodes2ornt(("L", "P", "S"))
    return img.as_reoriented(ornt_transform(io_orientation(img.affine), target))


def _records(work: Path, image, labels, affine, *, units="HU", series_number=3, series="ser01"):
    nib.save(nib.Nifti1Image(image, affine), work / f"{series}_vol.nii.gz")
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), work / f"{series}_seg.nii.gz")
    spacing = tuple(float(x) for x in nib.affines.voxel_sizes(affine))
    vol = {
        "series_id": series,
        "study_id": "study01",
        "patient_id": "pat01",
        "modality": "CT" if units == "HU" else "MR",
        "series_number": series_number,
        "nifti": f"{series}_vol.nii.gz",
        "shape": list(image.shape),
        "spacing": list(spacing),
        "affine": affine.tolist(),
        "instance_numbers": [100 + k for k in range(image.shape[2])],
        "units": units,
        "sex": "F",
        "age_years": 60,
        "body_part": "ABDOMEN",
        "contrast": True,
    }
    seg = {
        "series_id": series,
        "labels_nifti": f"{series}_seg.nii.gz",
        "segmenter": "precomputed",
        "segmenter_version": "test",
        "schema_version": schema().version,
        "classes": sorted(int(c) for c in np.unique(labels) if c),
    }
    return vol, seg


def _stage(work: Path, **slices_cfg) -> SlicesStage:
    cfg = RunConfig(work_dir=work, demo=True)
    for key, value in slices_cfg.items():
        setattr(cfg.slices, key, value)
    return SlicesStage(StageContext(cfg))


def _item(vol, seg, refs=(), mentioned=()) -> WorkItem:
    payload = {"volume": vol, "segment": seg, "refs": list(refs), "mentioned": list(mentioned)}
    return WorkItem(id=vol["series_id"], payload=payload, input_fingerprint="fp")


@pytest.fixture(scope="module")
def real_ct(tmp_path_factory):
    """The TotalSegmentator example CT and its `total` labels, reoriented to L, P, S."""
    work = tmp_path_factory.mktemp("real")
    ct = _reorient_lps(nib.load(DATA / "example_ct_sm.nii.gz"))
    seg = _reorient_lps(nib.load(DATA / "example_seg.nii.gz"))
    hu = np.asanyarray(ct.dataobj).astype(np.int16)
    labels = schema().lut("total")[np.asanyarray(seg.dataobj)]
    vol, segrec = _records(work, hu, labels, ct.affine)
    return work, hu, labels, vol, segrec


# --- PNG ----------------------------------------------------------------------------------


def _chunk_types(data: bytes) -> list[bytes]:
    types, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def test_png16_round_trip_is_lossless_and_gives_hu():
    rng = np.random.default_rng(1)
    hu = rng.integers(-1024, 3072, size=(37, 53)).astype(np.int16)
    hu[0, :4] = [-1024, -1, 0, 3071]
    slope, intercept = storage_params(hu[..., None], "HU")
    assert (slope, intercept) == (1.0, -1024.0)
    stored = to_stored(hu, slope, intercept)
    assert stored.dtype == np.uint16
    data = encode_png(stored)
    assert data[24] == 16  # IHDR bit depth
    back = decode_png(data)
    assert back.dtype == np.uint16 and back.shape == hu.shape
    np.testing.assert_array_equal(back, stored)
    np.testing.assert_array_equal(back.astype(np.int64) * slope + intercept, hu)


def test_png_bytes_are_deterministic_and_carry_no_metadata():
    rng = np.random.default_rng(2)
    arr16 = rng.integers(0, 65536, size=(20, 30)).astype(np.uint16)
    arr8 = rng.integers(0, 256, size=(20, 30)).astype(np.uint8)
    a = encode_png(arr16)
    assert a == encode_png(arr16.copy())
    assert a == encode_png(np.asfortranarray(arr16))
    assert a == encode_png(arr16.astype(">u2"))
    assert encode_png(arr8) == encode_png(arr8.copy())
    assert _chunk_types(a) == [b"IHDR", b"IDAT", b"IEND"]
    assert _chunk_types(encode_png(arr8)) == [b"IHDR", b"IDAT", b"IEND"]
    np.testing.assert_array_equal(decode_png(encode_png(arr8)), arr8)
    assert decode_png(encode_png(arr8)).dtype == np.uint8
    with pytest.raises(ValueError):
        encode_png(arr16.astype(np.int32))


# --- stored values and windows ------------------------------------------------------------


def test_ct_values_below_air_clip_to_minus_1024():
    stored = to_stored(np.array([[-3000.0, -1024.4, 40.6, 70000.0]]), 1.0, -1024.0)
    np.testing.assert_array_equal(stored, [[0, 0, 1065, 65535]])


def test_mr_storage_keeps_shifts_or_scales():
    fits = np.array([[[0], [800]], [[12], [65535]]], dtype=np.int32)
    assert storage_params(fits, "raw") == (1.0, 0.0)

    negative = np.array([[[-47], [833]], [[0], [5]]], dtype=np.int16)
    slope, intercept = storage_params(negative, "raw")
    assert (slope, intercept) == (1.0, -47.0)
    stored = to_stored(negative[:, :, 0], slope, intercept)
    np.testing.assert_array_equal(stored * slope + intercept, negative[:, :, 0])

    floats = np.linspace(0.0, 1.0, 24, dtype=np.float32).reshape(2, 3, 4)
    slope, intercept = storage_params(floats, "raw")
    assert intercept == 0.0 and slope == pytest.approx(1.0 / 65535)
    stored = to_stored(floats[:, :, 2], slope, intercept)
    assert stored.max() <= 65535
    np.testing.assert_allclose(stored * slope + intercept, floats[:, :, 2], atol=slope)

    wide = np.array([[[-40000.0], [40000.0]]])
    slope, intercept = storage_params(wide, "raw")
    stored = to_stored(wide[:, :, 0], slope, intercept)
    assert stored.min() == 0 and stored.max() == 65535


def test_ct_windows_are_clipped_linear_channels():
    hu = np.array([[-1500.0, -100.0 - 1125.0, -100.0 + 1125.0, 40.0, 3000.0]])
    windows = [
        Window(name="lung", center=-100, width=2250),
        {"name": "soft_tissue", "center": 40, "width": 350},
        Window(name="brain", center=40, width=80),
    ]
    out = apply_ct_windows(hu, windows)
    assert out.dtype == np.uint8 and out.shape == (1, 5, 3)
    # lung: (40 + 1225) / 2250 * 255 = 143.4
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 255, 143, 255])
    assert out[0, 3, 1] == 128 and out[0, 3, 2] == 128  # centre -> mid grey
    assert out[0, 0, 1] == 0 and out[0, 4, 2] == 255


def test_mr_percentile_scaling():
    rng = np.random.default_rng(3)
    img = rng.normal(400, 50, size=(64, 64))
    img[0, 0], img[0, 1] = -10_000, 10_000  # outliers beyond the percentiles
    out = mr_percentile_scale(img, 0.5, 99.5)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    p_lo, p_hi = np.percentile(img, [0.5, 99.5])
    center, width = percentile_window(img, 0.5, 99.5)
    assert center == pytest.approx((p_lo + p_hi) / 2) and width == pytest.approx(p_hi - p_lo)
    # Saturation only at the tails: about 1 % of pixels on the ends.
    assert np.mean((out == 0) | (out == 255)) < 0.02
    assert percentile_window(np.full((4, 4), 7.0)) == (7.5, 1.0)


def test_stored_to_display_ct_and_mr():
    stored = np.array([[0, 1024, 1064, 4095]], dtype=np.uint16)
    ct = {
        "units": "HU",
        "rescale_slope": 1.0,
        "rescale_intercept": -1024.0,
        "windows": [{"name": "brain", "center": 40, "width": 80}],
    }
    out = stored_to_display(stored, ct)
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 128, 255])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    mr = {"units": "raw", "rescale_slope": 1.0, "rescale_intercept": 0.0}
    mr["windows"] = [{"name": "percentile", "center": 1000, "width": 2000}]
    out = stored_to_display(stored, mr)
    np.testing.assert_array_equal(out[0, :, 1], [0, 131, 136, 255])


# --- slice choice -------------------------------------------------------------------------


def _areas_with(shape, blobs):
    """Label volume with square blobs: {class_id: {k: side}}."""
    labels = np.zeros(shape, dtype=np.uint8)
    for cid, per_k in blobs.items():
        for k, side in per_k.items():
            labels[:side, :side, k] = cid
    return label_areas(labels)


def test_referenced_indices_match_series_and_any():
    inst = [None, 11, 12, 13, 12]
    assert referenced_indices([(3, 12), (4, 11), (-1, 13), (3, 99)], 3, inst) == [2, 4, 3]
    assert referenced_indices([(3, 12), (-1, 11)], None, inst) == [1]


def test_choice_referenced_then_coverage_by_largest_area():
    s = schema()
    areas = _areas_with((20, 20, 30), {LIVER: {5: 10, 6: 12, 7: 8}, SPLEEN: {20: 6, 21: 9}})
    chosen = choose_slices(
        areas,
        instance_numbers=list(range(1, 31)),
        series_number=2,
        refs=[(2, 26), (9, 3)],
        schema=s,
        max_slices=3,
    )
    assert chosen == [
        ChosenSlice(6, ("coverage:liver",)),
        ChosenSlice(21, ("coverage:spleen",)),
        ChosenSlice(25, ("referenced",)),
    ]


def test_choice_cap_prefers_mentioned_classes_and_records_all_reasons():
    s = schema()
    # The liver is larger, but the spleen is mentioned, so it wins the single slot.
    areas = _areas_with((20, 20, 30), {LIVER: {5: 15}, SPLEEN: {20: 5}})
    one = choose_slices(areas, mentioned=["spleen"], schema=s, max_slices=1)
    assert one == [ChosenSlice(20, ("coverage:spleen",))]
    # Two classes largest on one slice: one slice, both reasons, no budget used twice.
    areas = _areas_with((20, 20, 30), {LIVER: {8: 10}, SPLEEN: {8: 4}})
    both = choose_slices(areas, schema=s, max_slices=1)
    assert both == [ChosenSlice(8, ("coverage:liver", "coverage:spleen"))]


def test_choice_mentioned_parent_uses_its_children():
    s = schema()
    lobe = s.by_name["lung_upper_lobe_left"].id
    areas = _areas_with((20, 20, 30), {lobe: {12: 9}, LIVER: {3: 15}})
    chosen = choose_slices(areas, mentioned=["lung_left", "not_a_class"], schema=s, max_slices=1)
    # The lobe is covered by its own name too; its best slice is already chosen.
    assert chosen == [ChosenSlice(12, ("coverage:lung_left", "coverage:lung_upper_lobe_left"))]


def test_choice_neighbors_specks_and_uniform_fill():
    s = schema()
    areas = _areas_with((20, 20, 40), {LIVER: {k: 10 for k in range(10, 31)} | {20: 12}})
    areas[2, SPLEEN] = 3  # a speck: below min_area, never a coverage target
    chosen = choose_slices(areas, schema=s, max_slices=6, coverage_neighbors=1, min_area=5)
    by_k = {c.index: c.reasons for c in chosen}
    assert by_k[20] == ("coverage:liver",)
    assert by_k[19] == by_k[21] == ("coverage_neighbor:liver",)
    uniform = sorted(k for k, r in by_k.items() if r == ("uniform",))
    assert len(chosen) == 6 and len(uniform) == 3
    # The fill stays in the slices holding labels (2..30) and keeps away from other picks.
    assert all(2 <= k <= 30 for k in uniform)
    for k in uniform:
        assert min(abs(k - other) for other in by_k if other != k) >= 4
    assert uniform == [5, 10, 26]
    assert [c.index for c in chosen] == sorted(by_k)


def test_choice_uniform_fill_without_labels_uses_body_and_empty_gives_nothing():
    s = schema()
    areas = np.zeros((50, 256), dtype=np.int64)
    body = np.zeros(50, dtype=bool)
    body[10:41] = True
    chosen = choose_slices(areas, body=body, schema=s, max_slices=3)
    assert [c.index for c in chosen] == [17, 25, 33]
    assert all(c.reasons == ("uniform",) for c in chosen)
    assert choose_slices(areas, schema=s, max_slices=3) == []
    assert choose_slices(areas, body=body, schema=s, max_slices=0) == []


def test_body_slices_ct_and_mr():
    ct = np.full((10, 10, 4), -1000.0)
    ct[2:8, 2:8, 1:3] = 30.0
    np.testing.assert_array_equal(body_slices(ct, "HU"), [False, True, True, False])
    mr = np.zeros((10, 10, 4))
    mr[3:7, 3:7, 2] = 500.0
    np.testing.assert_array_equal(body_slices(mr, "raw"), [False, False, True, False])
    assert not body_slices(np.zeros((4, 4, 3)), "raw").any()


def test_report_hints_order_and_dedup():
    report = {
        "study_id": "study01",
        "patient_id": "pat01",
        "language": "en",
        "scrubbed_text": "x",
        "sections": {},
        "sentences": [
            {
                "text": "a",
                "section": "findings",
                "mentions": [{"class": "liver", "abnormal": False, "span": [0, 5]}],
                "image_refs": [{"series": 3, "image": 57}],
            },
            {
                "text": "b",
                "section": "findings",
                "mentions": [
                    {"class": "kidney_left", "abnormal": True, "span": [0, 6]},
                    {"class": "liver", "abnormal": True, "span": [7, 12]},
                ],
                "image_refs": [{"series": 3, "image": 57}, {"series": -1, "image": 9}],
            },
        ],
    }
    refs, mentioned = report_hints(report)
    assert refs == [[3, 57], [-1, 9]]
    assert mentioned == ["kidney_left", "liver"]
    assert report_hints(None) == ([], [])


# --- the stage ----------------------------------------------------------------------------


def test_orientation_patient_left_is_image_right_and_anterior_is_top(tmp_path):
    shape = (40, 30, 6)
    hu = np.full(shape, -1000, dtype=np.int16)
    labels = np.zeros(shape, dtype=np.uint8)
    hu[5:35, 5:25, 2:4] = 20  # body, only on slices 2..3
    # Marker on patient LEFT (high i) and ANTERIOR (low j), slices 2..3.
    hu[28:34, 6:10, 2:4] = 1500
    labels[28:34, 6:10, 2:4] = LIVER
    vol, seg = _records(tmp_path, hu, labels, _canonical_affine((0.8, 0.6, 2.0)))
    recs = _stage(tmp_path, max_slices_per_series=2).process(_item(vol, seg))
    assert isinstance(recs, list) and [r.index for r in recs] == [2, 3]
    assert recs[0].reasons == ["coverage:liver"] and recs[1].reasons == ["uniform"]
    for rec in recs:
        assert (rec.width, rec.height) == (40, 30)  # columns along i, rows along j
        assert rec.pixel_spacing == (0.6, 0.8)
        img = decode_png((tmp_path / rec.image_png).read_bytes())
        hu_img = img.astype(np.int64) * rec.rescale_slope + rec.rescale_intercept
        rows, cols = np.nonzero(hu_img == 1500)
        # Patient left on the image's right half, anterior in the top rows.
        assert cols.min() == 28 and cols.max() == 33
        assert rows.min() == 6 and rows.max() == 9
        mask = decode_png((tmp_path / rec.mask_png).read_bytes())
        assert [b.bbox for b in rec.boxes] == [(28, 6, 34, 10)]
        assert mask_extent(mask, LIVER) == (28, 6, 34, 10)


def test_stage_on_real_ct_boxes_match_saved_masks(real_ct):
    work, hu, labels, vol, seg = real_ct
    stage = _stage(work)
    recs = stage.process(_item(vol, seg, refs=[[3, 104], [7, 110]], mentioned=["spleen"]))
    assert isinstance(recs, list)
    assert 1 <= len(recs) <= stage.cfg.max_slices_per_series
    by_k = {r.index: r for r in recs}
    assert [r.index for r in recs] == sorted(by_k)
    assert by_k[4].reasons[0] == "referenced" and by_k[4].instance_number == 104
    spleen_k = int(np.argmax((labels == SPLEEN).sum(axis=(0, 1))))
    assert "coverage:spleen" in by_k[spleen_k].reasons
    n_boxes = 0
    for rec in recs:
        SliceRecord.model_validate(rec.model_dump())
        assert rec.slice_id == slice_id("ser01", "axial", rec.index)
        assert rec.image_png == f"slices/blobs/{rec.slice_id}_image.png"
        assert (rec.width, rec.height) == (hu.shape[0], hu.shape[1])
        assert rec.pixel_spacing == (3.0, 3.0)
        assert [w.name for w in rec.windows] == ["lung", "soft_tissue", "brain"]
        assert (rec.segmenter, rec.sex, rec.age_years, rec.contrast) == (
            "precomputed",
            "F",
            60,
            True,
        )
        image = decode_png((work / rec.image_png).read_bytes())
        mask = decode_png((work / rec.mask_png).read_bytes())
        expected_hu = np.maximum(hu[:, :, rec.index].T, -1024)
        np.testing.assert_array_equal(
            image * rec.rescale_slope + rec.rescale_intercept, expected_hu
        )
        np.testing.assert_array_equal(mask, labels[:, :, rec.index].T)
        present = {int(c) for c in np.unique(mask) if c}
        kept = {c for c in present if np.count_nonzero(mask == c) >= stage.cfg.min_box_area_px}
        assert {b.class_id for b in rec.boxes} == kept
        for box in rec.boxes:
            assert box.bbox == mask_extent(mask, box.class_id)
            n_boxes += 1
    assert n_boxes > 20


def test_stage_output_is_deterministic(real_ct, tmp_path):
    work, _, _, vol, seg = real_ct
    first = _stage(work).process(_item(vol, seg))
    blobs = {r.image_png: (work / r.image_png).read_bytes() for r in first}
    blobs |= {r.mask_png: (work / r.mask_png).read_bytes() for r in first}
    second = _stage(work).process(_item(vol, seg))
    assert [r.model_dump() for r in first] == [r.model_dump() for r in second]
    for rel, data in blobs.items():
        assert (work / rel).read_bytes() == data


def test_stage_mr_percentile_window_and_shifted_storage(tmp_path):
    mr = _reorient_lps(nib.load(DATA / "example_mr_sm.nii.gz"))
    seg = _reorient_lps(nib.load(DATA / "example_seg_mr.nii.gz"))
    raw = np.asanyarray(mr.dataobj).astype(np.int16)
    labels = schema().lut("total_mr")[np.asanyarray(seg.dataobj)]
    vol, segrec = _records(tmp_path, raw, labels, mr.affine, units="raw")
    recs = _stage(tmp_path, max_slices_per_series=4).process(_item(vol, segrec))
    assert isinstance(recs, list) and len(recs) == 4
    for rec in recs:
        assert rec.units == "raw" and rec.rescale_slope == 1.0
        assert rec.rescale_intercept == float(raw.min())  # negative values: shifted, lossless
        stored = decode_png((tmp_path / rec.image_png).read_bytes())
        np.testing.assert_array_equal(
            stored * rec.rescale_slope + rec.rescale_intercept, raw[:, :, rec.index].T
        )
        (window,) = rec.windows
        assert window.name == "percentile"
        p_lo, p_hi = np.percentile(stored, [0.5, 99.5])
        assert window.center == pytest.approx((p_lo + p_hi) / 2)
        assert window.width == pytest.approx(max(p_hi - p_lo, 1.0))
        shown = stored_to_display(stored, rec)
        assert shown.shape == (rec.height, rec.width, 3)
        mask = decode_png((tmp_path / rec.mask_png).read_bytes())
        for box in rec.boxes:
            assert box.bbox == mask_extent(mask, box.class_id)


def test_stage_drops_empty_and_misaligned(tmp_path):
    shape = (12, 10, 5)
    empty = np.full(shape, -1024, dtype=np.int16)
    vol, seg = _records(tmp_path, empty, np.zeros(shape, np.uint8), _canonical_affine())
    out = _stage(tmp_path).process(_item(vol, seg))
    assert isinstance(out, Drop) and out.reason == "no_slices"

    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    vol, seg = _records(tmp_path, empty, np.zeros(shape, np.uint8), ras, series="ser02")
    out = _stage(tmp_path).process(_item(vol, seg))
    assert isinstance(out, Drop) and out.reason == "not_canonical"

    labels = np.zeros(shape, np.uint8)
    labels[0, 0, 0] = 250
    vol, seg = _records(tmp_path, empty, labels, _canonical_affine(), series="ser03")
    out = _stage(tmp_path).process(_item(vol, seg))
    assert isinstance(out, Drop) and out.reason == "unknown_labels"


def _mark(work: Path, stage: str, item_id: str, fp: str, records: list[dict]) -> None:
    ledger = Ledger(work / stage)
    ledger.mark_ok(item_id, fp, records)
    manifest = ledger.manifest() | {item_id: fp}
    ledger.write_manifest(manifest, "1", "cfg")


def _report(refs, mentions, text="x"):
    return {
        "study_id": "study01",
        "patient_id": "pat01",
        "language": "de",
        "scrubbed_text": text,
        "sections": {},
        "sentences": [
            {
                "text": text,
                "section": "Befund",
                "mentions": [{"class": m, "abnormal": True, "span": [0, 1]} for m in mentions],
                "image_refs": [{"series": s, "image": i} for s, i in refs],
            }
        ],
    }


def test_plan_joins_volume_segment_report_and_fingerprints_hints(real_ct, tmp_path):
    _, hu, labels, vol, seg = real_ct
    other = dict(vol, series_id="ser09")  # a volume without a segmentation: no item
    _mark(tmp_path, "volume", "ser01", "vfp", [vol])
    _mark(tmp_path, "volume", "ser09", "vfp9", [other])
    _mark(tmp_path, "segment", "ser01", "sfp", [seg])
    stage = _stage(tmp_path)
    (no_report,) = stage.plan()
    assert no_report.id == "ser01" and no_report.payload["refs"] == []

    _mark(tmp_path, "report", "study01", "rfp", [_report([(3, 104)], ["liver"])])
    (item,) = stage.plan()
    assert item.payload["refs"] == [[3, 104]] and item.payload["mentioned"] == ["liver"]
    assert item.input_fingerprint != no_report.input_fingerprint

    # Same hints, different wording: the images need no redo.
    _mark(tmp_path, "report", "study01", "rfp2", [_report([(3, 104)], ["liver"], "y")])
    assert stage.plan()[0].input_fingerprint == item.input_fingerprint
    _mark(tmp_path, "report", "study01", "rfp3", [_report([(3, 105)], ["liver"])])
    assert stage.plan()[0].input_fingerprint != item.input_fingerprint


def test_outputs_present_tracks_blobs(real_ct):
    work, _, _, vol, seg = real_ct
    stage = _stage(work)
    item = _item(vol, seg)
    recs = stage.process(item)
    Ledger(stage.out_dir).mark_ok(item.id, "fp", [r.model_dump(mode="json") for r in recs])
    assert stage.outputs_present(item)
    (work / recs[0].mask_png).unlink()
    assert not stage.outputs_present(item)
