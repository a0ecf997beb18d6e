"""The ``slices`` stage: choose slices of a series, store them as lossless 16-bit PNGs with
their uint8 label masks, and record windows and one union box per class.

One item per series that has both a volume and a segmentation. Axial slices by default;
``slices.planes`` adds coronal and sagittal reformats for near-isotropic volumes (largest
voxel size at most ``slices.reformat_max_anisotropy`` times the smallest). Stored images are
in the radiological display orientation of the canonical (L, P, S) volume (see
:func:`refrad_builder.imaging.slicing.plane_slice`): axial ``vol[:, :, k].T`` with row 0
anterior and column 0 the patient's right; coronal with the head at the top and the
patient's right on the left; sagittal with the head at the top and anterior on the left.
Each plane gets its own budget of ``max_slices_per_series``; report image references only
apply to axial slices (the acquired images).
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any

import nibabel as nib
import numpy as np

from refrad_builder.anatomy.labels import LabelSchema, schema
from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.io import atomic_write_bytes
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import (
    ReportRecord,
    SegmentRecord,
    SliceRecord,
    VolumeRecord,
    Window,
)
from refrad_builder.engine.stage import Drop, Resources, Stage, WorkItem
from refrad_builder.imaging.boxes import union_boxes
from refrad_builder.imaging.png import encode_png
from refrad_builder.imaging.slicing import (
    ChosenSlice,
    body_slices,
    choose_slices,
    label_areas,
    plane_pixel_spacing,
    plane_slice,
    reformat_allowed,
)
from refrad_builder.imaging.windows import percentile_window

CANONICAL = ("L", "P", "S")
CT_OFFSET = 1024
UINT16_MAX = 65535


def slice_id(series_id: str, plane: str, index: int) -> str:
    """The dot-free stable id of one slice of a (pseudonymised) series."""
    return stable_hash([series_id, plane, index])[:24]


def report_hints(report: dict[str, Any] | None) -> tuple[list[list[int]], list[str]]:
    """Image references ``[series, image]`` and mentioned class names of a report.

    Classes mentioned as abnormal come first (report order), then the others, so coverage
    favours what the findings are about.
    """
    if report is None:
        return [], []
    rec = ReportRecord.model_validate(report)
    refs: list[list[int]] = []
    abnormal: list[str] = []
    normal: list[str] = []
    for sentence in rec.sentences:
        for ref in sentence.image_refs:
            if [ref.series, ref.image] not in refs:
                refs.append([ref.series, ref.image])
        for m in sentence.mentions:
            target = abnormal if m.abnormal else normal
            if m.class_name not in target:
                target.append(m.class_name)
    mentioned = abnormal + [n for n in normal if n not in abnormal]
    return refs, mentioned


def storage_params(volume: np.ndarray, units: str) -> tuple[float, float]:
    """(slope, intercept) that map a volume's real values into uint16 stored values, with
    value = stored * slope + intercept; one pair per series so its slices stay comparable.

    CT: HU + 1024 (slope 1, intercept -1024). MR: integer data that fit uint16 are kept;
    integer data whose range fits are shifted by their minimum; anything else is scaled
    linearly into 0..65535.
    """
    if units == "HU":
        return 1.0, float(-CT_OFFSET)
    if volume.size == 0:
        return 1.0, 0.0
    lo, hi = float(volume.min()), float(volume.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("non-finite values in volume")
    integral = volume.dtype.kind in "biu" or all(
        np.array_equal(volume[:, :, k], np.rint(volume[:, :, k])) for k in range(volume.shape[2])
    )
    if integral and lo >= 0 and hi <= UINT16_MAX:
        return 1.0, 0.0
    if integral and hi - lo <= UINT16_MAX:
        return 1.0, lo
    return ((hi - lo) / UINT16_MAX if hi > lo else 1.0), lo


def to_stored(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Real values -> uint16 stored values (rounded, clipped to 0..65535).

    CT values below -1024 HU (padding, outside the field of view) clip to -1024.
    """
    stored = np.rint((np.asarray(values, dtype=np.float64) - intercept) / slope)
    return np.clip(stored, 0, UINT16_MAX).astype(np.uint16)


def _load(path, what: str) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{what} is not 3D")
    return data, img.affine


