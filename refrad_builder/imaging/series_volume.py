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

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.pixels import apply_modality_lut, get_decoder
from scipy import ndimage

from refrad_builder.imaging.orientation import canonical_transform, to_canonical

# LPS (DICOM patient) -> RAS (NIfTI world): negate x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
IOP_TOLERANCE = 1e-3
DUPLICATE_TOLERANCE_MM = 1e-2
# A step longer than this many median steps is a gap (at least one slice missing).
GAP_FACTOR = 1.5
# In-plane drift of the last slice against the first, in pixels, from which on the stack is
# treated as tilted and resampled; below it the affine keeps the (tiny) shear exactly.
TILT_TOLERANCE_PX = 0.1
LOCALIZER_TYPES = frozenset({"LOCALIZER", "SCOUT", "TOPOGRAM"})
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_TEXT_VRS = frozenset({"CS", "DS", "IS"})

# When every image is left out, the series-level reason, by the most important skip reason.
_EMPTY_REASONS = (
    ("localizer", "localizer_only", "only localizer or scout images"),
    (
        "multiframe_no_geometry",
        "multiframe_unsupported",
        "multi-frame images without per-frame geometry",
    ),
    ("color", "color_unsupported", "only colour images"),
    ("no_geometry", "no_geometry", "images without position, orientation or pixel spacing"),
)


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
    ``instance_numbers[k]`` is the InstanceNumber of the file slice ``k`` came from (the
    1-based frame number for a series of one multi-frame file), or ``None`` where ``k`` is
    not one acquired image. ``skipped`` counts images left out by reason, ``file_reasons``
    names the reason for each file none of whose images were used, and ``resampled`` lists
    why the voxels were interpolated (empty when every slice is an acquired image).
    """

    data: np.ndarray
    affine: np.ndarray
    instance_numbers: list[int | None]
    units: str
    skipped: dict[str, int] = field(default_factory=dict)
    resampled: list[str] = field(default_factory=list)
    file_reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class _Frame:
    """One 2D image: a single-frame file or one frame of a multi-frame file."""

    path: str
    frame: int | None
    iop: np.ndarray
    ipp: np.ndarray
    spacing: np.ndarray
    rows: int
    cols: int
    instance: int | None
    thickness: float | None
    rescale: tuple[float, float] | None
    phase: tuple
    acquisition: int | None
    position: float = 0.0


@dataclass
class _Grid:
    """Where the output slices lie and which decoded images make each of them."""

    origin: np.ndarray
    step: np.ndarray
    sources: list[list[tuple[int, float]]]
    shifts: np.ndarray | None = None
    resampled: list[str] = field(default_factory=list)


class _Skips:
    """Counts of images left out, and the reason per file whose images were all left out."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.files: dict[str, str] = {}

    def add(self, reason: str, path: str, n: int = 1) -> None:
        self.counts[reason] += n
        self.files.setdefault(path, reason)

    def drop_frames(self, frames: Sequence[_Frame], reason: str) -> None:
        for f in frames:
            self.add(reason, f.path)

    def finish(self, used: Sequence[_Frame]) -> dict[str, str]:
        used_paths = {f.path for f in used}
        return {p: r for p, r in sorted(self.files.items()) if p not in used_paths}


# --- header reading -----------------------------------------------------------------------


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.isfinite(arr).all() else None


def _float(value) -> float | None:
    try:
        out = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return out if out is not None and np.isfinite(out) else None


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _strings(ds: pydicom.Dataset, keyword: str) -> list[str]:
    """The values of a text element (DS, IS, CS) as strings.

    A raw element's bytes are split directly: header parsing is most of the cost of an
    uncompressed series, and pydicom's full value conversion is not needed here.
    """
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return []
    elem = ds.get_item(tag)
    value = elem.value
    if isinstance(value, bytes) and (elem.VR or dictionary_VR(tag)) in _TEXT_VRS:
        text = value.decode("latin-1")
        return [v.strip(" \x00") for v in text.split("\\")] if text.strip(" \x00") else []
    if isinstance(value, bytes):
        value = ds[tag].value
    if value is None or value == "":
        return []
    if isinstance(value, str | int | float):
        return [str(value).strip()]
    try:
        return [str(v).strip() for v in value]
    except TypeError:
        return [str(value).strip()]


def _num(ds: pydicom.Dataset, keyword: str) -> float | None:
    """The first value of a DS/IS element as a finite float, or None."""
    values = _strings(ds, keyword)
    return _float(values[0]) if values else None


def _whole(ds: pydicom.Dataset, keyword: str) -> int | None:
    """The first value of an IS element as an int, or None."""
    values = _strings(ds, keyword)
    return _int_or_none(values[0]) if values else None


def _values(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip().upper() for v in value.split("\\")]
    try:
        return [str(v).strip().upper() for v in value]
    except TypeError:
        return [str(value).strip().upper()]


def _is_localizer(image_type) -> bool:
    return any(v in LOCALIZER_TYPES for v in _values(image_type))


def _item(ds: pydicom.Dataset, keyword: str) -> pydicom.Dataset | None:
    seq = ds.get(keyword)
    try:
        return seq[0] if seq is not None and len(seq) else None
    except (TypeError, IndexError):
        return None


