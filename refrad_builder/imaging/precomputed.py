"""Existing TotalSegmentator outputs: find the one that belongs to a volume, by geometry.

Two output forms are recognised in the configured folders (searched recursively):

* a multilabel file (``--ml``): one ``*.nii``/``*.nii.gz`` of TotalSegmentator ids;
* a mask folder (the default output): one binary file per class, named by class
  (``liver.nii.gz``, ...); the folder counts as one candidate.

A candidate matches a volume when, brought to the canonical orientation, it has the same
shape and its voxel-edge corners lie within the tolerance of the volume's (identical grid),
or else when its physical extent agrees with the volume's within the tolerance; then it is
resampled onto the volume grid by physical coordinates (nearest neighbour). Geometry alone
cannot tell apart two series acquired on the same grid, so a candidate whose file or folder
name contains the series id wins, and tied candidates that disagree are reported as
ambiguous rather than guessed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from refrad_builder.anatomy.labels import schema
from refrad_builder.imaging.nifti import is_nifti, nifti_stem, read_geometry, read_nifti
from refrad_builder.imaging.orientation import (
    canonical_geometry,
    resample_to,
    same_extent,
    same_grid,
    to_canonical,
)

TASK_BY_MODALITY = {"CT": "total", "MR": "total_mr"}
SEGMENTER = "precomputed:totalsegmentator"


class AmbiguousMatch(Exception):
    """Several equally good candidates with different labels match one volume."""


@dataclass(frozen=True)
class Candidate:
    """One precomputed segmentation: a multilabel file or a folder of per-class masks."""

    key: str
    kind: str  # "multilabel" or "masks"
    files: tuple[str, ...]
    class_names: tuple[str, ...]
    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]  # canonical voxel -> RAS

    @property
    def affine_array(self) -> np.ndarray:
        return np.array(self.affine, dtype=float)


@dataclass(frozen=True)
class Match:
    """A chosen candidate and how it lines up with the volume."""

    candidate: Candidate
    identical_grid: bool


@lru_cache(maxsize=1)
def classmap_version() -> str:
    """The TotalSegmentator version the bundled class-map snapshot was taken from."""
    text = resources.files("refrad_builder.data").joinpath("totalseg_class_map.json").read_text()
    source = json.loads(text).get("source", "")
    parts = source.split(",")[0].split()
    return parts[1] if len(parts) > 1 else "unknown"


def segmenter_version(task: str) -> str:
    """Provenance of a precomputed output, e.g. ``total@2.18.0-snapshot``."""
    return f"{task}@{classmap_version()}-snapshot"


def _class_names() -> set[str]:
    s = schema()
    return set(s.ts_maps["total"].values()) | set(s.ts_maps["total_mr"].values())


def _frozen(affine: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(affine))


def scan_folders(folders: list[Path]) -> list[Candidate]:
    """Index the headers of every NIfTI under ``folders`` (unreadable files are skipped)."""
    names = _class_names()
    found: dict[str, Path] = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_file() and is_nifti(folder):
            found.setdefault(str(folder.resolve()), folder)
            continue
        if not folder.is_dir():
            continue
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                if is_nifti(path):
                    found.setdefault(str(path.resolve()), path)
    by_folder: dict[Path, list[Path]] = {}
    singles: list[Path] = []
    for _, path in sorted(found.items()):
        if nifti_stem(path) in names:
            by_folder.setdefault(path.parent, []).append(path)
        else:
            singles.append(path)
    out: list[Candidate] = []
    for path in singles:
        cand = _single_candidate(path)
        if cand is not None:
            out.append(cand)
    for folder, paths in sorted(by_folder.items()):
        cand = _mask_folder_candidate(folder, sorted(paths))
        if cand is not None:
            out.append(cand)
    return out


def _header(path: Path):
    try:
        shape, affine, dtype = read_geometry(path)
    except Exception:  # any unreadable or non-NIfTI file is simply not a candidate
        return None
    if len(shape) != 3 or dtype.kind not in "iuf":
        return None
    return canonical_geometry(shape, affine)


def _single_candidate(path: Path) -> Candidate | None:
    geom = _header(path)
    if geom is None:
        return None
    shape, affine = geom
    return Candidate(
        key=str(path),
        kind="multilabel",
        files=(str(path),),
        class_names=(),
        shape=shape,
        affine=_frozen(affine),
    )


def _mask_folder_candidate(folder: Path, paths: list[Path]) -> Candidate | None:
    geom = _header(paths[0])
    if geom is None:
        return None
    shape, affine = geom
    return Candidate(
        key=str(folder),
        kind="masks",
        files=tuple(str(p) for p in paths),
        class_names=tuple(nifti_stem(p) for p in paths),
        shape=shape,
        affine=_frozen(affine),
    )


class PrecomputedIndex:
    """The header index of the configured folders; build once per worker."""

    def __init__(self, folders: list[Path]):
        self.folders = [Path(f) for f in folders]
        self.candidates = scan_folders(self.folders)

    def ranked(
        self,
        shape: tuple[int, int, int],
        affine: np.ndarray,
        tol_mm: float,
        series_id: str | None = None,
    ) -> list[list[Match]]:
        """Matching candidates grouped by rank, best group first.

        Rank: the name contains ``series_id``; then identical grid before resampled; then
        multilabel files before mask folders.
        """
        scored: dict[tuple[int, int, int], list[Match]] = {}
        for cand in self.candidates:
            c_aff = cand.affine_array
            if same_grid(shape, affine, cand.shape, c_aff, tol_mm):
                identical = True
            elif same_extent(shape, affine, cand.shape, c_aff, tol_mm):
                identical = False
            else:
                continue
            named = bool(series_id) and series_id in Path(cand.key).name
            rank = (0 if named else 1, 0 if identical else 1, 0 if cand.kind == "multilabel" else 1)
            scored.setdefault(rank, []).append(Match(cand, identical))
        return [scored[r] for r in sorted(scored)]


def _load_multilabel(cand: Candidate, lut: np.ndarray) -> np.ndarray | None:
    data, affine = read_nifti(Path(cand.files[0]))
    if data.ndim != 3:
        return None
    if data.dtype.kind == "f":
        if not np.isfinite(data).all() or not np.array_equal(data, np.rint(data)):
            return None
    if data.size and (data.min() < 0 or data.max() >= len(lut)):
        # Negative or out-of-range values: an image (e.g. the CT itself), not a label map.
        return None
    data, _ = to_canonical(data.astype(np.int64, copy=False), affine)
    return lut[data]


def _load_masks(cand: Candidate) -> np.ndarray | None:
    s = schema()
    ref_affine = cand.affine_array
    out = np.zeros(cand.shape, dtype=np.uint8)
    for path, name in zip(cand.files, cand.class_names, strict=True):
        data, affine = read_nifti(Path(path))
        if data.ndim != 3:
            return None
        data, affine = to_canonical(data, affine)
        if data.shape != cand.shape or not np.allclose(affine, ref_affine, atol=1e-3):
            return None
        out[data > 0] = s.by_name[name].id
    return out


def load_unified(match: Match, task: str) -> np.ndarray | None:
    """The candidate's labels in the unified schema on its own canonical grid, or ``None``
    when the file is not a label map of ``task`` (values outside the task's ids)."""
    cand = match.candidate
    if cand.kind == "masks":
        allowed = set(schema().ts_maps[task].values())
        if not set(cand.class_names) <= allowed:
            return None
        return _load_masks(cand)
    return _load_multilabel(cand, schema().lut(task))


def labels_for_volume(
    index: PrecomputedIndex,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    modality: str,
    tol_mm: float,
    series_id: str | None = None,
) -> tuple[np.ndarray, Match, str] | None:
    """The unified label volume on the volume's grid from the best matching candidate,
    with the match and the TotalSegmentator task; ``None`` when nothing matches.

    Raises :class:`AmbiguousMatch` when equally ranked valid candidates disagree.
    """
    task = TASK_BY_MODALITY.get(modality.upper())
    if task is None:
        return None
    for group in index.ranked(shape, affine, tol_mm, series_id):
        valid: list[tuple[Match, np.ndarray]] = []
        for match in group:
            labels = load_unified(match, task)
            if labels is not None:
                valid.append((match, labels))
        if not valid:
            continue
        match, labels = valid[0]
        if any(not np.array_equal(labels, other) for _, other in valid[1:]):
            raise AmbiguousMatch(f"{len(valid)} different candidates of equal rank")
        if match.identical_grid:
            # The grids agree within tolerance: take the voxels as they are.
            return np.ascontiguousarray(labels, dtype=np.uint8), match, task
        out = resample_to(labels, match.candidate.affine_array, shape, affine, order=0)
        return out.astype(np.uint8, copy=False), match, task
    return None
