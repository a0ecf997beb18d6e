"""De-identified DICOM files of one series -> a sorted 3D volume with its voxel->RAS affine.

Geometry follows DICOM PS3.3 C.7.6.2 (Image Plane): ImageOrientationPatient holds the
direction cosines of a *row* (the direction in which the column index grows) and of a
*column* (the direction in which the row index grows); PixelSpacing is ``[spacing between
rows, spacing between columns]``; ImagePositionPatient is the centre of the first pixel;
all in the LPS patient coordinate system. Enhanced multi-frame images (PS3.3 C.7.6.16) carry
the same attributes per frame in functional groups. Slices are ordered by their position
along the slice normal ``row x column``, never by InstanceNumber, frame number or file name.

Every image of a series is either part of the volume or left out with a reason, and every
repair is recorded:

=========================  =================================================================
situation                  handling
=========================  =================================================================
unreadable / no pixels     image left out (``unreadable``, ``no_pixels``)
localizer / scout          image left out (``localizer``: ImageType LOCALIZER/SCOUT/TOPOGRAM)
colour image               image left out (``color``)
no position/orientation    image left out (``no_geometry``)
classic multi-frame        image left out (``multiframe_no_geometry``: no per-frame position)
mixed orientations         the most frequent orientation is kept (``other_orientation``)
echoes / phases            interleaved volumes at the same positions: the largest echo or
                           temporal group is kept (``other_phase``)
duplicate positions        the lowest InstanceNumber is kept (``duplicate_position``)
gaps                       a step of more than 1.5 median steps splits the stack; the longest
                           run is kept (``gap``): missing anatomy is never invented
uneven spacing             resampled onto the median spacing, linear between neighbouring
                           slices (``resampled`` holds ``uneven_spacing``)
gantry tilt                slices shifted in-plane onto an orthogonal grid whose third axis is
                           the slice normal (``resampled`` holds ``gantry_tilt``)
=========================  =================================================================

When nothing is left the series fails with a :class:`VolumeError` reason: ``no_image_data``,
``localizer_only``, ``no_geometry``, ``multiframe_unsupported``, ``color_unsupported``,
``inconsistent_geometry`` (images of different size or pixel spacing, slice positions off one
line), ``too_few_slices`` or ``undecodable_pixels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, get_decoder
from scipy import ndimage

from refrad_builder.engine.errors import is_environmental
from refrad_builder.imaging.orientation import canonical_transform, to_canonical
from refrad_builder.imaging.series_assembly import (
    _check_consistent,
    _largest_group,
    _orientation_key,
    _plan_grid,
    _separate_phases,
    _sort_and_dedupe,
    _split_gaps,
)
from refrad_builder.imaging.series_headers import (
    _EMPTY_REASONS,
    LPS_TO_RAS,
    SeriesVolume,
    VolumeError,
    _Frame,
    _Grid,
    _int_or_none,
    _read_headers,
    _Skips,
)

# --- decoding -----------------------------------------------------------------------------


def _value_dtype(frames: list[_Frame], datasets: dict[str, pydicom.Dataset]) -> np.dtype:
    """int32 when every value is an integer (slope 1, whole intercept, at most 16-bit
    integer pixels): exact and cheap to fill; float32 otherwise."""
    for f in frames:
        ds = datasets[f.path]
        if f.rescale is None or f.rescale[0] != 1.0 or f.rescale[1] != round(f.rescale[1]):
            return np.dtype(np.float32)
        if "PixelData" not in ds or (_int_or_none(ds.get("BitsAllocated")) or 16) > 16:
            return np.dtype(np.float32)
    return np.dtype(np.int32)


def _stored_pixels(ds: pydicom.Dataset) -> np.ndarray:
    """Decoded stored values; pylibjpeg first where it handles the syntax (the fastest
    decoders this project installs), then pydicom's own plugin order."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and syntax.is_compressed:
        try:
            if "pylibjpeg" in get_decoder(syntax).available_plugins:
                ds.pixel_array_options(decoding_plugin="pylibjpeg")
                return ds.pixel_array
        except Exception:  # fall back to whichever plugin can
            ds.pixel_array_options(decoding_plugin="")
    return ds.pixel_array


def _decode(
    frames: list[_Frame], datasets: dict[str, pydicom.Dataset], rows: int, cols: int
) -> np.ndarray:
    """Modality-LUT values of the images, indexed [column, row, image].

    Fortran order: each image lands in one contiguous block, as NIfTI stores it.
    """
    dtype = _value_dtype(frames, datasets)
    vol = np.empty((cols, rows, len(frames)), dtype=dtype, order="F")
    by_path: dict[str, list[int]] = {}
    for n, f in enumerate(frames):
        by_path.setdefault(f.path, []).append(n)
    for path, members in by_path.items():
        ds = datasets[path]
        try:
            stored = _stored_pixels(ds)
        except Exception as exc:  # decoder plugins raise many types
            if is_environmental(exc):
                raise
            raise VolumeError("undecodable_pixels", type(exc).__name__) from None
        for n in members:
            f = frames[n]
            image = stored[f.frame] if f.frame is not None and stored.ndim == 3 else stored
            if image.shape != (rows, cols):
                raise VolumeError("inconsistent_geometry", "decoded image of unexpected shape")
            dst = vol[:, :, n]
            if f.rescale is None:
                dst[...] = apply_modality_lut(image, ds).T
                continue
            slope, intercept = f.rescale
            if dtype.kind == "i":
                # The sum is formed in the output type: int16 pixels must not wrap.
                np.add(image.T, int(round(intercept)), out=dst, dtype=dtype, casting="unsafe")
            elif slope == 1.0:
                # Integers up to 2**24 stay exact in float32: no float64 detour needed.
                np.add(image.T, np.float32(intercept), out=dst, dtype=dtype, casting="unsafe")
            else:
                dst[...] = (image * slope + intercept).T
        # Drop the decoded and deferred pixel bytes.
        datasets[path] = pydicom.Dataset()
    if dtype.kind == "f" and not np.isfinite(vol).all():
        raise VolumeError("undecodable_pixels", "non-finite values")
    return vol


