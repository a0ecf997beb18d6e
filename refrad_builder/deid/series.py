"""De-identify one series: read its files, apply the profile, hand out the encoded files.

Two passes over the originals: the first reads headers only (series-level UID choices,
burned-in policy, patient characteristics), the second reads each file in full,
de-identifies it and passes the encoded bytes to a sink. Pixel data is never decoded: its
bytes, and therefore the transfer syntax, pass through unchanged.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from refrad_builder.deid import ocr
from refrad_builder.deid.actions import ActionContext, apply_actions
from refrad_builder.deid.profile import Profile, load_profile
from refrad_builder.deid.pseudo import date_shift_days, uid_from
from refrad_builder.engine.config import DeidConfig
from refrad_builder.engine.stage import Drop
from refrad_builder.inputs.dicom_header import known_phi
from refrad_builder.inputs.walk import ArchiveMemberError, open_input
from refrad_builder.reports.scrub import find_dates, scrub_known

log = logging.getLogger(__name__)

IMPLEMENTATION_CLASS_UID = "2.25.231467240529029073969888144283397759585"
IMPLEMENTATION_VERSION_NAME = "REFRAD_DEID_1"
METHOD_NAME = "refrad_builder deid v2: PS3.15 E.1-1 Basic Profile"
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# CID 7050 "De-identification Method" codes (coding scheme DCM).
CODE_BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
CODE_LONGITUDINAL_FULL = ("113106", "Retain Longitudinal Temporal Information Full Dates Option")
CODE_LONGITUDINAL_MODIFIED = (
    "113107",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)
CODE_PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")
CODE_CLEAN_DESCRIPTORS = ("113105", "Clean Descriptors Option")
CODE_SAFE_PRIVATE = ("113111", "Retain Safe Private Option")
# Digit dates a descriptor may hold (12.03.2019, 2019-03-12, 20190312): never kept.
_DIGIT_DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|(?<!\d)(?:19|20)\d{6}(?!\d)")


class UnreadableDicom(Exception):
    """A source file pydicom cannot parse (carries a reason code only)."""

    reason = "unreadable_dicom"


class SourceUnavailable(OSError):
    """A source file cannot be opened (transient: the item is retried; no path in text)."""


@dataclass(frozen=True)
class SeriesIds:
    """The pseudonyms the pipeline assigned to the series' patient, study and series."""

    patient_id: str
    study_id: str
    series_id: str


@dataclass(frozen=True)
class InstanceUids:
    """The replacement UIDs of one instance."""

    study: str
    series: str
    sop: str


@dataclass
class SeriesResult:
    """What :func:`deidentify_series` produced: the source indices it wrote, per-reason
    counts of skipped files, the retained characteristics and element counters."""

    written: list[int]
    skipped: dict[str, int]
    sex: str | None = None
    age_years: int | None = None
    body_part: str | None = None
    contrast: bool | None = None
    stats: dict[str, int] = field(default_factory=dict)
    mapping: list[tuple[str, str, str]] = field(default_factory=list, repr=False)


@dataclass
class _Header:
    index: int
    study_uid: str
    series_uid: str
    sop_uid: str


# --- reading ------------------------------------------------------------------------------


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
    """Convert every raw element now, so malformed values fail while reading."""
    for elem in ds.iterall():
        _ = elem.value


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


def burned_in_reason(ds: Dataset) -> str | None:
    """Why the instance may carry burned-in text (Clean Pixel Data policy), or None.

    Flagged (Burned In Annotation YES), secondary captures (class or Image Type), screen
    saves and derived localizers.
    """
    if _text(ds, "BurnedInAnnotation").upper() == "YES":
        return "flagged"
    image_type = ds.get("ImageType")
    values = [] if image_type is None else image_type
    if isinstance(values, str):
        values = values.split("\\")
    upper = {str(v).strip().upper() for v in values}
    if "SCREEN SAVE" in upper:
        return "screen_save"
    if "SECONDARY" in upper or _sop_class(ds).startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary_capture"
    if "LOCALIZER" in upper and "DERIVED" in upper:
        return "derived_localizer"
    return None


