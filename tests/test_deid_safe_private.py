"""Retain Safe Private (PS3.15 E.3.10): only Table E.3.10-1's elements survive, with their
creator; options that would do nothing are refused."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from refrad_builder.deid.safe_private import load_safe_private
from refrad_builder.deid.series import CODE_SAFE_PRIVATE, SeriesIds, deidentify_series
from refrad_builder.engine.config import DeidConfig, load_config

SECRET = b"safe-private-secret-0123456789ab"
IDS = SeriesIds(patient_id="patsp", study_id="stusp", series_id="sersp")
ANALYSED_UID = "1.2.826.0.1.3680043.8.498.99017"


def _ct(path: Path) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.9001"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.9001"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.9002"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.9003"
    ds.Modality = "CT"
    ds.PatientName = "Zwicknagl^Hermine"
    ds.PatientID = "PID5550123"
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = b"\x00\x01" * 4
    # GE acquisition block at 0019,10xx: two safe elements, one unsafe, one with a wrong VR
    acq = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    acq.add_new(0x23, "DS", "39.375")  # table speed: safe
    acq.add_new(0x27, "DS", "0.5")  # rotation speed: safe
    acq.add_new(0x9C, "LO", "Zwicknagl protocol")  # not in the table: goes
    acq.add_new(0x24, "LO", "Zwicknagl wrong VR")  # listed as DS: goes
    # a block of unsafe elements only (0043,10xx): goes entirely, creator included
    parm = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    parm.add_new(0x30, "SS", 7)
    # an unknown creator at the element numbers of a safe block: goes
    other = ds.private_block(0x0045, "ACME_SECRET_01", create=True)
    other.add_new(0x01, "SS", 3)
    # a listed UID: kept, remapped
    nq = ds.private_block(0x0099, "NQHeader", create=True)
    nq.add_new(0x02, "UI", ANALYSED_UID)
    ds.save_as(path, enforce_file_format=True)
    return path


def _run(path: Path, options: DeidConfig) -> Dataset:
    out: dict[int, bytes] = {}
    result = deidentify_series(
        [path], secret=SECRET, ids=IDS, options=options, sink=out.__setitem__
    )
    assert not hasattr(result, "reason"), result
    return pydicom.dcmread(io.BytesIO(out[0]))


def _private(ds: Dataset) -> dict[int, object]:
    return {int(e.tag): e.value for e in ds if e.tag.is_private}


def test_table_loads_with_creator_element_and_vr() -> None:
    table = load_safe_private()
    assert table.vr_for("GEMS_ACQU_01", 0x0019, 0x23) == "DS"
    assert table.vr_for("GEMS_ACQU_01", 0x0019, 0x9C) is None
    assert table.vr_for("SIEMENS MR HEADER", 0x0019, 0x0C) == "IS"
    assert len(table.rows) > 100


def test_safe_private_keeps_only_listed_elements_and_their_creator(tmp_path: Path) -> None:
    ds = _run(_ct(tmp_path / "a.dcm"), DeidConfig(retain_safe_private=True))
    private = _private(ds)
    assert private[0x00190010] == "GEMS_ACQU_01"
    assert float(private[0x00191023]) == pytest.approx(39.375)
    assert float(private[0x00191027]) == pytest.approx(0.5)
    for gone in (0x0019109C, 0x00191024, 0x00430010, 0x00431030, 0x00450010, 0x00451001):
        assert gone not in private, hex(gone)
    assert private[0x00990010] == "NQHeader"
    assert str(private[0x00991002]).startswith("2.25.")
    assert private[0x00991002] != ANALYSED_UID
    assert b"Zwicknagl" not in ds.to_json().encode()
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert CODE_SAFE_PRIVATE[0] in codes
    assert any("E.3.10-1" in v for v in ds.DeidentificationMethod)


def test_without_the_option_every_private_goes(tmp_path: Path) -> None:
    ds = _run(_ct(tmp_path / "a.dcm"), DeidConfig())
    assert _private(ds) == {}
    assert "All private attributes removed" in list(ds.DeidentificationMethod)


def test_safe_private_in_a_sequence_item(tmp_path: Path) -> None:
    path = _ct(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    item = Dataset()
    block = item.private_block(0x0019, "GEMS_ACQU_01", create=True)
    block.add_new(0x23, "DS", "12.5")
    block.add_new(0x9C, "LO", "Zwicknagl nested")
    ds.ReferencedImageSequence = [item]
    ds.save_as(path, enforce_file_format=True)
    out = _run(path, DeidConfig(retain_safe_private=True))
    nested = _private(out.ReferencedImageSequence[0]) if "ReferencedImageSequence" in out else {}
    assert 0x0019109C not in nested
    assert b"Zwicknagl" not in out.to_json().encode()


def test_idle_options_are_refused() -> None:
    with pytest.raises(ValidationError, match="ocr_check does nothing"):
        DeidConfig(ocr_check=True, drop_burned_in=False)
    with pytest.raises(ValidationError, match="date_shift_max_days does nothing"):
        load_config(None, ["deid.retain_longitudinal_dates=false", "deid.date_shift_max_days=30"])
    DeidConfig(retain_longitudinal_dates=False)  # the default shift is not a choice
