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

# "series 4, images 112 and 140": a second image of the same series after "and"
_AND_IMAGE = r"(?:\s+(?:and|und|&)\s+(\d{1,5})(?![\w.,]\d|\d|\s*(?:mm|cm|ml|%|x|×)(?!\w)))?"
_PAIR = re.compile(
    rf"(?<![\w.]){_SER}{_SEP}{_NUM}{_JOIN}{_IMG}{_SEP}{_NUM}{_RANGE}{_AND_IMAGE}(?![\w.,]\d|\w)",
    re.IGNORECASE,
)
# PACS short form "S3/I45", "S3 I45", "SE3 IM45"
_SHORT = re.compile(r"(?<![\w.])S(\d{1,4})\s*[/ ]\s*I(\d{1,5})(?!\w)", re.IGNORECASE)
# "image 142 of series 2", "Bild 45 der Serie 3", "image 22 series 3", "Bild 18, Serie 7"
_IMAGE_FIRST = re.compile(
    rf"(?<![\w.]){_IMG}{_SEP}{_NUM}{_RANGE}\s*(?:,\s*|/\s*|\s+(?:(?:of|in|from|aus|der|von|in\s+der)\s+)?){_SER}{_SEP}{_NUM}(?!\w)",
    re.IGNORECASE,
)
# "image 14/27", "Bild 44/120": image 14 of a stack of 27 (the second number is the larger)
# (not "b": "b 50/800" are diffusion b-values)
_IMAGE_OF_TOTAL = re.compile(
    rf"(?<![\w.])(?:images?|img|ima|bilder|bild|bi)\.?{_SEP}(\d{{1,5}})\s*/\s*(\d{{1,5}})(?![\w/])",
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
# "(4/132)": series/image alone in parentheses; never a level ("(L4/5)": letters), a fraction
# ("(1/2)": one-digit image) or a date ("(03/2024)", "(11/23)": see _date_like)
_SLASH_PAREN = re.compile(r"\((\d{1,4})\s*/\s*(\d{2,5})\)")
# a pair after a plane or reconstruction name: "coronal 601:48", "sagittal 7/19", "kor. 5:31"
_PLANE_PAIR = re.compile(
    r"(?<![\w.])(?:axial|coronal|sagittal|koronar|sagittal|transversal|ax|cor|sag|kor)\.?\s+"
    r"(\d{1,4})\s*[:/]\s*(\d{1,5})(?![\w/:])",
    re.IGNORECASE,
)
# "| 3/41 |": a series/image pair filling a table cell alone (levels such as "L4/5" carry
# letters; the image number has at least two digits, so "1/2" fractions are none)
_TABLE_CELL = re.compile(r"(?:^|\|)[ \t]*(\d{1,4})\s*/\s*(\d{2,5})[ \t]*(?=\||$)", re.MULTILINE)
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


def _date_like(first: str, second: str) -> bool:
    """Whether "first/second" reads as a month and year ("3/2024") or carries a leading zero
    ("03/24"; dates and telephone numbers do, series and image numbers do not)."""
    if first.startswith("0") or second.startswith("0"):
        return True
    return int(first) <= 12 and len(second) == 4 and 1900 <= int(second) <= 2099


def _pair_ok(pattern: re.Pattern[str], text: str, m: re.Match[str]) -> bool:
    if pattern in (_COLON_PAREN, _PLANE_PAIR) and _clock_or_ratio(m.group(1), m.group(2)):
        return False
    if pattern in (_SLASH_PAREN, _TABLE_CELL) and _date_like(m.group(1), m.group(2)):
        return False
    if pattern is _SLASH_PAREN and m.group(1) == "1" and int(m.group(2)) % 10 == 0:
        return False  # a dilution or ratio "(1/100)"
    return pattern is not _TABLE_CELL or "|" in text


def find_image_refs(text: str) -> list[tuple[ImageRef, tuple[int, int]]]:
    """Every key-image reference in ``text`` with its character span, in text order (table
    cells under an image column need the header row: :func:`table_column_refs`)."""
    found: list[tuple[int, int, list[ImageRef]]] = []
    taken: list[tuple[int, int]] = []

    def add(s: int, e: int, refs: list[ImageRef]) -> None:
        if all(e <= ts or s >= te for ts, te in taken):
            found.append((s, e, refs))
            taken.append((s, e))

    for m in _IMAGE_PAREN.finditer(text):
        series = int(m.group(3))
        add(*m.span(), [ImageRef(series=series, image=i) for i in _images(m.group(1), m.group(2))])
    for pattern in (_SLASH_PAIR, _COLON_PAREN, _SLASH_PAREN, _PLANE_PAIR, _TABLE_CELL):
        for m in pattern.finditer(text):
            if _pair_ok(pattern, text, m):
                add(*m.span(), [ImageRef(series=int(m.group(1)), image=int(m.group(2)))])
    for m in _PAIR.finditer(text):
        series = int(m.group(1))
        images = _images(m.group(2), m.group(3)) + ([int(m.group(4))] if m.group(4) else [])
        add(*m.span(), [ImageRef(series=series, image=i) for i in images])
    for m in _SHORT.finditer(text):
        add(*m.span(), [ImageRef(series=int(m.group(1)), image=int(m.group(2)))])
    for m in _IMAGE_FIRST.finditer(text):
        series = int(m.group(3))
        add(*m.span(), [ImageRef(series=series, image=i) for i in _images(m.group(1), m.group(2))])
    for m in _IMAGE_OF_TOTAL.finditer(text):
        if int(m.group(2)) >= int(m.group(1)):
            add(*m.span(), [ImageRef(series=ANY_SERIES, image=int(m.group(1)))])
    for m in _IMAGE_ONLY.finditer(text):
        refs = [ImageRef(series=ANY_SERIES, image=i) for i in _images(m.group(1), m.group(2))]
        add(*m.span(), refs)
    found.sort(key=lambda f: f[0])
    return [(r, (s, e)) for s, e, refs in found for r in refs]


# a table column that holds image numbers ("Bild", "Image #", "Key image") or series/image
# pairs ("Ser/Img", "Se/Bi", "Serie/Bild")
_IMAGE_COLUMN = re.compile(
    r"(?:key[ \t]*)?(?:images?|img|im|bild(?:er)?|bi|schicht)\.?(?:[ \t]*(?:nr\.?|no\.?|#))?",
    re.IGNORECASE,
)
_PAIR_COLUMN = re.compile(rf"{_SER}[ \t]*[/:][ \t]*{_IMG}", re.IGNORECASE)
_CELL_IMAGE = re.compile(r"(\d{1,5})(?:[ \t]*(?:-|–)[ \t]*(\d{1,5}))?")
_CELL_PAIR = re.compile(r"(\d{1,4})[ \t]*[/:][ \t]*(\d{1,5})")


def _cells(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each cell of the pipe-table row text[start:end], stripped."""
    bounds = [start - 1, *(i for i in range(start, end) if text[i] == "|"), end]
    cells = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        a += 1
        while a < b and text[a] in " \t":
            a += 1
        while b > a and text[b - 1] in " \t":
            b -= 1
        cells.append((a, b))
    if text[start] == "|":
        cells = cells[1:]
    return cells


def table_column_refs(text: str) -> list[tuple[ImageRef, tuple[int, int]]]:
    """Key-image references in the cells of a pipe table's image column ("| Bild |" above
    "| 88 |"; "| Ser/Img |" above "| 1102/44 |"), with the cell spans, in text order."""
    out: list[tuple[ImageRef, tuple[int, int]]] = []
    column: tuple[int, bool] | None = None  # (cell index, holds pairs)
    for line in re.finditer(r"[^\n]+", text):
        s, e = line.span()
        if line.group().count("|") < 2:
            column = None
            continue
        cells = _cells(text, s, e)
        values = [text[a:b] for a, b in cells]
        header = [
            (i, bool(_PAIR_COLUMN.fullmatch(v)))
            for i, v in enumerate(values)
            if _PAIR_COLUMN.fullmatch(v) or _IMAGE_COLUMN.fullmatch(v)
        ]
        if header:
            column = header[0]
            continue
        if column is None or column[0] >= len(cells) or re.fullmatch(r"[-:= ]*", values[0]):
            continue
        a, b = cells[column[0]]
        value = text[a:b]
        if column[1] and (m := _CELL_PAIR.fullmatch(value)):
            out.append((ImageRef(series=int(m.group(1)), image=int(m.group(2))), (a, b)))
        elif not column[1] and (m := _CELL_IMAGE.fullmatch(value)):
            for i in _images(m.group(1), m.group(2)):
                out.append((ImageRef(series=ANY_SERIES, image=i), (a, b)))
    return sorted(out + aligned_table_refs(text), key=lambda r: r[1])


# a table aligned with spaces: cells apart by two or more blanks, a series/image column
# ("Serie/Bild") in its header row; each row's one series/image pair lies under it
_ALIGNED_GAP = re.compile(r"[ \t]{2,}|\t")
_ALIGNED_PAIR = re.compile(r"(?<![\w/.,])(\d{1,4})/(\d{2,5})(?![\w/.,])")


def aligned_table_refs(text: str) -> list[tuple[ImageRef, tuple[int, int]]]:
    """Key-image references in the series/image column of a space-aligned table, with the
    cell spans, in text order; a row without a pair or a line without a gap ends nothing
    but the table."""
    out: list[tuple[ImageRef, tuple[int, int]]] = []
    in_table = False
    for line in re.finditer(r"[^\n]+", text):
        value = line.group()
        if not _ALIGNED_GAP.search(value.strip()):
            in_table = False
            continue
        cells = [c for c in re.split(r"[ \t]{2,}|\t", value.strip()) if c]
        if any(_PAIR_COLUMN.fullmatch(c) for c in cells):
            in_table = True
            continue
        pairs = list(_ALIGNED_PAIR.finditer(value)) if in_table else []
        if len(pairs) == 1 and not _date_like(pairs[0].group(1), pairs[0].group(2)):
            m = pairs[0]
            ref = ImageRef(series=int(m.group(1)), image=int(m.group(2)))
            out.append((ref, (line.start() + m.start(), line.start() + m.end())))
    return out


def refs_in_span(
    found: list[tuple[ImageRef, tuple[int, int]]], start: int, end: int
) -> list[ImageRef]:
    """The references of ``found`` whose spans lie inside [start, end)."""
    return [r for r, (s, e) in found if start <= s and e <= end]


def image_refs(text: str, extra: list[ImageRef] | None = None) -> list[ImageRef]:
    """The distinct key-image references of ``text`` in text order, then those of ``extra``
    (table-column references of the sentence, found on the whole report)."""
    out: list[ImageRef] = []
    for ref in [r for r, _ in find_image_refs(text)] + list(extra or []):
        if ref not in out:
            out.append(ref)
    return out
