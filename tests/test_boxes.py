"""Union boxes equal exact mask extents (pixel edges, x_max/y_max exclusive)."""

from __future__ import annotations

import numpy as np
import pytest

from refrad_builder.anatomy.labels import schema
from refrad_builder.imaging.boxes import mask_extent, union_boxes


def _brute_extent(mask: np.ndarray, class_id: int) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask == class_id)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def _random_mask(rng: np.random.Generator, shape=(64, 80)) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    class_ids = rng.choice(np.arange(1, 122), size=6, replace=False)
    for cid in class_ids:
        # Several rectangles per class so a class often has disjoint components.
        for _ in range(int(rng.integers(1, 4))):
            r0, c0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            h, w = rng.integers(1, 15), rng.integers(1, 15)
            mask[r0 : r0 + h, c0 : c0 + w] = cid
    return mask


@pytest.mark.parametrize("seed", range(25))
def test_union_boxes_equal_mask_extents(seed):
    rng = np.random.default_rng(seed)
    mask = _random_mask(rng)
    s = schema()
    boxes = union_boxes(mask, s, min_area=1)
    present = sorted(int(c) for c in np.unique(mask) if c != 0)
    assert [b.class_id for b in boxes] == present
    for box in boxes:
        assert box.bbox == _brute_extent(mask, box.class_id)
        assert box.bbox == mask_extent(mask, box.class_id)
        assert box.area == int(np.count_nonzero(mask == box.class_id))
        assert box.class_name == s.by_id[box.class_id].name
        x0, y0, x1, y1 = box.bbox
        assert 0 <= x0 < x1 <= mask.shape[1] and 0 <= y0 < y1 <= mask.shape[0]
        # Nothing of the class lies outside the box and every box edge touches the class.
        inside = np.zeros_like(mask, dtype=bool)
        inside[y0:y1, x0:x1] = True
        hit = mask == box.class_id
        assert not (hit & ~inside).any()
        assert hit[y0, x0:x1].any() and hit[y1 - 1, x0:x1].any()
        assert hit[y0:y1, x0].any() and hit[y0:y1, x1 - 1].any()


def test_disjoint_components_get_one_union_box():
    mask = np.zeros((40, 50), dtype=np.uint8)
    mask[2:6, 3:7] = 5  # liver, top-left component
    mask[30:35, 40:48] = 5  # liver, bottom-right component
    boxes = union_boxes(mask, schema(), min_area=1)
    assert len(boxes) == 1
    assert boxes[0].bbox == (3, 2, 48, 35)
    assert boxes[0].area == 16 + 40


def test_single_pixel_box_has_exclusive_edges():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[2, 5] = 1
    assert mask_extent(mask, 1) == (5, 2, 6, 3)
    assert mask_extent(mask, 2) is None


def test_specks_below_min_area_are_dropped():
    mask = np.zeros((30, 30), dtype=np.uint8)
    mask[0:4, 0:5] = 1  # 20 px: kept at min_area 20
    mask[10:13, 10:16] = 2  # 18 px: a speck
    mask[20, 20] = 3  # 1 px: a speck
    boxes = union_boxes(mask, schema(), min_area=20)
    assert [(b.class_id, b.area) for b in boxes] == [(1, 20)]
    assert [b.class_id for b in union_boxes(mask, schema(), min_area=1)] == [1, 2, 3]


def test_empty_mask_and_unknown_labels():
    assert union_boxes(np.zeros((8, 8), dtype=np.uint8), schema(), min_area=1) == []
    bad = np.zeros((8, 8), dtype=np.uint8)
    bad[1, 1] = 250  # beyond the unified schema
    with pytest.raises(ValueError, match="not in schema"):
        union_boxes(bad, schema(), min_area=1)
    with pytest.raises(ValueError):
        union_boxes(np.zeros((2, 2, 2), dtype=np.uint8), schema(), min_area=1)
