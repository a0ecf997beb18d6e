"""Bad input in bulk: 10,000 junk files beside the two demo studies, generated from a seed.

Random bytes named ``.dcm``, zero-length files, DICOM files cut short inside their header, a
zip bomb (2 MB that inflate to 2 GiB, the largest input size allowed), links in loops, files without read permission and
names that are not UTF-8. Every file is accounted for: ingest plans exactly the files made,
every junk file is a counted reject with a reason (in `refrad status` and the rejects table),
nothing fails or stays pending, the run's peak memory stays bounded (the bomb is refused
unread), and the real studies' shards equal the reference run's without the junk.

As root (this machine), permission bits do not stop reads: the mode-000 files are then read
and rejected for their content; elsewhere they are ``permission_denied`` rejects.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from faults_common import REFRAD, env, run_args, shard_bytes

pytestmark = pytest.mark.slow

PER_FOLDER = 500
# 2 GiB (the default max_file_mb, so the bomb check and not the size limit refuses it):
# inflated, it would lift the run's peak (about 0.8 GiB, seen up to 1.6 GiB) past 2.8 GiB.
BOMB_BYTES = 2**31
KINDS = {
    "random": 4000,
    "empty": 2000,
    "truncated": 2000,
    "loop": 500,
    "no_read": 500,
    "latin1_name": 999,
    "bomb": 1,
}


def _zip_bomb(path: Path) -> None:
    """One member of BOMB_BYTES zeros, deflated chunk by chunk (never in memory at once)."""
    chunk = bytes(2**20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("IMG0001.dcm", "w", force_zip64=True) as fh:
            for _ in range(BOMB_BYTES // len(chunk)):
                fh.write(chunk)


def make_junk(root: Path, dicom: bytes, seed: int = 12) -> int:
    """Write the junk under ``root``; returns how many inputs it adds (a zip counts as its
    members)."""
    rng = random.Random(seed)
    n = 0

    def folder() -> Path:
        d = root / f"junk_{n // PER_FOLDER:03d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    for kind, count in KINDS.items():
        for i in range(count):
            d = folder()
            if kind == "random":
                (d / f"IM{i:05d}.dcm").write_bytes(rng.randbytes(rng.randrange(1, 4096)))
            elif kind == "empty":
                (d / f"E{i:05d}.dcm").write_bytes(b"")
            elif kind == "truncated":  # cut inside the preamble, file meta or first elements
                (d / f"T{i:05d}.dcm").write_bytes(dicom[: rng.randrange(0, 300)])
            elif kind == "loop":  # pairs of links that point at each other
                a, b = d / f"L{i:05d}", d / f"L{i + 1 if i % 2 == 0 else i - 1:05d}"
                os.symlink(b.name, a)
            elif kind == "no_read":
                p = d / f"P{i:05d}.dcm"
                p.write_bytes(rng.randbytes(512))
                p.chmod(0)
            elif kind == "latin1_name":
                name = b"M\xfcller_" + str(i).encode() + b"_\xe9\xff.dcm"
                with open(os.path.join(os.fsencode(d), name), "wb") as fh:
                    fh.write(rng.randbytes(rng.randrange(1, 512)))
            elif kind == "bomb":
                _zip_bomb(d / "export.zip")
            n += 1
    return n


def _run_measured(args: list[str], log: Path) -> tuple[int, int]:
    """Run `refrad` in a child and return (exit code, its peak resident memory in MiB)."""
    peak = log.with_suffix(".peak")
    code = (
        "import resource, subprocess, sys\n"
        "rc = subprocess.run(sys.argv[2:]).returncode\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "open(sys.argv[1], 'w').write(str(peak))\n"
        "sys.exit(rc)\n"
    )
    with open(log, "ab") as fh:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(peak), *REFRAD, *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env(),
            timeout=1800,
        )
    return proc.returncode, int(peak.read_text()) // 1024


def test_ten_thousand_junk_files_are_all_accounted(fault_demo, fault_reference, tmp_path):
    demo = tmp_path / "demo"  # a copy, its config pointing at the copy's folders
    shutil.copytree(fault_demo, demo, symlinks=True)
    config = (demo / "config.yaml").read_text()
    (demo / "config.yaml").write_text(config.replace(str(fault_demo), str(demo)))
    real_files = sum(1 for p in (demo / "dicom").rglob("*") if p.is_file())
    sample = next(iter(sorted((demo / "dicom").rglob("*.dcm")))).read_bytes()
    junk = make_junk(demo / "dicom", sample)
    assert junk == sum(KINDS.values()) >= 10_000

    work, out, log = tmp_path / "work", tmp_path / "out", tmp_path / "log"
    args = [*run_args(demo / "config.yaml", work, out), "--executor", "local"]
    rc, peak_mib = _run_measured(args, log)
    assert rc == 0, log.read_text(errors="replace")[-4000:]
    assert peak_mib < 2048, peak_mib  # the 2 GiB bomb was never inflated in memory

    status = subprocess.run(
        [*REFRAD, "status", "--json", *args[1:-2]], capture_output=True, env=env()
    )
    by_stage = {s["stage"]: s for s in json.loads(status.stdout)}
    ingest = by_stage["ingest"]
    assert ingest["planned"] == real_files + junk
    assert ingest["done"] == real_files
    assert sum(ingest["dropped"].values()) == junk, ingest["dropped"]
    assert ingest["failed"] == {} and ingest["pending"] == 0
    assert all(s["failed"] == {} and s["pending"] == 0 for s in by_stage.values())
    assert ingest["dropped"].get("suspected_zip_bomb") == 1

    rejects = pl.read_parquet(out / "rejects.parquet")
    files = rejects.filter(pl.col("stage") == "ingest")
    assert files.height == junk and files["item"].n_unique() == junk
    assert files["reason"].str.len_chars().min() > 0
    assert Counter(files["reason"].to_list()) == Counter(ingest["dropped"])
    raw = (out / "rejects.parquet").read_bytes() + (out / "summary.json").read_bytes()
    assert b"junk_" not in raw and b"M\xfcller" not in raw  # no names, no paths
    assert shard_bytes(out) == shard_bytes(fault_reference)
