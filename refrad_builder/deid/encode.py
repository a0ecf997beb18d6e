"""Encoding a de-identified data set as a DICOM Part 10 file, byte for byte as
``pydicom.dcmwrite(..., enforce_file_format=True)`` writes it, faster.

pydicom writes an unchanged raw element as its original value bytes, but through its general
element writer (a buffer object and several property look-ups per element), which dominates
the write of a header that is mostly kept as read. Where the data set keeps the encoding it
was read with (explicit VR little endian, the character set unchanged), the top-level raw
elements are framed here with one ``struct.pack`` each; the file meta, sequences, pixel data
and every element that was converted or replaced go through pydicom's own writers. Any other
data set (implicit VR, big endian, deflated, a new character set) is written by
``pydicom.dcmwrite`` itself. ``tests/test_deid_encode.py`` checks the bytes are identical.
"""

from __future__ import annotations

import copy
import struct

import pydicom
import pydicom.config
from pydicom.charset import default_encoding
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import tag_in_exception
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
_LONG = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_SHORT_HEADER = struct.Struct("<HH2sH")
_LONG_HEADER = struct.Struct("<HH2sHL")


def _fast_syntax(ds: Dataset) -> UID | None:
    """The transfer syntax when the fast path writes exactly what dcmwrite would, else None."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if (
        tsyntax is None
        or pydicom.config._use_future
        or tsyntax.is_private
        or not tsyntax.is_transfer_syntax
        or tsyntax.is_implicit_VR
        or not tsyntax.is_little_endian
        or tsyntax == DeflatedExplicitVRLittleEndian
    ):
        return None
    # the conditions under which pydicom's write_dataset writes raw elements as they are
    if ds.original_encoding != (False, True):
        return None
    if ds.original_character_set != ds._character_set:
        return None
    return tsyntax


def _file_meta(ds: Dataset):
    """A copy of the file meta with the SOP UIDs brought up to date, as dcmwrite makes it."""
    file_meta = copy.deepcopy(ds.file_meta)
    meta_class = file_meta.get("MediaStorageSOPClassUID", None)
    ds_class = ds.get("SOPClassUID", None)
    if meta_class is None or (ds_class and ds_class != meta_class):
        file_meta.MediaStorageSOPClassUID = ds_class
    meta_instance = file_meta.get("MediaStorageSOPInstanceUID", None)
    ds_instance = ds.get("SOPInstanceUID", None)
    if meta_instance is None or (ds_instance and ds_instance != meta_instance):
        file_meta.MediaStorageSOPInstanceUID = ds_instance
    return file_meta


def _write_body(fp: DicomBytesIO, ds: Dataset) -> None:
    """The top-level elements in tag order: unchanged raw ones framed here, the rest by
    pydicom's element writer (with the data set's character set, as write_dataset does)."""
    encodings = ds.get("SpecificCharacterSet", default_encoding)
    write = fp.write
    for elem in ds.elements():
        tag = elem.tag
        group, element = tag >> 16, tag & 0xFFFF
        if element == 0 and group > 6:
            continue  # retired group lengths are never written (PS3.5 7.2)
        value = elem.value
        if elem.is_raw and elem.length != _UNDEFINED and isinstance(value, bytes):
            vr = elem.VR
            size = len(value)
            if vr in _LONG:
                write(_LONG_HEADER.pack(group, element, vr.encode("ascii"), 0, size))
                write(value)
                continue
            if vr is not None and len(vr) == 2 and size <= 0xFFFF:
                write(_SHORT_HEADER.pack(group, element, vr.encode("ascii"), size))
                write(value)
                continue
        with tag_in_exception(tag):
            write_data_element(fp, elem, encodings)


def encode_dataset(ds: Dataset) -> bytes:
    """``ds`` as a DICOM Part 10 file: preamble, file meta (made conformant), data set.
    Callers silence pydicom's warnings (:func:`refrad_builder.deid.source.quiet_pydicom`)."""
    tsyntax = _fast_syntax(ds)
    if tsyntax is None or any(tag >> 16 in (0, 2) for tag in ds.keys()):
        out = DicomBytesIO()
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
        return out.getvalue()
    preamble = getattr(ds, "preamble", None)
    if preamble and len(preamble) != 128:
        raise ValueError("the preamble must be 128 bytes long")
    file_meta = _file_meta(ds)
    if "PixelData" in ds:
        # PS3.5 A.4: encapsulated pixel data has undefined length, native data its length
        ds["PixelData"].is_undefined_length = tsyntax.is_compressed
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    fp.write(preamble or b"\x00" * 128)
    fp.write(b"DICM")
    write_file_meta_info(fp, file_meta, enforce_standard=True)
    _write_body(fp, ds)
    return fp.getvalue()
