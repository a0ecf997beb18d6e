"""The dataset card on a real demo run: statistics agree with the index, plots render, bytes
are stable, and an empty folder still gets a card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.publish.card import write_card
from refrad_builder.publish.card_stats import PLOTS, compute_stats

SECRET = "card-test-secret-0123456789abcdef"


def run_demo(root: Path) -> tuple[Path, Path]:
    """Make the demo (plus one corrupt file, so there is a reject) and run it in-process."""
    demo = root / "demo"
    make_demo(demo, studies=4, seed=0)
    (demo / "dicom" / "study_001" / "zz_corrupt.dcm").write_bytes(b"DICM" + bytes(range(256)))
    cfg = load_config(
        demo / "config.yaml",
        [f"work_dir={root / 'work'}", f"out_dir={root / 'shards'}", "execution.executor=local"],
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFRAD_SECRET", SECRET)
        run_pipeline(cfg, executor=LocalExecutor(), progress=lambda _: None)
    return demo, root / "shards"


def demo_shards(tmp_path_factory) -> tuple[Path, Path]:
    """The demo run shared by the card and preview tests of a session: (demo dir, shards)."""
    root = tmp_path_factory.getbasetemp() / "refrad-demo-run"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        run_demo(root)
        (root / "done").touch()
    return root / "demo", root / "shards"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    demo, out = demo_shards(tmp_path_factory)
    card = write_card(out)
    return {
        "demo": demo,
        "out": out,
        "card": card,
        "stats": json.loads((out / "stats.json").read_text()),
        "index": pl.read_parquet(out / "index.parquet"),
        "rejects": pl.read_parquet(out / "rejects.parquet"),
    }


def _value_counts(df: pl.DataFrame, col: str) -> dict[str, int]:
    return {str(k): v for k, v in df[col].fill_null("unknown").value_counts().iter_rows()}


def test_counts_equal_the_index(built):
    stats, index = built["stats"], built["index"]
    assert index.height > 0
    assert stats["samples"] == index.height == stats["samples_in_shards"]
    for col in ("modality", "language", "split"):
        assert stats[f"by_{col}"] == _value_counts(index, col), col
    assert set(stats["by_modality"]) == {"CT", "MR"}
    assert set(stats["by_language"]) == {"de", "en"}
    assert stats["patients"] == index["patient"].n_unique()
    assert stats["studies"] == index["study"].n_unique()
    assert stats["vqa"]["items"] == index["n_vqa"].sum()
    assert sum(stats["grounded_captions"]["captions_by_language"].values()) == (
        index["n_grounded"].sum()
    )
    assert stats["boxes"]["total"] == index["n_boxes"].sum()
    assert stats["classes"] == _value_counts(index.explode("classes"), "classes")
    per_study = index.group_by("study").len()["len"]
    assert sum(stats["slices_per_study"]["histogram"].values()) == index["study"].n_unique()
    assert stats["slices_per_study"]["max"] == per_study.max()
    nested = stats["by_split_and_modality"]
    assert sum(v for inner in nested.values() for v in inner.values()) == index.height


def test_rejects_and_boxes(built):
    stats, rejects = built["stats"], built["rejects"]
    assert rejects.height >= 1
    assert stats["rejects"]["total"] == rejects.height
    assert any(k.startswith("ingest:") for k in stats["rejects"]["by_stage_and_reason"])
    area = stats["boxes"]["relative_area"]
    assert 0 < area["min"] <= area["median"] <= area["max"] <= 1
    hist = stats["boxes"]["relative_area_histogram"]
    assert sum(b["count"] for b in hist) == stats["boxes"]["total"]
    prov = stats["provenance"]
    assert prov["example"]["generator"] in prov["generators"]
    assert sum(prov["generators"].values()) == stats["samples"]
    assert sum(stats["vqa"]["by_source"].values()) == stats["vqa"]["items"]


def test_plots_exist_decode_and_are_not_blank(built):
    out = built["out"]
    assert set(built["stats"]["plots"]) == set(PLOTS)
    sizes = set()
    for name, rel in built["stats"]["plots"].items():
        path = out / rel
        assert path.is_file(), name
        with Image.open(path) as img:
            img.load()
            assert img.format == "PNG"
            assert "Software" not in img.info, name
            sizes.add(img.width)
            arr = np.asarray(img.convert("RGB"), dtype=np.float64)
        assert arr.std() > 5, f"{name} looks blank"
        assert (arr < 100).any(), f"{name} has no dark ink (text, axes)"
    assert len(sizes) == 1  # fixed figure width and dpi


def test_card_mentions_counts_and_every_plot(built):
    text = built["card"].read_text()
    n = built["stats"]["samples"]
    assert built["card"] == built["out"] / "card.md"
    assert f"| samples | {n} |" in text
    assert f"{n} de-identified 2D slices" in text
    for name in PLOTS:
        assert f"(plots/{name}.png)" in text, name
    for reason in built["stats"]["rejects"]["by_stage_and_reason"]:
        assert reason in text
    for label_schema in built["stats"]["provenance"]["label_schemas"]:
        assert label_schema in text
    for shard in json.loads((built["out"] / "shards.json").read_text())["shards"]:
        assert shard["sha256"] in text


def test_rewrite_is_byte_identical_and_keys_sorted(built):
    out = built["out"]
    files = [out / "card.md", out / "stats.json", *sorted((out / "plots").glob("*.png"))]
    before = {p: p.read_bytes() for p in files}
    write_card(out)
    assert {p: p.read_bytes() for p in files} == before
    raw = (out / "stats.json").read_text()
    assert raw == json.dumps(json.loads(raw), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    stats = compute_stats(out)
    assert stats == json.loads(raw)


def test_empty_folder_gets_a_card(tmp_path):
    pl.DataFrame().write_parquet(tmp_path / "index.parquet")
    card = write_card(tmp_path)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["samples"] == 0 and stats["rejects"]["total"] == 0
    assert stats["by_modality"] == {}
    assert "0 de-identified 2D slices" in card.read_text()
    for rel in stats["plots"].values():
        with Image.open(tmp_path / rel) as img:
            assert np.asarray(img.convert("L")).std() > 0


def test_no_planted_phi_in_card_files(built):
    planted = json.loads((built["demo"] / "planted_phi.json").read_text())
    files = [built["card"], built["out"] / "stats.json", *(built["out"] / "plots").glob("*.png")]
    leaks = [(p.name, m) for p in files for m in planted if m.encode("utf-8") in p.read_bytes()]
    assert len(planted) >= 20 and not leaks, leaks[:5]
