"""De-identification of synthetic CT series filled with PHI markers at every depth."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from refrad_builder.deid.pseudo import date_shift_days, uid_from
from refrad_builder.deid.series import SeriesIds, deidentify_series
from refrad_builder.engine.config import DeidConfig
from refrad_builder.engine.stage import Drop

SECRET = b"test-secret-0123456789abcdef"
IDS = SeriesIds(patient_id="pat0pseudo", study_id="stu0pseudo", series_id="ser0pseudo")
MARK = b"PHIMARK"

ORIG = {
    "study": "1.2.826.0.1.3680043.8.498.11111",
    "series": "1.2.826.0.1.3680043.8.498.22222",
    "frame": "1.2.826.0.1.3680043.8.498.33333",
    "sop_a": "1.2.826.0.1.3680043.8.498.44441",
    "sop_b": "1.2.826.0.1.3680043.8.498.44442",
    "nested": "1.2.826.0.1.3680043.8.498.55555",
    "mpps": "1.2.826.0.1.3680043.8.498.66666",
    "irradiation": "1.2.826.0.1.3680043.8.498.77777",
}
BIRTH = "19431117"
STUDY_DATE = "20190304"
ACQ_DATE = "20190306"


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _person_item(n: int) -> Dataset:
    """An item full of PHI at whatever depth it is placed."""
    item = Dataset()
    item.OperatorsName = f"PHIMARK{n}OP^ANNA"
    item.EvaluatorName = f"PHIMARK{n}EVAL"  # a PN the table does not list
    item.PatientName = f"PHIMARK{n}PAT^X"
    item.InstitutionName = f"PHIMARK{n}INST"
    item.StudyDate = STUDY_DATE
    item.ReferencedSOPInstanceUID = ORIG["nested"]
    item.ReferencedSOPClassUID = CTImageStorage
    return item


def make_ct(sop_uid: str, instance: int, *, refers_to: str | None = None) -> Dataset:
    """A CT image data set with PHI markers in names, IDs, dates, addresses, sequences,
    private tags (incl. a private sequence), overlays and curves."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "PHIMARKAE"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = STUDY_DATE
    ds.SeriesDate = STUDY_DATE
    ds.AcquisitionDate = ACQ_DATE
    ds.ContentDate = ACQ_DATE
    ds.AcquisitionDateTime = ACQ_DATE + "101112.5"
    ds.StudyTime = "101010"
    ds.AcquisitionTime = "101112"
    ds.AccessionNumber = "PHIMARKACC"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.InstitutionName = "PHIMARK Hospital"
    ds.InstitutionAddress = "PHIMARK Street 1, Basel"
    ds.InstitutionalDepartmentName = "PHIMARK Radiology"
    ds.ReferringPhysicianName = "PHIMARKREF^DOC"
    ds.ReferringPhysicianTelephoneNumbers = "PHIMARK 0611"
    ds.StationName = "PHIMARKSTN"
    ds.StationAETitle = "PHIMARKSTAE"
    ds.StudyDescription = "PHIMARK study"
    ds.SeriesDescription = "PHIMARK series"
    ds.PhysiciansOfRecord = "PHIMARKREC^DOC"
    ds.PerformingPhysicianName = "PHIMARKPERF^DOC"
    ds.NameOfPhysiciansReadingStudy = "PHIMARKREAD^DOC"
    ds.OperatorsName = "PHIMARKOPER^TOR"
    ds.ImageComments = "PHIMARK comment"
    ds.PatientName = "PHIMARKLAST^FIRST"
    ds.PatientID = "PHIMARKPID"
    ds.IssuerOfPatientID = "PHIMARKISSUER"
    ds.PatientBirthDate = BIRTH
    ds.PatientBirthTime = "0730"
    ds.PatientSex = "F"
    ds.PatientAge = "075Y"
    ds.PatientWeight = "61"
    ds.PatientSize = "1.68"
    ds.PatientAddress = "PHIMARK Lane 7"
    ds.PatientTelephoneNumbers = "PHIMARK 555"
    ds.OtherPatientIDs = "PHIMARKOID"
    ds.OtherPatientNames = "PHIMARKOTHER^NAME"
    ds.PatientMotherBirthName = "PHIMARKMOTHER"
    ds.MedicalRecordLocator = "PHIMARKMRL"
    ds.AdditionalPatientHistory = "PHIMARK history"
    ds.PatientComments = "PHIMARK patient comment"
    other = Dataset()
    other.PatientID = "PHIMARKOPID2"
    other.IssuerOfPatientID = "PHIMARKISS2"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.ContrastBolusAgent = "PHIMARK Contrast"
    ds.BodyPartExamined = "CHEST"
    ds.DeviceSerialNumber = "PHIMARKSN"
    ds.ProtocolName = "PHIMARK protocol"
    ds.StudyInstanceUID = ORIG["study"]
    ds.SeriesInstanceUID = ORIG["series"]
    ds.FrameOfReferenceUID = ORIG["frame"]
    ds.IrradiationEventUID = ORIG["irradiation"]
    ds.StudyID = "PHIMARKSID"
    ds.SeriesNumber = 3
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0, 0, float(instance)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]

    request = Dataset()
    request.RequestedProcedureID = "PHIMARKRPID"
    request.ScheduledProcedureStepID = "PHIMARKSPSID"
    request.RequestedProcedureDescription = "PHIMARK request"
    ds.RequestAttributesSequence = Sequence([request])
    pps = Dataset()
    pps.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    pps.ReferencedSOPInstanceUID = ORIG["mpps"]
    ds.ReferencedPerformedProcedureStepSequence = Sequence([pps])

    # A PN three sequences deep inside attributes the table keeps (code sequences).
    level3 = _person_item(3)
    level2 = _code("111", "level two")
    level2.EquivalentCodeSequence = Sequence([level3])
    level1 = _code("222", "level one")
    level1.ConceptNameCodeSequence = Sequence([level2, _person_item(2)])
    ds.ProcedureCodeSequence = Sequence([level1])

    if refers_to:
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = refers_to
        ds.ReferencedImageSequence = Sequence([ref])

    block = ds.private_block(0x0009, "PHIMARK CREATOR", create=True)
    block.add_new(0x01, "LO", "PHIMARK private text")
    block.add_new(0x02, "UI", ORIG["study"])
    priv_item = Dataset()
    priv_item.PatientName = "PHIMARKPRIVSEQ^NAME"
    block.add_new(0x03, "SQ", Sequence([priv_item]))

    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"PHIMARKOVERLAY!!")
    ds.add_new(0x60004000, "LT", "PHIMARK overlay comment")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50003000, "OB", b"PHIMARKCURVE")

    ds.Rows = 4
    ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.PixelData = bytes(range(32))
    return ds


