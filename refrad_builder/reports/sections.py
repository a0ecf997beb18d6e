"""Report sections: headings in German or English, normalised to a few section names.

A heading is recognised at the start of a line, either alone on its line (with or without a
colon) or followed by a colon and inline text ("Befund: Leber unauffällig."). Text before the
first heading is ``other``; a report without any heading is taken as one ``findings`` block,
since an unstructured report is the findings narrative. A sign-off ("Mit freundlichen
Grüßen", "Reported by") and the lines after it are ``other`` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECTION_NAMES = ("clinical_info", "question", "technique", "findings", "impression", "other")

# Heading phrase -> section name. Longer phrases are tried first.
_HEADINGS: dict[str, str] = {
    # German
    "klinische angaben": "clinical_info",
    "klinische angabe": "clinical_info",
    "klinische information": "clinical_info",
    "klinische informationen": "clinical_info",
    "klinik": "clinical_info",
    "anamnese": "clinical_info",
    "rechtfertigende indikation": "question",
    "klinische fragestellung": "question",
    "fragestellung": "question",
    "indikation": "question",
    "technik": "technique",
    "untersuchungstechnik": "technique",
    "methode": "technique",
    "untersuchung": "technique",
    "befund": "findings",
    "befunde": "findings",
    "beurteilung": "impression",
    "zusammenfassung": "impression",
    "vergleich": "other",
    "voruntersuchung": "other",
    "voruntersuchungen": "other",
    "voraufnahme": "other",
    "voraufnahmen": "other",
    "vorbefund": "other",
    "vorbefunde": "other",
    # English
    "clinical information": "clinical_info",
    "clinical info": "clinical_info",
    "clinical history": "clinical_info",
    "clinical details": "clinical_info",
    "history": "clinical_info",
    "indication": "question",
    "indications": "question",
    "clinical indication": "question",
    "reason for exam": "question",
    "reason for examination": "question",
    "clinical question": "question",
    "question": "question",
    "technique": "technique",
    "procedure": "technique",
    "protocol": "technique",
    "examination": "technique",
    "exam": "technique",
    "findings": "findings",
    "finding": "findings",
    "report": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "assessment": "impression",
    "opinion": "impression",
    "comment": "impression",
    "comments": "impression",
    "comparison": "other",
}

_PHRASE = "|".join(
    re.escape(p).replace(r"\ ", r"\s+") for p in sorted(_HEADINGS, key=len, reverse=True)
)
# One heading, optionally several joined ("Befund und Beurteilung", "Klinik/Fragestellung").
_HEADING = re.compile(
    rf"^[ \t]*(?:[#*_]+[ \t]*)?(?P<h>(?:{_PHRASE})(?:[ \t]*(?:/|&|,|und|and)[ \t]*(?:{_PHRASE}))*)"
    rf"[ \t]*(?:[*_]+[ \t]*)?(?:(?P<colon>:)[*_]*[ \t]*|[ \t]*$)",
    re.IGNORECASE | re.MULTILINE,
)


# Sign-off lines: "Mit freundlichen Grüßen", "Kind regards", "Reported by Dr ...", and a
# scrubbed signature line that opens with a title ("Dr. med. [NAME]").
_CLOSING = re.compile(
    r"^[ \t]*(?:mit\s+(?:freundlichen|kollegialen|besten)(?:\s+(?:und|kollegialen|freundlichen))?"
    r"\s+grüßen|mfg\b|kind\s+regards|best\s+regards|yours\s+sincerely|sincerely|"
    r"reported\s+by|dictated\s+by|signed\s+by|electronically\s+signed|befundet\s+(?:von|durch)|"
    r"diktiert\s+(?:von|durch)|elektronisch\s+(?:signiert|freigegeben|unterschrieben)|"
    r"gez\.|gezeichnet|"
    r"(?:(?:prof|dr|pd|priv\.-doz|med|dent)\.?[ \t]+)+\[NAME\][ \t]*(?:,[^\n.]*)?$)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Section:
    """One section: its normalised name and its body (start/end are offsets in the text)."""

    name: str
    text: str
    start: int
    end: int


def heading_name(heading: str) -> str:
    """The normalised section name of a heading phrase (the first phrase when joined)."""
    first = re.split(r"\s*(?:/|&|,|\bund\b|\band\b)\s*", heading.strip(), maxsplit=1)[0]
    return _HEADINGS.get(re.sub(r"\s+", " ", first.casefold()), "other")


def split_sections(text: str) -> list[Section]:
    """Split a report into sections in text order (empty bodies are dropped)."""
    marks: list[tuple[int, int, str]] = []
    for m in _HEADING.finditer(text):
        line_end = text.find("\n", m.end())
        line_end = len(text) if line_end < 0 else line_end
        rest = text[m.end() : line_end].strip()
        if rest and not m.group("colon"):
            continue  # a word like "Befund" starting a prose line is no heading
        marks.append((m.start(), m.end(), heading_name(m.group("h"))))
    closing = _CLOSING.search(text, marks[-1][1] if marks else 0)
    if closing is not None:
        # the sign-off and what follows it keep their text but belong to no clinical section
        marks.append((closing.start(), closing.start(), "other"))
        if len(marks) == 1:
            marks.insert(0, (0, 0, "findings"))
    if not marks:
        body = text.strip()
        return [Section("findings", body, 0, len(text))] if body else []
    out: list[Section] = []
    pre = text[: marks[0][0]]
    if pre.strip():
        out.append(Section("other", pre.strip(), 0, marks[0][0]))
    for i, (_, body_start, name) in enumerate(marks):
        body_end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        body = text[body_start:body_end].strip()
        if body:
            out.append(Section(name, body, body_start, body_end))
    return out


def sections_dict(sections: list[Section]) -> dict[str, str]:
    """Sections by name; repeated sections are joined with a blank line, in text order."""
    out: dict[str, str] = {}
    for s in sections:
        out[s.name] = f"{out[s.name]}\n\n{s.text}" if s.name in out else s.text
    return out
