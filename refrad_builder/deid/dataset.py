"""De-identify one data set in place: the action table, the pipeline's pseudonyms and UIDs,
the options' method codes, and a fresh file meta."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from refrad_builder.deid.actions import ActionContext, apply_actions
from refrad_builder.deid.method import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    method_codes,
    method_description,
)
from refrad_builder.deid.profile import Profile, load_profile
from refrad_builder.deid.pseudo import date_shift_days, uid_from
from refrad_builder.deid.safe_private import load_safe_private
from refrad_builder.deid.source import _sop_class, _text
from refrad_builder.engine.config import DeidConfig
from refrad_builder.inputs.dicom_header import known_phi
from refrad_builder.reports.scrub import find_dates, scrub_known

# Digit dates a descriptor may hold (12.03.2019, 2019-03-12, 20190312): never kept.
_DIGIT_DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|(?<!\d)(?:19|20)\d{6}(?!\d)")


@dataclass(frozen=True)
class InstanceUids:
    """The replacement UIDs of one instance."""

    study: str
    series: str
    sop: str


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    ts = _text(meta, "TransferSyntaxUID") if meta is not None else ""
    if ts:
        return UID(ts)
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


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
    decisions: dict | None = None,
) -> dict[str, int]:
    """De-identify one instance in place (data set and file meta); return element counters.

    ``uids`` are the instance's final Study/Series/SOP Instance UIDs, chosen per series.
    ``decisions`` (optional) is the action memo shared by the instances of one call with the
    same ``options`` and ``profile`` (see :class:`~refrad_builder.deid.actions.ActionContext`).
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
        safe_private=load_safe_private() if options.retain_safe_private else None,
        decisions={} if decisions is None else decisions,
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
