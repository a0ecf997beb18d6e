"""Dates in German and English formats (:func:`find_dates`) and birth years."""

from __future__ import annotations

import datetime as dt
import re

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from refrad_builder.reports.phi.base import GroupPatternRecognizer, Rule, span_result

_MONTHS = {
    1: "januar jänner january jan",
    2: "februar feber february feb",
    3: "märz maerz march mär mrz mar",
    4: "april apr",
    5: "mai may",
    6: "juni june jun",
    7: "juli july jul",
    8: "august aug",
    9: "september sept sep",
    10: "oktober october okt oct",
    11: "november nov",
    12: "dezember december dez dec",
}
_MONTH_OF = {w: n for n, words in _MONTHS.items() for w in words.split()}
# Month names are capitalised in both languages; matching only those keeps "2 may be" intact.
_MONTH_FORMS = sorted(
    {f for w in _MONTH_OF for f in (w[:1].upper() + w[1:], w.upper())}, key=len, reverse=True
)
_MONTH = "(" + "|".join(_MONTH_FORMS) + r")\.?"
# any case ("march 3 2025", dictated text): only where a day and a year come with it
_MONTH_CI = "((?i:" + "|".join(sorted(_MONTH_OF, key=len, reverse=True)) + r"))\.?"
_DAY_WORDS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()
_DAY_WORD = {w: i + 1 for i, w in enumerate(_DAY_WORDS)}
_DAY_WORD.update({f"twenty-{w}": 20 + i + 1 for i, w in enumerate(_DAY_WORDS[:9])})
_DAY_WORD.update({"thirtieth": 30, "thirty-first": 31})
_DAY_WORD_RE = "((?i:" + "|".join(sorted(_DAY_WORD, key=len, reverse=True)) + "))"
# a month alone after a temporal preposition ("new since February", "seit März")
_MONTH_FULL = "|".join(
    sorted(
        {w[:1].upper() + w[1:] for w in _MONTH_OF if len(w) >= 3 and w not in {"mär", "mrz"}},
        key=len,
        reverse=True,
    )
)
_YEAR4 = r"((?:18|19|20)\d{2})"
# Not glued to a number before ("3.14.03.1952" is no date), but "geb.14.03.1952" is one.
_NB = r"(?<!\d)(?<!\d[.,/-])"
_ORD = r"(?:\.|st|nd|rd|th)?"
_DAY_RANGE = r"(?:\.?[ \t]?[–-][ \t]?\d{1,2})?"

