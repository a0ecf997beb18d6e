"""De-identified DICOM files of one series -> a sorted 3D volume with its voxel->RAS affine.

Geometry follows DICOM PS3.3 C.7.6.2 (Image Plane): ImageOrientationPatient holds the
direction cosines of a *row* (the direction in which the column index grows) and of a
*column* (the direction in which the row index grows); PixelSpacing is ``[spacing between
rows, spacing between columns]``; ImagePositionPatient is the centre of the first pixel;
all in the LPS patient coordinate system. Slices are ordered by their position along the
slice normal ``row x column``, never by InstanceNumber or file name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut

from refrad_builder.imaging.orientation import canonical_transform, to_canonical

# LPS (DICOM patient) -> RAS (NIfTI world): negate x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
IOP_TOLERANCE = 1e-3
DUPLICATE_TOLERANCE_MM = 1e-2


class VolumeError(Exception):
    """A permanent failure to build a volume: ``reason`` is a short code, never PHI."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class SeriesVolume:
    """A volume and what is known of its slices.

    ``data`` is indexed ``[i, j, k]``; ``affine`` maps those indices to RAS mm.
    ``instance_numbers[k]`` is the InstanceNumber of the file slice ``k`` came from, or
    ``None`` where ``k`` does not correspond to one acquired slice.
    """

    data: np.ndarray
    affine: np.ndarray
    instance_numbers: list[int | None]
    units: str
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class _Slice:
    path: str
    ds: pydicom.Dataset
    iop: np.ndarray
    ipp: np.ndarray
    instance: int | None
    position: float = 0.0


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.isfinite(arr).all() else None


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _read_headers(paths: Sequence[Path]) -> tuple[list[_Slice], dict[str, int]]:
    slices: list[_Slice] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for path in paths:
        try:
            # Deferred reading keeps only headers in memory; pixels are read when decoded.
            ds = pydicom.dcmread(str(path), defer_size="64 KB")
        except (InvalidDicomError, OSError, ValueError, EOFError):
            skip("unreadable")
            continue
        if (
            "PixelData" not in ds
            and "FloatPixelData" not in ds
            and "DoubleFloatPixelData" not in ds
        ):
            skip("no_pixels")
            continue
        if _int_or_none(ds.get("NumberOfFrames")) not in (None, 1):
            skip("multiframe")
            continue
        iop = _floats(ds.get("ImageOrientationPatient"), 6)
        ipp = _floats(ds.get("ImagePositionPatient"), 3)
        if iop is None or ipp is None or _floats(ds.get("PixelSpacing"), 2) is None:
            skip("no_geometry")
            continue
        slices.append(
            _Slice(
                path=str(path),
                ds=ds,
                iop=iop,
                ipp=ipp,
                instance=_int_or_none(ds.get("InstanceNumber")),
            )
        )
    return slices, skipped


def _majority_orientation(slices: list[_Slice]) -> list[_Slice]:
    """Keep the images that share the most common orientation (drops localizers)."""
    groups: list[list[_Slice]] = []
    for s in slices:
        for group in groups:
            if np.abs(group[0].iop - s.iop).max() <= IOP_TOLERANCE:
                group.append(s)
                break
        else:
            groups.append([s])
    # Ties are broken by the orientation values, so the file order never matters.
    groups.sort(key=lambda g: (-len(g), tuple(np.round(g[0].iop, 3))))
    return groups[0]


def _check_consistent(slices: list[_Slice]) -> tuple[int, int, np.ndarray]:
    first = slices[0].ds
    rows, cols = _int_or_none(first.get("Rows")), _int_or_none(first.get("Columns"))
    spacing = _floats(first.get("PixelSpacing"), 2)
    if not rows or not cols or spacing is None or (spacing <= 0).any():
        raise VolumeError("inconsistent_geometry", "missing rows, columns or pixel spacing")
    for s in slices[1:]:
        ds = s.ds
        if _int_or_none(ds.get("Rows")) != rows or _int_or_none(ds.get("Columns")) != cols:
            raise VolumeError("inconsistent_geometry", "images of different size")
        other = _floats(ds.get("PixelSpacing"), 2)
        if other is None or np.abs(other - spacing).max() > 1e-4 * max(1.0, spacing.max()):
            raise VolumeError("inconsistent_geometry", "images of different pixel spacing")
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise VolumeError("color_unsupported", "more than one sample per pixel")
    if int(first.get("SamplesPerPixel", 1) or 1) != 1:
        raise VolumeError("color_unsupported", "more than one sample per pixel")
    return rows, cols, spacing


def _sort_and_dedupe(slices: list[_Slice], normal: np.ndarray) -> tuple[list[_Slice], int]:
    for s in slices:
        s.position = float(np.dot(s.ipp, normal))
    big = np.iinfo(np.int64).max
    slices = sorted(
        slices,
        key=lambda s: (s.position, s.instance if s.instance is not None else big, s.path),
    )
    kept = [slices[0]]
    for s in slices[1:]:
        if abs(s.position - kept[-1].position) <= DUPLICATE_TOLERANCE_MM:
            continue
        kept.append(s)
    return kept, len(slices) - len(kept)


