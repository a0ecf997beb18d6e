"""Driver cost at scale: peak RSS and planning time of ``refrad run --until ingest`` on the Ray
executor for a synthetic corpus of small DICOM files at 1/4, 1/2 and all of ``--files``, and
a no-op rerun's time against the first run's (issue 11's targets: driver RSS under 1 GB and
flat in the number of files; a no-op rerun under 10% of the first run's time).

The corpus (``--files`` CT images of 8x8 pixels with full headers, 50 per series, two series
per study, in four quarter folders) is generated once with pydicom under ``--cache`` and
reused. Each run is a fresh driver process; its peak RSS is its own (``getrusage`` of the
driver only, not of the Ray workers). Planning time is the driver's time in the stage's
``plan`` and in deciding what is pending (one columnar read of the ledger).

    python benchmarks/planning_scale.py --files 50000 --cache /tmp/refrad-scale
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

SERIES_FILES = 50
SERIES_PER_STUDY = 2
SECRET = "planning-scale-benchmark-secret-0123456789"


# Placeholders of fixed length in a series' template file: each file is the template with
# these values replaced by others of the same length (the encoding stays valid), which is
# about a thousand times faster than pydicom writing every file on a busy 2-core machine.
UID_SLOT = "2.25." + "1" * 39
NUMBER_SLOT = "+7777"  # "+" is in no UID: the slot is found only where it was put
POSITION_SLOT = "0\\0\\999"


def _series_template(study: int, series: int) -> bytes:
    """One 8x8 CT image with the headers ingest reads, as bytes, with placeholders."""
    import io
    import uuid

    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID_SLOT
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = UID_SLOT
    ds.PatientID = f"SYN{study // 2:06d}"
    ds.PatientName = f"Synthetic^{study // 2}"
    ds.StudyInstanceUID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'study{study}').int}"
    ds.SeriesInstanceUID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{study}-{series}').int}"
    ds.FrameOfReferenceUID = ds.StudyInstanceUID
    ds.AccessionNumber = f"ACC{study:07d}"
    ds.StudyDate = "20240101"
    ds.Modality = "CT"
    ds.SeriesNumber = series + 1
    ds.InstanceNumber = NUMBER_SLOT
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = POSITION_SLOT.split("\\")
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 1
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.PixelData = (np.arange(64, dtype=np.uint16).reshape(8, 8) + series).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _write_series(args: tuple[Path, int, int]) -> None:
    """One series: the template with a new instance UID, number and position per file."""
    import uuid

    folder, study, series = args
    folder.mkdir(parents=True, exist_ok=True)
    template = _series_template(study, series)
    slots = (UID_SLOT, NUMBER_SLOT, POSITION_SLOT)
    assert [template.count(x.encode()) for x in slots] == [2, 1, 1]
    for n in range(SERIES_FILES):
        uid = f"2.25.{10**38 + uuid.uuid4().int % 10**38}"
        data = (
            template.replace(UID_SLOT.encode(), uid.encode())
            .replace(NUMBER_SLOT.encode(), f"{n + 1:05d}".encode())
            .replace(POSITION_SLOT.encode(), f"0\\0\\{n:03d}".encode())
        )
        (folder / f"{n:04d}.dcm").write_bytes(data)


def make_corpus(cache: Path, files: int) -> list[Path]:
    """Four quarter folders of ``files`` // 4 files each (generated once, then reused)."""
    per_quarter = files // 4
    series_per_quarter = max(1, per_quarter // SERIES_FILES)
    quarters = []
    for q in range(4):
        folder = cache / f"n{files}" / f"q{q}"
        quarters.append(folder)
        if (folder / ".complete").exists():
            continue
        jobs = []
        for s in range(series_per_quarter):
            study = q * series_per_quarter + s // SERIES_PER_STUDY
            jobs.append((folder / f"P{study:06d}" / f"S{s % SERIES_PER_STUDY}", study, s % 2))
        t0 = time.perf_counter()
        with Pool(os.cpu_count() or 1) as pool:
            pool.map(_write_series, jobs, chunksize=4)
        (folder / ".complete").write_text(str(len(jobs) * SERIES_FILES))
        print(f"generated {folder} in {time.perf_counter() - t0:.0f}s", flush=True)
    return quarters


def child(inputs: list[str], work: Path) -> None:
    """One driver run of ``--until ingest`` on Ray; prints its figures as JSON."""
    import resource

    from refrad_builder.engine import ray_executor, runner
    from refrad_builder.engine.config import load_config
    from refrad_builder.engine.ledger import Ledger
    from refrad_builder.stages.ingest import IngestStage

    spent = {"plan": 0.0, "pending": 0.0, "ray_init": 0.0, "finalize": 0.0}

    def timed(owner, name, key):
        original = getattr(owner, name)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - t0

        setattr(owner, name, wrapper)

    timed(IngestStage, "plan", "plan")
    timed(IngestStage, "finalize", "finalize")
    timed(Ledger, "done_ids", "pending")
    timed(ray_executor.RayExecutor, "__init__", "ray_init")
    cfg = load_config(None, [f"work_dir={work}", f"out_dir={work.parent / 'out'}"])
    cfg.inputs.dicom = [Path(p) for p in inputs]
    cfg.execution.executor = "ray"
    t0 = time.perf_counter()
    [run] = runner.run_pipeline(cfg, stages=["ingest"], progress=lambda _s: None)
    wall = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "wall_s": wall,
                "rss_mb": rss_mb,
                "planned": run.planned,
                "ran": run.processed,
                "done": run.status["done"],
                **{f"{k}_s": v for k, v in spent.items()},
            }
        )
    )


