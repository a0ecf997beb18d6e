"""How a de-identified file says what was done to it: DeidentificationMethod text and the
CID 7050 codes of the options in effect (PS3.15 Annex E)."""

from __future__ import annotations

from pydicom.dataset import Dataset

from refrad_builder.engine.config import DeidConfig

IMPLEMENTATION_CLASS_UID = "2.25.231467240529029073969888144283397759585"
IMPLEMENTATION_VERSION_NAME = "REFRAD_DEID_1"
METHOD_NAME = "refrad_builder deid v2: PS3.15 E.1-1 Basic Profile"

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
    values.append(
        "Safe private attributes (PS3.15 Table E.3.10-1) retained"
        if options.retain_safe_private
        else "All private attributes removed"
    )
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
