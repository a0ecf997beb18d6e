"""Key-image references ("Se 3/Bi 142", "series 4, image 57", "image 142 of series 2").

A reference that names only an image ("Bild 267") gets ``series = ANY_SERIES`` (-1): the
record needs an integer, and -1 tells the slice chooser to look for that instance number in
every series of the study. A range ("Bild 12-15") yields its two ends.
"""

from __future__ import annotations

import re

from refrad_builder.engine.records import ImageRef

ANY_SERIES = -1
_MAX_RANGE_GAP = 500

_SER = r"(?:series|serie|ser|se|sr)\.?"
_IMG = r"(?:images?|img|ima|im|bilder|bild|bi|b)\.?"
_SEP = r"\s*[:#]?\s*(?:nr\.?\s*)?"
_NUM = r"(\d{1,5})"
_RANGE = rf"(?:\s*(?:-|–|bis|to)\s*{_NUM})?"
_JOIN = r"\s*(?:[/,;:]|\s|und|and)\s*"

_PAIR = re.compile(
    rf"(?<![\w.]){_SER}{_SEP}{_NUM}{_JOIN}{_IMG}{_SEP}{_NUM}{_RANGE}(?!\w)", re.IGNORECASE
)
# PACS short form "S3/I45", "S3 I45", "SE3 IM45"
_SHORT = re.compile(r"(?<![\w.])S(\d{1,4})\s*[/ ]\s*I(\d{1,5})(?!\w)", re.IGNORECASE)
_IMAGE_FIRST = re.compile(
    rf"(?<![\w.]){_IMG}{_SEP}{_NUM}{_RANGE}\s*(?:,\s*|/\s*|\s+(?:of|in|from|aus|der|von|in\s+der)\s+){_SER}{_SEP}{_NUM}(?!\w)",
    re.IGNORECASE,
)
# "image 12 (series 7)", "Bild 274 (Serie 4)"
_IMAGE_PAREN = re.compile(
    rf"(?<![\w.]){_IMG}{_SEP}{_NUM}{_RANGE}\s*\(\s*{_SER}{_SEP}{_NUM}\s*\)", re.IGNORECASE
)
# "Ser/Img 6/33", "Se/Bi 4/112"
_SLASH_PAIR = re.compile(
    rf"(?<![\w.]){_SER}\s*/\s*{_IMG}\s*:?\s*(\d{{1,4}})\s*/\s*(\d{{1,5}})(?![\w/])", re.IGNORECASE
)
# "(4:112)", "(4:11)": series:image in parentheses. Never a time ("(14:32)", "(04:40 Uhr)"): a
# pair that reads as a clock time (two-digit hour up to 23, minute up to 59) is one; never a
# ratio ("(1:10)", "(1:200)" dilutions)
_COLON_PAREN = re.compile(r"\((\d{1,3})\s*:\s*(\d{2,5})\)")
# "| 3/41 |": a series/image pair filling a table cell alone (levels such as "L4/5" carry
# letters; the image number has at least two digits, so "1/2" fractions are none)
_TABLE_CELL = re.compile(r"(?:^|\|)[ \t]*(\d{1,3})\s*/\s*(\d{2,5})[ \t]*(?=\||$)", re.MULTILINE)
_IMAGE_ONLY = re.compile(
    rf"(?<![\w.])(?:images?|img|ima|bilder|bild|bi)\.?{_SEP}{_NUM}{_RANGE}(?![\w/])", re.IGNORECASE
)


def _images(first: str, last: str | None) -> list[int]:
    a = int(first)
    if last is None:
        return [a]
    b = int(last)
    if b <= a or b - a > _MAX_RANGE_GAP:
        return [a]
    return [a, b]


def _clock_or_ratio(first: str, second: str) -> bool:
    """Whether "first:second" reads as a clock time or a ratio rather than series:image."""
    a, b = int(first), int(second)
    clock = (len(first) == 2 or first.startswith("0")) and a <= 23 and len(second) == 2 and b <= 59
    ratio = a == 1 and b % 10 == 0
    return clock or ratio


def find_image_refs(text: str) -> list[tuple[ImageRef, tuple[int, int]]]:
    """Every key-image reference in ``text`` with its character span, in text order."""
    found: list[tuple[int, int, list[ImageRef]]] = []
    taken: list[tuple[int, int]] = []

    def free(s: int, e: int) -> bool:
        return all(e <= ts or s >= te for ts, te in taken)

    for m in _IMAGE_PAREN.finditer(text):
        series = int(m.group(3))
        refs = [ImageRef(series=series, image=i) for i in _images(m.group(1), m.group(2))]
        found.append((m.start(), m.end(), refs))
        taken.append(m.span())
    for pattern in (_SLASH_PAIR, _COLON_PAREN, _TABLE_CELL):
        for m in pattern.finditer(text):
            if not free(*m.span()):
                continue
            if pattern is _COLON_PAREN and _clock_or_ratio(m.group(1), m.group(2)):
                continue
            if pattern is _TABLE_CELL and "|" not in text:
                continue
            found.append(
                (m.start(), m.end(), [ImageRef(series=int(m.group(1)), image=int(m.group(2)))])
            )
            taken.append(m.span())
    for m in _PAIR.finditer(text):
        if not free(*m.span()):
            continue
        refs = [ImageRef(series=int(m.group(1)), image=i) for i in _images(m.group(2), m.group(3))]
        found.append((m.start(), m.end(), refs))
        taken.append(m.span())
    for m in _SHORT.finditer(text):
        if free(*m.span()):
            found.append(
                (m.start(), m.end(), [ImageRef(series=int(m.group(1)), image=int(m.group(2)))])
            )
            taken.append(m.span())
    for m in _IMAGE_FIRST.finditer(text):
        if free(*m.span()):
            series = int(m.group(3))
            refs = [ImageRef(series=series, image=i) for i in _images(m.group(1), m.group(2))]
            found.append((m.start(), m.end(), refs))
            taken.append(m.span())
    for m in _IMAGE_ONLY.finditer(text):
        if free(*m.span()):
            refs = [ImageRef(series=ANY_SERIES, image=i) for i in _images(m.group(1), m.group(2))]
            found.append((m.start(), m.end(), refs))
            taken.append(m.span())
    found.sort(key=lambda f: f[0])
    return [(r, (s, e)) for s, e, refs in found for r in refs]


def image_refs(text: str) -> list[ImageRef]:
    """The distinct key-image references of ``text`` in text order."""
    out: list[ImageRef] = []
    for ref, _ in find_image_refs(text):
        if ref not in out:
            out.append(ref)
    return out
