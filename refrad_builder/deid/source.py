"""Reading original DICOM files and encoding de-identified ones (one parse, one write).

pydicom's warnings and log records may quote original values: everything here runs inside
:func:`quiet_pydicom`. A file that cannot be parsed raises :class:`UnreadableDicom` (a reason
code only); one that cannot be opened raises :class:`SourceUnavailable` (transient).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pydicom.config
from pydicom.charset import default_encoding
from pydicom.dataelem import convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

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


def _materialize(ds: Dataset) -> None:
    """Convert every raw element now, so malformed values fail while reading.

    An element whose conversion kept its VR stays in its raw form afterwards: it is checked,
    and a kept element is then written as its original bytes instead of being encoded again
    (the encoding dominates the write). Sequences stay converted, their items checked alike.
    """
    charset = None
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if raw.is_raw and raw.value is not None and raw.VR not in (None, "SQ", "UN"):
            if charset is None:
                # what Dataset.__getitem__ converts with (it stores the result; this checks
                # the same conversion and keeps the raw element)
                charset = ds.original_character_set or ds._character_set
            text_charset = default_encoding if tag == 0x00080005 else charset
            elem = convert_raw_data_element(raw, encoding=text_charset, ds=ds)
            if elem.VR == raw.VR:
                continue
        elem = ds[tag]
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
    """The data set as a DICOM Part 10 file (preamble, file meta, data set)."""
    buf = io.BytesIO()
    with quiet_pydicom():
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
