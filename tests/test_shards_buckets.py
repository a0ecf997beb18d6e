"""The shards stage by buckets: a changed sample rewrites only its bucket's shards and the
result equals a from-scratch run byte for byte; a worker holds one sample at a time, however
many samples its bucket has."""

from __future__ import annotations

import hashlib
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.io import read_json
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.imaging.png import encode_png
from refrad_builder.stages.shards import ShardsStage, bucket_id, bucket_of
from refrad_builder.stages.text import TextStage

SECRET = "shards-bucket-test-secret-0123456789abcdef"
COMPARED = ("index.parquet", "rejects.parquet", "shards.json", "summary.json", "summary.md")


def _cfg(demo: Path, work: Path, out: Path, *extra: str):
    return load_config(
        demo / "config.yaml",
        [
            f"work_dir={work}",
            f"out_dir={out}",
            "execution.executor=local",
            "slices.max_slices_per_series=3",
            "shards.split_method=hash",
            "shards.export_refrad2d=false",
            *extra,
        ],
    )


def _run(cfg, **kw) -> dict[str, int]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFRAD_SECRET", SECRET)
        runs = run_pipeline(cfg, executor=LocalExecutor(), progress=lambda _line: None, **kw)
    return {r.stage: r.processed for r in runs}


def _stats(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(out.glob("*.tar"))}


