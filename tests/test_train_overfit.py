"""Proof that the trainer learns: it overfits a handful of demo slices, and the image path is
used (with the images permuted across slices, grounding collapses)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import torch
import webdataset as wds

from refrad_builder.train import data, evaluate, tasks, tokenizer
from refrad_builder.train.config import preset
from refrad_builder.train.model import ScratchVLM
from refrad_builder.train.train import lr_at, make_optimizer, train_step


def pick_slices(shards: Path, per_group: int = 2) -> list[dict]:
    """Two slices of the MR series and two of the small CT series (distinct anatomy)."""
    urls = sorted(str(p) for p in shards.glob("*.tar"))
    decoded = [
        data.decode(r)
        for r in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())
    ]
    groups: dict[tuple, list[dict]] = {}
    for s in sorted(decoded, key=lambda s: s["meta"]["key"]):
        groups.setdefault((s["meta"]["modality"], s["meta"]["width"]), []).append(s)
    chosen = groups[("MR", 80)][:per_group] + groups[("CT", 96)][:per_group]
    return [chosen[i] for i in (0, 2, 1, 3)]  # MR, CT, MR, CT: a roll by one changes modality


def overfit(shards: Path, steps: int, seed: int = 0):
    cfg = preset("tiny")
    cfg.seed, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr = seed, steps, 10, 5e-3, 5e-4
    cfg.model.image_size = 32
    cfg.data.languages = ("en",)
    cfg.data.max_vqa_per_slice = 3
    cfg.data.task_weights = {"grounded": 1.0, "caption": 0.0, "vqa": 1.0}
    slices = pick_slices(shards)
    texts = [t for s in slices for t in tokenizer.sample_texts(s["meta"])]
    codec = tokenizer.ScratchCodec(tokenizer.train_tokenizer(texts, 512))
    torch.manual_seed(seed)
    model = ScratchVLM(cfg.model, codec.vocab_size)
    rng = random.Random(seed)
    items = []
    for s in slices:
        for ex in tasks.expand(s["meta"], cfg.data.task_weights, 3, ("en",)):
            item = data.render(s, ex, cfg.data, cfg.model.image_size, rng)
            item["position"] = (0, 0)
            items.append(item)
    batch = data.collate(items, codec, cfg.model.max_text_len)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    losses = []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        model.train()
        losses.append(train_step(model, model, [batch], opt, cfg, 1, torch.device("cpu")))
    return model, codec, batch, losses


@pytest.mark.slow
def test_overfits_a_handful_of_slices_and_uses_the_image(small_demo_shards):
    t0 = time.perf_counter()
    model, codec, batch, losses = overfit(small_demo_shards, steps=150)
    assert losses[-1] < 0.05, losses[-10:]

    report = evaluate.score(evaluate.predict(model, codec, [batch], "cpu", 320))
    print("overfit", f"{time.perf_counter() - t0:.0f}s", losses[-1], report)
    assert report["parse_rate"] == 1.0
    assert report["grounding"]["mean_iou"] >= 0.85
    assert report["grounding"]["recall"] >= 0.95  # boxes found at IoU >= 0.5
    assert report["vqa"]["all"]["exact_match"] >= 0.9

    control = evaluate.score(evaluate.predict(model, codec, [batch], "cpu", 320, permute=True))
    print("control (images permuted)", control["grounding"], control["vqa"]["all"])
    assert control["grounding"]["mean_iou"] < report["grounding"]["mean_iou"] - 0.2
    assert control["grounding"]["recall"] < 0.75
