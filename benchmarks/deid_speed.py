"""DICOM de-identification throughput: our deid path against dicognito on the same files.

Files: the 20 real JPEG 2000 CT slices of ``refrad_builder/demo/data/real_ct/dicom`` copied
``COPIES`` times (200 files) into one series, each copy with a new SOP Instance UID and
instance number (the pixel data, compressed, unchanged).

- ours: :func:`refrad_builder.deid.series.deidentify_series` on the 200 files (header pass,
  Basic Profile with the default options, keyed UIDs, date shift, method codes, new file
  meta), each result written to a file (temp file + rename, as the deid stage writes, without
  the fsync so both sides write the same way);
- dicognito: its documented use, one ``Anonymizer`` for the set,
  ``pydicom.dcmread`` -> ``anonymizer.anonymize(ds)`` -> ``ds.save_as(...)`` per file.

One run each, after one untimed file each (imports, caches); prints files/s of each and the
throughput ratio ours / dicognito (target: at least 1.5), from the CPU time of this process
(``time.process_time``: both run single-threaded in it, and CPU time is not inflated by other
work on a shared machine) and, for information, from wall time. Needs the ``bench`` extra
(dicognito). Run: ``python benchmarks/deid_speed.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from refrad_builder.deid.series import SeriesIds, deidentify_series
from refrad_builder.engine.config import DeidConfig
from refrad_builder.engine.io import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT / "refrad_builder" / "demo" / "data" / "real_ct" / "dicom"
COPIES = 10
TARGET = 1.5
SECRET = b"deid-benchmark-secret-0123456789"


def make_files(folder: Path, copies: int = COPIES) -> list[Path]:
    """``copies`` x the real CT slices, each with a new SOP Instance UID and number."""
    sources = sorted(p for p in REAL_CT.iterdir() if p.is_file())
    series_uid = generate_uid()
    out = []
    number = 0
    for copy in range(copies):
        for src in sources:
            ds = pydicom.dcmread(src)
            number += 1
            uid = generate_uid()
            ds.SOPInstanceUID = uid
            ds.file_meta.MediaStorageSOPInstanceUID = uid
            ds.SeriesInstanceUID = series_uid
            ds.InstanceNumber = number
            path = folder / f"{copy:02d}_{src.name[-8:]}.dcm"
            ds.save_as(path)
            out.append(path)
    return out


def run_ours(files: list[Path], out_dir: Path) -> tuple[float, float]:
    """(CPU, wall) seconds for our deid of ``files`` (one series), results written to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def sink(index: int, data: bytes) -> None:
        atomic_write_bytes(out_dir / f"{index:05d}.dcm", data, durable=False)

    c0, t0 = time.process_time(), time.perf_counter()
    result = deidentify_series(
        files,
        secret=SECRET,
        ids=SeriesIds(patient_id="benchpat", study_id="benchstudy", series_id="benchseries"),
        options=DeidConfig(),
        sink=sink,
    )
    elapsed = time.process_time() - c0, time.perf_counter() - t0
    written = getattr(result, "written", None)
    if written is None or len(written) != len(files):
        raise RuntimeError(f"our deid did not write every file: {result}")
    return elapsed


def run_dicognito(files: list[Path], out_dir: Path) -> tuple[float, float]:
    """(CPU, wall) seconds for dicognito's documented loop over ``files``, results written to ``out_dir``."""
    import dicognito.anonymizer

    out_dir.mkdir(parents=True, exist_ok=True)
    c0, t0 = time.process_time(), time.perf_counter()
    anonymizer = dicognito.anonymizer.Anonymizer()
    for i, path in enumerate(files):
        with pydicom.dcmread(path) as dataset:
            anonymizer.anonymize(dataset)
            dataset.save_as(out_dir / f"{i:05d}.dcm")
    return time.process_time() - c0, time.perf_counter() - t0


def bench_deid(copies: int = COPIES) -> tuple[int, tuple[float, float], tuple[float, float]]:
    """(files, our (CPU, wall) seconds, dicognito's), one run each on the same files."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        files = make_files(root / "in", copies)
        # one untimed file each, so neither side pays for its imports inside the timing
        run_ours(files[:1], root / "warm_ours")
        run_dicognito(files[:1], root / "warm_dicognito")
        ours = run_ours(files, root / "ours")
        theirs = run_dicognito(files, root / "dicognito")
    return len(files), ours, theirs


def main() -> None:
    n, ours, theirs = bench_deid()
    ratio = theirs[0] / ours[0]
    flag = "ok" if ratio >= TARGET else "SLOW"
    print(f"deid of {n} real J2K CT files (CPU s, wall s, files/s by CPU)")
    print(f"  ours      {ours[0]:7.3f} {ours[1]:7.3f} {n / ours[0]:8.1f}")
    print(f"  dicognito {theirs[0]:7.3f} {theirs[1]:7.3f} {n / theirs[0]:8.1f}")
    print(f"  throughput ratio ours/dicognito {ratio:.2f} (target >= {TARGET}) {flag}")
    print(f"  by wall time {theirs[1] / ours[1]:.2f}")


if __name__ == "__main__":
    main()
