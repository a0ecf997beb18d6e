"""Header reading of a series' de-identified DICOM files: one frame record per usable image
(classic single-frame files and the frames of enhanced multi-frame files), every left-out
image counted by reason. Geometry conventions are those of ``series_volume``'s docstring
(PS3.3 C.7.6.2 and C.7.6.16).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword

from refrad_builder.engine.errors import is_environmental

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
        except Exception as exc:  # a corrupt file fails in many ways; it costs its images only
            if is_environmental(exc):  # not the file's fault: the series is retried whole
                raise
            skips.add("unreadable", key)
            continue
        if found:
            datasets[key] = ds
            frames.extend(found)
    return frames, datasets


def _modality_rescale(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """The linear modality rescale of a single-frame file; None where a LUT applies."""
    if "ModalityLUTSequence" in ds:
        return None
    return _num(ds, "RescaleSlope") or 1.0, _num(ds, "RescaleIntercept") or 0.0