def _driver(inputs: list[Path], work: Path) -> dict:
    env = dict(os.environ, REFRAD_SECRET=SECRET)
    cmd = [sys.executable, __file__, "--child", str(work), *map(str, inputs)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(cache: Path, files: int) -> list[dict]:
    quarters = make_corpus(cache, files)
    rows = []
    for k in (1, 2, 4):
        work = cache / "runs" / f"n{files}-q{k}" / "work"
        if work.exists():
            import shutil

            shutil.rmtree(work.parent)
        first = _driver(quarters[:k], work)
        noop = _driver(quarters[:k], work)
        rows.append({"files": k * (files // 4), "first": first, "noop": noop})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def report(rows: list[dict]) -> None:
    """The figures with absolute numbers and ratios against the smallest corpus."""
    base = rows[0]
    print(
        f"{'files':>7s} {'ran':>6s} {'first s':>8s} {'plan s':>7s} {'pending s':>9s} "
        f"{'final s':>8s} {'RSS MB':>7s} {'no-op s':>8s} {'no-op RSS':>9s} {'no-op/first':>11s}"
    )
    for r in rows:
        f, n = r["first"], r["noop"]
        print(
            f"{r['files']:7d} {f['ran']:6d} {f['wall_s']:8.1f} {f['plan_s']:7.2f} "
            f"{f['pending_s']:9.2f} {f['finalize_s']:8.1f} {f['rss_mb']:7.0f} {n['wall_s']:8.1f} "
            f"{n['rss_mb']:9.0f} {n['wall_s'] / f['wall_s']:11.2f}"
        )
    last = rows[-1]
    scale = last["files"] / base["files"]
    print(
        f"{scale:.0f}x the files: driver peak RSS {base['first']['rss_mb']:.0f} -> "
        f"{last['first']['rss_mb']:.0f} MB ({last['first']['rss_mb'] / base['first']['rss_mb']:.2f}x; "
        f"target < 1024 MB and flat); planning (plan + pending) "
        f"{base['first']['plan_s'] + base['first']['pending_s']:.2f} -> "
        f"{last['first']['plan_s'] + last['first']['pending_s']:.2f} s; no-op rerun "
        f"{last['noop']['wall_s']:.1f} s = {last['noop']['wall_s'] / last['first']['wall_s']:.1%} "
        f"of the first run's {last['first']['wall_s']:.1f} s (target < 10%); "
        f"Ray start-up in the no-op rerun {last['noop']['ray_init_s']:.1f} s"
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[2:], Path(argv[1]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=50000, help="files of the largest corpus")
    p.add_argument("--cache", type=Path, default=Path("out/bench-planning"), help="corpus folder")
    args = p.parse_args(argv)
    report(measure(args.cache.resolve(), args.files))


if __name__ == "__main__":
    main()
