"""Stage ``segment``: a label volume in the unified schema on each volume's grid.

Backends (``segment.backend``):

* ``precomputed``: an existing TotalSegmentator output found by geometry in
  ``segment.precomputed`` (CT: task ``total``, MR: ``total_mr``);
* ``classical``: thresholds and connected components on CT (body, lungs, bone);
* ``auto``: precomputed where one matches, else classical (CT only);
* ``totalsegmentator``: running the model is not available in this version.

The label volume goes to ``segment/blobs/<series_id>.nii.gz`` (uint8, same grid and affine
as the volume).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from refrad_builder.anatomy import schema
from refrad_builder.config import stable_hash
from refrad_builder.imaging import classical, precomputed
from refrad_builder.imaging.nifti import is_nifti, read_geometry, read_nifti, write_nifti
from refrad_builder.records import SegmentRecord, VolumeRecord
from refrad_builder.stage import Drop, Resources, Stage, WorkItem


def _folder_signature(folders: list[Path]) -> str:
    """Names, sizes and mtimes of the precomputed files: a changed output reruns its items."""
    entries = []
    for folder in folders:
        folder = Path(folder)
        paths = (
            [folder] if folder.is_file() else sorted(folder.rglob("*")) if folder.is_dir() else []
        )
        for path in paths:
            if is_nifti(path) and path.is_file():
                st = path.stat()
                entries.append([str(path), st.st_size, st.st_mtime_ns])
    return stable_hash(entries)


class SegmentStage(Stage):
    """Label one canonical volume with the configured backend."""

    name: ClassVar[str] = "segment"
    version: ClassVar[str] = "1"
    consumes: ClassVar[tuple[str, ...]] = ("volume",)
    resources: ClassVar[Resources] = Resources(cpus=1.0, memory_gb=4.0)
    # A GPU-capable stage: one long-lived actor per worker keeps the model (and the
    # precomputed header index) loaded; segment.gpus_per_worker asks Ray for GPUs.
    actor_pool: ClassVar[bool] = True

    def __init__(self, ctx):
        super().__init__(ctx)
        self._index: precomputed.PrecomputedIndex | None = None

    def _uses_precomputed(self) -> bool:
        return self.cfg.backend in ("auto", "precomputed") and bool(self.cfg.precomputed)

    def plan(self) -> list[WorkItem]:
        """One item per volume; precomputed files enter the input fingerprint."""
        extra = _folder_signature(self.cfg.precomputed) if self._uses_precomputed() else ""
        items = []
        for _item_id, fingerprint, records in self.ctx.upstream("volume"):
            for record in records:
                vol = VolumeRecord.model_validate(record)
                items.append(
                    WorkItem(
                        id=vol.series_id,
                        payload=vol.model_dump(mode="json"),
                        input_fingerprint=stable_hash([fingerprint, extra])
                        if extra
                        else fingerprint,
                    )
                )
        return items

    def setup(self) -> None:
        """Index the precomputed folders' headers once per worker."""
        if self._uses_precomputed():
            self._index = precomputed.PrecomputedIndex(self.cfg.precomputed)

    @property
    def index(self) -> precomputed.PrecomputedIndex:
        if self._index is None:
            self._index = precomputed.PrecomputedIndex(self.cfg.precomputed)
        return self._index

    def process(self, item: WorkItem) -> SegmentRecord | Drop:
        """Segment one volume, or drop it with a reason code."""
        vol = VolumeRecord.model_validate(item.payload)
        backend = self.cfg.backend
        if backend == "totalsegmentator":
            return Drop("backend_unavailable", "totalsegmentator backend not implemented yet")
        modality = vol.modality.upper()
        volume_path = self.ctx.work / vol.nifti
        shape3, affine, _dtype = read_geometry(volume_path)
        shape = (int(shape3[0]), int(shape3[1]), int(shape3[2]))

        if backend in ("auto", "precomputed"):
            try:
                found = (
                    precomputed.labels_for_volume(
                        self.index,
                        shape,
                        affine,
                        modality,
                        self.cfg.geometry_tolerance_mm,
                        series_id=vol.series_id,
                    )
                    if self.cfg.precomputed
                    else None
                )
            except precomputed.AmbiguousMatch as exc:
                if backend == "precomputed" or modality != "CT":
                    return Drop("ambiguous_precomputed", str(exc))
                found = None
            if found is not None:
                labels, _match, task = found
                return self._write(
                    vol,
                    labels,
                    affine,
                    precomputed.SEGMENTER,
                    precomputed.segmenter_version(task),
                )
            if backend == "precomputed":
                return Drop("no_precomputed_match", f"{modality} volume")

        if modality != "CT":
            return Drop("no_segmentation_for_mr" if modality == "MR" else "unsupported_modality")
        if vol.units != "HU":
            return Drop("not_hounsfield", "classical segmentation needs HU")
        data, affine = read_nifti(volume_path)
        labels = classical.segment_ct(data, affine)
        return self._write(vol, labels, affine, classical.SEGMENTER, classical.CLASSICAL_VERSION)

    def _write(
        self,
        vol: VolumeRecord,
        labels: np.ndarray,
        affine: np.ndarray,
        segmenter: str,
        version: str,
    ) -> SegmentRecord:
        target = self.out_dir / "blobs" / f"{vol.series_id}.nii.gz"
        write_nifti(target, labels.astype(np.uint8, copy=False), affine)
        present = np.nonzero(np.bincount(labels.ravel(), minlength=1))[0]
        return SegmentRecord(
            series_id=vol.series_id,
            labels_nifti=target.relative_to(self.ctx.work).as_posix(),
            segmenter=segmenter,
            segmenter_version=version,
            schema_version=schema().version,
            classes=sorted(int(c) for c in present if c != 0),
        )


STAGE = SegmentStage
