"""Assembling frames into one regular grid: the largest orientation group, one echo or
temporal phase, sorted along the slice normal, duplicates and gaps removed, and a grid that
resamples uneven spacing or gantry tilt (see ``series_volume``'s docstring for the rules).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from refrad_builder.imaging.series_headers import (
    DUPLICATE_TOLERANCE_MM,
    GAP_FACTOR,
    IOP_TOLERANCE,
    TILT_TOLERANCE_PX,
    VolumeError,
    _Frame,
    _Grid,
    _Skips,
)


def _largest_group(
    frames: list[_Frame], key: Callable[[_Frame], tuple]
) -> tuple[list[_Frame], list[_Frame]]:
    groups: dict[tuple, list[_Frame]] = {}
    for f in frames:
        groups.setdefault(key(f), []).append(f)
    # Ties go to the smallest key, so the file order never matters.
    best = min(groups, key=lambda g: (-len(groups[g]), tuple(str(v) for v in g)))
    rest = [f for g, members in groups.items() if g != best for f in members]
    return groups[best], rest


def _orientation_key(frames: list[_Frame]) -> Callable[[_Frame], tuple]:
    """Group key of each image: the first orientation (in sorted order) within tolerance."""
    reps: list[np.ndarray] = []
    keys: dict[int, tuple] = {}
    for f in sorted(frames, key=lambda f: tuple(f.iop)):
        for rep in reps:
            if np.abs(rep - f.iop).max() <= IOP_TOLERANCE:
                keys[id(f)] = tuple(rep)
                break
        else:
            reps.append(f.iop)
            keys[id(f)] = tuple(f.iop)
    return lambda f: keys[id(f)]


def _check_consistent(frames: list[_Frame]) -> tuple[int, int, np.ndarray]:
    first = frames[0]
    rows, cols, spacing = first.rows, first.cols, first.spacing
    if (spacing <= 0).any():
        raise VolumeError("inconsistent_geometry", "non-positive pixel spacing")
    for f in frames[1:]:
        if (f.rows, f.cols) != (rows, cols):
            raise VolumeError("inconsistent_geometry", "images of different size")
        if np.abs(f.spacing - spacing).max() > 1e-4 * max(1.0, spacing.max()):
            raise VolumeError("inconsistent_geometry", "images of different pixel spacing")
    return rows, cols, spacing


def _has_duplicates(frames: list[_Frame]) -> bool:
    positions = np.sort([f.position for f in frames])
    return bool(len(positions) > 1 and (np.diff(positions) <= DUPLICATE_TOLERANCE_MM).any())


def _distinct_positions(frames: list[_Frame]) -> int:
    positions = np.sort([f.position for f in frames])
    return 1 + int((np.diff(positions) > DUPLICATE_TOLERANCE_MM).sum()) if len(frames) else 0


def _separate_phases(frames: list[_Frame], skips: _Skips) -> list[_Frame]:
    """Interleaved echoes or time points repeat the same positions: keep the group (echo /
    temporal position, else acquisition) with the most positions.

    Only groups that each cover nearly the whole stack count as interleaved volumes; a stack
    whose acquisition number changes along the table is left to plain de-duplication.
    """
    if not _has_duplicates(frames):
        return frames
    total = _distinct_positions(frames)
    for key in (lambda f: f.phase, lambda f: (f.acquisition,)):
        groups: dict[tuple, list[_Frame]] = {}
        for f in frames:
            groups.setdefault(key(f), []).append(f)
        if len(groups) < 2:
            continue
        # Ties go to the smallest key, so the file order never matters.
        best = min(
            groups,
            key=lambda g: (-_distinct_positions(groups[g]), tuple(str(v) for v in g)),
        )
        if _distinct_positions(groups[best]) >= 0.9 * total:
            skips.drop_frames([f for g, m in groups.items() if g != best for f in m], "other_phase")
            return groups[best]
    return frames


def _sort_and_dedupe(frames: list[_Frame], skips: _Skips) -> list[_Frame]:
    big = np.iinfo(np.int64).max
    frames = sorted(
        frames,
        key=lambda f: (
            f.position,
            f.instance if f.instance is not None else big,
            f.path,
            f.frame if f.frame is not None else -1,
        ),
    )
    kept = [frames[0]]
    for f in frames[1:]:
        if abs(f.position - kept[-1].position) <= DUPLICATE_TOLERANCE_MM:
            skips.add("duplicate_position", f.path)
            continue
        kept.append(f)
    return kept


def _split_gaps(frames: list[_Frame], skips: _Skips) -> list[_Frame]:
    if len(frames) < 3:
        return frames
    steps = np.diff([f.position for f in frames])
    median = float(np.median(steps))
    cuts = np.nonzero(steps > GAP_FACTOR * median)[0]
    if not cuts.size:
        return frames
    bounds = [0, *(int(c) + 1 for c in cuts), len(frames)]
    runs = [frames[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    best = max(range(len(runs)), key=lambda n: (len(runs[n]), -n))
    for n, run in enumerate(runs):
        if n != best:
            skips.drop_frames(run, "gap")
    return runs[best]


def _plan_grid(
    frames: list[_Frame],
    row_cos: np.ndarray,
    col_cos: np.ndarray,
    normal: np.ndarray,
    spacing: np.ndarray,
    tolerance: float,
) -> _Grid:
    """Output slice positions and how each is made from the sorted, distinct images."""
    origin = frames[0].ipp
    if len(frames) == 1:
        thickness = frames[0].thickness
        step = normal * (thickness if thickness and thickness > 0 else 1.0)
        return _Grid(origin=origin, step=step, sources=[[(0, 1.0)]])
    positions = np.array([f.position for f in frames])
    ipps = np.stack([f.ipp for f in frames])
    rel = ipps - origin
    steps = np.diff(positions)
    median = float(np.median(steps))
    along = positions - positions[0]
    # Uneven: one step off the median, or slices drifting off a regular grid in total.
    regular = along[-1] * np.arange(len(frames)) / (len(frames) - 1)
    uneven = bool(
        np.abs(steps - median).max() > tolerance * median
        or np.abs(along - regular).max() > max(tolerance * median, 0.05)
    )

    # In-plane offset of each slice from the first: zero for an orthogonal stack, growing
    # linearly along the normal for a gantry tilt (each slice shifted along the column).
    inplane = np.stack([rel @ row_cos, rel @ col_cos], axis=1)
    drift_px = np.abs(inplane / spacing[::-1]).max()
    tilted = bool(drift_px > TILT_TOLERANCE_PX)
    if tilted:
        slope = (along @ inplane) / float(along @ along)
        off_line = np.abs(inplane - along[:, None] * slope[None, :]).max()
        if off_line > max(tolerance * median, 0.05):
            raise VolumeError("inconsistent_geometry", "slice positions not on one line")
    elif not uneven:
        step = (ipps[-1] - origin) / (len(frames) - 1)
        return _Grid(origin=origin, step=step, sources=[[(k, 1.0)] for k in range(len(frames))])

    resampled = []
    if uneven:
        resampled.append("uneven_spacing")
        out_step = median
        n_out = int(np.floor(along[-1] / median + 1e-6)) + 1
    else:
        out_step = float(along[-1]) / (len(frames) - 1)
        n_out = len(frames)
    sources = []
    for j in range(n_out):
        q = j * out_step
        b = int(np.clip(np.searchsorted(along, q - 1e-6), 0, len(frames) - 1))
        if abs(along[b] - q) <= 1e-3 * out_step or b == 0:
            sources.append([(b, 1.0)])
            continue
        a = b - 1
        w = (q - along[a]) / (along[b] - along[a])
        sources.append([(a, 1.0 - w), (b, w)])
    if tilted:
        resampled.append("gantry_tilt")
        step = normal * out_step
        # Pixel shifts (along i = columns, j = rows) that move each slice onto the grid.
        shifts = np.stack([inplane[:, 0] / spacing[1], inplane[:, 1] / spacing[0]], axis=1)
        return _Grid(origin, step, sources, shifts, resampled)
    # Uneven but not tilted: keep the mean direction of the stack (any sub-threshold shear).
    step = (ipps[-1] - origin) / float(along[-1]) * out_step
    return _Grid(origin, step, sources, None, resampled)