def _folder(out: Path) -> dict[str, bytes]:
    files = sorted(out.glob("*.tar")) + [out / name for name in COMPARED]
    return {p.name: p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("buckets")
    make_demo(root / "demo", studies=3, seed=11, include_real=False)
    cfg = _cfg(root / "demo", root / "work", root / "out")
    ran = _run(cfg)
    assert ran["shards"] > 1
    return {"root": root, "demo": root / "demo", "work": root / "work", "out": root / "out"}


def test_one_changed_sample_rewrites_only_its_bucket(demo_run, monkeypatch):
    root, work, out = demo_run["root"], demo_run["work"], demo_run["out"]
    cfg = _cfg(demo_run["demo"], work, out)
    before = _stats(out)
    index = pl.read_parquet(out / "index.parquet")
    key, split = index.row(0)[:2]
    changed_bucket = bucket_id(split, bucket_of(split, key, cfg.shards.buckets))

    # a forced text rerun whose output differs for one slice only (as after a prompt fix)
    original = TextStage.process_many

    def revise(self, items):
        outs = original(self, items)
        for i, rec in enumerate(outs):
            if getattr(rec, "sample", None) is not None and rec.sample.key == key:
                caps = {k: [c + " (rev)" for c in v] for k, v in rec.sample.captions.items()}
                sample = rec.sample.model_copy(update={"captions": caps})
                outs[i] = rec.model_copy(update={"sample": sample})
        return outs

    monkeypatch.setattr(TextStage, "process_many", revise)
    ran = _run(cfg, stages=["text", "shards"], force=["text"])
    assert ran["text"] == index.height and ran["shards"] == 1

    after = _stats(out)
    assert set(after) == set(before)
    rewritten = {name for name in after if after[name] != before[name]}
    assert rewritten and all(n.startswith(changed_bucket) for n in rewritten)
    assert rewritten == {n for n in before if n.startswith(changed_bucket)}
    assert b"(rev)" in b"".join((out / n).read_bytes() for n in rewritten)

    # the same shards from scratch: a copy of the work folder without the shards stage's
    # ledger and tables, written to another output folder
    work2, out2 = root / "work_scratch", root / "out_scratch"
    shutil.copytree(work, work2)
    shutil.rmtree(work2 / "shards")
    ran = _run(_cfg(demo_run["demo"], work2, out2), stages=["shards"])
    assert ran["shards"] == len(Ledger(work / "shards").manifest())
    assert _folder(out2) == _folder(out)


def test_a_bucket_without_samples_loses_its_shards(demo_run, tmp_path):
    """Fewer buckets: the shards of buckets that no longer exist are removed, the folder
    validates and holds every sample once."""
    from refrad_builder.publish.validate import validate_dir

    out = tmp_path / "out"
    shutil.copytree(demo_run["out"], out)
    cfg = _cfg(demo_run["demo"], demo_run["work"], out, "shards.buckets=2")
    ran = _run(cfg, stages=["shards"])
    names = sorted(p.name for p in out.glob("*.tar"))
    assert ran["shards"] == len(names) <= 6
    assert {n[:-6] for n in names} <= {
        f"{s}-00{b}" for s in ("train", "val", "test") for b in (0, 1)
    }
    meta = read_json(out / "shards.json")
    assert [s["name"] for s in meta["shards"]] == names
    before = pl.read_parquet(demo_run["out"] / "index.parquet")
    assert pl.read_parquet(out / "index.parquet")["key"].sort().equals(before["key"].sort())
    assert validate_dir(out).ok


class _Measured(ShardsStage):
    """The real shards stage, with the peak of Python allocations of each item recorded."""

    peaks: list[tuple[int, int]] = []

    def process(self, item):
        tracemalloc.start()
        try:
            return super().process(item)
        finally:
            _Measured.peaks.append(
                (len(item.payload["samples"]), tracemalloc.get_traced_memory()[1])
            )
            tracemalloc.stop()


def _synthetic_corpus(demo_run, work: Path, n: int) -> int:
    """``n`` samples of ~0.5 MB noise images (incompressible) in the text and slices ledgers
    of ``work``, from one real record of the demo run; returns the largest image's size."""
    [(_, _, [slice_rec, *_])] = Ledger(demo_run["work"] / "slices").current_outputs()[:1]
    text_rec = Ledger(demo_run["work"] / "text").current_outputs()[0][2][0]
    rng = np.random.default_rng(0)
    blobs = work / "slices" / "blobs"
    blobs.mkdir(parents=True)
    shutil.copy(demo_run["work"] / text_rec["mask_png"], blobs / "mask.png")
    slices, text = Ledger(work / "slices"), Ledger(work / "text")
    slices.write_manifest({f"s{i:04d}": "fp" for i in range(n)}, "v", "c")
    text.write_manifest({f"t{i:04d}": "fp" for i in range(n)}, "v", "c")
    largest = 0
    for i in range(n):
        png = encode_png(rng.integers(0, 4096, (512, 512), dtype=np.uint16))
        largest = max(largest, len(png))
        (blobs / f"{i:04d}.png").write_bytes(png)
        sid, key = f"s{i:04d}", hashlib.sha256(f"k{i}".encode()).hexdigest()[:24]
        rel = f"slices/blobs/{i:04d}.png"
        sha = hashlib.sha256(png).hexdigest()
        slices.mark_ok(sid, "fp", [{**slice_rec, "slice_id": sid, "image_sha256": sha}])
        sample = {**text_rec["sample"], "key": key, "slice_id": sid, "patient": f"p{i % 12:02d}"}
        rec = {"sample": sample, "image_png": rel, "mask_png": "slices/blobs/mask.png"}
        text.mark_ok(f"t{i:04d}", "fp", [rec])
    return largest


def test_a_worker_holds_one_sample_not_its_bucket(demo_run, tmp_path):
    n = 40
    largest = _synthetic_corpus(demo_run, tmp_path / "work", n)
    corpus = sum(p.stat().st_size for p in (tmp_path / "work" / "slices" / "blobs").glob("0*"))
    assert corpus > 15 * 2**20
    peaks = {}
    for buckets in (1, 8):
        _Measured.peaks = []
        cfg = _cfg(
            demo_run["demo"],
            tmp_path / "work",
            tmp_path / f"out{buckets}",
            f"shards.buckets={buckets}",
            "shards.split_fractions={train: 1.0}",
        )
        ran = _run(cfg, stages=["shards"], stage_classes={"shards": _Measured})
        assert ran["shards"] == len(_Measured.peaks) == min(buckets, n)
        assert sum(s for s, _ in _Measured.peaks) == n
        meta = read_json(tmp_path / f"out{buckets}" / "shards.json")
        assert sum(s["samples"] for s in meta["shards"]) == n
        peaks[buckets] = max(p for _, p in _Measured.peaks)
    print(
        f"corpus {corpus / 2**20:.1f} MiB, largest image {largest / 2**20:.2f} MiB, peak per "
        f"item: 1 bucket {peaks[1] / 2**20:.2f} MiB, 8 buckets {peaks[8] / 2**20:.2f} MiB"
    )
    # one bucket of 40 samples peaks like a bucket of ~5: a few samples' bytes, not the corpus
    assert peaks[1] < 4 * largest + 2**20 < corpus / 4
    assert peaks[1] < 1.5 * peaks[8] + 2**20