_DATE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # 14.03.1952, 14. 3. 1952, 12.–18.03.2024
    (
        re.compile(
            rf"{_NB}(?:\d{{1,2}}\.?[ \t]?[–-][ \t]?)?(\d{{1,2}})[ \t]?\.\s?(\d{{1,2}})[ \t]?\.\s?{_YEAR4}(?!\d)"
        ),
        "dmy",
    ),
    # spaced slashes: 03 / 04 / 64
    (
        re.compile(r"(?<![\w/.])(\d{1,2})[ \t]/[ \t](\d{1,2})[ \t]/[ \t](\d{4}|\d{2})(?![\d/])"),
        "slash",
    ),
    (re.compile(rf"{_NB}(\d{{1,2}})\.(\d{{1,2}})\.(\d{{2}})(?!\d|\.\d)"), "dmy"),
    (re.compile(rf"{_NB}{_YEAR4}[-/.](\d{{1,2}})[-/.](\d{{1,2}})(?![\d/-]|\.\d)"), "ymd"),
    (re.compile(r"(?<![\w/.])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/])"), "slash"),
    (re.compile(r"(?<![\d-])(\d{1,2})-(\d{1,2})-(\d{4})(?![\d-])"), "slash"),
    (
        re.compile(r"(?<!\d)((?:18|19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)"),
        "compact",
    ),
    # 28-Feb-1963, 19-FEB-61
    (
        re.compile(rf"(?<![\w.])(\d{{1,2}})[-/ ]{_MONTH}[-/ ]((?:18|19|20)?\d{{2}})(?!\d)"),
        "d_mon_y",
    ),
    # 14. März 1952, 9th February 2024, 12.–18. März 2024, 14th of March 1952
    (
        re.compile(
            rf"(?<![\w.])(?:\d{{1,2}}{_ORD}[ \t]?[–-][ \t]?)?(\d{{1,2}}){_ORD}\s*(?:of\s+)?{_MONTH},?\s*{_YEAR4}(?!\d)"
        ),
        "d_month_y",
    ),
    # the second of April 1951
    (
        re.compile(rf"(?<![\w-]){_DAY_WORD_RE}\s+(?:of\s+)?{_MONTH_CI},?\s*{_YEAR4}(?!\d)"),
        "word_d_month_y",
    ),
    # dictated, lower case: march 3 2025, july 9th 1971, 9 july 1971
    (
        re.compile(
            rf"(?<![\w.]){_MONTH_CI}\s+(\d{{1,2}})(?:st|nd|rd|th)?{_DAY_RANGE},?\s+{_YEAR4}(?!\d)"
        ),
        "month_d_y",
    ),
    (
        re.compile(rf"(?<![\w.])(\d{{1,2}}){_ORD}\s*(?:of\s+)?{_MONTH_CI},?\s*{_YEAR4}(?!\d)"),
        "d_month_y",
    ),
    # two-digit years after a month name: 3. Feb. 57, 3 februar 57
    (
        re.compile(
            rf"(?<![\w.])(\d{{1,2}}){_ORD}[ \t]*{_MONTH_CI}[ \t]+(\d{{2}})"
            r"(?![\d.,:]\d|\d|[ \t]*(?i:Uhr|h\b|mm|cm|ml|%|x\b|Jahre|years))"
        ),
        "d_mon_y",
    ),
    # March 14, 1952; August 8th 1959; March 12-18, 2024
    (
        re.compile(
            rf"(?<![\w.]){_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?{_DAY_RANGE},?\s+{_YEAR4}(?!\d)"
        ),
        "month_d_y",
    ),
    (re.compile(rf"(?<![\w.]){_MONTH}\s+{_YEAR4}(?!\d)"), "month_y"),
    (
        re.compile(rf"(?<![\w.])(\d{{1,2}})(?:\.|st|nd|rd|th)?\s*(?:of\s+)?{_MONTH}(?!\w)"),
        "d_month",
    ),
    (re.compile(rf"(?<![\w.]){_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)(?!\w)"), "month_d"),
    (re.compile(r"(?<![\w./])(0?[1-9]|1[0-2])/((?:18|19|20)\d{2})(?![\d/]|\.\d)"), "m_y"),
    (
        regex.compile(
            r"(?<=(?i:\b(?:since|from|in|on|until|till|before|after|compared[ \t]+(?:with|to)|"
            r"seit|vom|von|im|bis|ab|vor|Anfang|Mitte|Ende|early|mid|late))[ \t]+)"
            rf"({_MONTH_FULL})(?!\w|\.\d|[ \t]+\d)"
        ),
        "month",
    ),
    # a month and a day without a year after a date word: "on June 14", "since March 3"
    (
        regex.compile(
            r"(?<=(?i:\b(?:since|from|on|until|till|before|after|dated|by))[ \t]+)"
            rf"({_MONTH_FULL})[ \t]+(\d{{1,2}})(?!\w|[.,:]\d|[ \t]*(?i:mm|cm|%))"
        ),
        "month_d",
    ),
    # a US month/day without a year after a date word, closing its clause: "tumor board 3/18."
    (
        regex.compile(
            r"(?<=(?i:\b(?:on|dated|board|conference|since|until|discussed))[ \t]+)"
            r"(0?[1-9]|1[0-2])/(0?[1-9]|[12]\d|3[01])(?=[ \t]*(?:[.,;)]|$|at\b|\d{1,2}:\d{2}))"
        ),
        "m_d",
    ),
]
# German-only partial dates; in English text "3.2019" or "1.2." are more likely numbers.
_DATE_PATTERNS_DE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<![\w./])(0?[1-9]|1[0-2])\.((?:18|19|20)\d{2})(?![\d/]|\.\d)"), "m_y"),
    # not a version number ("RECIST 1.1.", "Version 2.1.")
    (re.compile(r"(?<![\w.])(?<![A-Z][A-Z] )(?<!Version )(\d{1,2})\.(\d{1,2})\.(?![\d])"), "d_m"),
]
# English month/day without a year only after a preposition: "since 1/8" (fractions stay).
_DATE_PATTERNS_EN: list[tuple[re.Pattern[str], str]] = [
    (
        regex.compile(
            r"(?<=\b(?:since|on|from|dated|until|till|by) )(0?[1-9]|1[0-2])/(0?[1-9]|[12]\d|3[01])(?![\d/])",
            regex.IGNORECASE,
        ),
        "m_d",
    ),
]


def _ymd(y: int, m: int, d: int) -> str | None:
    try:
        return dt.date(y, m, d).strftime("%Y%m%d")
    except ValueError:
        return None


def _years(raw: str) -> list[int]:
    if len(raw) == 4:
        return [int(raw)]
    yy = int(raw)
    return [1900 + yy, 2000 + yy]


def _month(word: str) -> int | None:
    return _MONTH_OF.get(word.casefold().rstrip("."))


