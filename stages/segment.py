"""Stage ``segment``: a label volume in the unified schema on each volume's grid.

Backends (``segment.backend``):

* ``precomputed``: an existing TotalSegmentator output found by geometry in
  ``segment.precomputed`` (CT: task ``total``, MR: ``total_mr``);
* ``classical``: thresholds and connected components on CT (body, lungs, bone);
* ``auto``: precomputed where one matches, else classical (CT only);
* ``totalsegmentator``: the real model (task ``segment.totalseg_task_ct`` for CT,
  ``totalseg_task_mr`` for MR), offline, with weights from ``segment.totalseg_weights``; each
  actor checks the weights once in ``setup``. Missing weights or a missing package are a
  problem of the node, not of the volume: the item fails (``WeightsMissing``,
  ``NotInstalled``; transient), the next run retries it (on any node, once they are
  installed), and ``finalize`` logs how to install them offline while such failures exist.

The label volume goes to ``segment/blobs/<series_id>.nii.gz`` (uint8, same grid and affine
as the volume).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import nibabel as nib
import numpy as np

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.device import gpu_device_name
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import SegmentRecord, VolumeRecord
from refrad_builder.engine.stage import Drop, Resources, Stage, WorkItem
from refrad_builder.imaging import classical, precomputed, totalseg
from refrad_builder.imaging.nifti import is_nifti, read_geometry, read_nifti, write_nifti
from refrad_builder.imaging.slicing import label_areas

log = logging.getLogger(__name__)


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

    def worker_resources(self, cluster: dict[str, float]) -> Resources:
        """``segment.gpus_per_worker`` GPUs per actor; unset: one with the TotalSegmentator
        backend when the cluster has GPUs, none otherwise."""
        gpus = self.cfg.gpus_per_worker
        if gpus is None:
            wants_gpu = self.cfg.backend == "totalsegmentator"
            gpus = 1.0 if wants_gpu and cluster.get("GPU", 0) > 0 else 0.0
        r = self.resources
        custom = tuple(sorted(self.cfg.ray_resources.items()))
        return Resources(cpus=r.cpus, gpus=gpus, memory_gb=r.memory_gb, custom=custom)

    def __init__(self, ctx):
        super().__init__(ctx)
        self._index: precomputed.PrecomputedIndex | None = None
        self._totalseg: totalseg.TotalSegmentatorBackend | None = None

    def _uses_precomputed(self) -> bool:
        return self.cfg.backend in ("auto", "precomputed") and bool(self.cfg.precomputed)

    def plan(self) -> list[WorkItem]:
        """One item per volume; precomputed files (or TotalSegmentator's version and weight
        files) enter the input fingerprint."""
        extra = _folder_signature(self.cfg.precomputed) if self._uses_precomputed() else ""
        by_modality: dict[str, str] = {}
        items = []
        for _item_id, fingerprint, records in self.ctx.upstream("volume"):
            for record in records:
                vol = VolumeRecord.model_validate(record)
                if self.cfg.backend == "totalsegmentator":
                    modality = vol.modality.upper()
                    if modality not in by_modality:
                        by_modality[modality] = totalseg.input_signature(self.cfg, modality)
                    extra = by_modality[modality]
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
        """Index the precomputed folders' headers, or check TotalSegmentator (package, class
        map, weights) once per worker."""
        if self._uses_precomputed():
            self._index = precomputed.PrecomputedIndex(self.cfg.precomputed)
        if self.cfg.backend == "totalsegmentator":
            self.totalseg.setup()

    @property
    def totalseg(self) -> totalseg.TotalSegmentatorBackend:
        """This worker's TotalSegmentator backend (built on first use)."""
        if self._totalseg is None:
            self._totalseg = totalseg.TotalSegmentatorBackend(self.cfg, self.ctx.work)
        return self._totalseg

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
            return self._segment_totalseg(vol)
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

    def _segment_totalseg(self, vol: VolumeRecord) -> SegmentRecord | Drop:
        ts = self.totalseg
        modality = vol.modality.upper()
        task = ts.task_for(modality)
        if task is None:
            return Drop("unsupported_modality", f"{modality} volume")
        if modality == "CT" and vol.units != "HU":
            return Drop("not_hounsfield", "TotalSegmentator needs HU")
        problem = ts.problem(task)
        if problem is not None and problem[0] == totalseg.DROP_ROI_NOT_IN_TASK:
            return Drop(*problem)  # the configuration asks for classes the task lacks
        ts.require(task)  # weights or package missing on this node: transient, retried
        image = nib.load(str(self.ctx.work / vol.nifti))
        labels = ts.segment(image, task)
        device = ts.device or "cpu"
        return self._write(
            vol,
            labels,
            np.asarray(image.affine),
            totalseg.SEGMENTER,
            ts.segmenter_version(task),
            device=gpu_device_name() if device.startswith(("gpu", "cuda")) else "cpu",
        )

    def finalize(self) -> None:
        """Warn loudly while volumes fail for missing TotalSegmentator weights or package."""
        if self.cfg.backend != "totalsegmentator":
            return
        failed = Ledger(self.out_dir).status(self.name).failed
        for error, reason in (
            (totalseg.WeightsMissing.__name__, totalseg.DROP_WEIGHTS_MISSING),
            (totalseg.NotInstalled.__name__, totalseg.DROP_NOT_INSTALLED),
        ):
            if failed.get(error):
                details = sorted(
                    {
                        problem[1]
                        for task in self.totalseg.tasks
                        if (problem := self._driver_problem(task)) and problem[0] == reason
                    }
                )
                log.warning(
                    "segment: %d volume(s) failed (%s); the next run retries them once this "
                    "is fixed on every node. %s",
                    failed[error],
                    error,
                    " ".join(details),
                )

    def _driver_problem(self, task: str) -> tuple[str, str] | None:
        try:
            return self.totalseg.problem(task)
        except Exception as exc:  # the warning itself must never fail the run
            return (totalseg.DROP_WEIGHTS_MISSING, str(exc))

    def _write(
        self,
        vol: VolumeRecord,
        labels: np.ndarray,
        affine: np.ndarray,
        segmenter: str,
        version: str,
        device: str = "cpu",
    ) -> SegmentRecord:
        target = self.out_dir / "blobs" / f"{vol.series_id}.nii.gz"
        labels = labels.astype(np.uint8, copy=False)
        write_nifti(target, labels, affine)
        present = np.flatnonzero(label_areas(labels).sum(axis=0))
        return SegmentRecord(
            series_id=vol.series_id,
            labels_nifti=target.relative_to(self.ctx.work).as_posix(),
            segmenter=segmenter,
            segmenter_version=version,
            schema_version=schema().version,
            classes=sorted(int(c) for c in present if c != 0),
            device=device,
        )


STAGE = SegmentStage
