"""Numbered structures: spine levels ("LWK 4", "L4/5", "Th12", "HWK 2 bis BWK 2"), numbered
ribs ("7. und 8. Rippe rechts", "left 5th and 6th ribs") and liver segments ("Segment VIII")."""

from __future__ import annotations

import re

from refrad_builder.reports.tokens import _Hit

_REGION_DE = {"lwk": "L", "bwk": "T", "hwk": "C", "swk": "S", "lw": "L", "bw": "T", "hw": "C"}
_REGION_MAX = {"C": 7, "T": 12, "L": 5, "S": 1}
_SPINE_DE = re.compile(
    r"(?<![\w.])(LWK|BWK|HWK|SWK|LW|BW|HW)\s*(\d{1,2})"
    r"(?:\s*(?:-|–|/|bis)\s*(?:(LWK|BWK|HWK|SWK|LW|BW|HW)\s*)?(\d{1,2})"
    r"|\s*(?:und|u\.|,)\s*(\d{1,2})(?![\d.]))?(?!\w)",
    re.IGNORECASE,
)
_SPINE_ORDINAL = re.compile(
    r"(?<![\w.])(\d{1,2})\.\s*(Lendenwirbel|Brustwirbel|Halswirbel|LWK|BWK|HWK)\w*", re.IGNORECASE
)
_SPINE_LETTER = re.compile(
    r"(?<![\w.])(C|Th|T|L|S)(\d{1,2})"
    r"(?:\s*(?:-|–|/|bis|to|through)\s*(?:(C|Th|T|L|S))?(\d{1,2}))?(?![\w*])"
)
_SPINE_CONTEXT = re.compile(r"^\s*-?\s*(?:wirbel|vertebra|wk\b|level|höhe)", re.IGNORECASE)
_NOT_SPINE_AFTER = re.compile(
    r"^\s*(?:-\s*)?(?:abusus|abuse|konsum|w\b|wi\b|gewichtet|weighted|wichtung|sequenz|"
    r"n\d|n\s*[0-3x]\b|m\s*[01x]\b|h\d)",
    re.IGNORECASE,
)


def _level_names(region: str, a: int, region_b: str | None, b: int | None) -> list[str]:
    def ok(r: str, n: int) -> bool:
        return 1 <= n <= _REGION_MAX[r]

    if b is None:
        return [f"vertebrae_{region}{a}"] if ok(region, a) else []
    rb = region_b or region
    if rb == region:
        lo, hi = (a, b) if a <= b else (b, a)
        return [f"vertebrae_{region}{n}" for n in range(lo, hi + 1) if ok(region, n)]
    if not (ok(region, a) and ok(rb, b)):
        return [f"vertebrae_{r}{n}" for r, n in ((region, a), (rb, b)) if ok(r, n)]
    levels = [f"{r}{n}" for r in "CTLS" for n in range(1, _REGION_MAX[r] + 1)]
    lo, hi = levels.index(f"{region}{a}"), levels.index(f"{rb}{b}")
    lo, hi = min(lo, hi), max(lo, hi)
    return [f"vertebrae_{lv}" for lv in levels[lo : hi + 1]]


