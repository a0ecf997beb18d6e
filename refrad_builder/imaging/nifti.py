"""Atomic NIfTI writes and small read helpers (nibabel).

Files are written with both sform and qform set to the given voxel->RAS affine (code 1,
scanner) and no intensity scaling, so what is read back equals what was written.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from refrad_builder.engine.io import atomic_write_via

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: Path) -> bool:
    """Whether the file name ends in ``.nii`` or ``.nii.gz``."""
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """File name without ``.nii``/``.nii.gz``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def storage_dtype(data: np.ndarray) -> np.dtype:
    """int16 when every value is an integer that fits int16 (e.g. CT HU), else float32."""
    arr = np.asarray(data)
    if arr.dtype.kind in "iub":
        info = np.iinfo(np.int16)
        if arr.size == 0 or (arr.min() >= info.min and arr.max() <= info.max):
            return np.dtype(np.int16)
        return np.dtype(np.float32)
    if arr.size and np.isfinite(arr).all():
        lo, hi = float(arr.min()), float(arr.max())
        info = np.iinfo(np.int16)
        if lo >= info.min and hi <= info.max and np.array_equal(arr, np.rint(arr)):
            return np.dtype(np.int16)
    return np.dtype(np.float32)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, dtype=None) -> None:
    """Write ``data`` (3D) with its voxel->RAS ``affine`` to ``path`` atomically."""
    arr = np.asarray(data)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    # nibabel writes Fortran order itself; forcing C order first would copy twice.
    img = nib.Nifti1Image(arr, np.asarray(affine, dtype=float))
    img.header.set_data_dtype(arr.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(np.asarray(affine, dtype=float), code=1)
    img.set_qform(np.asarray(affine, dtype=float), code=1)
    img.header["scl_slope"] = np.nan
    img.header["scl_inter"] = np.nan
    atomic_write_via(Path(path), lambda tmp: nib.save(img, str(tmp)))


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data as stored, voxel->RAS affine); scaling is applied only if the file has one.

    Trailing singleton dimensions (a 3D image saved as 4D) are dropped.
    """
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return data, np.asarray(img.affine, dtype=float)


def read_geometry(path: Path) -> tuple[tuple[int, ...], np.ndarray, np.dtype]:
    """(shape, voxel->RAS affine, on-disk dtype) from the header only."""
    img = nib.load(str(path))
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape, np.asarray(img.affine, dtype=float), img.get_data_dtype()