def _write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _run(sources: list[Path], options: DeidConfig | None = None, secret: bytes = SECRET):
    out: dict[int, bytes] = {}
    result = deidentify_series(
        sources,
        secret=secret,
        ids=IDS,
        options=options or DeidConfig(),
        sink=lambda i, data: out.__setitem__(i, data),
    )
    return result, out


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


@pytest.fixture
def pair(tmp_path: Path) -> list[Path]:
    """Two files of one series; A references B in its Referenced Image Sequence."""
    a = _write(make_ct(ORIG["sop_a"], 1, refers_to=ORIG["sop_b"]), tmp_path / "a.dcm")
    b = _write(make_ct(ORIG["sop_b"], 2), tmp_path / "b.dcm")
    return [a, b]


def test_markers_and_original_uids_gone_from_bytes(pair: list[Path]) -> None:
    raw_in = pair[0].read_bytes()
    assert MARK in raw_in and ORIG["nested"].encode() in raw_in  # the fixture really has PHI
    result, out = _run(pair)
    assert not isinstance(result, Drop)
    assert result.written == [0, 1]
    for data in out.values():
        assert MARK not in data
        assert BIRTH.encode() not in data
        for uid in ORIG.values():
            assert uid.encode() not in data


def test_no_private_overlay_or_curve_elements_remain(pair: list[Path]) -> None:
    _, out = _run(pair)
    for data in out.values():
        ds = _read(data)
        groups = {elem.tag.group for elem in ds.iterall()}
        assert not [g for g in groups if g % 2 == 1]
        assert not [g for g in groups if g & 0xFF00 in (0x5000, 0x6000)]
        for keyword in (
            "OtherPatientIDsSequence",
            "RequestAttributesSequence",
            "ReferencedPerformedProcedureStepSequence",
            "InstitutionName",
            "InstitutionAddress",
            "OperatorsName",
            "ReferringPhysicianTelephoneNumbers",
            "StationAETitle",
            "IssuerOfPatientID",
            "PatientBirthTime",
            "StudyDescription",
        ):
            assert keyword not in ds, keyword


def test_nested_names_removed_or_emptied_at_depth_three(pair: list[Path]) -> None:
    _, out = _run(pair)
    ds = _read(out[0])
    level1 = ds.ProcedureCodeSequence[0]
    assert level1.CodeMeaning == "level one"  # kept sequences survive, cleaned
    level2, person2 = level1.ConceptNameCodeSequence
    level3 = level2.EquivalentCodeSequence[0]
    for item in (person2, level3):
        assert "OperatorsName" not in item
        assert "EvaluatorName" not in item  # unlisted PN: removed by the catch-all
        assert "InstitutionName" not in item
        assert str(item.PatientName) == ""  # Z at any depth; only the top level is set
        assert UID(item.ReferencedSOPInstanceUID).is_valid
        assert item.ReferencedSOPInstanceUID == uid_from(SECRET, ORIG["nested"])
        assert item.ReferencedSOPClassUID == CTImageStorage


