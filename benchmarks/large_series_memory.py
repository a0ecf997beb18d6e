"""Peak memory of the imaging stages on one large CT series (issue: bounded memory).

Generates a 512x512x800 uncompressed CT series (int16, ~420 MB of pixels: a water cylinder
with a bone ring and air lungs), runs ``ingest``, ``deid``, ``volume``, ``segment``
(classical backend) and ``slices`` of the real pipeline one stage per process
(``refrad run --only STAGE --executor local``), and prints each stage's peak resident set
size (the process's ru_maxrss) against the 3 GB target, with the raw pixel size as baseline.

``python benchmarks/large_series_memory.py [--slices 800] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import yaml
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

TARGET_GB = 3.0
STAGES = ("ingest", "deid", "report", "volume", "segment", "slices")


def phantom_slice(n: int, z: int, nz: int) -> np.ndarray:
    """HU of one axial slice: air, a water body, a bone ring, two air-filled lungs."""
    yy, xx = np.mgrid[:n, :n]
    cy = cx = n / 2
    r = np.hypot((yy - cy) / 0.75, xx - cx)
    hu = np.full((n, n), -1000, np.int16)
    hu[r < n * 0.42] = 40
    hu[(r > n * 0.36) & (r < n * 0.40)] = 700
    if nz * 0.4 < z < nz * 0.9:
        for side in (-1, 1):
            hu[np.hypot(yy - cy, xx - (cx + side * n * 0.16)) < n * 0.1] = -850
    return hu


def write_series(folder: Path, n: int, nz: int) -> int:
    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for z in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Bench^Large", "BENCH-1", "19600101"
        ds.AccessionNumber, ds.StudyDate = "ACC-BENCH-1", dt.date(2024, 1, 2).strftime("%Y%m%d")
        ds.Modality, ds.BodyPartExamined, ds.ImageType = "CT", "CHEST", ["ORIGINAL", "PRIMARY"]
        ds.InstanceNumber, ds.SeriesNumber = z + 1, 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-200.0, -200.0, float(z) * 0.8]
        ds.PixelSpacing, ds.SliceThickness = [0.78125, 0.78125], 0.8
        ds.Rows = ds.Columns = n
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = phantom_slice(n, z, nz).tobytes()
        ds.save_as(folder / f"IM{z:05d}.dcm", enforce_file_format=True)
    return n * n * nz * 2


_CHILD = (
    "import resource, sys\n"
    "from refrad_builder.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_stage(config: Path, stage: str) -> tuple[float, float]:
    """(peak RSS in GB, seconds) of one stage in a fresh process."""
    t0 = time.perf_counter()
    args = ["run", "--config", str(config), "--only", stage, "--executor", "local"]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *args, "--no-validate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    kb = int(out.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])
    return kb / 2**20, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=800)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--keep", type=Path, help="keep the generated series and work folder here")
    args = ap.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="refrad-largeseries-"))
    try:
        t0 = time.perf_counter()
        raw = write_series(root / "inputs" / "study1", args.size, args.slices)
        print(
            f"generated {args.size}x{args.size}x{args.slices} CT series: {raw / 1e6:.0f} MB "
            f"of pixels in {time.perf_counter() - t0:.0f} s"
        )
        config = root / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "work_dir": str(root / "work"),
                    "out_dir": str(root / "out"),
                    "demo": True,
                    "inputs": {"dicom": [str(root / "inputs")]},
                    "segment": {"backend": "classical"},
                }
            )
        )
        print(f"{'stage':<8} {'peak RSS':>10} {'target':>8} {'RSS/raw':>8} {'seconds':>8}")
        worst = 0.0
        for stage in STAGES:
            gb, sec = run_stage(config, stage)
            ratio = gb * 2**30 / raw
            print(f"{stage:<8} {gb:>7.2f} GB {TARGET_GB:>6.1f}GB {ratio:>8.2f} {sec:>8.1f}")
            worst = max(worst, gb)
        print(
            f"largest peak {worst:.2f} GB vs target {TARGET_GB:.1f} GB: "
            f"{'ok' if worst < TARGET_GB else 'OVER'}"
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.exit(main())