def _spine_hits(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    for m in _SPINE_DE.finditer(text):
        region = _REGION_DE[m.group(1).casefold()]
        rb = _REGION_DE[m.group(3).casefold()] if m.group(3) else None
        b = int(m.group(4)) if m.group(4) else None
        names = _level_names(region, int(m.group(2)), rb, b)
        if m.group(5):  # "LWK 3 und 5": a list, not a range
            names += _level_names(region, int(m.group(5)), None, None)
        if names:
            hits.append(_Hit(m.start(), m.end(), tuple(names)))
    for m in _SPINE_ORDINAL.finditer(text):
        word = m.group(2).casefold()
        region = {"lendenwirbel": "L", "brustwirbel": "T", "halswirbel": "C"}.get(
            word
        ) or _REGION_DE[word]
        names = _level_names(region, int(m.group(1)), None, None)
        if names:
            hits.append(_Hit(m.start(), m.end(), tuple(names)))
    for m in _SPINE_LETTER.finditer(text):
        region = "T" if m.group(1) in ("Th", "T") else m.group(1)
        rb_raw = m.group(3)
        rb = ("T" if rb_raw in ("Th", "T") else rb_raw) if rb_raw else None
        a = int(m.group(2))
        b = int(m.group(4)) if m.group(4) else None
        after = text[m.end() :]
        if _NOT_SPINE_AFTER.match(after):
            continue
        paired = b is not None
        context = bool(_SPINE_CONTEXT.match(after))
        if region == "S" and not (context or (paired and rb not in (None, "S"))):
            continue  # "S4" is far more often a liver segment than a sacral level
        if region == "T" and m.group(1) == "T" and a <= 2 and not (paired or context):
            continue  # "T1"/"T2" alone is an MR weighting
        if region == "S" and rb is None and b is not None:
            continue
        if b is None and _table_label(text, m.start(), m.end()):
            continue  # "| T3 | Right lower lobe nodule |": a lesion's row label
        names = _level_names(region, a, rb, b)
        if names:
            hits.append(_Hit(m.start(), m.end(), tuple(names)))
    return hits


def _table_label(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] fills a table cell alone ("| T3 |")."""
    before = text[:start].rstrip(" \t")
    after = text[end:].lstrip(" \t")
    return (before == "" or before.endswith("|")) and after.startswith("|")


# Couinaud segments ("Segment VIII", "segment 6", "Segment IVa"): the liver, unless the
# sentence is about the lung, whose segments are numbered too.
_LIVER_SEGMENT = re.compile(
    r"(?<![\w.])(?i:segment|segments|seg\.)\s*(?:[IV]{1,4}|[1-8])[ab]?(?![\w])"
)


def _segment_hits(text: str) -> list[_Hit]:
    return [_Hit(m.start(), m.end(), ("liver",)) for m in _LIVER_SEGMENT.finditer(text)]


_ORD_DE = {
    w: i
    for i, ws in enumerate(
        [
            ("erste",),
            ("zweite",),
            ("dritte",),
            ("vierte",),
            ("fünfte",),
            ("sechste",),
            ("siebte", "siebente"),
            ("achte",),
            ("neunte",),
            ("zehnte",),
            ("elfte",),
            ("zwölfte",),
        ],
        start=1,
    )
    for base in ws
    for w in (base, base + "n", base + "r", base + "s", base + "m")
}
_ORD_EN = {
    w: i
    for i, w in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split(),
        start=1,
    )
}
_NUM_DE = r"(?:\d{1,2}\.?|" + "|".join(sorted(_ORD_DE, key=len, reverse=True)) + ")"
_NUM_EN = r"(?:\d{1,2}(?:st|nd|rd|th)|" + "|".join(_ORD_EN) + ")"
_LIST_SEP = r"\s*(?:,|und|u\.|oder|bis|-|–|/|and|or|to|through)\s*"
_RIB_PATTERNS = [
    re.compile(
        rf"(?<![\w.])({_NUM_DE}(?:{_LIST_SEP}{_NUM_DE})*)\s*-?\s*Rippe(?!n?knorpel)\w*",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?<![\w.])Rippe(?!n?knorpel)\w*\s+(\d{{1,2}}(?:{_LIST_SEP}\d{{1,2}})*)(?![\w.]\d)",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?<![\w.])({_NUM_EN}(?:{_LIST_SEP}{_NUM_EN})*)\s+(?:(?:left|right|posterior|anterior|lateral)\s+)*ribs?(?!\w)",
        re.IGNORECASE,
    ),
    re.compile(rf"(?<![\w.])ribs?\s+(\d{{1,2}}(?:{_LIST_SEP}\d{{1,2}})*)(?!\w)", re.IGNORECASE),
]


def _rib_numbers(listing: str) -> list[int]:
    parts = re.split(
        r"(\s*(?:,|und|u\.|oder|bis|-|–|/|and|or|to|through)\s*)", listing, flags=re.IGNORECASE
    )
    values: list[int] = []
    range_next = False
    for part in parts:
        p = part.strip().casefold().rstrip(".")
        if not p:
            continue
        if p in ("bis", "-", "–", "to", "through"):
            range_next = True
            continue
        if p in (",", "und", "u", "oder", "/", "and", "or"):
            continue
        m = re.match(r"\d+", p)
        n = int(m.group(0)) if m else _ORD_DE.get(p) or _ORD_EN.get(p)
        if n is None:
            continue
        if range_next and values and values[-1] < n:
            values.extend(range(values[-1] + 1, n + 1))
        else:
            values.append(n)
        range_next = False
    return [n for n in dict.fromkeys(values) if 1 <= n <= 12]


def _rib_hits(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    taken: list[tuple[int, int]] = []
    for pattern in _RIB_PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < e and m.end() > s for s, e in taken):
                continue
            numbers = _rib_numbers(m.group(1))
            if numbers:
                hits.append(_Hit(m.start(), m.end(), tuple(f"rib_{{side}}_{n}" for n in numbers)))
                taken.append(m.span())
    return hits
