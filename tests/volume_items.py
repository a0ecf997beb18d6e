"""Test helper: a canonical volume NIfTI and its work item, as the volume stage writes them."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from refrad_builder.engine.records import VolumeRecord
from refrad_builder.engine.stage import WorkItem
from refrad_builder.imaging.nifti import write_nifti
from refrad_builder.imaging.orientation import to_canonical


def volume_item(work: Path, source: Path, series_id: str, modality: str) -> WorkItem:
    """Write ``source`` (any NIfTI) in the canonical orientation under ``work`` and return the
    volume stage's work item for it."""
    img = nib.load(source)
    data, affine = to_canonical(np.asarray(img.dataobj), img.affine)
    path = work / "volume" / "blobs" / f"{series_id}.nii.gz"
    write_nifti(path, data, affine, dtype=data.dtype)
    rec = VolumeRecord(
        series_id=series_id,
        study_id="st",
        patient_id="p",
        modality=modality,
        nifti=path.relative_to(work).as_posix(),
        shape=data.shape,
        spacing=(3.0, 3.0, 3.0),
        affine=affine.tolist(),
        instance_numbers=[None] * data.shape[2],
        units="HU" if modality == "CT" else "raw",
    )
    return WorkItem(id=series_id, payload=rec.model_dump(mode="json"), input_fingerprint="fp")
