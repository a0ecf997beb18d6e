"""De-identify one series: read its files, apply the profile, hand out the encoded files.

Two passes over a series: the first parses each file (series-level UID choices, burned-in
policy, patient characteristics), the second de-identifies each file and passes the encoded
bytes to a sink. Each file is parsed once: the first pass keeps the parsed data sets for the
second while they fit ``HOLD_BYTES`` of pixel data (a larger series reads its later files
again, header only in the first pass). Pixel data is never decoded: its bytes, and
therefore the transfer syntax, pass through unchanged.

The parts live by idea: :mod:`~refrad_builder.deid.source` (reading and encoding),
:mod:`~refrad_builder.deid.characteristics` (burned-in policy, age, sex),
:mod:`~refrad_builder.deid.method` (method text and codes) and
:mod:`~refrad_builder.deid.dataset` (one data set); their public names are re-exported here.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from refrad_builder.deid import ocr
from refrad_builder.deid.characteristics import (
    SECONDARY_CAPTURE_PREFIX,
    _sex,
    age_years,
    burned_in_reason,
    is_burned_in,
)
from refrad_builder.deid.dataset import (
    InstanceUids,
    deidentify_dataset,
    descriptor_cleaner,
    series_date_shift,
)
from refrad_builder.deid.method import (
    CODE_BASIC_PROFILE,
    CODE_CLEAN_DESCRIPTORS,
    CODE_LONGITUDINAL_FULL,
    CODE_LONGITUDINAL_MODIFIED,
    CODE_PATIENT_CHARACTERISTICS,
    CODE_SAFE_PRIVATE,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    METHOD_NAME,
    method_codes,
    method_description,
)
from refrad_builder.deid.profile import Profile, load_profile
from refrad_builder.deid.pseudo import uid_from
from refrad_builder.deid.source import (
    SourceUnavailable,
    UnreadableDicom,
    _sop_class,
    _sop_instance,
    _text,
    encode,
    quiet_pydicom,
    read_source,
)
from refrad_builder.engine.config import DeidConfig
from refrad_builder.engine.stage import Drop

__all__ = [
    "CODE_BASIC_PROFILE",
    "CODE_CLEAN_DESCRIPTORS",
    "CODE_LONGITUDINAL_FULL",
    "CODE_LONGITUDINAL_MODIFIED",
    "CODE_PATIENT_CHARACTERISTICS",
    "CODE_SAFE_PRIVATE",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "METHOD_NAME",
    "PIXEL_KEYWORDS",
    "SECONDARY_CAPTURE_PREFIX",
    "InstanceUids",
    "SeriesIds",
    "SeriesResult",
    "SourceUnavailable",
    "UnreadableDicom",
    "age_years",
    "burned_in_reason",
    "deidentify_dataset",
    "deidentify_series",
    "descriptor_cleaner",
    "encode",
    "is_burned_in",
    "method_codes",
    "method_description",
    "quiet_pydicom",
    "read_source",
    "series_date_shift",
]

log = logging.getLogger(__name__)

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Parsed data sets held between the two passes, by their pixel bytes (memory, not speed).
HOLD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class SeriesIds:
    """The pseudonyms the pipeline assigned to the series' patient, study and series."""

    patient_id: str
    study_id: str
    series_id: str


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
    ds: Dataset | None = field(default=None, repr=False)


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


@dataclass
class _Scan:
    """What the header pass found: the readable instances and the series' characteristics."""

    headers: list[_Header] = field(default_factory=list)
    mapping: set[tuple[str, str]] = field(default_factory=set)
    sex: str | None = None
    age: int | None = None
    body_part: str | None = None
    contrast: bool | None = None


def _burned_in_drop(ds: Dataset, path: Path, options: DeidConfig) -> Drop | None:
    """The Clean Pixel Data policy for one header: a Drop unless OCR cleared the instance."""
    if not options.drop_burned_in:
        return None
    why = burned_in_reason(ds)
    if why is None or _ocr_clears(path, options):
        return None
    check = (
        "ocr_found_text_or_failed"
        if options.ocr_check and ocr.available()
        else ("ocr_unavailable" if options.ocr_check else "ocr_off")
    )
    return Drop("burned_in_annotation", f"{why}; {check}")


