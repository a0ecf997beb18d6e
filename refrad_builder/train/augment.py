"""Box-aware augmentation: a random crop that keeps every box (moving the boxes and rewriting the
location tokens of the target), contrast gamma and an intensity shift."""

from __future__ import annotations

import random

import numpy as np

from refrad_builder.text import grounding

Box = tuple[int, int, int, int]


def crop_window(width: int, height: int, boxes: list[Box], rng: random.Random, min_frac=0.6):
    """A crop ``(x0, y0, x1, y1)`` that contains the union of ``boxes`` (pixel edges)."""
    if boxes:
        ux0, uy0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        ux1, uy1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    else:
        ux0, uy0, ux1, uy1 = width // 2, height // 2, width // 2 + 1, height // 2 + 1

    def side(lo: int, hi: int, size: int) -> tuple[int, int]:
        want = max(hi - lo, int(size * rng.uniform(min_frac, 1.0)))
        start = rng.randint(max(0, hi - want), max(0, min(lo, size - want)))
        return start, min(size, start + want)

    x0, x1 = side(ux0, ux1, width)
    y0, y1 = side(uy0, uy1, height)
    return x0, y0, x1, y1


def rewrite_locations(text: str, boxes: dict[int, Box], width: int, height: int) -> str:
    """Re-quantise each phrase's box to a ``width`` x ``height`` image; ``boxes`` by class id."""
    out, last = [], 0
    for start, end, cid, _bins, phrase in grounding.finditer(text):
        out.append(text[last:start])
        out.append(grounding.token(cid, phrase, boxes[cid], width, height))
        last = end
    out.append(text[last:])
    return "".join(out)


def crop_sample(values: np.ndarray, boxes: list[dict], target: str, rng: random.Random):
    """Crop ``values`` (H x W) at random keeping every box; returns the crop, the moved boxes and
    the target with its location tokens rewritten for the cropped image."""
    h, w = values.shape[:2]
    return crop_to(values, boxes, target, crop_window(w, h, [tuple(b["bbox"]) for b in boxes], rng))


def crop_to(values: np.ndarray, boxes: list[dict], target: str, window: Box):
    """Crop ``values`` to ``window`` (x0, y0, x1, y1; it must hold every box), as
    :func:`crop_sample` does."""
    h, w = values.shape[:2]
    x0, y0, x1, y1 = window
    moved = [
        {**b, "bbox": [b["bbox"][0] - x0, b["bbox"][1] - y0, b["bbox"][2] - x0, b["bbox"][3] - y0]}
        for b in boxes
    ]
    by_class = {b["class_id"]: tuple(b["bbox"]) for b in moved}
    for _, _, cid, bins, _ in grounding.finditer(target):
        if cid not in by_class:  # a phrase without a box entry: undo the quantisation
            sx, sy = w / grounding.BINS, h / grounding.BINS
            px = (bins[0] * sx - x0, bins[1] * sy - y0, bins[2] * sx - x0, bins[3] * sy - y0)
            by_class[cid] = tuple(round(v) for v in px)
    return values[y0:y1, x0:x1], moved, rewrite_locations(target, by_class, x1 - x0, y1 - y0)


def intensity(img01: np.ndarray, rng: random.Random, gamma_range, shift: float) -> np.ndarray:
    """Contrast gamma and a global shift on an image scaled to [0, 1]."""
    gamma = rng.uniform(*gamma_range)
    out = np.power(np.clip(img01, 0.0, 1.0), gamma) + rng.uniform(-shift, shift)
    return np.clip(out, 0.0, 1.0)
