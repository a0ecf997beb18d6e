"""WebDataset shards -> model batches.

Shards are split across ranks and DataLoader workers without duplicates (by shard when there are
enough, else by sample index), shuffled, and repeated epoch after epoch. Each slice's HU are
rebuilt from its 16-bit PNG with the sample's slope/intercept; CT becomes three windows mapped to
[-1, 1], MR is min-max scaled; the image is resized to the model's resolution.
"""

from __future__ import annotations

import io
import json
import random
import re
from dataclasses import replace
from functools import partial
from itertools import count
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from refrad_builder.train import augment, tasks
from refrad_builder.train.config import DataConfig

#: CT windows (width, level): bone, soft tissue, brain, as RadGrounder.
CT_WINDOWS = ((2250.0, -100.0), (350.0, 40.0), (80.0, 40.0))


def list_shards(root: str | Path, split: str) -> list[str]:
    """The shard files of one split, from ``shards.json`` when present."""
    root = Path(root)
    index = root / "shards.json"
    if index.exists():
        names = [s["name"] for s in json.loads(index.read_text())["shards"] if s["split"] == split]
    else:
        names = sorted(p.name for p in root.glob(f"{split}-*.tar"))
    if not names:
        raise FileNotFoundError(f"no {split!r} shards in {root}")
    return [str(root / n) for n in names]


def to_hu(stored: np.ndarray, meta: dict) -> np.ndarray:
    """Stored 16-bit values -> HU (or the MR signal) as float32."""
    return stored.astype(np.float32) * float(meta["rescale_slope"]) + float(
        meta["rescale_intercept"]
    )


def to_unit(values: np.ndarray, modality: str) -> np.ndarray:
    """H x W values -> 3 x H x W in [0, 1]: CT windows, or MR min-max on all three channels."""
    if modality == "CT":
        chans = [(values - (lvl - w / 2)) / w for w, lvl in CT_WINDOWS]
        return np.clip(np.stack(chans), 0.0, 1.0)
    lo, hi = float(values.min()), float(values.max())
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return np.repeat(scaled[None], 3, axis=0)


def to_model_input(unit: np.ndarray, size: int) -> torch.Tensor:
    """3 x H x W in [0, 1] -> 3 x size x size in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))[None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (t[0] * 2.0 - 1.0).clamp(-1.0, 1.0)


def decode(raw: dict) -> dict:
    """A raw WebDataset sample -> ``meta`` (the JSON) and ``values`` (HU / MR signal)."""
    meta = json.loads(raw["json"])
    stored = np.array(Image.open(io.BytesIO(raw["image.png"])))
    return {"meta": meta, "values": to_hu(stored, meta)}


def make_examples(s: dict, cfg: DataConfig, rng: random.Random) -> list[tasks.Example]:
    """The examples of one decoded slice: one drawn (``sample`` mode) or all (``all`` mode)."""
    meta = s["meta"]
    if cfg.mode == "all":
        return tasks.expand(meta, cfg.task_weights, cfg.max_vqa_per_slice, cfg.languages)
    ex = tasks.choose(
        meta, cfg.task_weights, cfg.grounded_first, rng, cfg.max_vqa_per_slice, cfg.languages
    )
    return [ex] if ex else []


def render(s: dict, ex: tasks.Example, cfg: DataConfig, size: int, rng: random.Random) -> dict:
    """Model input for one example, with augmentation when configured."""
    meta, values, boxes = s["meta"], s["values"], s["meta"]["boxes"]
    if cfg.augment and rng.random() < cfg.crop_p:
        values, boxes, target = augment.crop_sample(values, boxes, ex.target, rng)
        ex = replace(ex, target=target)
    unit = to_unit(values, meta["modality"])
    if cfg.augment:
        unit = augment.intensity(unit, rng, cfg.gamma_range, cfg.shift_range)
    h, w = values.shape[:2]
    return {
        "key": meta["key"],
        "image": to_model_input(unit, size),
        "example": ex,
        "boxes": boxes,
        "size": (w, h),
    }


def _slot(urls: list[str], rank: int, world: int, worker: int, workers: int, epoch: int, seed: int):
    """This (rank, worker)'s shards for one epoch, and the sample stride/offset within them."""
    slots, me = world * workers, rank * workers + worker
    order = list(urls)
    random.Random(seed * 1000003 + epoch).shuffle(order)
    if len(order) >= slots:
        return order[me::slots], 1, 0
    return sorted(urls), slots, me


