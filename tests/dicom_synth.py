"""Synthetic DICOM writers for the imaging tests (not a test module itself).

Series are written with pydicom from an explicit geometry, so each test knows where every
voxel lies. By default the stored value of a pixel encodes its LPS position,
``HU = round(2x + 3y + 5z)``: a linear function, which linear interpolation reproduces, so
resampled volumes can be checked voxel by voxel. Also: enhanced multi-frame CT/MR with
per-frame functional groups, and encapsulated pixel data (RLE, JPEG 2000, JPEG baseline
through Pillow, and a small JPEG lossless (process 14, SV1) encoder written here).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

WEIGHTS = np.array([2.0, 3.0, 5.0])
OFFSET = 1024  # stored = value + OFFSET (unsigned storage, RescaleIntercept -1024)


def position_values(points_lps: np.ndarray) -> np.ndarray:
    """The default pixel value at LPS points (..., 3): ``round(2x + 3y + 5z)``."""
    return np.rint(points_lps @ WEIGHTS)


def pixel_points(ipp, row_cos, col_cos, spacing, rows: int, cols: int) -> np.ndarray:
    """LPS position (rows, cols, 3) of every pixel of one image (PS3.3 C.7.6.2.1.1)."""
    r_idx, c_idx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (
        np.asarray(ipp, float)[None, None, :]
        + c_idx[..., None] * spacing[1] * np.asarray(row_cos, float)
        + r_idx[..., None] * spacing[0] * np.asarray(col_cos, float)
    )


def _meta(sop_class: str, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    return meta


def _common(
    ds: Dataset, modality: str, series_uid: str, study_uid: str, signed: bool = False
) -> None:
    ds.Modality = modality
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYN0001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = study_uid + ".1"
    ds.SeriesNumber = 7
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0


def write_series(
    folder: Path,
    *,
    rows: int,
    cols: int,
    spacing: Sequence[float],
    row_cos: Sequence[float],
    col_cos: Sequence[float],
    positions: Sequence[Sequence[float]],
    modality: str = "CT",
    values: Callable[[np.ndarray], np.ndarray] = position_values,
    start_instance: int = 1,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    transfer_syntax: str = ExplicitVRLittleEndian,
    series_uid: str | None = None,
    study_uid: str = "1.2.826.0.1.3680043.8.498.1",
    prefix: str = "img",
    signed: bool = False,
    extra: dict | None = None,
) -> list[Path]:
    """One single-frame file per entry of ``positions`` (ImagePositionPatient, LPS mm).

    Stored values are ``value + 1024`` (unsigned, RescaleIntercept -1024), or the values
    themselves as int16 when ``signed``. ``transfer_syntax`` may be uncompressed or RLE /
    JPEG 2000 lossless / JPEG lossless / JPEG baseline (8-bit: values clipped to 0..255).
    """
    folder.mkdir(parents=True, exist_ok=True)
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    series_uid = series_uid or generate_uid()
    paths = []
    for n, ipp in enumerate(positions):
        offset = 0 if signed else OFFSET
        stored = values(pixel_points(ipp, row_cos, col_cos, spacing, rows, cols)) + offset
        meta = _meta(sop_class, ExplicitVRLittleEndian)
        path = folder / f"{prefix}{n:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        _common(ds, modality, series_uid, study_uid, signed)
        ds.ImageType = list(image_type)
        ds.InstanceNumber = start_instance + n
        ds.ImageOrientationPatient = [float(v) for v in (*row_cos, *col_cos)]
        ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
        ds.SliceThickness = 1.0
        ds.Rows, ds.Columns = rows, cols
        ds.RescaleSlope, ds.RescaleIntercept = 1, -offset
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        set_pixels(ds, stored, transfer_syntax)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def set_pixels(ds: Dataset, stored: np.ndarray, transfer_syntax: str) -> None:
    """Store a 2D array (or frames x rows x cols) as PixelData in the given syntax."""
    stored = np.asarray(stored)
    frames = stored if stored.ndim == 3 else stored[None]
    if transfer_syntax == JPEGBaseline8Bit:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        data = np.clip(frames, 0, 255).astype(np.uint8)
        ds.PixelData = encapsulate([jpeg_baseline(f) for f in data])
    elif transfer_syntax == JPEGLosslessSV1:
        data = np.clip(frames, 0, 65535).astype(np.uint16)
        ds.PixelData = encapsulate([jpeg_lossless(f) for f in data])
    else:
        if ds.get("PixelRepresentation", 0) == 1:
            data = np.clip(frames, -32768, 32767).astype(np.int16)
        else:
            data = np.clip(frames, 0, 65535).astype(np.uint16)
        ds.PixelData = (data if stored.ndim == 3 else data[0]).tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        if transfer_syntax in (RLELossless, JPEG2000Lossless):
            ds.compress(transfer_syntax, data if stored.ndim == 3 else data[0])
        return
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = transfer_syntax


def write_enhanced(
    path: Path,
    *,
    rows: int,
    cols: int,
    spacing: Sequence[float],
    row_cos: Sequence[float],
    col_cos: Sequence[float],
    positions: Sequence[Sequence[float]],
    modality: str = "CT",
    slopes: Sequence[float] | None = None,
    temporal: Sequence[int] | None = None,
    frame_types: Sequence[str] | None = None,
    values: Callable[[np.ndarray], np.ndarray] = position_values,
) -> Path:
    """An enhanced CT/MR image (PS3.3 A.38/A.36): one frame per position, geometry in the
    functional groups only (orientation and pixel measures shared, position per frame).

    ``slopes`` gives each frame its own PixelValueTransformation slope (stored values are
    divided by it); ``temporal`` its TemporalPositionIndex; ``frame_types`` its third
    FrameType value (e.g. ``LOCALIZER``).
    """
    sop_class = EnhancedCTImageStorage if modality == "CT" else EnhancedMRImageStorage
    meta = _meta(sop_class, ExplicitVRLittleEndian)
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    _common(ds, modality, generate_uid(), "1.2.826.0.1.3680043.8.498.2")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = len(positions)
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [float(v) for v in (*row_cos, *col_cos)]
    measures = Dataset()
    measures.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    measures.SliceThickness = 1.0
    shared.PlaneOrientationSequence = DicomSequence([orient])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    stored_frames = []
    for n, ipp in enumerate(positions):
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [float(v) for v in ipp]
        item.PlanePositionSequence = DicomSequence([pos])
        slope = float(slopes[n]) if slopes is not None else 1.0
        transform = Dataset()
        transform.RescaleSlope = slope
        transform.RescaleIntercept = -OFFSET
        transform.RescaleType = "HU" if modality == "CT" else "US"
        item.PixelValueTransformationSequence = DicomSequence([transform])
        content = Dataset()
        content.InStackPositionNumber = n + 1
        content.StackID = "1"
        if temporal is not None:
            content.TemporalPositionIndex = int(temporal[n])
        item.FrameContentSequence = DicomSequence([content])
        if frame_types is not None:
            ftype = Dataset()
            ftype.FrameType = ["ORIGINAL", "PRIMARY", frame_types[n], "NONE"]
            key = "CTImageFrameTypeSequence" if modality == "CT" else "MRImageFrameTypeSequence"
            setattr(item, key, DicomSequence([ftype]))
        per_frame.append(item)
        value = values(pixel_points(ipp, row_cos, col_cos, spacing, rows, cols))
        stored_frames.append(np.rint((value + OFFSET) / slope))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    set_pixels(ds, np.stack(stored_frames), ExplicitVRLittleEndian)
    ds.save_as(path, enforce_file_format=True)
    return path


# --- encoders -----------------------------------------------------------------------------


def jpeg_baseline(image: np.ndarray) -> bytes:
    """An 8-bit greyscale baseline JPEG (ITU T.81 process 1) via Pillow."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _marker(code: int, payload: bytes) -> bytes:
    return bytes([0xFF, code]) + (len(payload) + 2).to_bytes(2, "big") + payload


