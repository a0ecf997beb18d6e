"""Classical CPU segmentation of CT (no model): body, left/right lung and bone.

A fallback when no TotalSegmentator output exists. Thresholds are in Hounsfield units; the
volume must be in the canonical orientation (i towards the patient's left, k superior).
Known limits: contrast-filled vessels and metal count as bone; lungs are split at the
mediastinum gap, so a collapsed or absent lung is not recognised; the trachea and main
bronchi are removed only where they stand apart from the lungs.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from refrad_builder.anatomy.labels import schema
from refrad_builder.imaging.orientation import is_canonical, voxel_spacing

CLASSICAL_VERSION = "classical-1"
SEGMENTER = "classical"

BODY_HU = -500.0
AIR_HU = -400.0
BONE_HU = 200.0
MIN_BONE_ML = 0.2
BONE_CLOSING_MM = 5.0
MIN_LUNG_ML = 5.0
GAS_HU = -950.0
MAX_GAS_FRACTION = 0.35
TRACHEA_MAX_AREA_MM2 = 600.0
TRACHEA_MIDLINE_MM = 15.0

_STRUCT_3D = ndimage.generate_binary_structure(3, 1)
# Rows of a label volume handled at once by the counting and lookup helpers: numpy turns
# uint16/int32 labels into 8-byte indices for bincount and fancy indexing, which on a whole
# 512x512x800 volume would be a 1.7 GB temporary.
_SLAB_ROWS = 32


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """3D connected components, stored as uint16 when they fit (half of int32's memory)."""
    labels = np.empty(mask.shape, dtype=np.uint16)
    try:
        n = ndimage.label(mask, structure=_STRUCT_3D, output=labels)
    except RuntimeError:  # more than 65,535 components: scipy refuses the narrow type
        labels, n = ndimage.label(mask, structure=_STRUCT_3D)
    return labels, int(n)


def _label_sizes(
    labels: np.ndarray, n: int, below: tuple[np.ndarray, float] | None = None
) -> np.ndarray:
    """Voxels per label 0..n, counted slab by slab; with ``below=(values, limit)`` only the
    voxels whose value is under the limit."""
    sizes = np.zeros(n + 1, dtype=np.int64)
    for i in range(0, labels.shape[0], _SLAB_ROWS):
        part = labels[i : i + _SLAB_ROWS]
        if below is not None:
            part = part[below[0][i : i + _SLAB_ROWS] < below[1]]
        sizes += np.bincount(part.ravel(), minlength=n + 1)
    return sizes


def _keep_labels(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Boolean mask of the voxels whose label is kept (``keep[labels]``, slab by slab)."""
    out = np.empty(labels.shape, dtype=bool)
    for i in range(0, labels.shape[0], _SLAB_ROWS):
        out[i : i + _SLAB_ROWS] = keep[labels[i : i + _SLAB_ROWS]]
    return out


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = _label(mask)
    if n == 0:
        return mask.copy()
    sizes = _label_sizes(labels, n)
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _fill_holes_axial(mask: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice, in place (returns ``mask``)."""
    for k in range(mask.shape[2]):
        mask[:, :, k] = ndimage.binary_fill_holes(mask[:, :, k])
    return mask


def body_mask(hu: np.ndarray) -> np.ndarray:
    """Patient body: tissue above -500 HU, largest 3D component, holes filled per slice.

    The filled holes include the lungs and gas inside the body; the table and clothing
    are separate smaller components and fall away.
    """
    tissue = hu > BODY_HU
    # Open in-plane a little so the table touching the back does not join the body.
    struct = np.ones((3, 3, 1), bool)
    core = _largest_component(ndimage.binary_opening(tissue, structure=struct))
    return _fill_holes_axial(ndimage.binary_dilation(core, structure=struct) & tissue)


def _outside_air(air: np.ndarray) -> np.ndarray:
    """Air connected to the in-plane border of its own axial slice (room air, mouth)."""
    out = np.zeros_like(air)
    for k in range(air.shape[2]):
        labels, n = ndimage.label(air[:, :, k])
        if n == 0:
            continue
        border = np.unique(
            np.concatenate([labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1]])
        )
        out[:, :, k] = np.isin(labels, border[border > 0])
    return out


def lung_masks(
    hu: np.ndarray, body: np.ndarray, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) lung masks in the canonical orientation.

    Lungs are the large air (< -400 HU) components inside the body that are not connected
    to outside air and look like parenchyma rather than bowel gas. Each axial slice is
    split into the patient's right and left at the column with the least lung near the
    body's midline (the mediastinum), so lungs joined by the airways are split as well.
    """
    sx, sy, sz = voxel_spacing(affine)
    voxel_ml = sx * sy * sz / 1000.0
    air = hu < AIR_HU
    inside = np.logical_not(_outside_air(air))
    air &= body
    air &= inside
    del inside
    labels, n = _label(air)
    del air
    empty = np.zeros(hu.shape, dtype=bool)
    if n == 0:
        return empty, empty.copy()
    sizes = _label_sizes(labels, n)
    sizes[0] = 0
    # Lung parenchyma (about -850 HU, with vessels) is denser than gas in the bowel (about
    # -1000 HU); the share of voxels under -950 HU tells them apart, unless emphysema is severe.
    very_low = _label_sizes(labels, n, below=(hu, GAS_HU))
    ids = [
        c
        for c in range(1, n + 1)
        if sizes[c] * voxel_ml >= MIN_LUNG_ML and very_low[c] / sizes[c] < MAX_GAS_FRACTION
    ]
    if not ids:
        return empty, empty.copy()
    largest = max(sizes[c] for c in ids)
    keep = np.zeros(n + 1, dtype=bool)
    keep[[c for c in ids if sizes[c] >= 0.1 * largest]] = True
    lung = _keep_labels(labels, keep)
    del labels
    mid = _midline(body)
    lung = _drop_airways(lung, mid, sx, sy)
    left, right = _split_sides(lung, mid)
    left = _fill_holes_axial(left)
    right = _fill_holes_axial(right)
    right &= ~left
    return left, right


def _drop_airways(lung: np.ndarray, mid: float, sx: float, sy: float) -> np.ndarray:
    """Remove small air islands on the midline of a slice (trachea, oesophagus)."""
    out = lung.copy()
    for k in range(lung.shape[2]):
        labels, n = ndimage.label(lung[:, :, k])
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        areas = ndimage.sum_labels(np.ones_like(labels), labels, idx) * sx * sy
        centres = ndimage.center_of_mass(np.ones_like(labels), labels, idx)
        for label, area, (ci, _cj) in zip(idx, areas, centres, strict=True):
            if area <= TRACHEA_MAX_AREA_MM2 and abs(ci - mid) * sx <= TRACHEA_MIDLINE_MM:
                out[:, :, k][labels == label] = False
    return out


def _midline(body: np.ndarray) -> float:
    """Mean i of the body voxels (its left-right centre)."""
    counts = body.sum(axis=(1, 2), dtype=np.int64)
    if counts.sum() == 0:
        return body.shape[0] / 2.0
    return float((counts * np.arange(body.shape[0])).sum() / counts.sum())


def _split_sides(lung: np.ndarray, mid: float) -> tuple[np.ndarray, np.ndarray]:
    """Assign lung voxels to the patient's left (i > split) or right, per axial slice."""
    left = np.zeros_like(lung)
    right = np.zeros_like(lung)
    ni = lung.shape[0]
    window = max(2, ni // 8)
    for k in range(lung.shape[2]):
        sl = lung[:, :, k]
        if not sl.any():
            continue
        profile = sl.sum(axis=1)
        lo, hi = max(0, int(mid) - window), min(ni, int(mid) + window + 1)
        # The mediastinum is the column band with the least lung near the midline.
        band = profile[lo:hi]
        candidates = np.nonzero(band == band.min())[0] + lo
        split = int(candidates[np.argmin(np.abs(candidates - mid))])
        left[split + 1 :, :, k] = sl[split + 1 :, :]
        right[:split, :, k] = sl[:split, :]
        if profile[split]:
            # Voxels in the split column go to the side they touch more.
            col = sl[split, :]
            if profile[split + 1 : split + 2].sum() >= profile[max(0, split - 1) : split].sum():
                left[split, :, k] = col
            else:
                right[split, :, k] = col
    return left, right


def bone_mask(hu: np.ndarray, body: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Bone: above 200 HU inside the body, with the marrow its cortex encloses in a slice
    (closed in-plane over 5 mm gaps, then filled); specks under 0.2 mL removed."""
    sx, sy, sz = voxel_spacing(affine)
    voxel_ml = sx * sy * sz / 1000.0
    dense = hu > BONE_HU
    dense &= body
    steps = max(1, int(round(BONE_CLOSING_MM / max(min(sx, sy), 1e-3))))
    bone = ndimage.binary_closing(dense, structure=np.ones((3, 3, 1), bool), iterations=steps)
    bone |= dense
    del dense
    bone = _fill_holes_axial(bone)
    bone &= body
    labels, n = _label(bone)
    if n == 0:
        return bone
    del bone
    keep = _label_sizes(labels, n) * voxel_ml >= MIN_BONE_ML
    keep[0] = False
    return _keep_labels(labels, keep)


def segment_ct(hu: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Unified-schema label volume (uint8) of a canonical CT volume in HU."""
    if not is_canonical(affine):
        raise ValueError("classical segmentation expects the canonical LPS voxel order")
    hu = np.asarray(hu)
    if not np.issubdtype(hu.dtype, np.number):
        hu = hu.astype(np.float32)
    # Thresholds compare against the stored values as they are (int16 HU stays int16): a
    # float copy of a 512x512x800 volume would cost 840 MB for the same answers.
    ids = schema().by_name
    body = body_mask(hu)
    left, right = lung_masks(hu, body, affine)
    bone = bone_mask(hu, body, affine)
    out = np.zeros(hu.shape, dtype=np.uint8)
    out[body] = ids["body"].id
    out[bone] = ids["bone"].id
    out[right] = ids["lung_right"].id
    out[left] = ids["lung_left"].id
    return out
