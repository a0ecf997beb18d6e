"""Volume geometry checked against dcm2niix (PyPI ``dcm2niix``): the real series and
generated ones (oblique, feet-first, in-plane flips and transposes, sagittal and coronal
acquisitions, enhanced multi-frame, gantry tilt).

dcm2niix writes NIfTI with an RAS affine in its own voxel order (usually L, A, S); both
volumes are brought to the canonical (L, P, S) order before comparing. Expected: the same
shape, every affine entry within 1e-3 mm, and identical voxel values. For a gantry tilt,
dcm2niix keeps the acquired slices under an affine that ignores the shear and adds a
resampled ``_Tilt_1`` file on a larger field of view; that one is compared by position.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_synth import write_enhanced, write_series

from refrad_builder.imaging.orientation import resample_to, to_canonical
from refrad_builder.imaging.series_volume import read_series_canonical

dcm2niix = pytest.importorskip("dcm2niix")

ROOT = Path(__file__).resolve().parents[1]
REAL_DICOM = ROOT / "refrad_builder" / "demo" / "data" / "real_ct" / "dicom"
BIN = Path(dcm2niix.bin)
WEIGHTS = np.array([2.0, 3.0, 5.0])


def run_dcm2niix(folder: Path, out: Path) -> list[Path]:
    """dcm2niix on one folder: uncompressed NIfTI, no BIDS sidecar; the files it wrote."""
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(BIN), "-z", "n", "-b", "n", "-f", "vol", "-o", str(out), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sorted(out.glob("*.nii"))


def canonical_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI's scaled voxel values and affine in the canonical (L, P, S) order."""
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float64)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return to_canonical(data, img.affine)


def compare(files: list[Path], tmp: Path, modality: str = "CT") -> dict:
    ours = read_series_canonical(files, modality)
    (theirs_path,) = run_dcm2niix(files[0].parent, tmp / "d2n")
    data, affine = canonical_nifti(theirs_path)
    assert data.shape == ours.data.shape
    affine_diff = float(np.abs(affine - ours.affine).max())
    assert affine_diff <= 1e-3, affine_diff
    np.testing.assert_array_equal(data, ours.data.astype(np.float64))
    return {"shape": data.shape, "affine_diff_mm": affine_diff}


def _encoded_error(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in data.shape], indexing="ij"), -1)
    lps = (ijk @ affine[:3, :3].T + affine[:3, 3]) * [-1.0, -1.0, 1.0]
    return np.abs(data - lps @ WEIGHTS)


def test_real_series_matches_dcm2niix(tmp_path: Path):
    folder = tmp_path / "real"
    shutil.copytree(REAL_DICOM, folder)
    result = compare(sorted(folder.iterdir()), tmp_path)
    print(f"\nreal CT series: {result}")
    assert result["shape"] == (512, 512, 20)


def _rot_z(deg: float) -> tuple[list[float], list[float]]:
    a = np.deg2rad(deg)
    return [np.cos(a), np.sin(a), 0.0], [-np.sin(a), np.cos(a), 0.0]


def _double_oblique() -> tuple[list[float], list[float]]:
    a, b = np.deg2rad(20), np.deg2rad(12)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    m = rx @ rz
    return list(m[:, 0]), list(m[:, 1])


