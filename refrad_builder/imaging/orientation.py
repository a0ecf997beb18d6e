"""The project's canonical voxel orientation and resampling by physical coordinates.

Convention (project-wide): every stored volume and label volume has voxel axes (i, j, k)
pointing to the patient's Left, Posterior and Superior ("LPS" voxel order, nibabel
orientation codes ``('L', 'P', 'S')``), and its NIfTI affine maps voxel indices to RAS
millimetres (standard NIfTI world space: +x patient right, +y anterior, +z superior).

Consequences every stage may rely on:

* ``vol[:, :, k].T`` is the axial image ``k`` in radiological display: row 0 is the most
  anterior row, column 0 the patient's right side, as a radiologist reads it.
* ``k`` grows towards the head, ``i`` towards the patient's left.
* In RAS world coordinates a point on the patient's right has ``x > 0`` (equivalently
  ``x < 0`` in DICOM's LPS patient coordinates).

The affine may still carry a small rotation or shear (an oblique or tilted acquisition):
the canonical orientation is the closest axis permutation/flip, not a resampling.
"""

from __future__ import annotations

import itertools

import numpy as np
from nibabel.orientations import (
    aff2axcodes,
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)
from scipy import ndimage

CANONICAL_CODES: tuple[str, str, str] = ("L", "P", "S")
_CANONICAL_ORNT = axcodes2ornt(CANONICAL_CODES)


def orientation_codes(affine: np.ndarray) -> tuple[str, ...]:
    """nibabel orientation codes of a voxel->RAS affine, e.g. ``('L', 'P', 'S')``."""
    return tuple(aff2axcodes(np.asarray(affine, dtype=float)))


def is_canonical(affine: np.ndarray) -> bool:
    """Whether the affine's closest axis orientation is the canonical LPS voxel order."""
    return orientation_codes(affine) == CANONICAL_CODES


def canonical_transform(affine: np.ndarray) -> np.ndarray:
    """The nibabel orientation transform (N x 2 ``ornt``) taking ``affine``'s voxel order
    to the canonical one: row ``a`` says which canonical axis source axis ``a`` becomes
    and whether it is flipped (-1)."""
    src = io_orientation(np.asarray(affine, dtype=float))
    return ornt_transform(src, _CANONICAL_ORNT)


def canonical_geometry(
    shape: tuple[int, ...], affine: np.ndarray
) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine a 3D grid gets in the canonical orientation (no data touched)."""
    shape3 = tuple(int(s) for s in shape[:3])
    ornt = canonical_transform(affine)
    new_affine = np.asarray(affine, dtype=float) @ inv_ornt_aff(ornt, shape3)
    new_shape = [0, 0, 0]
    for src_axis, (dst_axis, _flip) in enumerate(ornt):
        new_shape[int(dst_axis)] = shape3[src_axis]
    return (new_shape[0], new_shape[1], new_shape[2]), new_affine


def to_canonical(
    data: np.ndarray, affine: np.ndarray, order: str = "C"
) -> tuple[np.ndarray, np.ndarray]:
    """Reorder/flip the first three axes of ``data`` into the canonical LPS voxel order.

    Returns a contiguous array (C order, or Fortran order, NIfTI's own, with
    ``order="F"``: no copy when the data already lie that way) and the matching voxel->RAS
    affine; voxel values and their world positions are unchanged (a pure permutation, never
    an interpolation).
    """
    affine = np.asarray(affine, dtype=float)
    ornt = canonical_transform(affine)
    out = apply_orientation(np.asarray(data), ornt)
    new_affine = affine @ inv_ornt_aff(ornt, np.asarray(data).shape[:3])
    if order == "F":
        return np.asfortranarray(out), new_affine
    return np.ascontiguousarray(out), new_affine


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along i, j, k (column norms of the affine)."""
    norms = np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
    return (float(norms[0]), float(norms[1]), float(norms[2]))