def is_burned_in(ds: Dataset) -> bool:
    """Whether the instance may carry burned-in text (see :func:`burned_in_reason`)."""
    return burned_in_reason(ds) is not None


# --- characteristics ----------------------------------------------------------------------


def _parse_da(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def age_years(ds: Dataset) -> int | None:
    """Age in whole years from PatientAge (``063Y``), else from birth and study dates."""
    age = _text(ds, "PatientAge").upper()
    if len(age) == 4 and age[:3].isdigit() and age[3] in "DWMY":
        n = int(age[:3])
        return {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}[age[3]]
    birth = _parse_da(_text(ds, "PatientBirthDate"))
    if birth is None:
        return None
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        when = _parse_da(_text(ds, keyword))
        if when is not None:
            years = when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))
            return years if 0 <= years < 150 else None
    return None


def _sex(ds: Dataset) -> str | None:
    sex = _text(ds, "PatientSex").upper()
    return sex if sex in ("M", "F", "O") else None


# --- one data set -------------------------------------------------------------------------


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    ts = _text(meta, "TransferSyntaxUID") if meta is not None else ""
    if ts:
        return UID(ts)
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def method_description(options: DeidConfig, date_shift: int | None, edition: str = "") -> list[str]:
    """Values of DeidentificationMethod (LO, each at most 64 characters)."""
    values = [f"{METHOD_NAME} ({edition})" if edition else METHOD_NAME]
    if date_shift is not None:
        kind = "modified" if date_shift else "full"
        values.append(f"Retain Longitudinal Temporal Information ({kind} dates)")
    if options.retain_patient_characteristics:
        values.append("Retain Patient Characteristics")
    if options.clean_descriptors:
        values.append("Clean Descriptors (text scrubber, kept only when clean)")
    values.append("All private attributes removed")
    if options.drop_burned_in:
        values.append(
            "Burned-in text instances excluded unless OCR found none"
            if options.ocr_check
            else "Burned-in annotation instances excluded"
        )
    return values


