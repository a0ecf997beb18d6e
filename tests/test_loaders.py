"""Downstream loaders read the shards of a real demo run: Hugging Face ``datasets`` and a plain
``webdataset`` pipeline see every sample, with 16-bit images of the sample's size and its JSON.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import webdataset as wds
from PIL import Image

from refrad_builder.engine.records import Sample


@pytest.fixture(scope="module")
def shards(small_demo_shards) -> Path:
    """The shared small demo run's shard folder (see conftest)."""
    return small_demo_shards


@pytest.fixture(scope="module")
def index(shards) -> dict[str, dict]:
    rows = pl.read_parquet(shards / "index.parquet").to_dicts()
    assert len(rows) >= 10
    return {r["key"]: r for r in rows}


def _urls(shards: Path) -> list[str]:
    meta = json.loads((shards / "shards.json").read_text())
    return [str(shards / e["name"]) for e in meta["shards"]]


def _check_sample(key: str, image: np.ndarray, mask: np.ndarray, sample: dict, row: dict):
    assert sample["key"] == key
    assert image.dtype == np.uint16 and image.shape == (sample["height"], sample["width"])
    assert mask.dtype == np.uint8 and mask.shape == image.shape
    assert image.max() > image.min()
    for b in sample["boxes"]:
        x0, y0, x1, y1 = b["bbox"]
        assert (mask[y0:y1, x0:x1] == b["class_id"]).sum() == b["area"]
    assert sample["split"] == row["split"] and sample["patient"] == row["patient"]
    assert len(sample["boxes"]) == row["n_boxes"] and len(sample["vqa"]) == row["n_vqa"]
    assert sorted(k for k, v in sample["captions"].items() if v) == row["caption_languages"]


def _png16(key: str, data: bytes):
    """webdataset decoder: PNG members to arrays of their stored bit depth."""
    if not key.endswith(".png"):
        return None
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def test_plain_webdataset_pipeline(shards, index):
    meta = json.loads((shards / "shards.json").read_text())
    per_shard: dict[str, int] = {}
    seen = []
    for s in wds.WebDataset(_urls(shards), shardshuffle=False).decode():
        assert isinstance(s["json"], dict) and isinstance(s["image.png"], bytes)
        image = np.asarray(Image.open(io.BytesIO(s["image.png"])))
        mask = np.asarray(Image.open(io.BytesIO(s["mask.png"])))
        _check_sample(s["__key__"], image, mask, s["json"], index[s["__key__"]])
        name = Path(s["__url__"]).name
        per_shard[name] = per_shard.get(name, 0) + 1
        assert index[s["__key__"]]["shard"] == name
        seen.append(s["__key__"])
    assert sorted(seen) == sorted(index) and len(seen) == len(set(seen))
    assert per_shard == {e["name"]: e["samples"] for e in meta["shards"]}


def test_webdataset_with_a_16_bit_decoder_and_schema(shards, index):
    samples = list(wds.WebDataset(_urls(shards), shardshuffle=False).decode(_png16))
    assert len(samples) == len(index)
    for s in samples:
        _check_sample(s["__key__"], s["image.png"], s["mask.png"], s["json"], index[s["__key__"]])
        Sample.model_validate(s["json"])
    hu = [
        s["image.png"] * s["json"]["rescale_slope"] + s["json"]["rescale_intercept"]
        for s in samples
    ]
    ct = [h for h, s in zip(hu, samples, strict=True) if s["json"]["units"] == "HU"]
    assert ct and all(h.min() >= -1100 and h.max() <= 4000 for h in ct)


def test_huggingface_datasets_webdataset_builder(shards, index, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)

    by_split: dict[str, list[str]] = {}
    meta = json.loads((shards / "shards.json").read_text())
    for e in meta["shards"]:
        by_split.setdefault(e["split"], []).append(str(shards / e["name"]))
    assert len(by_split) >= 2
    for split, files in by_split.items():
        ds = datasets.load_dataset(
            "webdataset",
            data_files={"train": files},
            split="train",
            cache_dir=str(tmp_path / "hf" / "datasets"),
        )
        expected = sorted(k for k, r in index.items() if r["split"] == split)
        assert ds.num_rows == len(expected)
        assert sorted(ds["__key__"]) == expected
        assert {"image.png", "mask.png", "json"} <= set(ds.column_names)
        for row in ds:
            image, mask = np.asarray(row["image.png"]), np.asarray(row["mask.png"])
            assert row["image.png"].mode.startswith("I;16")
            _check_sample(row["__key__"], image, mask, row["json"], index[row["__key__"]])
            assert row["json"]["split"] == split
