"""Header-only reading of original DICOM files for ingest.

Everything identifying is turned into keyed hashes here, before it leaves the function:
grouping keys, pairing keys and the typed known-PHI hashes the report scrubber uses.

Files ingest cannot use end as a :class:`HeaderError` with a reason, never as a crash:
``not_dicom``, ``archive_file`` (gzip/zip: unpack it first), ``unreadable_dicom``,
``unreadable_header`` (a header pydicom reads but whose values break), ``dicomdir_index``
(a DICOMDIR: the files it references are ingested on their own as the folders are walked)
and ``no_pixel_data`` (structured reports, RT plans, presentation states, ...). Enhanced
multi-frame images are one file each; their orientation for grouping comes from the shared
functional groups.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from refrad_builder.deid.pseudo import keyed_hex
from refrad_builder.engine.errors import is_environmental
from refrad_builder.engine.records import FileHeader
from refrad_builder.inputs.walk import (
    ArchiveMemberError,
    file_id,
    input_size,
    open_input,
    split_member,
)

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_NAME_TAGS = (
    "PatientName",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "ScheduledPerformingPhysicianName",
)
_ID_TAGS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "MedicalRecordLocator")
_INST_TAGS = ("InstitutionName", "InstitutionalDepartmentName", "StationName")
_ADDR_TAGS = ("PatientAddress", "InstitutionAddress")


class HeaderError(Exception):
    """A file ingest cannot use; ``reason`` is a short code, never PHI."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: pydicom.Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# zip: a local file header, an empty archive's end record, a spanned archive's marker
# Structured reports that carry a written report: Basic Text, Enhanced, Comprehensive,
# Comprehensive 3D and Extensible SR. Dose reports, key object selections and CAD results
# are SRs too, but no report text: they stay counted as no_pixel_data.
SR_REPORT_CLASSES = frozenset(
    f"1.2.840.10008.5.1.4.1.1.88.{n}" for n in ("11", "22", "33", "34", "35")
)

_ARCHIVE_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
)


def _archive_kind(head: bytes) -> str | None:
    for magic, kind in _ARCHIVE_MAGIC:
        if head.startswith(magic):
            return kind
    return None


def _check_kind(path: str | Path) -> None:
    """Reject what is no regular file before opening it (opening a pipe would block)."""
    archive, member = split_member(path)
    if member is not None:
        return
    try:
        mode = os.stat(archive).st_mode
    except FileNotFoundError:
        if os.path.islink(archive):
            raise HeaderError("broken_link") from None
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HeaderError("broken_link", "a loop of links") from None
        raise
    if stat.S_ISDIR(mode):
        raise HeaderError("folder_link_not_followed", "set ingest.follow_symlinks to follow")
    if not stat.S_ISREG(mode):
        raise HeaderError("not_a_regular_file")


def read_dataset(path: str | Path, max_bytes: int | None = None) -> pydicom.Dataset:
    """Read a header (pixel data deferred, not loaded); raise HeaderError with a reason.
    ``path`` may name a zip member (``archive.zip::member``, see :mod:`refrad_builder.inputs.walk`)."""
    _check_kind(path)
    try:
        fh = open_input(path, max_bytes)
    except ArchiveMemberError as exc:
        raise HeaderError(exc.reason) from None
    except PermissionError:  # a property of the file as it is; fixing it changes its key
        raise HeaderError("permission_denied") from None
    with fh:
        kind = _archive_kind(fh.read(4))
        if kind is not None:
            # a listable zip is walked as its files: this one is damaged, empty or nested
            raise HeaderError(
                "archive_file",
                f"a {kind} archive that is not read"
                + ("" if kind == "gzip" else " (damaged, empty, nested or not named .zip)")
                + "; unpack it into an input folder",
            )
        fh.seek(0)
        # large values stay on disk for a file (re-read by name); a member is in memory anyway
        defer = 1024 if getattr(fh, "name", None) else None
        try:
            return pydicom.dcmread(fh, defer_size=defer)
        except InvalidDicomError:
            pass
        except Exception as exc:
            if is_environmental(exc):  # an I/O error is not the file's fault: retried
                raise
            raise HeaderError("unreadable_dicom") from None
        # No preamble/file meta: accept a raw data set only if it looks like one.
        fh.seek(0)
        try:
            ds = pydicom.dcmread(fh, defer_size=defer, force=True)
        except Exception as exc:
            if is_environmental(exc):
                raise
            raise HeaderError("not_dicom") from None
    if "SOPClassUID" not in ds and "Modality" not in ds:
        raise HeaderError("not_dicom")
    return ds


