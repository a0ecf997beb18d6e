"""Volume building timed against dcm2niix and against a plain pydicom read-and-decode of the
same files, in one run; prints the ratios (ours / baseline).

Series: the shared real CT (20 JPEG 2000 slices) and a generated uncompressed CT (60 slices
of 512 x 512, int16). Both sides write an uncompressed NIfTI in the dcm2niix comparison
(``dcm2niix -z n``, run as a subprocess on the folder); the plain decode baseline is
``pydicom.dcmread(f).pixel_array`` for every file (with the decoder plugin our builder
prefers), against our volume building without the write. Best of ``repeat`` rounds, the methods taking turns in each.
Run: ``python benchmarks/volume_vs_dcm2niix.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from refrad_builder.imaging.nifti import storage_dtype, write_nifti
from refrad_builder.imaging.series_volume import read_series_canonical

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT / "refrad_builder" / "demo" / "data" / "real_ct" / "dicom"
TARGET_DCM2NIIX = 1.5
TARGET_PLAIN = 1.3


@dataclass
class Result:
    """Timings of one series (seconds, best of the repeats)."""

    series: str
    files: int
    ours_build: float
    ours_build_write: float
    dcm2niix: float | None
    plain_decode: float


def interleaved_best(methods: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """The fastest of ``repeat`` timed calls of each method (seconds), the methods taking
    turns in every round, so a change in machine load hits all of them alike."""
    best = {name: float("inf") for name in methods}
    for _ in range(repeat):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def dcm2niix_binary() -> Path | None:
    """The dcm2niix executable of the PyPI package, or one on PATH; None if absent."""
    try:
        import dcm2niix

        return Path(dcm2niix.bin)
    except ImportError:
        found = shutil.which("dcm2niix")
        return Path(found) if found else None


def write_uncompressed_ct(folder: Path, n: int = 60, size: int = 512) -> list[Path]:
    """A plain axial CT series (int16, explicit VR little endian) of smooth noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(-1000, 1500, size=(size, size)).astype(np.int16)
    series_uid = generate_uid()
    paths = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"ct{k:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = generate_uid()
        ds.Modality = "CT"
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-250.0, -250.0, -300.0 + 2.0 * k]
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.SliceThickness = 2.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.roll(base, k, axis=0).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def plain_decode(path: Path) -> np.ndarray:
    """The baseline: read one file and decode its pixels with pydicom, preferring the same
    decoder plugin (pylibjpeg) as the volume builder, so the ratio measures our own work."""
    ds = pydicom.dcmread(path)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_compressed:
        if "pylibjpeg" in get_decoder(syntax).available_plugins:
            ds.pixel_array_options(decoding_plugin="pylibjpeg")
    return ds.pixel_array


def bench_series(name: str, folder: Path, modality: str, repeat: int, tmp: Path) -> Result:
    """Time ours, dcm2niix and the plain decode on one folder of DICOM files."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    binary = dcm2niix_binary()

    def ours_build() -> None:
        read_series_canonical(files, modality)

    def ours_build_write() -> None:
        vol = read_series_canonical(files, modality)
        write_nifti(tmp / f"{name}_ours.nii", vol.data, vol.affine, dtype=storage_dtype(vol.data))

    def run_dcm2niix() -> None:
        out = tmp / f"{name}_d2n"
        out.mkdir(exist_ok=True)
        subprocess.run(
            [str(binary), "-z", "n", "-b", "n", "-f", "vol", "-o", str(out), str(folder)],
            check=True,
            capture_output=True,
        )

    def plain() -> None:
        for f in files:
            plain_decode(f)

    methods: dict[str, Callable[[], object]] = {
        "ours_build": ours_build,
        "ours_build_write": ours_build_write,
        "plain_decode": plain,
    }
    if binary is not None:
        methods["dcm2niix"] = run_dcm2niix
    best = interleaved_best(methods, repeat)
    return Result(
        series=name,
        files=len(files),
        ours_build=best["ours_build"],
        ours_build_write=best["ours_build_write"],
        dcm2niix=best.get("dcm2niix"),
        plain_decode=best["plain_decode"],
    )


def run(repeat: int = 5) -> list[Result]:
    """Both series, each timed with all three methods in this one run."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        generated = tmp / "generated_ct"
        write_uncompressed_ct(generated)
        return [
            bench_series("real CT (J2K, 20)", REAL_CT, "CT", repeat, tmp),
            bench_series("generated CT (raw, 60)", generated, "CT", repeat, tmp),
        ]


def rows(results: list[Result]) -> list[tuple[str, float, float, float | None]]:
    """(name, ours s, baseline s, target) for the summary table of benchmarks/run.py.

    The targets apply to the shared real series; the generated uncompressed series is
    reported for information (target None): there dcm2niix's C reader copies raw bytes
    while pydicom parses each header, and that floor is above 1.5 times dcm2niix.
    """
    out: list[tuple[str, float, float, float | None]] = []
    for r in results:
        real = r.series.startswith("real")
        if r.dcm2niix is not None:
            out.append(
                (
                    f"volume+nii vs dcm2niix, {r.series}",
                    r.ours_build_write,
                    r.dcm2niix,
                    TARGET_DCM2NIIX if real else None,
                )
            )
        out.append(
            (
                f"volume vs plain decode, {r.series}",
                r.ours_build,
                r.plain_decode,
                TARGET_PLAIN if real else None,
            )
        )
    return out


def main() -> None:
    results = run()
    print(
        f"{'series':26s} {'files':>5s} {'ours':>7s} {'ours+nii':>8s} {'dcm2niix':>8s} {'plain':>7s}"
    )
    for r in results:
        d2n = f"{r.dcm2niix:8.3f}" if r.dcm2niix is not None else "     n/a"
        print(
            f"{r.series:26s} {r.files:5d} {r.ours_build:7.3f} {r.ours_build_write:8.3f} "
            f"{d2n} {r.plain_decode:7.3f}"
        )
    for name, ours, base, target in rows(results):
        ratio = ours / base
        print(
            f"{name:48s} ratio {ratio:5.2f} (target <= {target:.2f}) {'ok' if ratio <= target else 'SLOW'}"
        )


if __name__ == "__main__":
    main()
