"""The de-identification options: Clean Descriptors, the Clean Pixel Data policy with its
optional OCR check, method codes, and the optional mapping table kept outside the outputs."""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from refrad_builder.deid import mapping, ocr
from refrad_builder.deid import series as series_mod
from refrad_builder.deid.series import (
    SeriesIds,
    burned_in_reason,
    deidentify_series,
    descriptor_cleaner,
)
from refrad_builder.engine.config import DeidConfig, InputsConfig, RunConfig
from refrad_builder.engine.stage import Drop, StageContext
from refrad_builder.inputs.dicom_header import known_phi
from refrad_builder.stages.deid import STAGE

SECRET = b"options-secret-0123456789abcdef"
IDS = SeriesIds(patient_id="patopt", study_id="stuopt", series_id="seropt")


def _ct(path: Path, **values: object) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7001"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.7001"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.7002"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.7003"
    ds.Modality = "CT"
    ds.PatientName = "Brunnhuber^Walburga"
    ds.PatientID = "PID778899"
    ds.AccessionNumber = "ACC445566"
    ds.InstitutionName = "Kantonsspital Ennetbaden"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = b"\x00\x01" * 4
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def _run(paths: list[Path], options: DeidConfig):
    out: dict[int, bytes] = {}
    result = deidentify_series(paths, secret=SECRET, ids=IDS, options=options, sink=out.__setitem__)
    return result, {i: pydicom.dcmread(io.BytesIO(b)) for i, b in out.items()}


# --- Clean Descriptors ----------------------------------------------------------------------


def test_descriptor_cleaner_keeps_only_clean_text(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_ct(tmp_path / "a.dcm"))
    clean = descriptor_cleaner(SECRET, known_phi(SECRET, ds))
    assert clean("CT Thorax mit KM")
    assert clean("Abdomen 5mm axial")
    assert not clean("Thorax Brunnhuber")  # the patient's name from the header
    assert not clean("Verlauf 12.03.2019")  # a digit date
    assert not clean("Befund 20190312")
    assert not clean("per Dr. Keller")  # a salutation name
    assert not clean("ACC445566 CT")  # the accession number


def test_clean_descriptors_option(tmp_path: Path) -> None:
    path = _ct(
        tmp_path / "a.dcm",
        SeriesDescription="Thorax 1.5 B70f",
        StudyDescription="CT Brunnhuber Thorax",
        ImageComments="Verlauf 12.03.2019",
        ProtocolName="Abdomen Routine",
    )
    _, off = _run([path], DeidConfig())
    for keyword in ("SeriesDescription", "StudyDescription", "ImageComments", "ProtocolName"):
        assert keyword not in off[0], keyword
    result, on = _run([path], DeidConfig(clean_descriptors=True))
    ds = on[0]
    assert ds.SeriesDescription == "Thorax 1.5 B70f"
    assert ds.ProtocolName == "Abdomen Routine"
    assert "StudyDescription" not in ds and "ImageComments" not in ds
    assert "113105" in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    assert result.stats["descriptors_kept"] == 2 and result.stats["descriptors_removed"] == 2


# --- Clean Pixel Data policy ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"BurnedInAnnotation": "YES"}, "flagged"),
        ({"ImageType": ["DERIVED", "SECONDARY"]}, "secondary_capture"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "SCREEN SAVE"]}, "screen_save"),
        ({"ImageType": ["DERIVED", "PRIMARY", "LOCALIZER"]}, "derived_localizer"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, None),
        ({"BurnedInAnnotation": "NO"}, None),
    ],
)
def test_burned_in_reasons(values: dict, reason: str | None) -> None:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    assert burned_in_reason(ds) == reason


def test_ocr_check_keeps_only_what_ocr_reads_as_textless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _ct(tmp_path / "a.dcm", BurnedInAnnotation="YES")
    result, _ = _run([path], DeidConfig())
    assert result == Drop("burned_in_annotation", "flagged; ocr_off")

    monkeypatch.setattr(ocr, "available", lambda: False)
    result, _ = _run([path], DeidConfig(ocr_check=True))
    assert result == Drop("burned_in_annotation", "flagged; ocr_unavailable")

    monkeypatch.setattr(ocr, "available", lambda: True)
    monkeypatch.setattr(ocr, "_ocr", lambda image: "PATIENT 1943")
    result, _ = _run([path], DeidConfig(ocr_check=True))
    assert result == Drop("burned_in_annotation", "flagged; ocr_found_text_or_failed")

    monkeypatch.setattr(ocr, "_ocr", lambda image: " \n")
    result, out = _run([path], DeidConfig(ocr_check=True))
    assert result.written == [0] and out[0].PixelData == b"\x00\x01" * 4
    assert "OCR" in " ".join(out[0].DeidentificationMethod)