class ShardStream(IterableDataset):
    """Endless (or one-pass) stream of rendered examples for one rank.

    ``skip`` maps worker id -> number of examples already consumed (resume)."""

    def __init__(self, urls, cfg: DataConfig, size: int, rank=0, world=1, seed=0, epochs=None):
        self.urls, self.cfg, self.size = list(urls), cfg, size
        self.rank, self.world, self.seed, self.epochs = rank, world, seed, epochs
        self.skip: dict[int, int] = {}

    def _raw(self, worker: int, workers: int):
        for epoch in count() if self.epochs is None else range(self.epochs):
            shards, stride, offset = _slot(
                self.urls, self.rank, self.world, worker, workers, epoch, self.seed
            )
            pipe = wds.DataPipeline(wds.SimpleShardList(shards), wds.tarfile_to_samples())
            mine = (r for i, r in enumerate(pipe) if i % stride == offset)
            if self.cfg.shuffle_buffer > 1:
                seed = hash((self.seed, self.rank, worker, epoch)) & 0xFFFFFFFF
                mine = wds.filters._shuffle(
                    mine, self.cfg.shuffle_buffer, min(16, self.cfg.shuffle_buffer), seed=seed
                )
            yield from mine

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        n, skip = 0, self.skip.get(worker, 0)
        limit = self.cfg.limit
        for i, raw in enumerate(self._raw(worker, workers)):
            if limit is not None and i >= limit:
                return
            s = decode(raw)
            rng = random.Random(f"{self.seed}/{s['meta']['key']}/{i}")
            for ex in make_examples(s, self.cfg, rng):
                n += 1
                if n <= skip:
                    continue
                item = render(s, ex, self.cfg, self.size, rng)
                item["position"] = (worker, n)
                yield item


# Where a target that is too long may end: after a grounded phrase or a sentence.
_TARGET_CUTS = re.compile(r"</p>|[.!?;](?=\s)")


def fit_target(codec, prompt: str, target: str, max_len: int) -> tuple[list[int], int, bool]:
    """(ids, prefix length, cut): the encoded example, its target shortened to the longest run
    of whole grounded phrases or sentences that fits ``max_len`` with its end token, so a cut
    target still parses and still teaches the model to stop. Only when not even the first
    sentence fits are the tokens cut mid-way."""
    ids, plen = codec.encode(prompt, target)
    if len(ids) <= max_len:
        return ids, plen, False
    for cut in reversed([m.end() for m in _TARGET_CUTS.finditer(target)]):
        ids, plen = codec.encode(prompt, target[:cut])
        if len(ids) <= max_len:
            return ids, plen, True
    ids, plen = codec.encode(prompt, target)
    return ids[:max_len], min(plen, max_len), True


def collate(items: list[dict], codec, max_len: int) -> dict:
    """Pad to the longest sequence; labels are the target tokens only (-100 elsewhere)."""
    fitted = [
        fit_target(codec, it["example"].prompt, it["example"].target, max_len) for it in items
    ]
    seqs = [(ids, plen) for ids, plen, _ in fitted]
    t = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(items), t), codec.pad_id, dtype=torch.long)
    labels = torch.full((len(items), t), -100, dtype=torch.long)
    for b, (ids, plen) in enumerate(seqs):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        labels[b, plen : len(ids)] = torch.tensor(ids[plen:], dtype=torch.long)
    return {
        "pixels": torch.stack([it["image"] for it in items]),
        "input_ids": input_ids,
        "labels": labels,
        "prefix_len": torch.tensor([p for _, p in seqs]),
        "length": torch.tensor([len(ids) for ids, _ in seqs]),
        "cut": sum(cut for _, _, cut in fitted),
        "examples": [it["example"] for it in items],
        "keys": [it["key"] for it in items],
        "positions": [it["position"] for it in items],
        "boxes": [it["boxes"] for it in items],
        "sizes": [it["size"] for it in items],
    }


def loader(stream: ShardStream, codec, max_len: int, batch_size: int, workers: int):
    """A DataLoader over ``stream`` (workers get disjoint shards or samples)."""
    return DataLoader(
        stream,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=partial(collate, codec=codec, max_len=max_len),
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
