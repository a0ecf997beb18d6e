"""Which slices of a series become 2D samples, and how each plane is displayed.

Priority: (1) slices the report references ("Se 3/Bi 142"), (2) organ coverage: for each
class, the slice where it is largest (classes the report mentions first, then the rest by
volume), optionally with neighbours, (3) uniform fill over the slices that hold the body or
any label, spread by farthest-point sampling. The cap applies in that order; the result is
sorted by slice index, each slice with every reason that chose it.

Planes of a canonical (L, P, S) volume and their radiological display (row 0 at the top):

* axial ``vol[:, :, k]``: anterior at the top, patient right on the image's left;
* coronal ``vol[:, j, :]``: superior at the top, patient right on the image's left;
* sagittal ``vol[i, :, :]``: superior at the top, anterior on the image's left.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from refrad_builder.anatomy.labels import LabelSchema

REFERENCED = "referenced"
UNIFORM = "uniform"
N_LABELS = 256
CT_BODY_HU = -500.0
BODY_MIN_FRACTION = 0.01
PLANES = ("axial", "coronal", "sagittal")
# The canonical volume axis each plane's slices are taken along.
PLANE_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


@dataclass(frozen=True)
class ChosenSlice:
    """A slice index along the plane's axis and why it was chosen (in the order the reasons
    arose)."""

    index: int
    reasons: tuple[str, ...]


def _plane_axis(plane: str) -> int:
    if plane not in PLANE_AXIS:
        raise ValueError(f"unknown plane {plane!r}; planes: {', '.join(PLANES)}")
    return PLANE_AXIS[plane]


def _slab(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """``volume``'s slice ``index`` along ``axis`` as a view (np.take would copy)."""
    return volume[(slice(None),) * axis + (index,)]


def plane_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """One slice of a canonical (L, P, S) volume as a 2D image in radiological display.

    Axial: rows run anterior -> posterior, columns patient right -> left. Coronal: rows
    superior -> inferior, columns patient right -> left. Sagittal: rows superior -> inferior,
    columns anterior -> posterior. A view, not a copy.
    """
    axis = _plane_axis(plane)
    if axis == 2:
        return volume[:, :, index].T
    # k grows superior: reversing it puts the head at row 0.
    if axis == 1:
        return volume[:, index, ::-1].T
    return volume[index, :, ::-1].T


def plane_pixel_spacing(spacing: tuple[float, float, float], plane: str) -> tuple[float, float]:
    """(row spacing, column spacing) in mm of a plane's images, from the volume's (i, j, k)."""
    si, sj, sk = (float(s) for s in spacing)
    return {"axial": (sj, si), "coronal": (sk, si), "sagittal": (sk, sj)}[plane]


def reformat_allowed(spacing: tuple[float, float, float], max_anisotropy: float) -> bool:
    """Whether a volume is near-isotropic enough for coronal/sagittal reformats: its largest
    voxel size is at most ``max_anisotropy`` times its smallest."""
    sizes = [float(s) for s in spacing]
    return min(sizes) > 0 and max(sizes) / min(sizes) <= max_anisotropy


def label_areas(labels: np.ndarray, plane: str = "axial") -> np.ndarray:
    """Pixel count per slice of ``plane`` and label: int64 (N, 256) of an (I, J, K) uint8 map."""
    if labels.ndim != 3:
        raise ValueError(f"expected a 3D label volume, got shape {labels.shape}")
    if labels.dtype != np.uint8:
        raise ValueError(f"expected uint8 labels, got {labels.dtype}")
    axis = _plane_axis(plane)
    n = labels.shape[axis]
    out = np.zeros((n, N_LABELS), dtype=np.int64)
    # Per-slice bincount keeps memory at one slice instead of an int64 copy of the volume.
    for k in range(n):
        out[k] = np.bincount(_slab(labels, axis, k).ravel(), minlength=N_LABELS)
    return out


def body_slices(image: np.ndarray, units: str, plane: str = "axial") -> np.ndarray:
    """Bool (N,): slices of ``plane`` where at least 1 % of the pixels look like body.

    CT: HU above -500. MR (arbitrary units): above 10 % of the volume's 99th percentile.
    """
    if image.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {image.shape}")
    axis = _plane_axis(plane)
    if units == "HU":
        threshold = CT_BODY_HU
    else:
        # A strided sample bounds the cost of the percentile on large volumes.
        step = max(1, int(np.ceil((image.size / 4_000_000) ** (1 / 3))))
        sample = image[::step, ::step, ::step]
        p99 = float(np.percentile(sample, 99)) if sample.size else 0.0
        if p99 <= 0:
            return np.zeros(image.shape[axis], dtype=bool)
        threshold = 0.1 * p99
    per_slice = image.size // max(image.shape[axis], 1)
    counts = np.array(
        [np.count_nonzero(_slab(image, axis, k) > threshold) for k in range(image.shape[axis])]
    )
    return counts >= max(1, int(np.ceil(BODY_MIN_FRACTION * per_slice)))