def _slice_vector(slices: list[_Slice], normal: np.ndarray, tolerance: float) -> np.ndarray:
    """The LPS step from one slice to the next (handles gantry tilt: not always the normal)."""
    if len(slices) == 1:
        ds = slices[0].ds
        for key in ("SpacingBetweenSlices", "SliceThickness"):
            value = _floats([ds.get(key)], 1) if ds.get(key) not in (None, "") else None
            if value is not None and value[0] > 0:
                return normal * float(value[0])
        return normal * 1.0
    positions = np.array([s.position for s in slices])
    steps = np.diff(positions)
    median = float(np.median(steps))
    if median <= 0 or np.abs(steps - median).max() > tolerance * median:
        raise VolumeError("inconsistent_geometry", "irregular slice spacing")
    ipps = np.stack([s.ipp for s in slices])
    step = (ipps[-1] - ipps[0]) / (len(slices) - 1)
    expected = ipps[0] + np.arange(len(slices))[:, None] * step
    if np.linalg.norm(ipps - expected, axis=1).max() > max(tolerance * median, 0.05):
        raise VolumeError("inconsistent_geometry", "slice positions not on one line")
    return step


def _decode(slices: list[_Slice], rows: int, cols: int) -> np.ndarray:
    """Stack of modality-LUT values, indexed [column, row, slice]."""
    vol = np.empty((cols, rows, len(slices)), dtype=np.float32)
    for k, s in enumerate(slices):
        try:
            stored = s.ds.pixel_array
            values = apply_modality_lut(stored, s.ds)
        except Exception as exc:  # decoder plugins raise many types
            raise VolumeError("undecodable_pixels", type(exc).__name__) from None
        if values.shape != (rows, cols):
            raise VolumeError("inconsistent_geometry", "decoded image of unexpected shape")
        vol[:, :, k] = values.T
        # Drop the decoded and deferred pixel bytes of the header we keep.
        s.ds = pydicom.Dataset()
    if not np.isfinite(vol).all():
        raise VolumeError("undecodable_pixels", "non-finite values")
    return vol


def read_series(
    paths: Sequence[Path],
    modality: str,
    min_slices: int = 1,
    spacing_tolerance: float = 0.2,
) -> SeriesVolume:
    """Build the volume of one single-frame series in its acquisition voxel order.

    Axis i follows the DICOM columns, j the rows, k the sorted slices (ascending position
    along the slice normal). ``spacing_tolerance`` is the largest relative deviation of one
    slice step from the median step. Raises :class:`VolumeError` with a reason code.
    """
    if not paths:
        raise VolumeError("no_image_data", "no files")
    slices, skipped = _read_headers(paths)
    if not slices:
        if skipped.get("multiframe"):
            raise VolumeError("multiframe_unsupported", "enhanced multi-frame images")
        if skipped.get("no_geometry"):
            raise VolumeError("inconsistent_geometry", "images without position or orientation")
        raise VolumeError("no_image_data", "no readable image with pixel data")
    major = _majority_orientation(slices)
    if len(major) < len(slices):
        skipped["other_orientation"] = len(slices) - len(major)
    rows, cols, pixel_spacing = _check_consistent(major)
    row_cos, col_cos = major[0].iop[:3], major[0].iop[3:]
    row_cos = row_cos / np.linalg.norm(row_cos)
    col_cos = col_cos / np.linalg.norm(col_cos)
    normal = np.cross(row_cos, col_cos)
    kept, duplicates = _sort_and_dedupe(major, normal)
    if duplicates:
        skipped["duplicate_position"] = duplicates
    if len(kept) < max(1, min_slices):
        raise VolumeError("too_few_slices", f"{len(kept)} < {min_slices}")
    step = _slice_vector(kept, normal, spacing_tolerance)
    data = _decode(kept, rows, cols)

    lps = np.eye(4)
    # i walks along a row (row cosine) by the column spacing PixelSpacing[1]; j walks down a
    # column (column cosine) by the row spacing PixelSpacing[0].
    lps[:3, 0] = row_cos * pixel_spacing[1]
    lps[:3, 1] = col_cos * pixel_spacing[0]
    lps[:3, 2] = step
    lps[:3, 3] = kept[0].ipp
    affine = LPS_TO_RAS @ lps
    units = "HU" if modality.upper() == "CT" else "raw"
    return SeriesVolume(
        data=data,
        affine=affine,
        instance_numbers=[s.instance for s in kept],
        units=units,
        skipped=skipped,
    )


def canonical_instance_numbers(
    instance_numbers: list[int | None], affine: np.ndarray, shape: tuple[int, int, int]
) -> list[int | None]:
    """Instance numbers per canonical k for a volume in acquisition order with ``affine``.

    When the acquired slice axis becomes canonical k (axial acquisitions) the list is kept
    or reversed; otherwise (sagittal/coronal acquisitions) no k is one acquired slice and
    every entry is ``None``.
    """
    ornt = canonical_transform(affine)
    dst_axis, flip = int(ornt[2, 0]), int(ornt[2, 1])
    if dst_axis != 2:
        n_k = shape[int(np.nonzero(ornt[:, 0] == 2)[0][0])]
        return [None] * n_k
    return list(reversed(instance_numbers)) if flip < 0 else list(instance_numbers)


def read_series_canonical(
    paths: Sequence[Path],
    modality: str,
    min_slices: int = 1,
    spacing_tolerance: float = 0.2,
) -> SeriesVolume:
    """:func:`read_series`, then brought into the canonical LPS voxel order."""
    native = read_series(paths, modality, min_slices, spacing_tolerance)
    instances = canonical_instance_numbers(
        native.instance_numbers, native.affine, native.data.shape
    )
    data, affine = to_canonical(native.data, native.affine)
    native.data, native.affine, native.instance_numbers = data, affine, instances
    return native
