"""Stage ``volume``: de-identified DICOM series -> canonical NIfTI volume + geometry record.

Reads only the de-identified files written by ``deid``. One item per series; the volume is
written to ``volume/blobs/<series_id>.nii.gz`` in the canonical LPS voxel order (see
:mod:`refrad_builder.imaging.orientation`), CT in Hounsfield units.

Series assembly (single-frame and enhanced multi-frame files, localizers, mixed orientations,
duplicates, gaps, uneven spacing, gantry tilt) is :mod:`refrad_builder.imaging.series_volume`.
The record's ``skipped`` counts the images left out by reason; a volume whose voxels were
interpolated also carries ``resampled:<why>: 1`` (``uneven_spacing``, ``gantry_tilt``), so
every repair stays visible downstream.
"""

from __future__ import annotations

from typing import ClassVar

from refrad_builder.engine.records import DeidSeries, VolumeRecord
from refrad_builder.engine.stage import Drop, Resources, Stage, WorkItem
from refrad_builder.imaging.nifti import storage_dtype, write_nifti
from refrad_builder.imaging.orientation import voxel_spacing
from refrad_builder.imaging.series_volume import VolumeError, read_series_canonical


class VolumeStage(Stage):
    """Decode, sort and orient one series; write it as NIfTI."""

    name: ClassVar[str] = "volume"
    version: ClassVar[str] = "2"
    consumes: ClassVar[tuple[str, ...]] = ("deid",)
    resources: ClassVar[Resources] = Resources(cpus=1.0, memory_gb=4.0)

    def plan(self) -> list[WorkItem]:
        """One item per de-identified series."""
        items = []
        for _item_id, fingerprint, records in self.ctx.upstream("deid"):
            for record in records:
                series = DeidSeries.model_validate(record)
                items.append(
                    WorkItem(
                        id=series.series_id,
                        payload=series.model_dump(mode="json"),
                        input_fingerprint=fingerprint,
                    )
                )
        return items

    def process(self, item: WorkItem) -> VolumeRecord | Drop:
        """Build the canonical volume of one series, or drop it with a reason code."""
        series = DeidSeries.model_validate(item.payload)
        work = self.ctx.work
        try:
            vol = read_series_canonical(
                [work / f for f in series.files],
                series.modality,
                min_slices=self.cfg.min_slices,
                spacing_tolerance=self.cfg.spacing_tolerance,
            )
        except VolumeError as exc:
            return Drop(exc.reason, exc.detail)
        target = self.out_dir / "blobs" / f"{series.series_id}.nii.gz"
        write_nifti(target, vol.data, vol.affine, dtype=storage_dtype(vol.data))
        shape = vol.data.shape
        skipped = dict(vol.skipped)
        for why in vol.resampled:
            skipped[f"resampled:{why}"] = 1
        return VolumeRecord(
            series_id=series.series_id,
            study_id=series.study_id,
            patient_id=series.patient_id,
            modality=series.modality,
            series_number=series.series_number,
            nifti=target.relative_to(work).as_posix(),
            shape=(int(shape[0]), int(shape[1]), int(shape[2])),
            spacing=voxel_spacing(vol.affine),
            affine=[[float(v) for v in row] for row in vol.affine],
            instance_numbers=vol.instance_numbers,
            units=vol.units,
            sex=series.sex,
            age_years=series.age_years,
            body_part=series.body_part,
            contrast=series.contrast,
            skipped=dict(sorted(skipped.items())),
        )


STAGE = VolumeStage