def test_uids_keyed_valid_consistent_and_references_preserved(pair: list[Path]) -> None:
    _, out = _run(pair)
    a, b = _read(out[0]), _read(out[1])
    for ds in (a, b):
        for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
            value = ds[keyword].value
            assert value.startswith("2.25.") and UID(value).is_valid
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage == ds.SOPClassUID
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.ImplementationClassUID.startswith("2.25.")
        assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.StudyInstanceUID == b.StudyInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID != ORIG["frame"]
    assert a.ReferencedImageSequence[0].ReferencedSOPInstanceUID == b.SOPInstanceUID
    assert a.SOPInstanceUID == uid_from(SECRET, ORIG["sop_a"])


def test_uids_deterministic_per_key(pair: list[Path]) -> None:
    _, first = _run(pair)
    _, again = _run(pair)
    _, other = _run(pair, secret=b"another-secret-0123456789")
    for i in (0, 1):
        one, two, three = _read(first[i]), _read(again[i]), _read(other[i])
        assert one.SOPInstanceUID == two.SOPInstanceUID
        assert one.StudyInstanceUID == two.StudyInstanceUID
        assert one.SOPInstanceUID != three.SOPInstanceUID
        assert one.StudyInstanceUID != three.StudyInstanceUID
    assert first == again  # byte-identical output for the same key


def _d(value: str) -> dt.date:
    return dt.datetime.strptime(value, "%Y%m%d").date()


def test_dates_shifted_consistently_and_birth_date_gone(pair: list[Path]) -> None:
    result, out = _run(pair)
    ds = _read(out[0])
    shift = date_shift_days(SECRET, IDS.patient_id, DeidConfig().date_shift_max_days)
    assert shift < 0
    assert ds.StudyDate == (_d(STUDY_DATE) + dt.timedelta(days=shift)).strftime("%Y%m%d")
    assert (_d(ds.AcquisitionDate) - _d(ds.StudyDate)).days == 2
    assert ds.ContentDate == ds.AcquisitionDate
    assert ds.AcquisitionDateTime == ds.AcquisitionDate + "101112.5"
    assert ds.StudyTime == "101010"  # times kept with longitudinal information
    assert ds.PatientBirthDate == ""
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    nested = ds.ProcedureCodeSequence[0].ConceptNameCodeSequence[1]
    assert nested.StudyDate == ds.StudyDate
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113108"]
    assert all(i.CodingSchemeDesignator == "DCM" for i in ds.DeidentificationMethodCodeSequence)
    assert ds.PatientIdentityRemoved == "YES"
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)
    assert "refrad_builder" in ds.DeidentificationMethod[0]


def test_identity_and_characteristics(pair: list[Path]) -> None:
    result, out = _run(pair)
    ds = _read(out[0])
    assert str(ds.PatientName) == IDS.patient_id
    assert ds.PatientID == IDS.patient_id
    assert ds.StudyID == "" and ds.AccessionNumber == ""
    assert (ds.PatientSex, ds.PatientAge, ds.PatientWeight) == ("F", "075Y", 61)
    assert ds.BodyPartExamined == "CHEST"
    assert ds.ContrastBolusAgent == ""  # Z: free text
    assert ds.DeviceSerialNumber == "ANON"  # D: Type 1 in Enhanced General Equipment
    assert ds.PixelData == bytes(range(32))
    assert (result.sex, result.age_years, result.body_part, result.contrast) == (
        "F",
        75,
        "CHEST",
        True,
    )


def test_age_computed_from_birth_date_when_absent(tmp_path: Path) -> None:
    ds = make_ct(ORIG["sop_a"], 1)
    del ds.PatientAge
    result, out = _run([_write(ds, tmp_path / "a.dcm")])
    assert result.age_years == 75  # 1943-11-17 to 2019-03-04
    assert "PatientAge" not in _read(out[0])


def test_options_off_replace_dates_and_characteristics(pair: list[Path]) -> None:
    options = DeidConfig(retain_longitudinal_dates=False, retain_patient_characteristics=False)
    result, out = _run(pair, options)
    ds = _read(out[0])
    assert ds.StudyDate == ""  # Z
    assert ds.StudyTime == ""  # Z
    assert "AcquisitionDate" not in ds and "SeriesDate" not in ds  # X/Z, X/D -> X
    assert ds.ContentDate == "19000101"  # Z/D -> D (Type 1 in enhanced IODs)
    assert ds.AcquisitionDateTime == "19000101000000"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.PatientSex == ""
    for keyword in ("PatientAge", "PatientWeight", "PatientSize"):
        assert keyword not in ds
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert (result.sex, result.age_years) == (None, None)
    for data in out.values():
        assert STUDY_DATE.encode() not in data and ACQ_DATE.encode() not in data


