"""De-identification of the bundled real Siemens CT series and of pydicom's test files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UID, JPEG2000Lossless

from refrad_builder.deid.pseudo import uid_from
from refrad_builder.deid.series import SeriesIds, deidentify_series, read_source
from refrad_builder.engine.config import DeidConfig
from refrad_builder.engine.stage import Drop

REAL_CT = Path(__file__).resolve().parents[1] / "refrad_builder/demo/data/real_ct/dicom"
SECRET = b"real-series-secret-0123456789"
IDS = SeriesIds(patient_id="patreal", study_id="stureal", series_id="serreal")


def _run(sources: list[Path], options: DeidConfig | None = None):
    out: dict[int, bytes] = {}
    result = deidentify_series(
        sources,
        secret=SECRET,
        ids=IDS,
        options=options or DeidConfig(),
        sink=lambda i, data: out.__setitem__(i, data),
    )
    return result, out


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _assert_invariants(original: Dataset, ds: Dataset, data: bytes) -> None:
    assert ds.PixelData == original.PixelData
    assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        assert ds[keyword].value.startswith("2.25.") and UID(ds[keyword].value).is_valid
    assert not [e.tag for e in ds.iterall() if e.tag.group % 2 == 1]
    assert not [e.tag for e in ds.iterall() if e.tag.group & 0xFF00 in (0x5000, 0x6000)]
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.PatientName) == IDS.patient_id and ds.PatientID == IDS.patient_id
    for keyword in ("InstitutionName", "InstitutionAddress", "StationName", "OperatorsName"):
        assert keyword not in ds
    for keyword in ("PatientName", "PatientID", "OtherPatientIDs", "ReferringPhysicianName"):
        value = str(original.get(keyword, "") or "").strip()
        if len(value) >= 4:
            assert value.encode() not in data, keyword
    for elem in original.iterall():
        if elem.VR == "UI" and elem.keyword in ("SOPInstanceUID", "FrameOfReferenceUID"):
            if elem.value:
                assert str(elem.value).encode() not in data


@pytest.fixture(scope="module")
def real_run():
    sources = sorted(REAL_CT.iterdir())
    assert len(sources) == 20
    return sources, *_run(sources)


def test_real_series_deidentifies_all_files(real_run) -> None:
    sources, result, out = real_run
    assert not isinstance(result, Drop)
    assert result.written == list(range(20)) and result.skipped == {}
    assert (result.body_part, result.contrast) == ("PARTIALBODY", True)
    dss = [_read(out[i]) for i in range(20)]
    assert len({d.SOPInstanceUID for d in dss}) == 20
    assert len({d.SeriesInstanceUID for d in dss}) == 1
    assert len({d.StudyInstanceUID for d in dss}) == 1
    # The originals have empty data-set UIDs; the series/study UIDs come from the pseudonyms.
    assert dss[0].SeriesInstanceUID == uid_from(SECRET, f"series:{IDS.series_id}")
    assert dss[0].StudyInstanceUID == uid_from(SECRET, f"study:{IDS.study_id}")
    assert all(d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" for d in dss)
    # The data set's SOP Instance UID is empty; the file meta's original one is remapped.
    meta_uid = pydicom.dcmread(sources[0], stop_before_pixels=True).file_meta[0x00020003].value
    assert dss[0].SOPInstanceUID == uid_from(SECRET, meta_uid)


def test_real_series_pixels_untouched_and_decodable(real_run) -> None:
    sources, _, out = real_run
    for i in (0, 7, 19):
        original = read_source(sources[i])
        ds = _read(out[i])
        _assert_invariants(original, ds, out[i])
        assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless
        assert np.array_equal(ds.pixel_array, original.pixel_array)
        assert ds.pixel_array.shape == (512, 512)


def test_real_series_drops_site_and_private_data(real_run) -> None:
    sources, _, out = real_run
    for data in out.values():
        assert b"Petersgraben" not in data  # InstitutionAddress
        assert b"PETCT2" not in data  # StationName
        assert b"SIEMENS CT VA1 DUMMY" not in data  # a private creator
        assert b"QR_SNOWFOX" not in data  # the original file meta's AE title
        assert b"1.3.12.2.1107.5.1.4.60064" not in data  # original instance UIDs
    first = _read(out[0])
    original = read_source(sources[0])
    shifted, kept = first.StudyDate, original.StudyDate
    assert shifted != kept and len(shifted) == 8
    assert first.AcquisitionDateTime[8:] == original.AcquisitionDateTime[8:]


# MR_small and JPEG2000 are DERIVED/SECONDARY or secondary captures: dropped by default.
TESTDATA = [
    ("CT_small.dcm", True),
    ("MR_small.dcm", False),
    ("JPEG2000.dcm", False),
    ("MR_small_RLE.dcm", False),
    ("MR_small_bigendian.dcm", False),
    ("image_dfl.dcm", False),
    ("examples_overlay.dcm", False),
    ("liver_1frame.dcm", True),
]


@pytest.mark.parametrize(("name", "kept_by_default"), TESTDATA)
def test_pydicom_testdata_invariants(name: str, kept_by_default: bool) -> None:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not bundled with this pydicom")
    path = Path(path)
    result, out = _run([path])
    assert isinstance(result, Drop) != kept_by_default
    if not kept_by_default:
        assert result.reason == "burned_in_annotation"
        result, out = _run([path], DeidConfig(drop_burned_in=False))
    assert result.written == [0]
    original = read_source(path)
    ds = _read(out[0])
    _assert_invariants(original, ds, out[0])
    if original.get("PatientBirthDate"):
        assert original.PatientBirthDate.encode() not in out[0]
    if original.get("StudyDate"):
        assert ds.StudyDate != original.StudyDate
    assert ds.pixel_array.shape == original.pixel_array.shape
    if name == "examples_overlay.dcm":
        assert any(e.tag.group == 0x6000 for e in original)  # overlays were there