def _resample(decoded: np.ndarray, grid: _Grid) -> np.ndarray:
    """The output slices: in-plane shifts (tilt), then linear weights along the normal.

    Points that a shift moves outside the acquired field of view get the series minimum
    (the scanner's padding value, or air).
    """
    if grid.shifts is None and all(len(s) == 1 for s in grid.sources):
        order = [s[0][0] for s in grid.sources]
        return decoded if order == list(range(decoded.shape[2])) else decoded[:, :, order]
    fill = float(decoded.min())
    aligned: dict[int, np.ndarray] = {}

    def source(n: int) -> np.ndarray:
        if n not in aligned:
            plane = decoded[:, :, n]
            if grid.shifts is not None and np.abs(grid.shifts[n]).max() > 1e-6:
                plane = ndimage.shift(plane, grid.shifts[n], order=1, mode="constant", cval=fill)
            aligned[n] = plane
        return aligned[n]

    out = np.empty(decoded.shape[:2] + (len(grid.sources),), dtype=np.float32, order="F")
    for k, members in enumerate(grid.sources):
        acc = np.zeros(decoded.shape[:2], dtype=np.float64)
        for n, w in members:
            acc += w * source(n)
        # Integer input (HU) stays integer: interpolation adds no meaningful fraction.
        out[:, :, k] = np.rint(acc) if decoded.dtype.kind in "iu" else acc
    return out


# --- public API ---------------------------------------------------------------------------


def _empty_error(skips: _Skips) -> VolumeError:
    for skip_reason, reason, detail in _EMPTY_REASONS:
        if skips.counts.get(skip_reason):
            return VolumeError(reason, detail)
    return VolumeError("no_image_data", "no readable image with pixel data")


def read_series(
    paths: Sequence[Path],
    modality: str,
    min_slices: int = 1,
    spacing_tolerance: float = 0.2,
) -> SeriesVolume:
    """Build the volume of one series (single-frame and/or enhanced multi-frame files) in its
    acquisition voxel order.

    Axis i follows the DICOM columns, j the rows, k the sorted slices (ascending position
    along the slice normal). ``spacing_tolerance`` is the largest relative deviation of one
    slice step from the median step before the stack counts as unevenly spaced. Raises
    :class:`VolumeError` with a reason code.
    """
    if not paths:
        raise VolumeError("no_image_data", "no files")
    skips = _Skips()
    frames, datasets = _read_headers(paths, skips)
    if not frames:
        raise _empty_error(skips)
    major, rest = _largest_group(frames, _orientation_key(frames))
    skips.drop_frames(rest, "other_orientation")
    rows, cols, pixel_spacing = _check_consistent(major)
    row_cos, col_cos = major[0].iop[:3], major[0].iop[3:]
    row_cos = row_cos / np.linalg.norm(row_cos)
    col_cos = col_cos / np.linalg.norm(col_cos)
    normal = np.cross(row_cos, col_cos)
    for f in major:
        f.position = float(np.dot(f.ipp, normal))
    kept = _sort_and_dedupe(_separate_phases(major, skips), skips)
    kept = _split_gaps(kept, skips)
    if len(kept) < max(1, min_slices):
        raise VolumeError("too_few_slices", f"{len(kept)} < {min_slices}")
    grid = _plan_grid(kept, row_cos, col_cos, normal, pixel_spacing, spacing_tolerance)
    data = _resample(_decode(kept, datasets, rows, cols), grid)

    lps = np.eye(4)
    # i walks along a row (row cosine) by the column spacing PixelSpacing[1]; j walks down a
    # column (column cosine) by the row spacing PixelSpacing[0].
    lps[:3, 0] = row_cos * pixel_spacing[1]
    lps[:3, 1] = col_cos * pixel_spacing[0]
    lps[:3, 2] = grid.step
    lps[:3, 3] = grid.origin
    single_file = len({f.path for f in kept}) == 1 and kept[0].frame is not None
    instances: list[int | None] = []
    for members in grid.sources:
        f = kept[members[0][0]]
        if len(members) != 1:
            instances.append(None)
        elif f.frame is not None:
            instances.append(f.frame + 1 if single_file else None)
        else:
            instances.append(f.instance)
    return SeriesVolume(
        data=data,
        affine=LPS_TO_RAS @ lps,
        instance_numbers=instances,
        units="HU" if modality.upper() == "CT" else "raw",
        skipped=dict(sorted(skips.counts.items())),
        resampled=grid.resampled,
        file_reasons=skips.finish(kept),
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
    data, affine = to_canonical(native.data, native.affine, order="F")
    native.data, native.affine, native.instance_numbers = data, affine, instances
    return native