def test_ocr_unknown_when_pixels_cannot_be_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "available", lambda: True)
    assert ocr.shows_text(Dataset()) is None


def test_ocr_availability_is_a_plain_probe() -> None:
    assert isinstance(ocr.available(), bool)


# --- UIDs -----------------------------------------------------------------------------------


def test_empty_frame_of_reference_gets_a_deterministic_uid(tmp_path: Path) -> None:
    path = _ct(tmp_path / "a.dcm", FrameOfReferenceUID="")
    _, out = _run([path], DeidConfig())
    _, again = _run([path], DeidConfig())
    assert out[0].FrameOfReferenceUID.startswith("2.25.")
    assert out[0].FrameOfReferenceUID == again[0].FrameOfReferenceUID


# --- mapping table --------------------------------------------------------------------------


def test_mapping_rows_only_when_asked(tmp_path: Path) -> None:
    path = _ct(tmp_path / "a.dcm")
    result, _ = _run([path], DeidConfig())
    assert result.mapping == []
    result, out = _run([path], DeidConfig(mapping_table=tmp_path / "private" / "map.csv"))
    rows = {kind: (orig, pseudo) for kind, orig, pseudo in result.mapping}
    assert rows["patient_id"] == ("PID778899", IDS.patient_id)
    assert rows["accession_number"] == ("ACC445566", IDS.study_id)
    assert rows["study_instance_uid"] == ("1.2.826.0.1.3680043.8.498.7002", out[0].StudyInstanceUID)
    assert "mapping" not in repr(result)  # never printed with the result


def test_mapping_table_location_is_refused_inside_the_run_folders(tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    for bad in (work / "map.csv", out / "x" / "map.csv", work):
        with pytest.raises(mapping.MappingLocationError, match="outside"):
            mapping.check_location(bad, work, out)
    assert mapping.check_location(tmp_path / "keys" / "map.csv", work, out)


def test_mapping_files_are_owner_only_and_merged(tmp_path: Path) -> None:
    table = tmp_path / "keys" / "map.csv"
    mapping.write_part(table, "s1", [("patient_id", "PID1", "p1"), ("patient_id", "PID1", "p1")])
    mapping.write_part(table, "s2", [("patient_id", "PID2", "p2")])
    mapping.write_part(table, "s2", [("patient_id", "PID2", "p2")])  # a rerun overwrites
    assert mapping.merge(table) == 2
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    parts = mapping.parts_dir(table)
    assert stat.S_IMODE(parts.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in parts.iterdir())
    rows = list(csv.reader(table.open()))
    assert rows == [
        ["kind", "original", "pseudonym"],
        ["patient_id", "PID1", "p1"],
        ["patient_id", "PID2", "p2"],
    ]


def test_stage_refuses_a_mapping_table_in_the_work_dir(tmp_path: Path) -> None:
    cfg = RunConfig(
        work_dir=tmp_path / "work",
        out_dir=tmp_path / "out",
        demo=True,
        inputs=InputsConfig(dicom=[tmp_path]),
        deid=DeidConfig(mapping_table=tmp_path / "work" / "map.csv"),
    )
    with pytest.raises(mapping.MappingLocationError, match="work_dir"):
        STAGE(StageContext(cfg, _secret=SECRET)).plan()


def test_method_codes_follow_the_options() -> None:
    codes = lambda opts, shift: [c.CodeValue for c in series_mod.method_codes(opts, shift)]  # noqa: E731
    assert codes(DeidConfig(), -5) == ["113100", "113107", "113108"]
    assert codes(DeidConfig(retain_patient_characteristics=False), None) == ["113100"]
    assert codes(DeidConfig(clean_descriptors=True, retain_safe_private=True), 0) == [
        "113100",
        "113106",
        "113108",
        "113105",
        "113111",
    ]
    for opts in (DeidConfig(), DeidConfig(clean_descriptors=True, ocr_check=True)):
        values = series_mod.method_description(opts, -3, "2024b")
        assert "(2024b)" in values[0] and all(len(v) <= 64 for v in values)
