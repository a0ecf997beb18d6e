"""The demo data maker: layout, decodable DICOM, phantom truth, geometry, PHI, reports."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import json
import re

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from refrad_builder.anatomy.labels import schema
from refrad_builder.demo import make_demo
from refrad_builder.demo.dicom_series import NESTED_PRIVATE_CREATOR, PRIVATE_CREATOR
from refrad_builder.demo.real_ct import _source
from refrad_builder.engine.config import load_config

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
REF_PATTERNS = (
    re.compile(r"Se (\d+)/Bi (\d+)"),
    re.compile(r"series (\d+), image (\d+)"),
    re.compile(r"\(Bild (\d+)\)"),
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("demo") / "out", studies=4, seed=7)


@pytest.fixture(scope="module")
def series(demo):
    """study folder -> (datasets sorted by z ascending, with pixels)."""
    out = {}
    for study in demo.studies:
        folder = demo.dicom_dir / study.study_folder / study.series_folder
        dss = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
        out[study.study_folder] = sorted(dss, key=lambda d: float(d.ImagePositionPatient[2]))
    return out


def _reports(demo) -> list[dict[str, str]]:
    with demo.reports_csv.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _lps_affine(dss) -> np.ndarray:
    """Voxel (column, row, slice) -> LPS mm, from the headers alone."""
    first, last = dss[0], dss[-1]
    iop = np.array(first.ImageOrientationPatient, dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    dr, dc = (float(v) for v in first.PixelSpacing)  # row spacing, column spacing
    p0 = np.array(first.ImagePositionPatient, dtype=float)
    pn = np.array(last.ImagePositionPatient, dtype=float)
    aff = np.eye(4)
    aff[:3, 0] = row_dir * dc
    aff[:3, 1] = col_dir * dr
    aff[:3, 2] = (pn - p0) / (len(dss) - 1)
    aff[:3, 3] = p0
    return aff


def _hu_volume(dss) -> np.ndarray:
    """(columns, rows, slices) float volume after the modality LUT."""
    vol = np.stack([d.pixel_array.astype(float) for d in dss], axis=-1).transpose(1, 0, 2)
    slope = float(dss[0].get("RescaleSlope", 1))
    return vol * slope + float(dss[0].get("RescaleIntercept", 0))


def _seg(study):
    img = nib.load(study.segmentation)
    names = schema().ts_maps[study.task]
    return img, np.asarray(img.dataobj), {v: k for k, v in names.items()}


def test_layout(demo):
    root = demo.root
    assert sorted(p.name for p in root.iterdir()) == [
        "config.yaml",
        "dicom",
        "planted_phi.json",
        "reports.csv",
        "segmentations",
    ]
    folders = [s.study_folder for s in demo.studies]
    assert folders == ["study_001", "study_002", "study_003", "study_004", "real_ct"]
    assert [(s.modality, s.language) for s in demo.studies[:4]] == [
        ("CT", "de"),
        ("MR", "en"),
        ("CT", "en"),
        ("MR", "de"),
    ]
    assert sorted(p.name for p in (root / "dicom").iterdir()) == sorted(folders)
    for study in demo.studies:
        files = sorted((root / "dicom" / study.study_folder / study.series_folder).iterdir())
        assert files and all(re.fullmatch(r"\d{4}\.dcm", f.name) for f in files)
        assert study.segmentation.parent == root / "segmentations"
        assert study.segmentation.is_file()
    assert (root / "segmentations" / "real_ct_total.nii.gz").is_file()
    assert len(list((root / "dicom" / "real_ct" / "series_1").glob("*.dcm"))) == 20

    rows = _reports(demo)
    assert list(rows[0]) == [
        "accession_number",
        "study_instance_uid",
        "study_folder",
        "language",
        "report",
    ]
    assert [r["study_folder"] for r in rows] == folders
    real = rows[-1]
    assert (real["accession_number"], real["study_instance_uid"], real["language"]) == (
        "",
        "",
        "de",
    )
    for row, study in zip(rows[:4], demo.studies[:4], strict=True):
        assert row["accession_number"] == study.accession_number
        assert row["study_instance_uid"] == study.study_instance_uid


def test_every_dicom_decodes(demo, series):
    syntaxes = set()
    for study in demo.studies:
        dss = series[study.study_folder]
        for ds in dss:
            arr = ds.pixel_array
            assert arr.shape == (ds.Rows, ds.Columns)
            syntaxes.add(ds.file_meta.TransferSyntaxUID)
        if not study.real:
            assert [d.SeriesNumber for d in dss] == [study.series_number] * len(dss)
            assert len({d.InstanceNumber for d in dss}) == len(dss)
            assert all(d.PhotometricInterpretation == "MONOCHROME2" for d in dss)
            assert all(d.BitsAllocated == 16 and d.PatientPosition == "HFS" for d in dss)
            assert 24 <= len(dss) <= 32
    assert {ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless} <= syntaxes
    rle = [
        s
        for s in demo.studies
        if series[s.study_folder][0].file_meta.TransferSyntaxUID == RLELossless
    ]
    assert [s.modality for s in rle] == ["CT"]


def test_real_ct_bytes_unchanged(demo):
    def digests(paths):
        return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths)

    src = _source()
    copied = sorted((demo.dicom_dir / "real_ct" / "series_1").glob("*.dcm"))
    assert digests(copied) == digests(p for p in (src / "dicom").iterdir() if p.is_file())
    numbers = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in copied]
    assert numbers == sorted(numbers) and numbers[0] == 267
    seg = demo.segmentations_dir / "real_ct_total.nii.gz"
    assert seg.read_bytes() == (src / "example_seg_dicom.nii.gz").read_bytes()


def test_ct_values_match_phantom_masks(demo, series):
    expected = {  # class name -> (lowest, highest) median HU
        "lung_lower_lobe_left": (-900, -800),
        "lung_lower_lobe_right": (-900, -800),
        "liver": (40, 80),
        "spleen": (35, 65),
        "kidney_left": (15, 45),
        "kidney_right": (15, 45),
        "aorta": (170, 230),
        "heart": (100, 160),
        "vertebrae_T12": (350, 1000),
        "stomach": (10, 45),
    }
    checked = 0
    for study in (s for s in demo.studies if s.modality == "CT" and not s.real):
        hu = _hu_volume(series[study.study_folder])
        _, labels, ids = _seg(study)
        assert labels.shape == hu.shape
        for name, (lo, hi) in expected.items():
            values = hu[labels == ids[name]]
            assert values.size > 20, name
            assert lo <= np.median(values) <= hi, name
            checked += 1
        # The masks are the phantom's own: no voxel at an organ edge leaks in from a neighbour.
        lungs = np.isin(labels, [ids[n] for n in ids if n.startswith("lung_")])
        assert hu[lungs].max() < -700
        bone = np.isin(labels, [ids[n] for n in ids if n.startswith("vertebrae_")])
        assert hu[bone].min() > 250
        assert hu[labels == ids["aorta"]].min() > 120
        assert np.median(hu[:2, :2, :]) < -950  # air in the corners
    assert checked == 2 * len(expected)


def test_mr_has_organ_contrast(demo, series):
    for study in (s for s in demo.studies if s.modality == "MR"):
        vol = _hu_volume(series[study.study_folder])
        _, labels, ids = _seg(study)
        liver = np.median(vol[labels == ids["liver"]])
        spleen = np.median(vol[labels == ids["spleen"]])
        lung = np.median(vol[labels == ids["lung_left"]])
        assert spleen > liver + 100 and lung < liver / 4


def test_segmentation_geometry_and_classes(demo, series):
    ct_expected = {
        "liver", "spleen", "kidney_left", "kidney_right", "aorta", "stomach", "heart",
        "lung_lower_lobe_left", "lung_upper_lobe_left", "lung_lower_lobe_right",
        "vertebrae_T11", "vertebrae_T12", "vertebrae_L1",
    }  # fmt: skip
    mr_expected = {
        "liver", "spleen", "kidney_left", "kidney_right", "aorta", "stomach", "heart",
        "lung_left", "lung_right", "vertebrae", "intervertebral_discs",
    }  # fmt: skip
    for study in demo.studies:
        dss = series[study.study_folder]
        img, labels, ids = _seg(study)
        names = schema().ts_maps[study.task]
        present = {names[int(v)] for v in np.unique(labels) if v}
        lps = _lps_affine(dss)
        if study.real:
            # TotalSegmentator's own output may flip axes: compare the voxel-centre corners.
            shape = (dss[0].Columns, dss[0].Rows, len(dss))
            corners = np.array(list(itertools.product(*[(0, n - 1) for n in shape] + [(1,)])))
            dicom = {tuple(np.round((LPS_TO_RAS @ lps @ c)[:3], 3)) for c in corners}
            nifti = {tuple(np.round((img.affine @ c)[:3], 3)) for c in corners}
            assert labels.shape == shape and dicom == nifti
            assert {"liver", "spleen", "stomach", "aorta", "vertebrae_T12"} <= present
            continue
        assert labels.shape == (dss[0].Columns, dss[0].Rows, len(dss))
        np.testing.assert_allclose(img.affine, LPS_TO_RAS @ lps, atol=1e-3)
        assert present >= (ct_expected if study.modality == "CT" else mr_expected)
        assert set(ids) >= present


def _centroid_lps_x(labels: np.ndarray, class_id: int, lps: np.ndarray) -> float:
    idx = np.argwhere(labels == class_id)
    return float((lps @ np.c_[idx, np.ones(len(idx))].T)[0].mean())


def test_liver_on_patient_right(demo, series):
    for study in demo.studies:
        img, labels, ids = _seg(study)
        lps = _lps_affine(series[study.study_folder]) if not study.real else LPS_TO_RAS @ img.affine
        liver = _centroid_lps_x(labels, ids["liver"], lps)
        spleen = _centroid_lps_x(labels, ids["spleen"], lps)
        assert liver < -20 < 20 < spleen, study.study_folder


def test_planted_phi(demo, series):
    listed = json.loads(demo.planted_phi_path.read_text(encoding="utf-8"))
    assert listed == sorted(listed) == list(demo.planted_phi)
    assert all(len(s) >= 6 for s in listed)
    blob = demo.reports_csv.read_bytes() + b"".join(
        p.read_bytes() for p in demo.dicom_dir.rglob("*.dcm")
    )
    missing = [s for s in listed if s.encode("utf-8") not in blob]
    assert not missing
    paths = "\n".join(str(p.relative_to(demo.root)) for p in demo.root.rglob("*"))
    assert not [s for s in listed if s in paths]
    assert len(listed) >= 60

    rows = {r["study_folder"]: r for r in _reports(demo)}
    for study in (s for s in demo.studies if not s.real):
        ds = series[study.study_folder][0]
        family, given = str(ds.PatientName.family_name), str(ds.PatientName.given_name)
        birth = ds.PatientBirthDate
        report = rows[study.study_folder]["report"]
        written = (
            f"{birth[6:]}.{birth[4:6]}.{birth[:4]}"
            if study.language == "de"
            else f"{birth[4:6]}/{birth[6:]}/{birth[:4]}"
        )
        for value in (
            family,
            given,
            birth,
            written,
            ds.PatientID,
            ds.AccessionNumber,
            ds.InstitutionName,
        ):
            assert value in listed
        for value in (family, written, ds.PatientID, ds.AccessionNumber, ds.InstitutionName):
            assert value in report
        assert str(ds.ReferringPhysicianName.family_name) in report
        assert family in ds.StudyDescription and family in ds.ImageComments
        assert ds.PatientSex in ("M", "F") and re.fullmatch(r"\d{3}Y", ds.PatientAge)
        assert ds.PatientSex not in listed and ds.PatientAge not in listed
        # PHI two sequence levels down, standard and private.
        code = ds.ReferringPhysicianIdentificationSequence[0].PersonIdentificationCodeSequence[0]
        assert str(ds.ReferringPhysicianName.family_name) in code.CodeMeaning
        issuer = ds.RequestAttributesSequence[0].IssuerOfAccessionNumberSequence[0]
        assert issuer.LocalNamespaceEntityID == ds.InstitutionName
        block = ds.private_block(0x0033, PRIVATE_CREATOR)
        assert family in block[0x10].value and block[0x11].value in listed
        nested = block[0x20].value[0]
        assert nested.OtherPatientIDsSequence[0].PatientID == block[0x11].value
        assert "Zuweiser" in nested.private_block(0x0035, NESTED_PRIVATE_CREATOR)[0x10].value


def test_reports_language_sections_and_key_images(demo, series):
    rows = {r["study_folder"]: r for r in _reports(demo)}
    for study in demo.studies:
        report = rows[study.study_folder]["report"]
        assert rows[study.study_folder]["language"] == study.language
        if study.language == "de":
            for head in ("Klinische Angaben:", "Fragestellung:", "Befund:", "Beurteilung:"):
                assert head in report
            assert re.search(r"\d,\d cm", report) and "Keine freie Flüssigkeit" in report
        else:
            for head in ("Clinical information:", "Indication:", "Findings:", "Impression:"):
                assert head in report
            assert re.search(r"\d\.\d cm", report) and "No free fluid" in report
        if not study.real:
            salutations = ("Herr ", "Frau ") if study.language == "de" else ("Mr ", "Mrs ")
            assert any(s in report for s in salutations)

        refs = [m.groups() for pattern in REF_PATTERNS for m in pattern.finditer(report)]
        assert len(refs) == len(study.key_images) >= 1
        written = sorted((None if len(g) == 1 else int(g[0]), int(g[-1])) for g in refs)
        assert written == sorted((k.series, k.image) for k in study.key_images)

        dss = series[study.study_folder]
        img, labels, ids = _seg(study)
        inverse = np.linalg.inv(img.affine)
        by_number = {int(d.InstanceNumber): d for d in dss}
        for key in study.key_images:
            assert key.series == (None if study.real else dss[0].SeriesNumber)
            ds = by_number[key.image]
            ras = LPS_TO_RAS @ np.r_[np.array(ds.ImagePositionPatient, dtype=float), 1.0]
            k = int(round((inverse @ ras)[2]))
            assert (labels[:, :, k] == ids[key.organ]).any(), (study.study_folder, key)


def test_laterality_and_negations(demo):
    text = "\n".join(r["report"] for r in _reports(demo))
    assert re.search(r"Niere (links|rechts)|(left|right) kidney", text)
    assert re.search(
        r"Milz unauffällig|Milz normal groß|spleen is unremarkable|Normal-sized spleen|Milz vergrößert|spleen is enlarged",
        text,
    )
    assert "Kein Pleuraerguss" in text and "no pleural effusion" in text.lower()


def test_config_loads(demo):
    cfg = load_config(demo.config_path)
    assert cfg.demo is True
    assert cfg.inputs.dicom == [demo.dicom_dir] and demo.dicom_dir.is_absolute()
    assert cfg.inputs.reports == [demo.reports_csv]
    assert cfg.segment.precomputed == [demo.segmentations_dir]


def test_deterministic(demo, tmp_path):
    again = make_demo(tmp_path / "again", studies=4, seed=7)
    first = sorted(p.relative_to(demo.root) for p in demo.root.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again.root) for p in again.root.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        a, b = (demo.root / rel).read_bytes(), (again.root / rel).read_bytes()
        if rel.name == "config.yaml":
            b = b.replace(str(again.root).encode(), str(demo.root).encode())
        assert a == b, rel
    other = make_demo(tmp_path / "other", studies=4, seed=8, include_real=False)
    assert set(other.planted_phi) != set(demo.planted_phi)
    assert not (other.dicom_dir / "real_ct").exists()


def test_rerun_replaces_demo_and_refuses_foreign_folder(tmp_path):
    out = tmp_path / "d"
    make_demo(out, studies=3, include_real=False)
    make_demo(out, studies=1, include_real=False)
    assert sorted(p.name for p in (out / "dicom").iterdir()) == ["study_001"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        make_demo(tmp_path / "mine", studies=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_many_studies_have_distinct_patients(tmp_path):
    demo = make_demo(tmp_path / "many", studies=9, seed=1, include_real=False)
    heads = [
        pydicom.dcmread(
            next((demo.dicom_dir / s.study_folder).rglob("*.dcm")), stop_before_pixels=True
        )
        for s in demo.studies
    ]
    assert len({str(h.PatientName) for h in heads}) == len({h.PatientID for h in heads}) == 9
    assert len({h.StudyInstanceUID for h in heads}) == len({h.AccessionNumber for h in heads}) == 9
    # A date shift of up to a year must never turn one patient's birth date into another's.
    births = sorted(dt.datetime.strptime(h.PatientBirthDate, "%Y%m%d") for h in heads)
    assert min((b - a).days for a, b in itertools.pairwise(births)) > 365
    only_real = make_demo(tmp_path / "real", studies=0)
    assert [s.study_folder for s in only_real.studies] == ["real_ct"]