def referenced_indices(
    refs: Iterable[Sequence[int]],
    series_number: int | None,
    instance_numbers: Sequence[int | None],
) -> list[int]:
    """Slice indices of image references ``(series, image)`` that point into this series.

    ``series == -1`` means "any series"; a series without a number matches only those.
    Order follows the references; duplicates are dropped.
    """
    by_instance: dict[int, list[int]] = {}
    for k, inst in enumerate(instance_numbers):
        if inst is not None:
            by_instance.setdefault(int(inst), []).append(k)
    out: list[int] = []
    for series, image in refs:
        if series != -1 and (series_number is None or series != series_number):
            continue
        for k in by_instance.get(int(image), []):
            if k not in out:
                out.append(k)
    return out


def _coverage_order(
    areas: np.ndarray, mentioned: Sequence[str], schema: LabelSchema
) -> list[tuple[str, np.ndarray]]:
    """(class name, per-slice area) in coverage priority: mentioned first, then by volume."""
    order: list[tuple[str, np.ndarray]] = []
    seen: set[str] = set()
    for name in mentioned:
        if name in seen or name not in schema.by_name:
            continue
        seen.add(name)
        # A mentioned parent (lung_left) counts the area of its members (its lobes).
        ids = sorted(schema.by_name[m].id for m in schema.members(name) if m in schema.by_name)
        order.append((name, areas[:, ids].sum(axis=1)))
    totals = areas.sum(axis=0)
    rest = [
        c
        for c in np.flatnonzero(totals)
        if c != 0 and c in schema.by_id and schema.by_id[c].name not in seen
    ]
    rest.sort(key=lambda c: (-int(totals[c]), int(c)))
    order.extend((schema.by_id[int(c)].name, areas[:, c]) for c in rest)
    return order


def _uniform_fill(chosen: set[int], lo: int, hi: int, n: int) -> list[int]:
    """Up to ``n`` new indices in [lo, hi], each the farthest from those chosen so far.

    Virtual picks just outside the range keep the fill off the range's first and last slice
    unless the range is that small.
    """
    candidates = np.arange(lo, hi + 1)
    anchors = [lo - 1, hi + 1, *sorted(chosen)]
    picked: list[int] = []
    for _ in range(n):
        dist = np.min(np.abs(candidates[:, None] - np.asarray(anchors)[None, :]), axis=1)
        best = int(np.argmax(dist))
        if dist[best] == 0:
            break
        k = int(candidates[best])
        picked.append(k)
        anchors.append(k)
    return picked


def choose_slices(
    areas: np.ndarray,
    *,
    body: np.ndarray | None = None,
    instance_numbers: Sequence[int | None] = (),
    series_number: int | None = None,
    refs: Iterable[Sequence[int]] = (),
    mentioned: Sequence[str] = (),
    schema: LabelSchema,
    max_slices: int,
    coverage_neighbors: int = 0,
    min_area: int = 1,
) -> list[ChosenSlice]:
    """Choose up to ``max_slices`` slices; sorted by index, with their reasons.

    ``areas`` is :func:`label_areas` of the label volume, ``body`` an optional per-slice flag
    from :func:`body_slices`. Coverage picks, per class, the first slice of largest area
    (reason ``coverage:<class>``) and ``coverage_neighbors`` slices on each side of it
    (``coverage_neighbor:<class>``); classes whose largest area is below ``min_area`` are
    skipped. A slice already chosen gains the reason without using the budget.
    """
    n_slices = areas.shape[0]
    reasons: dict[int, list[str]] = {}

    def add(k: int, reason: str) -> None:
        if k in reasons:
            if reason not in reasons[k]:
                reasons[k].append(reason)
        elif len(reasons) < max_slices:
            reasons[k] = [reason]

    if max_slices <= 0 or n_slices == 0:
        return []
    for k in referenced_indices(refs, series_number, instance_numbers):
        if 0 <= k < n_slices:
            add(k, REFERENCED)

    for name, per_slice in _coverage_order(areas, mentioned, schema):
        best = int(np.argmax(per_slice))
        if per_slice[best] < max(min_area, 1):
            continue
        add(best, f"coverage:{name}")
        for d in range(1, coverage_neighbors + 1):
            for k in (best - d, best + d):
                if 0 <= k < n_slices:
                    add(k, f"coverage_neighbor:{name}")

    content = areas[:, 1:].sum(axis=1) > 0
    if body is not None:
        content = content | np.asarray(body, dtype=bool)
    hits = np.flatnonzero(content)
    if hits.size and len(reasons) < max_slices:
        for k in _uniform_fill(
            set(reasons), int(hits[0]), int(hits[-1]), max_slices - len(reasons)
        ):
            add(k, UNIFORM)
    return [ChosenSlice(index=k, reasons=tuple(reasons[k])) for k in sorted(reasons)]
