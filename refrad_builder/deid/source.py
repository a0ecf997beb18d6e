"""Reading original DICOM files and encoding de-identified ones (one parse, one write).

pydicom's warnings and log records may quote original values: everything here runs inside
:func:`quiet_pydicom`. A file that cannot be parsed raises :class:`UnreadableDicom` (a reason
code only); one that cannot be opened raises :class:`SourceUnavailable` (transient).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pydicom.config
from pydicom.dataelem import convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from refrad_builder.deid.encode import encode_dataset
from refrad_builder.inputs.walk import ArchiveMemberError, open_input


class UnreadableDicom(Exception):
    """A source file pydicom cannot parse (carries a reason code only)."""

    reason = "unreadable_dicom"


class SourceUnavailable(OSError):
    """A source file cannot be opened (transient: the item is retried; no path in text)."""


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log records, which may quote original values."""
    logger = logging.getLogger("pydicom")
    drop_all = _DropAll()
    logger.addFilter(drop_all)
    try:
        with warnings.catch_warnings(), pydicom.config.disable_value_validation():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.removeFilter(drop_all)


# VRs whose conversion cannot fail while value validation is off (quiet_pydicom): text is
# decoded with replacement characters, a DS/IS that is no number falls back to its text, and
# OB/OD/OF/OL/OV/OW keep their bytes. Converting them only to check would find nothing; a
# test pins this on the installed pydicom (tests/test_deid_encode.py).
NEVER_FAILING_VRS = frozenset(
    "AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT OB OD OF OL OV OW".split()
)


def _materialize(ds: Dataset) -> None:
    """Convert every raw element whose conversion can fail now, so malformed values fail
    while reading.

    Elements stay in their raw form: a checked element that kept its VR, and one of a VR whose
    conversion cannot fail (:data:`NEVER_FAILING_VRS`), is written back as its original bytes
    unless its value is read or replaced (the encoding dominates the write). Elements whose
    VR is unknown or changes on conversion (implicit VR, UN) and sequences are stored
    converted, their items checked alike.
    """
    charset = None
    for raw in list(ds.elements()):
        vr = raw.VR
        if raw.is_raw and raw.value is not None and vr not in (None, "SQ", "UN"):
            if vr in NEVER_FAILING_VRS:
                continue
            if charset is None:
                # what Dataset.__getitem__ converts with (it stores the result; this checks
                # the same conversion and keeps the raw element)
                charset = ds.original_character_set or ds._character_set
            elem = convert_raw_data_element(raw, encoding=charset, ds=ds)
            if elem.VR == vr:
                continue
        elem = ds[raw.tag]
        if elem.VR == "SQ":
            for item in elem.value or ():
                _materialize(item)


def read_source(path: Path, *, header_only: bool = False) -> Dataset:
    """Read one original file; raise :class:`UnreadableDicom` or :class:`SourceUnavailable`.

    Files without a preamble are accepted only when they look like a DICOM data set.
    """
    try:
        fh = open_input(path)
    except ArchiveMemberError:
        raise UnreadableDicom() from None
    except OSError:
        raise SourceUnavailable("a source file of the series cannot be opened") from None
    with fh, quiet_pydicom():
        try:
            try:
                ds = pydicom.dcmread(fh, stop_before_pixels=header_only)
            except InvalidDicomError:
                fh.seek(0)
                ds = pydicom.dcmread(fh, stop_before_pixels=header_only, force=True)
                if "SOPClassUID" not in ds and "Modality" not in ds:
                    raise UnreadableDicom() from None
            _materialize(ds)
        except UnreadableDicom:
            raise
        except Exception:
            raise UnreadableDicom() from None
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    return str(value).strip().rstrip("\x00")


def _sop_class(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return _text(ds, "SOPClassUID") or (_text(meta, "MediaStorageSOPClassUID") if meta else "")


def _sop_instance(ds: Dataset) -> str:
    # Some archives blank the data set's UIDs but leave the file meta intact; its UID keeps
    # references from other series resolvable.
    meta = getattr(ds, "file_meta", None)
    return _text(ds, "SOPInstanceUID") or (
        _text(meta, "MediaStorageSOPInstanceUID") if meta else ""
    )


def encode(ds: Dataset) -> bytes:
    """The data set as a DICOM Part 10 file (preamble, file meta, data set), the bytes
    ``pydicom.dcmwrite(..., enforce_file_format=True)`` writes (see
    :mod:`refrad_builder.deid.encode`)."""
    with quiet_pydicom():
        return encode_dataset(ds)
