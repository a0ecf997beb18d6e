"""The Clean Pixel Data policy with the real tesseract OCR (skipped where it is not installed).

A secondary capture with burned-in text is dropped; the same capture without text is kept
only when OCR is switched on and reads nothing.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from refrad_builder.deid import ocr
from refrad_builder.deid.series import SeriesIds, deidentify_series
from refrad_builder.engine.config import DeidConfig

pytestmark = pytest.mark.skipif(not ocr.available(), reason="needs pytesseract + tesseract")


def _capture(path, text: str | None) -> None:
    img = Image.new("L", (320, 200), 20)
    draw = ImageDraw.Draw(img)
    draw.ellipse((60, 40, 260, 180), fill=120)  # some anatomy-like content
    if text:
        font = ImageFont.load_default(size=28)
        draw.text((12, 8), text, fill=250, font=font)
    arr = np.asarray(img, dtype=np.uint8)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture
    uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientName = "Ocrtest^Person"
    ds.PatientID = "OCR-1"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)


def _run(path, ocr_check: bool):
    written = []
    result = deidentify_series(
        [path],
        secret=b"k" * 32,
        ids=SeriesIds(patient_id="p", study_id="s", series_id="x"),
        options=DeidConfig(ocr_check=ocr_check),
        sink=lambda i, data: written.append(data),
    )
    return result, written


def test_text_is_seen_and_dropped(tmp_path):
    path = tmp_path / "text.dcm"
    _capture(path, "MUSTERMANN 14.03.1952")
    assert ocr.shows_text(pydicom.dcmread(path)) is True
    result, written = _run(path, ocr_check=True)
    assert getattr(result, "reason", None) == "burned_in_annotation" and not written


def test_clean_capture_is_kept_only_with_ocr(tmp_path):
    path = tmp_path / "clean.dcm"
    _capture(path, None)
    assert ocr.shows_text(pydicom.dcmread(path)) is False
    result, written = _run(path, ocr_check=True)
    assert len(written) == 1 and b"Ocrtest" not in written[0]
    off, _ = _run(path, ocr_check=False)
    assert getattr(off, "reason", None) == "burned_in_annotation"
