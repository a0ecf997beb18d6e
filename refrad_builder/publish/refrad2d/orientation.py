"""From the stored-image grid to a DICOM file's own pixel grid.

Stored images are ``vol[:, :, k].T`` of the canonical (L, P, S) volume: column index along
+L, row index along +P. RadGrounder reads the DICOM pixel array as it is, so masks and boxes
must be given on the grid that ImageOrientationPatient describes. For an axial acquisition
the two grids differ by a transpose and/or flips only (the canonical volume is an axis
permutation of the acquired one), which :class:`GridMap` applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BBox = tuple[int, int, int, int]


@dataclass(frozen=True)
class GridMap:
    """Stored grid -> DICOM grid: ``transpose`` first, then flips of the result's axes."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @property
    def identity(self) -> bool:
        """True when both grids coincide (axial head-first supine, IOP 1,0,0,0,1,0)."""
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def shape(self, height: int, width: int) -> tuple[int, int]:
        """(Rows, Columns) the DICOM file must have for a stored image of this size."""
        return (width, height) if self.transpose else (height, width)

    def array(self, stored: np.ndarray) -> np.ndarray:
        """A stored-grid 2D array on the DICOM grid (a C-contiguous copy)."""
        out = stored.T if self.transpose else stored
        if self.flip_rows:
            out = out[::-1, :]
        if self.flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def box(self, bbox: BBox, height: int, width: int) -> BBox:
        """A stored-grid pixel-edge box (max edges exclusive) on the DICOM grid."""
        x0, y0, x1, y1 = bbox
        if self.transpose:
            x0, y0, x1, y1 = y0, x0, y1, x1
            height, width = width, height
        if self.flip_rows:
            y0, y1 = height - y1, height - y0
        if self.flip_cols:
            x0, x1 = width - x1, width - x0
        return x0, y0, x1, y1


def grid_map(orientation: Sequence[float] | None) -> GridMap | None:
    """The map for ImageOrientationPatient ``orientation``, or None when the image plane is
    not axial (its row and column directions are not closest to the L and P axes)."""
    if orientation is None or len(orientation) != 6:
        return None
    iop = np.asarray([float(v) for v in orientation], dtype=np.float64)
    if not np.all(np.isfinite(iop)):
        return None
    row_dir, col_dir = iop[:3], iop[3:]
    # DICOM column index runs along row_dir, row index along col_dir (PS3.3 C.7.6.2.1.1).
    along_cols, along_rows = int(np.argmax(np.abs(row_dir))), int(np.argmax(np.abs(col_dir)))
    if {along_cols, along_rows} != {0, 1}:
        return None
    return GridMap(
        transpose=along_cols == 1,
        flip_rows=col_dir[along_rows] < 0,
        flip_cols=row_dir[along_cols] < 0,
    )
