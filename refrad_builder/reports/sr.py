"""Report text from a DICOM Structured Report (Basic Text, Enhanced or Comprehensive SR).

The content tree becomes plain report text: a container with a concept name becomes a heading
line ("Findings:", "Impression:"), TEXT items their value, NUM and CODE items
"<concept>: <value>". Observation context (``HAS OBS CONTEXT``: the observer's name and
organisation) and person names, dates, UIDs and image references are left out: they name
people or point at instances and are no report text. The text then goes through the same
scrubber as a report table's text.
"""

from __future__ import annotations

import pydicom

_SKIP_RELATIONSHIPS = {"HAS OBS CONTEXT", "HAS ACQ CONTEXT"}
_SKIP_TYPES = {"PNAME", "DATE", "TIME", "DATETIME", "UIDREF", "IMAGE", "COMPOSITE", "WAVEFORM"}
# container names that only structure the tree; they make no heading line
_GENERIC_HEADINGS = {"section heading", "document title", "report", "radiology report"}


def _meaning(item: pydicom.Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].get("CodeMeaning", "")).strip() if seq else ""


def _value(item: pydicom.Dataset) -> str:
    kind = item.get("ValueType", "")
    if kind == "TEXT":
        return str(item.get("TextValue", "")).strip()
    if kind == "NUM":
        seq = item.get("MeasuredValueSequence")
        if not seq:
            return ""
        unit = seq[0].get("MeasurementUnitsCodeSequence")
        shown = str(unit[0].get("CodeValue", "")) if unit else ""
        return f"{_meaning(item)}: {seq[0].get('NumericValue', '')} {shown}".strip()
    if kind == "CODE":
        seq = item.get("ConceptCodeSequence")
        return f"{_meaning(item)}: {seq[0].get('CodeMeaning', '')}" if seq else ""
    return ""


def _walk(items, lines: list[str], depth: int) -> None:
    for item in items or []:
        if item.get("RelationshipType", "") in _SKIP_RELATIONSHIPS:
            continue
        kind = item.get("ValueType", "")
        if kind in _SKIP_TYPES:
            continue
        if kind == "CONTAINER":
            heading = _meaning(item)
            if heading and heading.casefold() not in _GENERIC_HEADINGS:
                lines.append("")
                lines.append(f"{heading}:")
        else:
            text = _value(item)
            if text:
                lines.append(text)
        if depth < 32:  # a malformed tree that loops back is cut, not followed forever
            _walk(item.get("ContentSequence"), lines, depth + 1)


def sr_text(ds: pydicom.Dataset) -> str:
    """The report text of a structured report ('' when it holds none)."""
    lines: list[str] = []
    _walk(ds.get("ContentSequence"), lines, 0)
    return "\n".join(lines).strip()
