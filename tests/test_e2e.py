"""End to end on the embedded default: the `refrad` CLI on the demo inputs, on a real local Ray.

One uninterrupted Ray run is the reference; the other tests rerun, change a text setting,
kill a run with SIGKILL and resume, and search every output byte for planted PHI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from refrad_builder.demo import make_demo
from refrad_builder.publish.validate import validate_dir

pytestmark = pytest.mark.slow
SECRET = "e2e-test-secret-0123456789abcdef"
REFRAD = [sys.executable, "-m", "refrad_builder.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["REFRAD_SECRET"] = SECRET
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _run(args: list[str], log: Path, check: bool = True) -> subprocess.CompletedProcess:
    with open(log, "ab") as fh:
        proc = subprocess.run(REFRAD + args, stdout=fh, stderr=subprocess.STDOUT, env=_env())
    if check and proc.returncode != 0:
        raise AssertionError(
            f"refrad {' '.join(args)} exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        )
    return proc


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def _last_run(work: Path) -> dict[str, int]:
    return {
        r["stage"]: r["processed"] for r in json.loads((work / "run" / "last_run.json").read_text())
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    make_demo(root, studies=4, seed=0)
    corrupt = root / "dicom" / "study_001" / "zz_corrupt.dcm"
    corrupt.write_bytes(b"DICM" + os.urandom(300))
    return root


@pytest.fixture(scope="module")
def reference(demo, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("ref")
    work, out, log = base / "work", base / "shards", base / "run.log"
    t0 = time.perf_counter()
    _run(
        ["run", "--config", str(demo / "config.yaml"), "--work", str(work), "--out", str(out)], log
    )
    return {"work": work, "out": out, "log": log, "seconds": time.perf_counter() - t0, "base": base}


def test_demo_run_produces_ct_mr_de_en_with_boxes(reference):
    out = reference["out"]
    report = validate_dir(out)
    assert report.ok, report.summary()
    index = pl.read_parquet(out / "index.parquet")
    assert set(index["modality"]) == {"CT", "MR"}
    assert set(index["language"].drop_nulls()) == {"de", "en"}
    assert (index["n_boxes"] > 0).sum() == len(index)
    assert (index["n_grounded"] > 0).sum() > 0
    # the real CT series (20 slices, empty UIDs, JPEG 2000) made it through
    summary = json.loads((out / "summary.json").read_text())
    assert summary["studies"] == 5 and summary["patients"] >= 4
    print(f"demo run: {reference['seconds']:.1f}s, {len(index)} samples, {summary}")


def test_corrupt_file_is_a_counted_reject(reference):
    rejects = pl.read_parquet(reference["out"] / "rejects.parquet")
    ingest = rejects.filter(pl.col("stage") == "ingest")
    assert len(ingest) == 1 and ingest["reason"][0] in {"not_dicom", "unreadable_dicom"}
    status = subprocess.run(
        REFRAD + ["status", "--work", str(reference["work"]), "--json"],
        capture_output=True,
        env=_env(),
        check=True,
    )
    stages = {s["stage"]: s for s in json.loads(status.stdout)}
    assert stages["ingest"]["dropped"] == {ingest["reason"][0]: 1}
    for name in ("deid", "volume", "segment", "slices", "text", "shards"):
        assert stages[name]["pending"] == 0 and not stages[name]["failed"], name
        assert stages[name]["done"] > 0, name


def test_no_planted_phi_anywhere(reference, demo):
    planted = json.loads((demo / "planted_phi.json").read_text())
    # plus identifying header values of the real Siemens series that its publisher left in
    markers = list(planted) + ["Petersgraben", "PETCT2", "QR_SNOWFOX", "NM20221208140055"]
    assert len(markers) >= 20
    files = [p for p in reference["base"].rglob("*") if p.is_file()]
    leaks = []
    for path in files:
        data = path.read_bytes()
        for m in markers:
            for enc in {m.encode("utf-8"), m.encode("latin-1", "ignore")}:
                if enc and enc in data:
                    leaks.append((path.relative_to(reference["base"]).as_posix(), m))
    print(f"searched {len(files)} files for {len(markers)} planted PHI strings")
    assert not leaks, leaks[:10]


def test_unchanged_rerun_does_no_work(reference, demo):
    args = [
        "run",
        "--config",
        str(demo / "config.yaml"),
        "--work",
        str(reference["work"]),
        "--out",
        str(reference["out"]),
        "--executor",
        "local",
    ]
    before = _shard_bytes(reference["out"])
    _run(args, reference["base"] / "rerun.log")
    assert set(_last_run(reference["work"]).values()) == {0}
    assert _shard_bytes(reference["out"]) == before


def test_text_setting_reruns_only_text_and_shards(reference, demo, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(reference["work"], work)
    out = tmp_path / "out"
    args = [
        "run",
        "--config",
        str(demo / "config.yaml"),
        "--work",
        str(work),
        "--out",
        str(out),
        "--executor",
        "local",
    ]
    _run(args + ["--set", "text.max_presence_negatives=1"], tmp_path / "log")
    ran = _last_run(work)
    assert ran["text"] > 0 and ran["shards"] > 0
    assert all(ran[s] == 0 for s in ("ingest", "deid", "report", "volume", "segment", "slices"))
    assert validate_dir(out).ok


def test_sigkill_and_resume_gives_identical_shards(reference, demo, tmp_path):
    work, out, log = tmp_path / "work", tmp_path / "out", tmp_path / "log"
    args = [
        "run",
        "--config",
        str(demo / "config.yaml"),
        "--work",
        str(work),
        "--out",
        str(out),
        "--executor",
        "local",
    ]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(REFRAD + args, stdout=fh, stderr=subprocess.STDOUT, env=_env())
    slices_ledger = work / "slices" / "ledger"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if slices_ledger.exists() and any(slices_ledger.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "shards.json").exists()
    _run(args, log)
    assert _shard_bytes(out) == _shard_bytes(reference["out"])
    assert (out / "index.parquet").read_bytes() == (reference["out"] / "index.parquet").read_bytes()