def _macro(ds: pydicom.Dataset, frame: int, keyword: str) -> pydicom.Dataset | None:
    """A functional group macro item for one frame: per-frame first, then shared (C.7.6.16)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        found = _item(per_frame[frame], keyword)
        if found is not None:
            return found
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    return _item(shared, keyword) if shared is not None else None


def _rescale(item: pydicom.Dataset | None) -> tuple[float, float] | None:
    if item is None:
        return None
    slope, intercept = _num(item, "RescaleSlope"), _num(item, "RescaleIntercept")
    if slope is None and intercept is None:
        return None
    return (1.0 if slope is None else slope), (0.0 if intercept is None else intercept)


def _enhanced_frames(path: str, ds: pydicom.Dataset, n_frames: int, skips: _Skips) -> list[_Frame]:
    rows, cols = _int_or_none(ds.get("Rows")), _int_or_none(ds.get("Columns"))
    frames = []
    for f in range(n_frames):
        frame_type = _macro(ds, f, "CTImageFrameTypeSequence") or _macro(
            ds, f, "MRImageFrameTypeSequence"
        )
        if frame_type is not None and _is_localizer(_strings(frame_type, "FrameType")):
            skips.add("localizer", path)
            continue
        pos, ori = _macro(ds, f, "PlanePositionSequence"), _macro(ds, f, "PlaneOrientationSequence")
        meas = _macro(ds, f, "PixelMeasuresSequence")
        ipp = _floats(_strings(pos, "ImagePositionPatient"), 3) if pos is not None else None
        iop = _floats(_strings(ori, "ImageOrientationPatient"), 6) if ori is not None else None
        spacing = _floats(_strings(meas, "PixelSpacing"), 2) if meas is not None else None
        if iop is None:
            iop = _floats(_strings(ds, "ImageOrientationPatient"), 6)
        if spacing is None:
            spacing = _floats(_strings(ds, "PixelSpacing"), 2)
        if ipp is None or iop is None or spacing is None or not rows or not cols:
            skips.add("no_geometry", path)
            continue
        content = _macro(ds, f, "FrameContentSequence")
        echo = _macro(ds, f, "MREchoSequence")
        temporal = _whole(content, "TemporalPositionIndex") if content is not None else None
        echo_time = _num(echo, "EffectiveEchoTime") if echo is not None else None
        thickness = _num(meas, "SliceThickness") if meas is not None else None
        frames.append(
            _Frame(
                path=path,
                frame=f,
                iop=iop,
                ipp=ipp,
                spacing=spacing,
                rows=rows,
                cols=cols,
                instance=None,
                thickness=thickness,
                rescale=_rescale(_macro(ds, f, "PixelValueTransformationSequence"))
                or _rescale(ds)
                or (1.0, 0.0),
                phase=(temporal, echo_time),
                acquisition=None,
            )
        )
    return frames


def _file_frames(path: str, ds: pydicom.Dataset, skips: _Skips) -> list[_Frame]:
    """The images of one file, or none (each left out with its reason)."""
    if not any(k in ds for k in PIXEL_KEYWORDS):
        skips.add("no_pixels", path)
        return []
    n_frames = _whole(ds, "NumberOfFrames") or 1
    if _is_localizer(_strings(ds, "ImageType")):
        skips.add("localizer", path, n_frames)
        return []
    if int(_int_or_none(ds.get("SamplesPerPixel")) or 1) != 1:
        skips.add("color", path, n_frames)
        return []
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    if enhanced:
        return _enhanced_frames(path, ds, n_frames, skips)
    if n_frames > 1:
        skips.add("multiframe_no_geometry", path, n_frames)
        return []
    iop = _floats(_strings(ds, "ImageOrientationPatient"), 6)
    ipp = _floats(_strings(ds, "ImagePositionPatient"), 3)
    spacing = _floats(_strings(ds, "PixelSpacing"), 2)
    rows, cols = _int_or_none(ds.get("Rows")), _int_or_none(ds.get("Columns"))
    if iop is None or ipp is None or spacing is None or not rows or not cols:
        skips.add("no_geometry", path)
        return []
    return [
        _Frame(
            path=path,
            frame=None,
            iop=iop,
            ipp=ipp,
            spacing=spacing,
            rows=rows,
            cols=cols,
            instance=_whole(ds, "InstanceNumber"),
            thickness=_num(ds, "SpacingBetweenSlices") or _num(ds, "SliceThickness"),
            rescale=_modality_rescale(ds),
            phase=(
                _whole(ds, "TemporalPositionIdentifier"),
                "\\".join(_strings(ds, "EchoNumbers")),
            ),
            acquisition=_whole(ds, "AcquisitionNumber"),
        )
    ]


def _read_headers(
    paths: Sequence[Path], skips: _Skips
) -> tuple[list[_Frame], dict[str, pydicom.Dataset]]:
    frames: list[_Frame] = []
    datasets: dict[str, pydicom.Dataset] = {}
    for path in paths:
        key = str(path)
        try:
            # Deferred reading keeps only headers in memory; pixels are read when decoded.
            ds = pydicom.dcmread(key, defer_size="64 KB")
            found = _file_frames(key, ds, skips)
        except Exception:  # a corrupt file fails in many ways; it costs its images only
            skips.add("unreadable", key)
            continue
        if found:
            datasets[key] = ds
            frames.extend(found)
    return frames, datasets


# --- assembly -----------------------------------------------------------------------------


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


# --- decoding -----------------------------------------------------------------------------


def _modality_rescale(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """The linear modality rescale of a single-frame file; None where a LUT applies."""
    if "ModalityLUTSequence" in ds:
        return None
    return _num(ds, "RescaleSlope") or 1.0, _num(ds, "RescaleIntercept") or 0.0


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
