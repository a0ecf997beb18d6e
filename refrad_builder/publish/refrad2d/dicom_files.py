"""Finding the de-identified DICOM file of an exported slice by its instance number."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from refrad_builder.publish.refrad2d.layout import (
    _HEADER_TAGS,
    ExportItem,
)
from refrad_builder.publish.refrad2d.orientation import GridMap, grid_map


@dataclass(frozen=True)
class _Header:
    path: Path
    rows: int | None
    columns: int | None
    frames: int
    orientation: tuple[float, ...] | None


def _read_header(path: Path) -> tuple[int | None, _Header] | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except (OSError, EOFError, ValueError, InvalidDicomError):
        return None

    def as_int(value: Any) -> int | None:
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    iop = ds.get("ImageOrientationPatient")
    try:
        orientation = tuple(float(v) for v in iop) if iop else None
    except (TypeError, ValueError):
        orientation = None
    return as_int(ds.get("InstanceNumber")), _Header(
        path=path,
        rows=as_int(ds.get("Rows")),
        columns=as_int(ds.get("Columns")),
        frames=as_int(ds.get("NumberOfFrames")) or 1,
        orientation=orientation,
    )


class _DicomFinder:
    """InstanceNumber -> deid file of a series, headers read once per series."""

    def __init__(self, work: Path):
        self.work = work
        self._series: dict[tuple[str, tuple[str, ...]], dict[int, list[_Header]]] = {}

    def find(self, item: ExportItem) -> tuple[_Header, GridMap] | str:
        """The slice's file and grid map, or the reason there is none."""
        if item.instance_number is None:
            return "no_instance_number"
        cache_key = (item.series_id, item.deid_files)
        by_instance = self._series.get(cache_key)
        if by_instance is None:
            by_instance = {}
            for rel in item.deid_files:
                found = _read_header(self.work / rel)
                if found is not None and found[0] is not None:
                    by_instance.setdefault(found[0], []).append(found[1])
            self._series[cache_key] = by_instance
        matches = by_instance.get(item.instance_number, [])
        if not matches:
            return "no_dicom_match"
        if len(matches) > 1:
            return "ambiguous_instance"
        header = matches[0]
        if header.frames != 1:
            return "multiframe"
        gmap = grid_map(header.orientation)
        if gmap is None:
            return "not_axial"
        s = item.sample
        if (header.rows, header.columns) != gmap.shape(s.height, s.width):
            return "shape_mismatch"
        return header, gmap