def _code_item(code: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue = code[0]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code[1]
    return item


def method_codes(options: DeidConfig, date_shift: int | None) -> list[Dataset]:
    """DeidentificationMethodCodeSequence items (CID 7050) for the options in effect."""
    codes = [CODE_BASIC_PROFILE]
    if date_shift is not None:
        codes.append(CODE_LONGITUDINAL_MODIFIED if date_shift else CODE_LONGITUDINAL_FULL)
    if options.retain_patient_characteristics:
        codes.append(CODE_PATIENT_CHARACTERISTICS)
    if options.clean_descriptors:
        codes.append(CODE_CLEAN_DESCRIPTORS)
    if options.retain_safe_private:
        codes.append(CODE_SAFE_PRIVATE)
    return [_code_item(c) for c in codes]


def descriptor_cleaner(secret: bytes, known: list[str]):
    """Clean Descriptors: a text is kept only when the report scrubber (English and German
    rules, the series' known PHI) replaces nothing and it holds no digit date."""

    def is_clean(text: str) -> bool:
        text = text.strip()
        if not text:
            return True
        if _DIGIT_DATE.search(text) or find_dates(text, "de") or find_dates(text, "en"):
            return False
        for lang in ("en", "de"):
            _, counts = scrub_known(text, known, secret, lang)
            if counts:
                return False
        return True

    return is_clean


def series_date_shift(secret: bytes, patient_id: str, options: DeidConfig) -> int | None:
    """The patient's date offset in days, or None when dates are not retained."""
    if not options.retain_longitudinal_dates:
        return None
    return date_shift_days(secret, patient_id, options.date_shift_max_days)


def deidentify_dataset(
    ds: Dataset,
    *,
    secret: bytes,
    patient_id: str,
    uids: InstanceUids,
    options: DeidConfig,
    profile: Profile | None = None,
) -> dict[str, int]:
    """De-identify one instance in place (data set and file meta); return element counters.

    ``uids`` are the instance's final Study/Series/SOP Instance UIDs, chosen per series.
    """
    profile = profile or load_profile()
    ts = _transfer_syntax(ds)
    sop_class = _sop_class(ds)
    date_shift = series_date_shift(secret, patient_id, options)
    cleaner = (
        descriptor_cleaner(secret, known_phi(secret, ds)) if options.clean_descriptors else None
    )
    ctx = ActionContext(
        profile=profile,
        secret=secret,
        date_shift=date_shift,
        retain_patient_characteristics=options.retain_patient_characteristics,
        cleaner=cleaner,
    )
    apply_actions(ds, ctx)

    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.StudyInstanceUID = uids.study
    ds.SeriesInstanceUID = uids.series
    ds.SOPInstanceUID = uids.sop
    if sop_class:
        ds.SOPClassUID = sop_class
    if "FrameOfReferenceUID" in ds and not _text(ds, "FrameOfReferenceUID"):
        # An empty frame of reference would merge unrelated series downstream.
        ds.FrameOfReferenceUID = uid_from(secret, f"frame:{uids.series}")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = method_description(options, date_shift, profile.edition)
    ds.DeidentificationMethodCodeSequence = method_codes(options, date_shift)
    if date_shift is None:
        ds.LongitudinalTemporalInformationModified = "REMOVED"
    else:
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if date_shift else "UNMODIFIED"

    meta = FileMetaDataset()
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uids.sop
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    # The preamble is free-form and may hold another format's header; zero it.
    ds.preamble = b"\x00" * 128
    return dict(ctx.stats)


def encode(ds: Dataset) -> bytes:
    """The data set as a DICOM Part 10 file (preamble, file meta, data set)."""
    buf = io.BytesIO()
    with quiet_pydicom():
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


# --- a series -----------------------------------------------------------------------------


def _ocr_clears(path: Path, options: DeidConfig) -> bool:
    """Whether the optional OCR check ran on the instance and read no text in it."""
    if not options.ocr_check or not ocr.available():
        return False
    try:
        ds = read_source(path)
    except (UnreadableDicom, SourceUnavailable):
        return False
    with quiet_pydicom():
        return ocr.shows_text(ds) is False


def _mapping_originals(ds: Dataset) -> set[tuple[str, str]]:
    """(kind, original) pairs of one header for the optional mapping table."""
    out = set()
    for kind, keyword in (
        ("patient_id", "PatientID"),
        ("patient_name", "PatientName"),
        ("accession_number", "AccessionNumber"),
        ("study_instance_uid", "StudyInstanceUID"),
        ("series_instance_uid", "SeriesInstanceUID"),
    ):
        value = _text(ds, keyword)
        if value:
            out.add((kind, value))
    return out


def _series_level_uid(secret: bytes, originals: list[str], fallback: str) -> str:
    distinct = set(originals)
    if len(distinct) == 1 and "" not in distinct:
        return uid_from(secret, distinct.pop())
    # Empty or inconsistent UIDs: derive the UID from the pipeline's pseudonym instead.
    return uid_from(secret, fallback)


def _drop(skipped: collections.Counter[str]) -> Drop:
    """The series-level Drop when no file survived: the most frequent reason, all counts."""
    if not skipped:
        return Drop("empty_series")
    reason = max(sorted(skipped), key=lambda r: skipped[r])
    return Drop(reason, ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())))


