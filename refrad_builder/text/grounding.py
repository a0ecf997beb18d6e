"""Grounded-caption tokens in RadGrounder's form.

``<p bbox=<loc0100><loc0200><loc0300><loc0400> id=<seg042>>liver</p>``: the box corners are
normalised to [0, 1] by the image size and discretised into 512 bins, x before y.
"""

from __future__ import annotations

import re

BINS = 512
_TOKEN = re.compile(
    r"<p bbox=<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})> id=<seg(\d{3})>>(.*?)</p>"
)


def quantize(bbox: tuple[int, int, int, int], width: int, height: int) -> tuple[int, ...]:
    """Pixel-edge box -> four bin indices (x_min, y_min, x_max, y_max) in [0, BINS-1]."""
    x0, y0, x1, y1 = bbox

    def q(v: float, size: int) -> int:
        return min(BINS - 1, max(0, int(v / size * BINS)))

    return (q(x0, width), q(y0, height), q(x1, width), q(y1, height))


def token(
    class_id: int, text: str, bbox: tuple[int, int, int, int], width: int, height: int
) -> str:
    """One grounded phrase."""
    locs = "".join(f"<loc{v:04d}>" for v in quantize(bbox, width, height))
    return f"<p bbox={locs} id=<seg{class_id:03d}>>{text}</p>"


def finditer(text: str):
    """Grounded phrases with their place: (start, end, class id, bins, phrase)."""
    for m in _TOKEN.finditer(text):
        bins = tuple(int(m.group(i)) for i in range(1, 5))
        yield m.start(), m.end(), int(m.group(5)), bins, m.group(6)


def parse(text: str) -> list[tuple[int, tuple[int, int, int, int], str]]:
    """All grounded phrases in ``text`` as (class id, bins, phrase)."""
    return [(cid, bins, phrase) for _, _, cid, bins, phrase in finditer(text)]


def strip(text: str) -> str:
    """The plain text of a grounded caption."""
    return _TOKEN.sub(lambda m: m.group(6), text)
