"""Retain Safe Private (PS3.15 E.3.10): the standard's table of private attributes thought
to be safe, and which private elements of one data set level it keeps.

The table is data, ``refrad_builder/data/dicom_safe_private.json`` (Table E.3.10-1, its
source named in the file). An element is kept only when its private creator string, its
element within the block (``gggg,xxEE``) and its VR all match a row; every other private
element goes, and a creator element (``gggg,00xx``) stays only when something of its block
stays. Rows the standard lists without a VR are never kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pydicom.dataset import Dataset

SAFE_PRIVATE_RESOURCE = "dicom_safe_private.json"


class SafePrivateError(ValueError):
    """The safe-private table is malformed (a packaging error, never PHI)."""


@dataclass(frozen=True)
class SafePrivateTable:
    """``(creator, group, element byte) -> VR`` for every row with a VR."""

    rows: dict[tuple[str, int, int], str]

    def vr_for(self, creator: str, group: int, offset: int) -> str | None:
        """The VR the table lists for the element, or None when it is not listed."""
        return self.rows.get((creator, group, offset))

    def kept_tags(self, ds: Dataset) -> frozenset[int]:
        """The private tags of one data set level (not its sequences' items) to keep:
        listed elements with the listed VR, and the creator elements of their blocks."""
        creators: dict[int, str] = {}
        kept: set[int] = set()
        for tag in ds.keys():
            tag = int(tag)
            group, element = tag >> 16, tag & 0xFFFF
            if group % 2 == 0:
                continue
            if 0x0010 <= element <= 0x00FF:
                value = ds[tag].value
                if isinstance(value, bytes):
                    value = value.decode("ascii", "replace")
                creators[tag] = str(value or "").strip().rstrip("\x00").strip()
                continue
            if element < 0x1000:
                continue
            creator_tag = (group << 16) | (element >> 8)
            creator = creators.get(creator_tag)
            if creator is None:
                continue
            vr = self.vr_for(creator, group, element & 0xFF)
            if vr is not None and ds[tag].VR == vr:
                kept.add(tag)
                kept.add(creator_tag)
        return frozenset(kept)


def _parse(doc: dict) -> SafePrivateTable:
    rows: dict[tuple[str, int, int], str] = {}
    if not doc.get("source"):
        raise SafePrivateError("the safe-private table does not name its source")
    for row in doc["rows"]:
        text = row["tag"].strip("()").replace(" ", "")
        group_text, _, element_text = text.partition(",")
        if len(group_text) != 4 or len(element_text) != 4 or element_text[:2].lower() != "xx":
            raise SafePrivateError(f"bad safe-private tag {row['tag']!r}")
        group, offset = int(group_text, 16), int(element_text[2:], 16)
        if group % 2 == 0:
            raise SafePrivateError(f"safe-private tag {row['tag']!r} is not private")
        if not row.get("creator"):
            raise SafePrivateError(f"safe-private tag {row['tag']!r} has no creator")
        if row.get("vr"):
            rows[(row["creator"], group, offset)] = row["vr"]
    return SafePrivateTable(rows=rows)


@lru_cache(maxsize=1)
def load_safe_private() -> SafePrivateTable:
    """The packaged Table E.3.10-1 (cached)."""
    pkg = resources.files("refrad_builder.data").joinpath(SAFE_PRIVATE_RESOURCE)
    return _parse(json.loads(pkg.read_text("utf-8")))
