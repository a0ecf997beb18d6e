"""Per-item fingerprints on the embedded demo, in-process: adding a folder processes only its
items, removing it removes its samples, and downstream stages follow upstream *outputs*."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.stages.shards import bucket_id, bucket_of
from refrad_builder.stages.text import TextStage

DOWNSTREAM = ("deid", "report", "volume", "segment", "slices", "text")


def _run(cfg, **kw) -> dict[str, int]:
    runs = run_pipeline(cfg, executor=LocalExecutor(), progress=lambda _line: None, **kw)
    return {r.stage: r.processed for r in runs}


def _shards(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def _stats(out) -> dict[str, tuple[int, int]]:
    """Shard name -> (inode, mtime in ns): a rewritten shard gets a new inode (temp + rename)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(out.glob("*.tar"))}


def _bucket_of_shard(name: str) -> str:
    """``train-00300.tar`` -> ``train-003``: the bucket item that wrote it."""
    split, number = name.removesuffix(".tar").rsplit("-", 1)
    return bucket_id(split, int(number[:3]))


def _buckets(index: pl.DataFrame, buckets: int) -> set[str]:
    return {
        bucket_id(split, bucket_of(split, key, buckets))
        for key, split in index.select("key", "split").iter_rows()
    }


@pytest.fixture
def grown(tmp_path, monkeypatch):
    """A finished run on two demo studies, with a third study waiting in its own folder."""
    monkeypatch.setenv("REFRAD_SECRET", "incremental-test-secret-0123456789")
    demo = tmp_path / "demo"
    make_demo(demo, studies=3, seed=3, include_real=False)
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.move(demo / "dicom" / "study_003", extra / "study_003")
    base = [
        f"work_dir={tmp_path / 'work'}",
        f"out_dir={tmp_path / 'out'}",
        "slices.max_slices_per_series=3",
        # the demo deals its few patients out ("balanced"), where a new patient may move
        # another to a different split; with the hash, only the new samples' buckets change
        "shards.split_method=hash",
    ]
    cfg = load_config(demo / "config.yaml", base)
    first = _run(cfg)
    assert first["ingest"] > 0 and first["text"] > 0
    more = load_config(demo / "config.yaml", [*base, f"inputs.dicom=[{demo / 'dicom'}, {extra}]"])
    out = tmp_path / "out"
    files = ("index.parquet", "shards.json", "rejects.parquet", "summary.json")
    return {
        "cfg": cfg,
        "more": more,
        "extra": extra,
        "out": out,
        "first_index": pl.read_parquet(out / "index.parquet"),
        "first_stats": _stats(out),
        "first_shards": _shards(out),
        "first_files": {name: (out / name).read_bytes() for name in files},
    }


def test_adding_a_folder_runs_only_its_items(grown):
    new_files = sum(1 for p in grown["extra"].rglob("*") if p.is_file())
    ran = _run(grown["more"])
    assert ran["ingest"] == new_files
    # one new study with one series: one item in every per-series / per-study stage
    assert {s: ran[s] for s in ("deid", "report", "volume", "segment", "slices")} == {
        "deid": 1,
        "report": 1,
        "volume": 1,
        "segment": 1,
        "slices": 1,
    }
    slices = Ledger(grown["cfg"].work_dir / "slices").current_outputs()
    assert ran["text"] == max(len(recs) for _, _, recs in slices)  # the new series' slices
    n = grown["cfg"].shards.buckets
    index = pl.read_parquet(grown["out"] / "index.parquet")
    assert index["study"].n_unique() == 3
    new = index.filter(~pl.col("study").is_in(grown["first_index"]["study"].to_list()))
    touched = _buckets(new, n)
    # only the buckets that received a sample of the new study were written again
    assert ran["shards"] == len(touched) > 0
    after = _stats(grown["out"])
    for name, stat in grown["first_stats"].items():
        assert (after.get(name) == stat) == (_bucket_of_shard(name) not in touched), name
    assert _run(grown["more"]) == {s: 0 for s in ("ingest", *DOWNSTREAM, "shards")}

    # removing the folder again removes its samples from the next shards: the buckets that
    # held only them lose their shards, the others are rewritten, and the result is the
    # first run's, byte for byte
    ran = _run(grown["cfg"])
    assert ran["ingest"] == 0
    assert ran["shards"] == len(touched & _buckets(grown["first_index"], n))
    index = pl.read_parquet(grown["out"] / "index.parquet")
    assert index["study"].n_unique() == 2
    assert not set(new["key"]) & set(index["key"])
    assert _shards(grown["out"]) == grown["first_shards"]
    for name in ("index.parquet", "shards.json", "rejects.parquet"):
        assert (grown["out"] / name).read_bytes() == grown["first_files"][name], name
    summary = json.loads((grown["out"] / "summary.json").read_text())
    first = json.loads(grown["first_files"]["summary.json"])
    # the export says how many files of the removed study it deleted; all else is as before
    assert summary["refrad2d_export"].pop("stale_removed") > 0
    first["refrad2d_export"].pop("stale_removed")
    assert summary == first


def test_forced_rerun_reruns_consumers_only_when_outputs_change(grown, monkeypatch):
    cfg, out = grown["cfg"], grown["out"]
    before = _shards(out)
    # an identical forced rerun: same outputs, so shards stays as it is, byte for byte
    ran = _run(cfg, stages=["text", "shards"], force=["text"])
    assert ran["text"] > 0 and ran["shards"] == 0
    assert _shards(out) == before

    # a forced rerun whose output differs (as after a code change): shards follows
    original = TextStage.process_many

    def revise(rec):
        caps = {k: [c + " (rev)" for c in v] for k, v in rec.sample.captions.items()}
        return rec.model_copy(update={"sample": rec.sample.model_copy(update={"captions": caps})})

    def changed(self, items):
        return [revise(r) if hasattr(r, "sample") else r for r in original(self, items)]

    monkeypatch.setattr(TextStage, "process_many", changed)
    ran = _run(cfg, stages=["text", "shards"], force=["text"])
    buckets = len(Ledger(cfg.work_dir / "shards").manifest())
    assert ran["text"] > 0 and ran["shards"] == buckets > 1  # every caption changed
    after = _shards(out)
    assert after != before
    assert b"(rev)" in b"".join(after.values())