def known_phi(secret: bytes, ds: pydicom.Dataset) -> list[str]:
    """Typed keyed hashes of the names, IDs, birth date, institution and address in ``ds``
    (hashed the way the report scrubber looks them up: ``reports.scrub.known_phi_hashes``)."""
    from refrad_builder.reports.scrub import known_phi_hashes

    def values(keywords: tuple[str, ...]) -> list[str]:
        return [v for kw in keywords for v in _text(ds, kw).split("\\") if v.strip()]

    return known_phi_hashes(
        secret,
        {
            "NAME": values(_NAME_TAGS),
            "ID": values(_ID_TAGS),
            "DATE": [_text(ds, "PatientBirthDate")[:8]] if _text(ds, "PatientBirthDate") else [],
            "INST": values(_INST_TAGS),
            "ADDR": [v.replace("^", " ") for v in values(_ADDR_TAGS)],
        },
    )


def _dicomdir_detail(ds: pydicom.Dataset, path: str) -> str:
    """How many files a DICOMDIR references and how many of them are present beside it."""
    referenced = present = 0
    try:
        for record in ds.get("DirectoryRecordSequence") or []:
            parts = record.get("ReferencedFileID")
            if not parts:
                continue
            parts = [parts] if isinstance(parts, str) else list(parts)
            referenced += 1
            present += Path(path).parent.joinpath(*[str(p) for p in parts]).is_file()
    except Exception:  # a damaged index still is an index: report what could be counted
        pass
    return (
        f"a DICOMDIR index ({referenced} referenced files, {present} present); "
        "the files are ingested on their own"
    )


def _orientation_key(ds: pydicom.Dataset) -> str:
    """ImageOrientationPatient rounded, also for enhanced multi-frame (shared groups)."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None:
        try:
            shared = ds.SharedFunctionalGroupsSequence[0]
            iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
        except (AttributeError, IndexError, KeyError, TypeError):
            return ""
    try:
        return ",".join(f"{float(v):.3f}" for v in iop)
    except (TypeError, ValueError):
        return ""


def read_header(secret: bytes, root: int, root_path: Path, rel: str) -> FileHeader:
    """Read one file's header into a FileHeader; raise HeaderError for unusable files."""
    # joined as text: Path would normalise a zip member's name ("a/./b")
    path = os.path.join(root_path, rel)
    ds = read_dataset(path)
    try:
        return _header(secret, root, path, rel, ds)
    except HeaderError:
        raise
    except Exception as exc:  # values that break parsing are the file's fault: a drop
        if is_environmental(exc):
            raise
        raise HeaderError("unreadable_header", type(exc).__name__) from None


def _header(secret: bytes, root: int, path: str, rel: str, ds: pydicom.Dataset) -> FileHeader:
    meta = getattr(ds, "file_meta", None)
    sop_class = _text(ds, "SOPClassUID") or (
        str(meta.get("MediaStorageSOPClassUID", "")) if meta else ""
    )
    if sop_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        raise HeaderError("dicomdir_index", _dicomdir_detail(ds, path))
    has_pixels = "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
    is_sr = sop_class in SR_REPORT_CLASSES and "ContentSequence" in ds
    if not has_pixels and not is_sr:
        raise HeaderError("no_pixel_data", f"sop class {sop_class or 'unknown'}")
    top = rel.split("/", 1)[0] if "/" in rel else ""
    folder = str(Path(rel).parent)
    patient_id = _text(ds, "PatientID")
    patient_basis = (
        f"id:{patient_id}"
        if patient_id
        else f"nm:{_text(ds, 'PatientName')}|{_text(ds, 'PatientBirthDate')}|{top}"
    )
    study_uid = _text(ds, "StudyInstanceUID")
    accession = _text(ds, "AccessionNumber")
    study_basis = (
        f"uid:{study_uid}"
        if study_uid
        else f"nouid:{patient_basis}|{_text(ds, 'StudyDate')}|{_text(ds, 'StudyTime')}|{accession}|{top}"
    )
    series_uid = _text(ds, "SeriesInstanceUID")
    iop_key = _orientation_key(ds)
    series_basis = (
        f"uid:{series_uid}"
        if series_uid
        else "|".join(
            [
                "nouid",
                study_basis,
                _text(ds, "Modality"),
                str(_int(ds, "SeriesNumber")),
                _text(ds, "FrameOfReferenceUID"),
                iop_key,
                _text(ds, "SeriesDescription"),
                folder,
            ]
        )
    )
    transfer = str(meta.get("TransferSyntaxUID", "")) if meta else ""
    return FileHeader(
        file_id=file_id(secret, root, rel),
        root=root,
        size=input_size(path),
        patient_key=keyed_hex(secret, "patient", patient_basis),
        study_key=keyed_hex(secret, "study", study_basis),
        series_key=keyed_hex(secret, "series", series_basis),
        accession_key=keyed_hex(secret, "pair", accession) if accession else None,
        study_uid_key=keyed_hex(secret, "pair", study_uid) if study_uid else None,
        folder_key=keyed_hex(secret, "pair", top or folder),
        modality=_text(ds, "Modality").upper() or "OT",
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        kind="sr" if is_sr and not has_pixels else "image",
        sop_class_uid=sop_class or None,
        transfer_syntax_uid=transfer or None,
        has_pixels=has_pixels,
        known_phi=known_phi(secret, ds),
    )
