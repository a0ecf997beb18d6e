"""Partial dates, year-numbered identifiers and hyphenated clinic names.

* **Partial dates**: a month or season with a year and a vague day ("Mitte März 2023",
  "mid-March 2023", "Anfang 2021", "Frühjahr 2019", "late May 2022"): part of a person's
  course of care, so PHI like full dates; a bare year stays readable.
* **Year-numbered identifiers** ("2023/118876"): a four-digit year joined to a number of
  four or more digits that is no second year ("2019-2021") and that no unit follows.
* **Hyphenated clinic names** ("Hochwald-Klinik", "Sonnenberg-Krankenhaus").
"""

from __future__ import annotations

from refrad_builder.reports.phi.base import _LOW, _UP, Rule
from refrad_builder.reports.phi.dates import _MONTH_CI

_YEAR = r"(?:19|20)\d{2}"
_VAGUE_DE = r"(?:Anfang|Mitte|Ende|Frühjahr|Frühling|Sommer|Herbst|Winter|Jahreswechsel)"
_VAGUE_EN = r"(?i:early|mid|late|beginning[ \t]+of|end[ \t]+of|spring|summer|autumn|fall|winter)"

PARTIAL_DATE_RULES = [
    Rule(
        "vague_month_year",
        rf"(?<![\w])(?:{_VAGUE_DE}|{_VAGUE_EN})(?:[ \t]*-[ \t]*|[ \t]+)(?:(?:of|des|der)[ \t]+)?"
        rf"(?:{_MONTH_CI}[ \t]+)?{_YEAR}(?!\d)",
        0.7,
    ),
]
# a holiday is a date: "on Christmas Eve", "über Ostern", "am Heiligabend"
_HOLIDAY = (
    r"(?:Christmas(?:[ \t]+(?:Eve|Day))?|New[ \t]+Year['’]s(?:[ \t]+(?:Eve|Day))?|Boxing[ \t]+Day|"
    r"Thanksgiving(?:[ \t]+Day)?|Easter(?:[ \t]+(?:Sunday|Monday))?|Good[ \t]+Friday|Halloween|"
    r"Independence[ \t]+Day|Canada[ \t]+Day|Australia[ \t]+Day|St\.?[ \t]+Patrick['’]s[ \t]+Day|"
    r"Heilig(?:er[ \t]+)?abend|Silvester|Neujahr|Ostern|Ostersonntag|Ostermontag|Karfreitag|"
    r"Pfingsten|Pfingstmontag|Weihnachten|(?:1\.|2\.|ersten|zweiten)[ \t]+Weihnachtsfeiertag)"
)
PARTIAL_DATE_RULES.append(
    Rule(
        "holiday",
        r"(?<=(?i:\b(?:on|at|over|since|before|after|until|am|an|zu|über|seit|vor|nach|bis))"
        rf"[ \t]+(?:(?i:the)[ \t]+)?){_HOLIDAY}(?![\w])",
        0.7,
    )
)
YEAR_ID_RULES = [
    Rule(
        "year_number_id",
        rf"(?<![\w/.-]){_YEAR}[/-](?:\d{{5,}}|(?!19|20)\d{{4}})(?![\w/-]|\.\d|[ \t]*(?:mm|cm|ml|mg|kg|%))",
        0.6,
    ),
]
CLINIC_RULES = [
    Rule(
        "hyphen_clinic",
        rf"(?<![\w-])[{_UP}][{_LOW}]{{2,}}(?:-[{_UP}][{_LOW}]+)*-(?:Klinik|Klinikum|Krankenhaus|"
        rf"Spital|Kliniken|Hospital|Clinic)(?![\w])",
        0.7,
    ),
]
