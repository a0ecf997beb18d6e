"""What a header says about an instance: burned-in text (Clean Pixel Data policy), the
patient's age and sex (Retain Patient Characteristics)."""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset

from refrad_builder.deid.source import _sop_class, _text

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


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
