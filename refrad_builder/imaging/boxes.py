"""Per-class union boxes from a 2D label mask.

A box is in stored-image pixel coordinates ``(x_min, y_min, x_max, y_max)`` with x = column,
y = row and ``x_max``/``y_max`` exclusive (pixel edges), so it equals the class's mask extent
exactly. One box per class: disjoint components of a class share one union box.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from refrad_builder.anatomy.labels import LabelSchema
from refrad_builder.engine.records import Box

BBox = tuple[int, int, int, int]


def _check_mask(mask_2d: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask_2d)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2D label mask, got shape {mask.shape}")
    if mask.dtype.kind not in "ui":
        raise ValueError(f"expected an integer label mask, got {mask.dtype}")
    return mask


def mask_extent(mask_2d: np.ndarray, class_id: int) -> BBox | None:
    """The exclusive pixel-edge extent ``(x_min, y_min, x_max, y_max)`` of ``class_id``, or
    None when the class is absent."""
    hit = _check_mask(mask_2d) == class_id
    rows = np.flatnonzero(hit.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(hit.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def union_boxes(mask_2d: np.ndarray, schema: LabelSchema, min_area: int) -> list[Box]:
    """One union box per class present in ``mask_2d`` with at least ``min_area`` pixels.

    ``area`` is the class's pixel count in the mask (not the box area); classes below
    ``min_area`` are specks and get no box. Boxes are ordered by class id. A label that the
    schema does not know raises ``ValueError`` (the mask is not in the unified id space).
    """
    mask = _check_mask(mask_2d)
    if mask.size == 0:
        return []
    if mask.min() < 0:
        raise ValueError("negative label in mask")
    counts = np.bincount(mask.ravel().astype(np.int64))
    present = [int(c) for c in np.flatnonzero(counts) if c != 0]
    unknown = [c for c in present if c not in schema.by_id]
    if unknown:
        raise ValueError(f"labels not in schema {schema.version}: {unknown}")
    keep = [c for c in present if counts[c] >= max(int(min_area), 1)]
    if not keep:
        return []
    # find_objects gives every label's bounding slices in a single pass over the mask.
    extents = ndimage.find_objects(mask.astype(np.int32, copy=False), max_label=max(keep))
    boxes = []
    for c in keep:
        rows, cols = extents[c - 1]
        boxes.append(
            Box(
                class_id=c,
                class_name=schema.by_id[c].name,
                bbox=(int(cols.start), int(rows.start), int(cols.stop), int(rows.stop)),
                area=int(counts[c]),
            )
        )
    return boxes
