"""Building a backend, and saving / resuming checkpoints (model, optimizer, step, data position,
config, tokenizer, label schema version)."""

from __future__ import annotations

from pathlib import Path

import torch
import webdataset as wds

from refrad_builder.train import data, paligemma, tokenizer
from refrad_builder.train.config import LABEL_SCHEMA_VERSION, TrainConfig, from_dict, to_dict
from refrad_builder.train.model import ScratchVLM

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def fit_tokenizer(shards: str, split: str, vocab_size: int) -> tokenizer.ScratchCodec:
    """Train the scratch tokenizer on one pass over the split's text."""
    urls = data.list_shards(shards, split)
    pipe = wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())
    texts = (t for raw in pipe for t in tokenizer.sample_texts(data.decode(raw)["meta"]))
    return tokenizer.ScratchCodec(tokenizer.train_tokenizer(texts, vocab_size))


def build(cfg: TrainConfig, codec_json: str | None = None):
    """(model, codec) for the config's backend; the scratch tokenizer is fitted or restored."""
    if cfg.model.backend == "paligemma":
        # weights stay in float32 under autocast; bf16 weights would need a master copy
        return paligemma.load(cfg.model, torch.float32)
    if cfg.model.backend != "scratch":
        raise ValueError(f"unknown backend {cfg.model.backend!r}: scratch or paligemma")
    if codec_json is not None:
        codec = tokenizer.ScratchCodec.from_json(codec_json)
    else:
        codec = fit_tokenizer(cfg.data.shards, cfg.data.split, cfg.model.vocab_size)
    torch.manual_seed(cfg.seed)
    return ScratchVLM(cfg.model, codec.vocab_size), codec


def save(path: Path, model, optimizer, step: int, positions, cfg: TrainConfig, codec) -> None:
    """Write a checkpoint atomically (``positions``: per rank, worker -> examples consumed)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "data_positions": positions,
        "config": to_dict(cfg),
        "tokenizer": codec.to_json() if hasattr(codec, "to_json") else None,
        "label_schema_version": LABEL_SCHEMA_VERSION,
        "backend": cfg.model.backend,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load(path: str | Path, device: str = "cpu"):
    """(model, codec, config, state) from a checkpoint, the model on ``device``."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("label_schema_version") != LABEL_SCHEMA_VERSION:
        raise ValueError(
            f"{path}: label schema {state.get('label_schema_version')!r}, this trainer reads"
            f" {LABEL_SCHEMA_VERSION!r}"
        )
    cfg = from_dict(state["config"])
    model, codec = build(cfg, state["tokenizer"])
    model.load_state_dict(state["model"])
    return model.to(device), codec, cfg, state