def deidentify_series(
    sources: Sequence[Path],
    *,
    secret: bytes,
    ids: SeriesIds,
    options: DeidConfig,
    sink: Callable[[int, bytes], None],
    profile: Profile | None = None,
) -> SeriesResult | Drop:
    """De-identify the files of one series and pass each encoded file to ``sink(index, data)``.

    Unreadable files and files without pixel data are skipped (counted by reason); when no
    file is left, or when the Clean Pixel Data policy (``drop_burned_in``: burned-in flag,
    secondary capture, screen save, derived localizer) applies to any file that the optional
    OCR check (``ocr_check``) did not clear, the series is a Drop and the sink is never
    called. With ``mapping_table`` set, the result carries (kind, original, pseudonym) rows
    for the caller to store outside the output tree.
    """
    profile = profile or load_profile()
    skipped: collections.Counter[str] = collections.Counter()
    headers: list[_Header] = []
    mapping: set[tuple[str, str]] = set()
    sex = age = body_part = None
    contrast: bool | None = None
    for index, path in enumerate(sources):
        try:
            ds = read_source(path, header_only=True)
        except UnreadableDicom as exc:
            skipped[exc.reason] += 1
            continue
        if not _sop_class(ds):
            skipped["missing_sop_class"] += 1
            continue
        if options.drop_burned_in:
            why = burned_in_reason(ds)
            if why is not None and not _ocr_clears(path, options):
                check = (
                    "ocr_found_text_or_failed"
                    if options.ocr_check and ocr.available()
                    else ("ocr_unavailable" if options.ocr_check else "ocr_off")
                )
                return Drop("burned_in_annotation", f"{why}; {check}")
        if options.mapping_table is not None:
            mapping.update(_mapping_originals(ds))
        if not headers:
            sex, age = _sex(ds), age_years(ds)
        body_part = body_part or _text(ds, "BodyPartExamined") or None
        if _text(ds, "ContrastBolusAgent"):
            contrast = True
        headers.append(
            _Header(
                index=index,
                study_uid=_text(ds, "StudyInstanceUID"),
                series_uid=_text(ds, "SeriesInstanceUID"),
                sop_uid=_sop_instance(ds),
            )
        )
    if not headers:
        return _drop(skipped)

    study_uid = _series_level_uid(secret, [h.study_uid for h in headers], f"study:{ids.study_id}")
    series_uid = _series_level_uid(
        secret, [h.series_uid for h in headers], f"series:{ids.series_id}"
    )
    sop_counts = collections.Counter(h.sop_uid for h in headers)

    written: list[int] = []
    stats: collections.Counter[str] = collections.Counter()
    for header in headers:
        try:
            ds = read_source(sources[header.index])
        except UnreadableDicom as exc:
            skipped[exc.reason] += 1
            continue
        if not any(k in ds for k in PIXEL_KEYWORDS):
            skipped["no_pixel_data"] += 1
            continue
        original_sop = header.sop_uid
        if original_sop and sop_counts[original_sop] == 1:
            sop_uid = uid_from(secret, original_sop)
        else:
            sop_uid = uid_from(secret, f"sop:{ids.series_id}:{header.index}")
        uids = InstanceUids(study=study_uid, series=series_uid, sop=sop_uid)
        try:
            file_stats = deidentify_dataset(
                ds,
                secret=secret,
                patient_id=ids.patient_id,
                uids=uids,
                options=options,
                profile=profile,
            )
            data = encode(ds)
        except Exception as exc:
            # Content pydicom cannot re-encode fails the same way on every run: a skip, not
            # a retry. Only the exception type is logged; its message may quote values.
            log.warning("deid could not re-encode a file (%s)", type(exc).__name__)
            skipped["unencodable_dicom"] += 1
            continue
        stats.update(file_stats)
        sink(header.index, data)
        written.append(header.index)
    if not written:
        return _drop(skipped)
    if skipped:
        log.info("deid skipped %d file(s) of a series: %s", sum(skipped.values()), dict(skipped))
    # TODO: a safe-private allow-list (PS3.15 E.3.10); until then every private goes.
    if options.retain_safe_private and stats.get("private_removed"):
        log.info("deid removed %d private element(s) (no safe list yet)", stats["private_removed"])
    keep_chars = options.retain_patient_characteristics
    pseudonyms = {
        "patient_id": ids.patient_id,
        "patient_name": ids.patient_id,
        "accession_number": ids.study_id,
        "study_instance_uid": study_uid,
        "series_instance_uid": series_uid,
    }
    return SeriesResult(
        written=written,
        skipped=dict(skipped),
        sex=sex if keep_chars else None,
        age_years=age if keep_chars else None,
        body_part=body_part,
        contrast=contrast,
        stats=dict(stats),
        mapping=sorted((kind, original, pseudonyms[kind]) for kind, original in mapping),
    )