def test_full_dates_when_shift_disabled(pair: list[Path]) -> None:
    _, out = _run(pair, DeidConfig(date_shift_max_days=0))
    ds = _read(out[0])
    assert ds.StudyDate == STUDY_DATE
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence][1] == "113106"


@pytest.mark.parametrize("variant", ["flag", "secondary", "sc_class"])
def test_burned_in_series_dropped(tmp_path: Path, variant: str) -> None:
    ds = make_ct(ORIG["sop_b"], 2)
    if variant == "flag":
        ds.BurnedInAnnotation = "YES"
    elif variant == "secondary":
        ds.ImageType = ["DERIVED", "SECONDARY"]
    else:
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    clean = _write(make_ct(ORIG["sop_a"], 1), tmp_path / "a.dcm")
    flagged = _write(ds, tmp_path / "b.dcm")
    result, out = _run([clean, flagged])
    assert isinstance(result, Drop) and result.reason == "burned_in_annotation"
    assert result.detail.endswith("; ocr_off")
    assert out == {}  # nothing written before the drop
    kept, out = _run([clean, flagged], DeidConfig(drop_burned_in=False))
    assert kept.written == [0, 1] and MARK not in out[1]


def test_unreadable_files_skipped_then_series_dropped(tmp_path: Path) -> None:
    good = _write(make_ct(ORIG["sop_a"], 1), tmp_path / "a.dcm")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not dicom at all" * 10)
    result, out = _run([junk, good])
    assert result.written == [1] and result.skipped == {"unreadable_dicom": 1}
    assert list(out) == [1]
    result, out = _run([junk])
    assert result == Drop("unreadable_dicom", "unreadable_dicom=1") and out == {}


def _blank_uids(i: int, meta_uid: str | None) -> Dataset:
    ds = make_ct("", i)
    ds.StudyInstanceUID = ""
    ds.SeriesInstanceUID = ""
    ds.SOPClassUID = ""
    if meta_uid is None:
        del ds.file_meta.MediaStorageSOPInstanceUID
    else:
        ds.file_meta.MediaStorageSOPInstanceUID = meta_uid
    return ds


def _write_raw(ds: Dataset, path: Path) -> Path:
    ds.preamble = b"\x00" * 128
    pydicom.dcmwrite(path, ds, enforce_file_format=False)
    return path


def test_empty_uids_get_pseudonym_uids(tmp_path: Path) -> None:
    paths = [_write_raw(_blank_uids(i, None), tmp_path / f"{i}.dcm") for i in range(3)]
    result, out = _run(paths)
    assert result.written == [0, 1, 2]
    dss = [_read(out[i]) for i in range(3)]
    assert {d.StudyInstanceUID for d in dss} == {uid_from(SECRET, f"study:{IDS.study_id}")}
    assert {d.SeriesInstanceUID for d in dss} == {uid_from(SECRET, f"series:{IDS.series_id}")}
    assert [d.SOPInstanceUID for d in dss] == [
        uid_from(SECRET, f"sop:{IDS.series_id}:{i}") for i in range(3)
    ]
    assert all(d.SOPClassUID == CTImageStorage for d in dss)  # filled from the file meta
    assert all(d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID for d in dss)


def test_empty_sop_uid_falls_back_to_file_meta_uid(tmp_path: Path) -> None:
    metas = [f"1.2.826.0.1.3680043.8.498.900{i}" for i in range(2)]
    paths = [_write_raw(_blank_uids(i, m), tmp_path / f"{i}.dcm") for i, m in enumerate(metas)]
    result, out = _run(paths)
    dss = [_read(out[i]) for i in range(2)]
    assert [d.SOPInstanceUID for d in dss] == [uid_from(SECRET, m) for m in metas]
    for data in out.values():
        assert all(m.encode() not in data for m in metas)


def test_duplicate_sop_uids_get_distinct_uids(tmp_path: Path) -> None:
    paths = [_write(make_ct(ORIG["sop_a"], i), tmp_path / f"{i}.dcm") for i in range(2)]
    _, out = _run(paths)
    uids = [_read(out[i]).SOPInstanceUID for i in range(2)]
    assert uids == [uid_from(SECRET, f"sop:{IDS.series_id}:{i}") for i in range(2)]
