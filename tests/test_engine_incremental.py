"""Per-item fingerprints on the embedded demo, in-process: adding a folder processes only its
items, removing it removes its samples, and downstream stages follow upstream *outputs*."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.stages.text import TextStage

DOWNSTREAM = ("deid", "report", "volume", "segment", "slices", "text")


def _run(cfg, **kw) -> dict[str, int]:
    runs = run_pipeline(cfg, executor=LocalExecutor(), progress=lambda _line: None, **kw)
    return {r.stage: r.processed for r in runs}


def _shards(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


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
    ]
    cfg = load_config(demo / "config.yaml", base)
    first = _run(cfg)
    assert first["ingest"] > 0 and first["text"] > 0
    more = load_config(demo / "config.yaml", [*base, f"inputs.dicom=[{demo / 'dicom'}, {extra}]"])
    return {"cfg": cfg, "more": more, "extra": extra, "out": tmp_path / "out"}


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
    assert ran["shards"] == 1
    index = pl.read_parquet(grown["out"] / "index.parquet")
    assert index["study"].n_unique() == 3
    assert _run(grown["more"]) == {s: 0 for s in ("ingest", *DOWNSTREAM, "shards")}

    # removing the folder again removes its samples from the next shards
    ran = _run(grown["cfg"])
    assert ran["ingest"] == 0 and ran["shards"] == 1
    index = pl.read_parquet(grown["out"] / "index.parquet")
    assert index["study"].n_unique() == 2


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
    assert ran["text"] > 0 and ran["shards"] == 1
    after = _shards(out)
    assert after != before
    assert b"(rev)" in b"".join(after.values())