CASES = {
    # name: (row cosine, column cosine, pixel spacing (rows, cols), slice step along normal)
    "axial_hfs": ([1, 0, 0], [0, 1, 0], (0.8, 0.7), 2.5),
    "oblique_20deg": (*_rot_z(20), (0.9, 0.9), 3.0),
    "double_oblique": (*_double_oblique(), (1.0, 0.8), 2.0),
    "feet_first": ([-1, 0, 0], [0, 1, 0], (0.7, 0.7), 2.0),
    "flip_rows": ([1, 0, 0], [0, -1, 0], (0.7, 0.9), 2.0),
    "transposed": ([0, 1, 0], [1, 0, 0], (0.9, 0.7), 2.0),
    "sagittal": ([0, 1, 0], [0, 0, -1], (1.0, 1.1), 1.5),
    "coronal_oblique": ([np.cos(0.3), np.sin(0.3), 0], [0, 0, -1], (0.8, 0.8), 2.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_series_match_dcm2niix(tmp_path: Path, case: str):
    row, col, spacing, step = CASES[case]
    normal = np.cross(row, col)
    origin = np.array([-12.0, -9.0, 4.0])
    n = 9
    # Written in acquisition order; the feet-first stack's z decreases with the instance.
    positions = [origin + k * step * normal for k in range(n)]
    files = write_series(
        tmp_path / "in",
        rows=18,
        cols=22,
        spacing=spacing,
        row_cos=row,
        col_cos=col,
        positions=positions,
        extra={"PatientPosition": "FFS" if case == "feet_first" else "HFS"},
    )
    result = compare(files, tmp_path)
    print(f"\n{case}: {result}")


def test_enhanced_multiframe_matches_dcm2niix(tmp_path: Path):
    (tmp_path / "in").mkdir()
    row, col = _rot_z(-15)
    path = write_enhanced(
        tmp_path / "in" / "enhanced.dcm",
        rows=16,
        cols=20,
        spacing=(0.9, 0.9),
        row_cos=row,
        col_cos=col,
        positions=[[-10.0, -8.0, z] for z in (6.0, 0.0, 2.0, 4.0, 8.0)],
    )
    result = compare([path], tmp_path)
    print(f"\nenhanced CT: {result}")


@pytest.mark.parametrize("sign", [1, -1])
def test_gantry_tilt_against_dcm2niix(tmp_path: Path, sign: int):
    t = np.deg2rad(15) * sign
    files = write_series(
        tmp_path / "in",
        rows=40,
        cols=48,
        spacing=(1.0, 0.9),
        row_cos=[1.0, 0.0, 0.0],
        col_cos=[0.0, np.cos(t), np.sin(t)],
        positions=[[-20.0, -15.0, 3.0 * k] for k in range(12)],
        signed=True,  # dcm2niix corrects tilt of 16-bit signed data only
        extra={"GantryDetectorTilt": float(np.rad2deg(t))},
    )
    ours = read_series_canonical(files, "CT")
    assert ours.resampled == ["gantry_tilt"]
    acquired = ours.data > ours.data.min()
    ours_err = _encoded_error(ours.data, ours.affine)[acquired]
    assert ours_err.max() <= 1.0

    written = {p.name: p for p in run_dcm2niix(tmp_path / "in", tmp_path / "d2n")}
    assert set(written) == {"vol.nii", "vol_Tilt_1.nii"}
    plain, plain_aff = canonical_nifti(written["vol.nii"])
    tilt, tilt_aff = canonical_nifti(written["vol_Tilt_1.nii"])
    plain_err = _encoded_error(plain, plain_aff)
    tilt_err = _encoded_error(tilt, tilt_aff)[tilt > tilt.min()]
    # Same orthogonal directions as ours; its grid is larger and shifted by part of a voxel.
    dirs = ours.affine[:3, :3] / np.linalg.norm(ours.affine[:3, :3], axis=0)
    tilt_dirs = tilt_aff[:3, :3] / np.linalg.norm(tilt_aff[:3, :3], axis=0)
    np.testing.assert_allclose(tilt_dirs, dirs, atol=1e-3)
    on_ours = resample_to(tilt, tilt_aff, ours.data.shape, ours.affine, order=1, cval=np.nan)
    both = acquired & np.isfinite(on_ours) & (on_ours > tilt.min())
    agreement = np.abs(on_ours - ours.data)[both]
    print(
        f"\ntilt {np.rad2deg(t):+.0f} deg: ours max err {ours_err.max():.2f} HU; dcm2niix "
        f"uncorrected median/max err {np.median(plain_err):.2f}/{plain_err.max():.2f}; "
        f"_Tilt_1 median/max err {np.median(tilt_err):.2f}/{tilt_err.max():.2f}; "
        f"ours vs _Tilt_1 median/max {np.median(agreement):.2f}/{agreement.max():.2f}"
    )
    # The uncorrected file misplaces the far slices (shear ignored): errors of whole mm.
    assert plain_err.max() > 3.0
    if np.median(tilt_err) < 1.0:  # where dcm2niix's own correction is consistent
        assert np.median(agreement) < 1.0 and agreement.max() < 6.0
