"""Proof that the trainer learns: it overfits a handful of demo slices, and the image path is
used (with the images permuted across slices, grounding collapses).

Every demo slice shows the same phantom at nearly the same place (organs move by a few percent
between studies and modalities), so a model that ignored the image and wrote each organ's usual
box would still score a mean IoU near 0.6 on permuted images. The slices are therefore cropped
towards alternate corners with the trainer's box-aware crop (the boxes move, the location tokens
are rewritten): neighbouring slices then hold their boxes at different places, and only a model
that reads the image can place them.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import webdataset as wds

from refrad_builder.train import augment, data, evaluate, tasks, tokenizer
from refrad_builder.train.config import TrainConfig, preset
from refrad_builder.train.model import ScratchVLM
from refrad_builder.train.train import cpu_threads, lr_at, make_optimizer, train_step

TASKS = {"grounded": 1.0, "caption": 0.0, "vqa": 1.0}


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


def crop_towards(s: dict, corner: str, cfg: TrainConfig, size: int) -> list[dict]:
    """The slice's model inputs, cropped to the union of its boxes on the ``corner`` side and kept
    whole on the other (the anatomy moves towards that corner)."""
    h, w = s["values"].shape
    boxes = s["meta"]["boxes"]
    ux0, uy0 = min(b["bbox"][0] for b in boxes), min(b["bbox"][1] for b in boxes)
    ux1, uy1 = max(b["bbox"][2] for b in boxes), max(b["bbox"][3] for b in boxes)
    window = (ux0, uy0, w, h) if corner == "top-left" else (0, 0, ux1, uy1)
    values, moved, _ = augment.crop_to(s["values"], boxes, "", window)
    cropped = {"meta": {**s["meta"], "boxes": moved}, "values": values}
    items = []
    for ex in tasks.expand(s["meta"], TASKS, cfg.data.max_vqa_per_slice, cfg.data.languages):
        if ex.task == "grounded":
            ex = replace(ex, target=augment.crop_to(s["values"], boxes, ex.target, window)[2])
        item = data.render(cropped, ex, cfg.data, size, random.Random(0))
        items.append({**item, "position": (0, 0)})
    return items


def overfit_config(seed: int) -> TrainConfig:
    """``tiny`` made smaller and quicker for a four-slice overfit (64 wide, two decoder layers,
    one ViT layer, 32 x 32 input; no dropout or weight decay, short warmup, high learning rate)."""
    cfg = preset("tiny")
    cfg.seed, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr = seed, 400, 10, 1e-2, 1e-3
    cfg.weight_decay, cfg.model.dropout = 0.0, 0.0
    cfg.model.dim, cfg.model.layers, cfg.model.vit_dim, cfg.model.vit_layers = 64, 2, 64, 1
    cfg.model.image_size = 32
    cfg.data.languages = ("en",)
    cfg.data.max_vqa_per_slice = 3
    return cfg


@torch.no_grad()
def memorised(model: ScratchVLM, batches: list[dict]) -> bool:
    """Every target token is the model's first choice given the true prefix (what greedy
    decoding then reproduces)."""
    model.eval()
    try:
        for b in batches:
            logits = model(b["pixels"], b["input_ids"], b["prefix_len"])[:, :-1]
            labels = b["labels"][:, 1:]
            mask = labels != -100
            if not bool((logits.argmax(-1)[mask] == labels[mask]).all()):
                return False
        return True
    finally:
        model.train()


def overfit(shards: Path, seed: int = 0, stop_below: float = 0.05, check_every: int = 10):
    """Train until the answer-token loss is below ``stop_below`` and every target token is
    memorised (at most ``cfg.steps``); returns the model, codec, micro-batches and losses.

    The mean loss alone stops too early: once a caption's first box differs from its neighbour's,
    the rest follows from the text, so the few tokens that need the image weigh little in the mean
    (at a mean of 0.004 one MR slice still got the other MR slice's caption, box for box)."""
    cfg = overfit_config(seed)
    slices = pick_slices(shards)
    texts = [t for s in slices for t in tokenizer.sample_texts(s["meta"])]
    codec = tokenizer.ScratchCodec(tokenizer.train_tokenizer(texts, 512))
    items = [
        it
        for i, s in enumerate(slices)
        for it in crop_towards(s, ("top-left", "bottom-right")[i % 2], cfg, cfg.model.image_size)
    ]
    # grounded captions are ~5x longer than answers: two micro-batches waste no padding
    batches = [
        data.collate([it for it in items if (it["example"].task == "grounded") == g], codec, 320)
        for g in (True, False)
    ]
    torch.manual_seed(seed)
    model = ScratchVLM(cfg.model, codec.vocab_size)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    model.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        losses.append(train_step(model, model, batches, opt, cfg, 1, torch.device("cpu")))
        if (step + 1) % check_every == 0 and losses[-1] < stop_below and memorised(model, batches):
            break
    return model, codec, batches, losses


@pytest.mark.slow
def test_overfits_a_handful_of_slices_and_uses_the_image(small_demo_shards):
    threads = cpu_threads()
    t0 = time.perf_counter()
    seed = int(os.environ.get("REFRAD_OVERFIT_SEED", "0"))  # another seed: a rerun that differs
    model, codec, batches, losses = overfit(small_demo_shards, seed)
    assert losses[-1] < 0.05, losses[-10:]

    report = evaluate.score(evaluate.predict(model, codec, batches, "cpu", 320))
    print("overfit", f"seed {seed}, {threads} threads, {time.perf_counter() - t0:.0f}s,",
          f"{len(losses)} steps, loss {losses[-1]:.4f}", report)  # fmt: skip
    assert report["parse_rate"] == 1.0
    assert report["grounding"]["mean_iou"] >= 0.85
    assert report["grounding"]["recall"] >= 0.95  # boxes found at IoU >= 0.5
    assert report["vqa"]["all"]["exact_match"] >= 0.9

    control = evaluate.score(evaluate.predict(model, codec, batches, "cpu", 320, permute=True))
    print("control (images permuted)", control["grounding"], control["vqa"]["all"])
    assert control["grounding"]["mean_iou"] < 0.5
    assert control["grounding"]["mean_iou"] < report["grounding"]["mean_iou"] - 0.35
    assert control["grounding"]["recall"] < 0.5
