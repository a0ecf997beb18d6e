"""Trainer configuration: three presets (``tiny``, ``base``, ``paligemma``) and dotted overrides."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: The sample schema major version this trainer reads; stored in every checkpoint.
LABEL_SCHEMA_VERSION = "1"


@dataclass
class ModelConfig:
    """Model shape. ``scratch`` builds a ViT + causal decoder; ``paligemma`` loads local weights."""

    backend: str = "scratch"
    image_size: int = 64
    patch_size: int = 8
    vit_dim: int = 128
    vit_layers: int = 2
    vit_heads: int = 4
    dim: int = 128
    layers: int = 3
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    vocab_size: int = 1024
    max_text_len: int = 320
    paligemma_path: str | None = None


@dataclass
class DataConfig:
    """What the data pipeline reads and how it turns a slice into a training example."""

    shards: str = "out/shards"
    split: str = "train"
    batch_size: int = 8
    workers: int = 0
    shuffle_buffer: int = 64
    task_weights: dict[str, float] = field(
        default_factory=lambda: {"grounded": 1.0, "caption": 1.0, "vqa": 1.0}
    )
    #: RadGrounder's rule: a slice with boxes gets a grounded caption; weights pick the rest.
    grounded_first: bool = True
    #: ``all`` expands every slice into all of its examples in a fixed order (eval, overfit).
    mode: str = "sample"
    max_vqa_per_slice: int = 4
    languages: tuple[str, ...] = ("en", "de")
    augment: bool = False
    crop_p: float = 0.5
    gamma_range: tuple[float, float] = (0.8, 1.25)
    shift_range: float = 0.05
    limit: int | None = None


@dataclass
class TrainConfig:
    """One training run: model, data and optimisation."""

    name: str = "tiny"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 300
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup: int = 20
    weight_decay: float = 0.01
    grad_accum: int = 1
    grad_clip: float = 1.0
    seed: int = 0
    #: CPU intra-op threads; 0 picks the cores the 1-minute load average leaves idle (at least 1).
    threads: int = 0
    dtype: str = "float32"
    compile: bool = False
    log_every: int = 10
    ckpt_every: int = 0
    eval_samples: int = 16


def preset(name: str) -> TrainConfig:
    """The named preset: ``tiny`` (CPU, seconds), ``base`` (one GPU), ``paligemma``."""
    if name == "tiny":
        return TrainConfig(name="tiny")
    if name == "base":
        model = ModelConfig(
            image_size=256,
            patch_size=16,
            vit_dim=768,
            vit_layers=12,
            vit_heads=12,
            dim=1024,
            layers=12,
            heads=16,
            vocab_size=16384,
            max_text_len=512,
            dropout=0.0,
        )
        data = DataConfig(batch_size=32, workers=8, shuffle_buffer=1000, augment=True)
        return TrainConfig(
            name="base", model=model, data=data, steps=20000, lr=3e-4, min_lr=3e-5,
            warmup=500, weight_decay=0.1, grad_accum=2, dtype="bfloat16", log_every=50,
            ckpt_every=1000,
        )  # fmt: skip
    if name == "paligemma":
        model = ModelConfig(backend="paligemma", image_size=224, max_text_len=512)
        data = DataConfig(batch_size=8, workers=8, shuffle_buffer=1000, augment=True)
        return TrainConfig(
            name="paligemma", model=model, data=data, steps=5000, lr=2e-5, min_lr=2e-6,
            warmup=100, weight_decay=0.0, grad_accum=4, dtype="bfloat16", log_every=20,
            ckpt_every=500,
        )  # fmt: skip
    raise ValueError(f"unknown config {name!r}: tiny, base or paligemma")


def _coerce(value: str, current: Any) -> Any:
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(current, int) and not isinstance(current, bool):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, dict | list | tuple) or value.startswith(("{", "[")):
        return json.loads(value)
    if value == "none":
        return None
    return value


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Set ``section.field=value`` pairs (``data.batch_size=4``, ``steps=100``) in place."""
    for item in overrides:
        path, _, value = item.partition("=")
        *parents, leaf = path.split(".")
        obj = cfg
        for p in parents:
            obj = getattr(obj, p)
        if not hasattr(obj, leaf):
            raise ValueError(f"unknown setting {path!r}")
        setattr(obj, leaf, _coerce(value, getattr(obj, leaf)))
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    """Plain dict (JSON-able) of a config."""
    return asdict(cfg)


def from_dict(d: dict) -> TrainConfig:
    """Inverse of :func:`to_dict` (unknown keys are ignored, for older checkpoints)."""

    def build(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    top = {k: v for k, v in d.items() if k not in ("model", "data")}
    cfg = build(TrainConfig, top)
    cfg.model = build(ModelConfig, d.get("model", {}))
    cfg.data = build(DataConfig, d.get("data", {}))
    cfg.data.gamma_range = tuple(cfg.data.gamma_range)
    cfg.data.languages = tuple(cfg.data.languages)
    return cfg
