"""Deterministic shards and RadGrounder grounding tokens."""

from __future__ import annotations

import io
import tarfile

import webdataset as wds

from refrad_builder.publish.shardwriter import tar_bytes, write_shards
from refrad_builder.stages.shards import assign_split
from refrad_builder.text import grounding


def _samples(n: int):
    return [
        (f"{i:024x}", {"json": f'{{"i": {i}}}'.encode(), "image.png": bytes([i % 256]) * (100 + i)})
        for i in range(n)
    ]


def test_tar_is_deterministic_and_sorted(tmp_path):
    a = tar_bytes(_samples(5))
    b = tar_bytes(_samples(5))
    assert a == b
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:2]] == [f"{0:024x}.image.png", f"{0:024x}.json"]
    assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0}


def test_shards_split_by_count_and_bytes_and_read_with_webdataset(tmp_path):
    shards = write_shards(tmp_path, "train", _samples(25), max_samples=10, max_bytes=10**9)
    assert [s.samples for s in shards] == [10, 10, 5]
    by_bytes = write_shards(tmp_path / "b", "val", _samples(6), max_samples=100, max_bytes=1500)
    assert len(by_bytes) > 1 and sum(s.samples for s in by_bytes) == 6
    urls = [str(tmp_path / s.name) for s in shards]
    keys = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False)]
    assert keys == [f"{i:024x}" for i in range(25)]


def test_keys_with_dots_are_refused():
    import pytest

    with pytest.raises(ValueError):
        tar_bytes([("1.2.840.1", {"json": b"{}"})])


def test_grounding_token_round_trip():
    text = "In der " + grounding.token(5, "Leber", (10, 20, 110, 220), 256, 512) + " eine Läsion."
    assert "<p bbox=<loc0020><loc0020><loc0220><loc0220> id=<seg005>>Leber</p>" in text
    [(cid, bins, phrase)] = grounding.parse(text)
    assert cid == 5 and phrase == "Leber"
    assert bins == grounding.quantize((10, 20, 110, 220), 256, 512)
    assert grounding.strip(text) == "In der Leber eine Läsion."
    assert grounding.quantize((0, 0, 512, 512), 512, 512) == (0, 0, 511, 511)


def test_split_is_deterministic_and_follows_fractions():
    fr = {"train": 0.8, "val": 0.1, "test": 0.1}
    splits = [assign_split(f"patient{i}", fr) for i in range(2000)]
    assert splits == [assign_split(f"patient{i}", fr) for i in range(2000)]
    share = splits.count("train") / len(splits)
    assert 0.75 < share < 0.85 and splits.count("val") > 100 and splits.count("test") > 100