def edge_corners(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World (RAS mm) positions of the 8 outer corners of a grid's voxels (8 x 3).

    Corners are voxel *edges* (index -0.5 and n-0.5), so grids of different spacing that
    cover the same field of view have nearby corners.
    """
    affine = np.asarray(affine, dtype=float)
    pts = np.array(
        [[c - 0.5 for c in corner] for corner in itertools.product(*[(0, n) for n in shape[:3]])],
        dtype=float,
    )
    return pts @ affine[:3, :3].T + affine[:3, 3]


def same_grid(
    shape_a: tuple[int, ...],
    affine_a: np.ndarray,
    shape_b: tuple[int, ...],
    affine_b: np.ndarray,
    tol_mm: float,
) -> bool:
    """Same shape and every voxel-edge corner within ``tol_mm`` of its counterpart."""
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        return False
    dist = np.linalg.norm(edge_corners(shape_a, affine_a) - edge_corners(shape_b, affine_b), axis=1)
    return bool(dist.max() <= tol_mm)


def same_extent(
    shape_a: tuple[int, ...],
    affine_a: np.ndarray,
    shape_b: tuple[int, ...],
    affine_b: np.ndarray,
    tol_mm: float,
) -> bool:
    """Whether the world bounding boxes of two grids agree within ``tol_mm`` on every face."""
    ca, cb = edge_corners(shape_a, affine_a), edge_corners(shape_b, affine_b)
    lo = np.abs(ca.min(axis=0) - cb.min(axis=0))
    hi = np.abs(ca.max(axis=0) - cb.max(axis=0))
    return bool(max(lo.max(), hi.max()) <= tol_mm)


def _permutation_plan(matrix: np.ndarray, tol: float = 1e-4):
    """If ``matrix`` (dst voxel -> src voxel, 4x4) is a signed axis permutation with an
    integer offset, return per destination axis (source axis, sign, offset); else None."""
    lin = matrix[:3, :3]
    rounded = np.rint(lin)
    if not np.allclose(lin, rounded, atol=tol):
        return None
    if not (np.abs(rounded).sum(axis=0) == 1).all() or not (np.abs(rounded).sum(axis=1) == 1).all():
        return None
    off = matrix[:3, 3]
    if not np.allclose(off, np.rint(off), atol=tol):
        return None
    plan = []
    for dst_axis in range(3):
        src_axis = int(np.argmax(np.abs(rounded[:, dst_axis])))
        plan.append((src_axis, int(rounded[src_axis, dst_axis]), int(np.rint(off[src_axis]))))
    return plan


def _resample_permutation(
    src: np.ndarray, plan, dst_shape: tuple[int, int, int], cval: float
) -> np.ndarray:
    out = np.full(dst_shape, cval, dtype=src.dtype)
    dst_slices, src_slices = [], []
    for dst_axis, (src_axis, sign, offset) in enumerate(plan):
        n_dst, n_src = dst_shape[dst_axis], src.shape[src_axis]
        # src index = sign * dst index + offset; keep the dst indices that land inside src.
        idx = sign * np.arange(n_dst) + offset
        valid = np.nonzero((idx >= 0) & (idx < n_src))[0]
        if valid.size == 0:
            return out
        d0, d1 = int(valid[0]), int(valid[-1]) + 1
        s_first, s_last = int(idx[d0]), int(idx[d1 - 1])
        dst_slices.append(slice(d0, d1))
        if sign > 0:
            src_slices.append((src_axis, slice(s_first, s_last + 1)))
        else:
            src_slices.append((src_axis, slice(s_first, s_last - 1 if s_last > 0 else None, -1)))
    order = [src_axis for src_axis, _ in src_slices]
    sl = [slice(None)] * 3
    for src_axis, s in src_slices:
        sl[src_axis] = s
    block = np.transpose(src[tuple(sl)], order)
    out[tuple(dst_slices)] = block
    return out


def resample_to(
    src_data: np.ndarray,
    src_affine: np.ndarray,
    dst_shape: tuple[int, int, int],
    dst_affine: np.ndarray,
    order: int = 0,
    cval: float = 0,
) -> np.ndarray:
    """Values of ``src_data`` at the voxel centres of the destination grid.

    Both grids are placed by their voxel->world affines, so any difference in orientation,
    spacing or field of view is handled; points outside the source get ``cval``. ``order=0``
    (nearest neighbour) is for label volumes. A destination that is an axis
    permutation/flip/integer shift of the source is copied exactly without interpolation.
    """
    src = np.asarray(src_data)
    dst_shape = (int(dst_shape[0]), int(dst_shape[1]), int(dst_shape[2]))
    matrix = np.linalg.inv(np.asarray(src_affine, dtype=float)) @ np.asarray(
        dst_affine, dtype=float
    )
    plan = _permutation_plan(matrix)
    if plan is not None:
        return _resample_permutation(src, plan, dst_shape, cval)
    work = src if order == 0 else src.astype(np.float32, copy=False)
    # scipy treats a coordinate in [-0.5, 0) as outside the input, yet it lies inside the
    # first voxel. Padding one voxel of cval on each side and shifting by one keeps the
    # whole voxel extent [-0.5, n - 0.5) inside and everything beyond it at cval.
    work = np.pad(work, 1, mode="constant", constant_values=cval)
    out = ndimage.affine_transform(
        work,
        matrix[:3, :3],
        offset=matrix[:3, 3] + 1.0,
        output_shape=dst_shape,
        order=order,
        mode="constant",
        cval=cval,
        prefilter=order > 1,
    )
    return out.astype(src.dtype, copy=False) if order == 0 else out