def _candidates(kind: str, g: tuple[str, ...]) -> list[str] | None:
    """YYYYMMDD readings of a match; [] for a valid partial date; None when no date."""
    out: list[str | None] = []
    if kind == "dmy":
        out = [_ymd(y, int(g[1]), int(g[0])) for y in _years(g[2])]
    elif kind == "ymd" or kind == "compact":
        out = [_ymd(int(g[0]), int(g[1]), int(g[2]))]
    elif kind == "slash":
        for y in _years(g[2]):
            out += [_ymd(y, int(g[0]), int(g[1])), _ymd(y, int(g[1]), int(g[0]))]
    elif kind == "d_mon_y":
        m = _month(g[1])
        out = [_ymd(y, m, int(g[0])) for y in _years(g[2])] if m else []
    elif kind == "d_month_y":
        m = _month(g[1])
        out = [_ymd(int(g[2]), m, int(g[0]))] if m else []
    elif kind == "month_d_y":
        m = _month(g[0])
        out = [_ymd(int(g[2]), m, int(g[1]))] if m else []
    elif kind == "word_d_month_y":
        m = _month(g[1])
        day = _DAY_WORD.get(g[0].casefold())
        out = [_ymd(int(g[2]), m, day)] if m and day else []
    elif kind == "month":
        return []
    elif kind == "month_y":
        return [] if _month(g[0]) else None
    elif kind == "d_month":
        return [] if _month(g[1]) and 1 <= int(g[0]) <= 31 else None
    elif kind == "month_d":
        return [] if _month(g[0]) and 1 <= int(g[1]) <= 31 else None
    elif kind in ("m_y", "m_d"):
        return []
    elif kind == "d_m":
        return [] if 1 <= int(g[0]) <= 31 and 1 <= int(g[1]) <= 12 else None
    valid = [c for c in out if c]
    return list(dict.fromkeys(valid)) if valid else None


def find_dates(text: str, lang: str = "en") -> list[tuple[int, int, list[str]]]:
    """Date-like strings: (start, end, YYYYMMDD readings; empty for a partial date)."""
    found: list[tuple[int, int, list[str]]] = []
    extra = _DATE_PATTERNS_DE if lang == "de" else _DATE_PATTERNS_EN
    for pattern, kind in _DATE_PATTERNS + extra:
        for m in pattern.finditer(text):
            if any(m.start() < e and m.end() > s for s, e, _ in found):
                continue
            cands = _candidates(kind, m.groups())
            if cands is not None:
                found.append((m.start(), m.end(), cands))
    return sorted(found)


_WEEKDAY_BEFORE = regex.compile(
    r"(?:(?i:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)|"
    # German two-letter weekdays, capitalised only ("Do., 06.03.", "Mo, 3.2."; not "so", "da")
    r"Mo|Di|Mi|Do|Fr|Sa|So)"
    r"\.?,?[ \t]+(?:(?i:den|the)[ \t]+)?$"
)
# a vague day before a month ("Mitte Dezember", "Anfang März 2024", "late June")
_VAGUE_BEFORE = regex.compile(r"(?i:Anfang|Mitte|Ende|early|mid|late)[ \t-]*$")


class DateRecognizer(GroupPatternRecognizer):
    """Dates by :func:`find_dates`, plus birth years after a birth word."""

    def __init__(self, language: str):
        super().__init__(
            "DATE",
            language,
            [
                Rule(
                    "birth_year",
                    r"(?<![\w])(?i:geb\.?|geboren(?:[ \t]+(?:am|im(?:[ \t]+Jahr(?:e)?)?|in))?|Jahrgang|"
                    r"Jg\.|born(?:[ \t]+in)?|year[ \t]+of[ \t]+birth|YOB|DOB|d\.o\.b\.)"
                    r"[ \t]*:?[ \t]*\*?[ \t]*(?P<phi>(?:18|19|20)\d{2})(?![\d/-]|\.\d)",
                    0.85,
                ),
                Rule(
                    "birth_spaced",
                    r"(?<=(?i:geb\.?|geboren(?:[ \t]+am)?|Geburtsdatum|DOB|d\.o\.b\.|born|"
                    r"date[ \t]+of[ \t]+birth)[ \t]*:?[ \t]*|\*[ \t]?)"
                    r"(?P<phi>(?:0?[1-9]|[12]\d|3[01])[ \t]+(?:0?[1-9]|1[0-2])[ \t]+(?:(?:18|19|20)\d{2}|\d{2}))(?!\d)",
                    0.85,
                ),
                Rule(
                    "star_year", r"(?<![\w*])\*[ \t]?(?P<phi>(?:18|19|20)\d{2})(?![\d/-]|\.\d)", 0.7
                ),
            ],
        )

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """Birth years and every date :func:`find_dates` finds for this language, with a
        weekday written before it ("Dienstag, 5. März 2024")."""
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for s, e, _ in find_dates(text, self.supported_language):
            vague = _VAGUE_BEFORE.search(text, max(0, s - 8), s)
            if vague:
                s = vague.start()
            weekday = _WEEKDAY_BEFORE.search(text, max(0, s - 24), s)
            if weekday:
                s = weekday.start()
            results.append(span_result(self, "DATE", s, e, 0.9, "date"))
        return EntityRecognizer.remove_duplicates(results)