def jpeg_lossless(image: np.ndarray, precision: int = 16) -> bytes:
    """A lossless JPEG (ITU T.81 Annex H, first-order prediction: selection value 1) of a
    2D unsigned image: the codestream DICOM's JPEG Lossless SV1 transfer syntax holds.

    One Huffman table codes the 17 difference categories with 5-bit codes (symbol s has code
    s), which keeps the encoder short; decoders accept any valid table.
    """
    img = np.asarray(image, dtype=np.int64)
    rows, cols = img.shape
    # Predictors (H.1.2.1): left neighbour; the first column uses the pixel above; the
    # very first pixel uses 2**(P-1).
    pred = np.empty_like(img)
    pred[:, 1:] = img[:, :-1]
    pred[1:, 0] = img[:-1, 0]
    pred[0, 0] = 1 << (precision - 1)
    diff = (img - pred) % 65536
    diff = np.where(diff >= 32768, diff - 65536, diff)
    acc, nbits = 0, 0
    out = bytearray()
    for d in diff.ravel().tolist():
        ssss = int(abs(d)).bit_length()
        acc = (acc << 5) | ssss
        nbits += 5
        if 0 < ssss < 16:
            extra = d if d > 0 else d - 1
            acc = (acc << ssss) | (extra & ((1 << ssss) - 1))
            nbits += ssss
        while nbits >= 8:
            nbits -= 8
            byte = (acc >> nbits) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0x00)  # byte stuffing (F.1.2.3)
        acc &= (1 << nbits) - 1
    if nbits:
        byte = ((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) & 0xFF
        out.append(byte)
        if byte == 0xFF:
            out.append(0x00)
    bits = bytes([0, 0, 0, 0, 17] + [0] * 11)
    dht = _marker(0xC4, bytes([0x00]) + bits + bytes(range(17)))
    sof = _marker(
        0xC3,
        bytes([precision])
        + rows.to_bytes(2, "big")
        + cols.to_bytes(2, "big")
        + b"\x01\x01\x11\x00",
    )
    sos = _marker(0xDA, bytes([1, 1, 0x00, 1, 0, 0]))
    return b"\xff\xd8" + dht + sof + sos + bytes(out) + b"\xff\xd9"
