"""The element-level rules: UID remap, date shifts, catch-alls for unlisted elements."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, JPEG2000Lossless

from refrad_builder.deid.actions import ActionContext, apply_actions, remap_uid, shift_dt
from refrad_builder.deid.profile import load_profile
from refrad_builder.deid.pseudo import uid_from
from refrad_builder.deid.series import SeriesIds, age_years, deidentify_series
from refrad_builder.engine.config import DeidConfig
from refrad_builder.engine.stage import Drop

SECRET = b"actions-secret-0123456789"


def _ctx(date_shift: int | None = -10, chars: bool = True) -> ActionContext:
    return ActionContext(
        profile=load_profile(),
        secret=SECRET,
        date_shift=date_shift,
        retain_patient_characteristics=chars,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20190304", "20190222"),
        ("20190304101112.5+0100", "20190222101112.5+0100"),
        ("201903", "201902"),
        ("2019", "2018"),
        ("19", ""),
        ("garbage", ""),
    ],
)
def test_shift_dt(value: str, expected: str) -> None:
    assert shift_dt(value, -10 if len(value) != 4 else -1) == expected


def test_well_known_uids_are_kept_and_instance_uids_remapped() -> None:
    assert remap_uid(SECRET, CTImageStorage) == CTImageStorage
    assert remap_uid(SECRET, JPEG2000Lossless) == JPEG2000Lossless
    assert remap_uid(SECRET, "") == ""
    assert remap_uid(SECRET, "1.2.3.4") == uid_from(SECRET, "1.2.3.4")


def test_unlisted_elements_follow_the_catch_alls() -> None:
    ds = Dataset()
    ds.add_new(0x00080000, "UL", 42)  # group length
    ds.add_new(0x00091001, "LO", "private")
    ds.add_new(0x00221234, "LO", "unknown public")  # even group, not in the dictionary
    ds.add_new(0x00080054, "AE", "RETRIEVEAE")  # RetrieveAETitle (table X)
    ds.add_new(0x00181010, "LO", "SECCAPDEV")  # SecondaryCaptureDeviceID: unlisted LO, kept
    ds.SecondaryReviewerName = "REVIEWER^X"  # unlisted PN
    ds.DestinationAE = "SOMEAE"  # D in the 2024b table: a dummy
    ds.ReferencedFileID = "SOMEFILE"  # unlisted CS: kept
    ds.RetrieveURL = "https://pacs.example/wado?studyUID=1.2.3.4"  # unlisted UR
    ds.FailedSOPInstanceUIDList = ["1.2.3.1", "1.2.3.2"]  # multi-valued UI
    ds.RelatedGeneralSOPClassUID = ["1.2.3.9"]  # a class UID: kept even if unregistered
    ds.ContrastBolusStartTime = "101010"
    ds.DateOfLastCalibration = "20190304"
    ds.PatientSex = "M"
    item = Dataset()
    item.PatientBirthDate = "19500101"
    ds.AnatomicRegionSequence = Sequence([item])
    ctx = _ctx()
    apply_actions(ds, ctx)
    assert sorted(e.keyword for e in ds) == sorted(
        [
            "AnatomicRegionSequence",
            "ContrastBolusStartTime",
            "DateOfLastCalibration",
            "DestinationAE",
            "FailedSOPInstanceUIDList",
            "ReferencedFileID",
            "PatientSex",
            "RelatedGeneralSOPClassUID",
            "SecondaryCaptureDeviceID",
        ]
    )
    assert list(ds.FailedSOPInstanceUIDList) == [
        uid_from(SECRET, "1.2.3.1"),
        uid_from(SECRET, "1.2.3.2"),
    ]
    assert ds.RelatedGeneralSOPClassUID == "1.2.3.9"
    assert ds.DestinationAE == "ANON"
    assert ds.DateOfLastCalibration == "20190222"
    assert ds.ContrastBolusStartTime == "101010"
    assert ds.AnatomicRegionSequence[0].PatientBirthDate == ""  # never shifted-kept
    assert ctx.stats["private_removed"] == 1 and ctx.stats["unknown_public_removed"] == 1


def test_dates_without_longitudinal_option() -> None:
    ds = Dataset()
    ds.DateOfLastCalibration = "20190304"  # table X
    ds.ContrastBolusStartTime = "101010"  # X in the 2024b table
    ds.ScheduledProcedureStepStartDate = "20190304"  # X
    ds.TimeOfLastDetectorCalibration = "101010"  # X/D -> X
    ds.ExpiryDate = "20190304"  # unlisted DA -> dummy
    ds.InstanceCreationDate = "20190304"  # X/D -> X
    ds.VerificationDateTime = "20190304101010"  # D
    apply_actions(ds, _ctx(date_shift=None))
    for keyword in (
        "DateOfLastCalibration",
        "InstanceCreationDate",
        "ContrastBolusStartTime",
        "ScheduledProcedureStepStartDate",
        "TimeOfLastDetectorCalibration",
    ):
        assert keyword not in ds, keyword
    assert ds.ExpiryDate == "19000101"
    assert ds.VerificationDateTime == "19000101000000"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    ("age", "birth", "study", "expected"),
    [
        ("063Y", "", "", 63),
        ("018M", "", "", 1),
        ("010D", "", "", 0),
        ("", "19500615", "20200614", 69),
        ("", "19500615", "20200615", 70),
        ("", "", "20200615", None),
        ("bad", "notadate", "20200615", None),
    ],
)
def test_age_years(age: str, birth: str, study: str, expected: int | None) -> None:
    ds = Dataset()
    ds.PatientAge = age
    ds.PatientBirthDate = birth
    ds.StudyDate = study
    assert age_years(ds) == expected


def _add_pixels(ds: Dataset) -> None:
    ds.Rows = ds.Columns = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = b"\x00\x00"


def test_encode_failure_is_a_skip_and_logs_no_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from refrad_builder.deid import series as series_mod

    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.Modality = "CT"
    ds.PatientName = "SECRETNAME^X"
    _add_pixels(ds)
    path = tmp_path / "a.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)

    def boom(_ds):
        raise ValueError("cannot encode SECRETNAME^X")

    monkeypatch.setattr(series_mod, "encode", boom)
    caplog.set_level(logging.DEBUG)
    result = deidentify_series(
        [path],
        secret=SECRET,
        ids=SeriesIds("p", "s", "r"),
        options=DeidConfig(),
        sink=lambda i, d: None,
    )
    assert result == Drop("unencodable_dicom", "unencodable_dicom=1")
    assert "SECRETNAME" not in caplog.text and str(tmp_path) not in caplog.text
    assert "ValueError" in caplog.text


def test_raw_data_set_without_preamble_is_read(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.6"
    ds.Modality = "CT"
    _add_pixels(ds)
    path = tmp_path / "raw.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)  # no preamble, no file meta
    out: dict[int, bytes] = {}
    result = deidentify_series(
        [path],
        secret=SECRET,
        ids=SeriesIds("p", "s", "r"),
        options=DeidConfig(),
        sink=out.__setitem__,
    )
    assert result.written == [0]
    assert out[0][128:132] == b"DICM"


def test_command_group_and_file_meta_elements_in_a_data_set() -> None:
    ds = Dataset()
    ds.add_new(0x00001000, "UI", "1.2.3.4.5.1")  # Affected SOP Instance UID: X
    ds.add_new(0x00001001, "UI", "1.2.3.4.5.2")  # Requested SOP Instance UID: U
    ds.add_new(0x00020003, "UI", "1.2.3.4.5.3")  # file meta inside a data set: rebuilt
    ds.add_new(0x60020022, "LO", "OVERLAY DESCRIPTION")  # overlay plane, not only data
    ds.add_new(0x50000005, "US", 1)
    apply_actions(ds, _ctx())
    assert [e.tag for e in ds] == [0x00001001]
    assert ds[0x00001001].value == uid_from(SECRET, "1.2.3.4.5.2")


def test_sequences_by_code_at_depth() -> None:
    inner = Dataset()
    inner.PersonName = "DEEP^NAME"  # D
    inner.ReferencedSOPInstanceUID = "1.2.3.4.9"
    mid = Dataset()
    mid.ContentSequence = Sequence([inner])  # D on a sequence: emptied
    mid.ReferencedImageSequence = Sequence([inner.copy()])  # U*: kept, UIDs remapped
    top = Dataset()
    top.ProcedureCodeSequence = Sequence([mid])  # unlisted: kept, recursed
    top.AcquisitionContextSequence = Sequence([inner.copy()])  # X/Z -> Z (Type 2)
    top.OtherPatientIDsSequence = Sequence([inner.copy()])  # X
    apply_actions(top, _ctx())
    mid = top.ProcedureCodeSequence[0]
    assert len(mid.ContentSequence) == 0
    ref = mid.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == uid_from(SECRET, "1.2.3.4.9")
    assert str(ref.PersonName) == "ANON"
    assert len(top.AcquisitionContextSequence) == 0
    assert "OtherPatientIDsSequence" not in top