def _scan_headers(
    sources: Sequence[Path], options: DeidConfig, skipped: collections.Counter[str]
) -> _Scan | Drop:
    """The header pass: readable instances, burned-in policy, characteristics, mapping."""
    scan = _Scan()
    held = 0
    for index, path in enumerate(sources):
        full: Dataset | None = None
        try:
            if held < HOLD_BYTES:
                try:
                    full = read_source(path)
                except UnreadableDicom:
                    # as before: the header decides here; the write pass skips the file
                    full = None
            ds = full if full is not None else read_source(path, header_only=True)
        except UnreadableDicom as exc:
            skipped[exc.reason] += 1
            continue
        if full is not None:
            held += _pixel_bytes(full)
        if not _sop_class(ds):
            skipped["missing_sop_class"] += 1
            continue
        drop = _burned_in_drop(ds, path, options)
        if drop is not None:
            return drop
        if options.mapping_table is not None:
            scan.mapping.update(_mapping_originals(ds))
        if not scan.headers:
            scan.sex, scan.age = _sex(ds), age_years(ds)
        scan.body_part = scan.body_part or _text(ds, "BodyPartExamined") or None
        if _text(ds, "ContrastBolusAgent"):
            scan.contrast = True
        scan.headers.append(
            _Header(
                index=index,
                study_uid=_text(ds, "StudyInstanceUID"),
                series_uid=_text(ds, "SeriesInstanceUID"),
                sop_uid=_sop_instance(ds),
                ds=full,
            )
        )
    return scan


def _pixel_bytes(ds: Dataset) -> int:
    total = 0
    for keyword in PIXEL_KEYWORDS:
        value = ds.get(keyword)
        if isinstance(value, bytes | bytearray):
            total += len(value)
    return total


def _write_instances(
    sources: Sequence[Path],
    headers: list[_Header],
    *,
    secret: bytes,
    ids: SeriesIds,
    options: DeidConfig,
    sink: Callable[[int, bytes], None],
    profile: Profile,
    skipped: collections.Counter[str],
) -> tuple[list[int], collections.Counter[str], str, str]:
    """The write pass: read, de-identify and encode each instance; hand it to the sink."""
    study_uid = _series_level_uid(secret, [h.study_uid for h in headers], f"study:{ids.study_id}")
    series_uid = _series_level_uid(
        secret, [h.series_uid for h in headers], f"series:{ids.series_id}"
    )
    sop_counts = collections.Counter(h.sop_uid for h in headers)
    written: list[int] = []
    stats: collections.Counter[str] = collections.Counter()
    decisions: dict = {}  # one profile and one set of options for the whole series
    for header in headers:
        ds, header.ds = header.ds, None  # the held data set is de-identified in place, once
        if ds is None:
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
                decisions=decisions,
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
    return written, stats, study_uid, series_uid


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
    scan = _scan_headers(sources, options, skipped)
    if isinstance(scan, Drop):
        return scan
    if not scan.headers:
        return _drop(skipped)
    written, stats, study_uid, series_uid = _write_instances(
        sources,
        scan.headers,
        secret=secret,
        ids=ids,
        options=options,
        sink=sink,
        profile=profile,
        skipped=skipped,
    )
    if not written:
        return _drop(skipped)
    if skipped:
        log.info("deid skipped %d file(s) of a series: %s", sum(skipped.values()), dict(skipped))
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
        sex=scan.sex if keep_chars else None,
        age_years=scan.age if keep_chars else None,
        body_part=scan.body_part,
        contrast=scan.contrast,
        stats=dict(stats),
        mapping=sorted((kind, original, pseudonyms[kind]) for kind, original in scan.mapping),
    )