class SlicesStage(Stage):
    """Choose slices per series; write image/mask PNGs; emit one SliceRecord per slice."""

    name = "slices"
    version = "3"
    consumes = ("volume", "segment", "report")
    config_section = "slices"
    resources = Resources(cpus=1.0, memory_gb=2.0)

    def plan(self) -> list[WorkItem]:
        """One item per series with both a volume and a segmentation, plus its report hints."""
        volumes: dict[str, tuple[str, dict[str, Any]]] = {}
        for _, fp, recs in self.ctx.upstream("volume"):
            for rec in recs:
                volumes[rec["series_id"]] = (fp, rec)
        segments: dict[str, tuple[str, dict[str, Any]]] = {}
        for _, fp, recs in self.ctx.upstream("segment"):
            for rec in recs:
                segments[rec["series_id"]] = (fp, rec)
        reports: dict[str, dict[str, Any]] = {}
        for _, _, recs in self.ctx.upstream("report"):
            for rec in recs:
                reports[rec["study_id"]] = rec
        items = []
        for series_id in sorted(volumes.keys() & segments.keys()):
            vol_fp, vol = volumes[series_id]
            seg_fp, seg = segments[series_id]
            report = reports.get(vol["study_id"])
            refs, mentioned = report_hints(report)
            # Fingerprint the hints, not the whole report: a report change that alters no
            # reference or mention does not redo the images.
            hints_fp = stable_hash([refs, mentioned]) if report is not None else "none"
            items.append(
                WorkItem(
                    id=series_id,
                    payload={"volume": vol, "segment": seg, "refs": refs, "mentioned": mentioned},
                    input_fingerprint=stable_hash([vol_fp, seg_fp, hints_fp]),
                )
            )
        return items

    @cached_property
    def _own_ledger(self) -> Ledger:
        """One ledger object for every outputs_present call: it reads the entries once."""
        return Ledger(self.out_dir)

    def outputs_present(self, item: WorkItem) -> bool:
        """A done item counts only while every PNG its records name is still on disk."""
        entry = self._own_ledger.entry(item.id)
        if not entry:
            return True
        work = self.ctx.work
        return all(
            (work / rec[key]).is_file()
            for rec in entry.get("records", [])
            for key in ("image_png", "mask_png")
        )

    def process(self, item: WorkItem) -> list[SliceRecord] | Drop:
        """Choose slices, write their image/mask PNGs and return one record per slice."""
        cfg = self.cfg
        vol = VolumeRecord.model_validate(item.payload["volume"])
        seg = SegmentRecord.model_validate(item.payload["segment"])
        label_schema = schema()
        work = self.ctx.work

        image, affine = _load(work / vol.nifti, "volume")
        labels, label_affine = _load(work / seg.labels_nifti, "label map")
        if tuple(nib.aff2axcodes(affine)) != CANONICAL:
            return Drop("not_canonical", "volume is not in the canonical L,P,S orientation")
        if image.shape != labels.shape or not np.allclose(affine, label_affine, atol=1e-2):
            return Drop("grid_mismatch", f"volume {image.shape} vs labels {labels.shape}")
        if labels.dtype != np.uint8:
            if not np.all((labels >= 0) & (labels <= 255) & (labels == np.rint(labels))):
                return Drop("bad_labels", "label map is not an integer 0..255 map")
            labels = labels.astype(np.uint8)
        areas = label_areas(labels)
        present = set(np.flatnonzero(areas.sum(axis=0)).tolist()) - {0}
        unknown = sorted(present - set(label_schema.by_id))
        if unknown:
            return Drop("unknown_labels", f"{len(unknown)} ids outside {label_schema.version}")

        slope, intercept = storage_params(image, vol.units)
        planes = [
            p
            for p in dict.fromkeys(cfg.planes)
            if p == "axial" or reformat_allowed(vol.spacing, cfg.reformat_max_anisotropy)
        ]
        if not planes:
            return Drop("no_plane", "reformats need a near-isotropic volume")
        records: list[SliceRecord] = []
        for plane in planes:
            plane_areas = areas if plane == "axial" else label_areas(labels, plane)
            axial = plane == "axial"
            chosen = choose_slices(
                plane_areas,
                body=body_slices(image, vol.units, plane),
                instance_numbers=vol.instance_numbers if axial else (),
                series_number=vol.series_number,
                refs=item.payload.get("refs", []) if axial else (),
                mentioned=item.payload.get("mentioned", []),
                schema=label_schema,
                max_slices=cfg.max_slices_per_series,
                coverage_neighbors=cfg.coverage_neighbors,
                min_area=cfg.min_box_area_px,
            )
            for choice in chosen:
                records.append(
                    self._write_slice(
                        vol, seg, image, labels, plane, choice, slope, intercept, label_schema
                    )
                )
        if not records:
            return Drop("no_slices", "no referenced, labelled or body slice")
        return records

    def _write_slice(
        self,
        vol: VolumeRecord,
        seg: SegmentRecord,
        image: np.ndarray,
        labels: np.ndarray,
        plane: str,
        choice: ChosenSlice,
        slope: float,
        intercept: float,
        label_schema: LabelSchema,
    ) -> SliceRecord:
        """Store one chosen slice's image and mask PNGs; return its record."""
        cfg = self.cfg
        k = choice.index
        sid = slice_id(vol.series_id, plane, k)
        stored = np.ascontiguousarray(to_stored(plane_slice(image, plane, k), slope, intercept))
        mask = np.ascontiguousarray(plane_slice(labels, plane, k))
        if vol.units == "HU":
            windows = [Window(name=w.name, center=w.center, width=w.width) for w in cfg.ct_windows]
        else:
            center, width = percentile_window(stored, *cfg.mr_percentiles)
            windows = [Window(name="percentile", center=center, width=width)]
        blobs = self.out_dir / "blobs"
        image_name = f"{sid}_image.png"
        mask_name = f"{sid}_mask.png"
        image_png = encode_png(stored)
        atomic_write_bytes(blobs / image_name, image_png)
        atomic_write_bytes(blobs / mask_name, encode_png(mask))
        instance = None
        if plane == "axial" and k < len(vol.instance_numbers):
            instance = vol.instance_numbers[k]
        return SliceRecord(
            slice_id=sid,
            series_id=vol.series_id,
            study_id=vol.study_id,
            patient_id=vol.patient_id,
            modality=vol.modality,
            plane=plane,
            index=k,
            series_number=vol.series_number,
            instance_number=instance,
            image_png=f"{self.name}/blobs/{image_name}",
            mask_png=f"{self.name}/blobs/{mask_name}",
            image_sha256=hashlib.sha256(image_png).hexdigest(),
            width=int(stored.shape[1]),
            height=int(stored.shape[0]),
            pixel_spacing=plane_pixel_spacing(vol.spacing, plane),
            rescale_slope=slope,
            rescale_intercept=intercept,
            units=vol.units,
            windows=windows,
            boxes=union_boxes(mask, label_schema, cfg.min_box_area_px),
            reasons=list(choice.reasons),
            segmenter=seg.segmenter,
            segmenter_version=seg.segmenter_version,
            sex=vol.sex,
            age_years=vol.age_years,
            body_part=vol.body_part,
            contrast=vol.contrast,
        )


STAGE = SlicesStage
