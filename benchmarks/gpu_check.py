"""GPU check: train ``base`` for a fixed number of steps on carried shards and print samples/s,
tokens/s, MFU (against the datasheet bf16 peak), data-wait fraction, peak memory and the GPU name;
then one bf16 step of the ``paligemma`` backend with a tiny random model.

On the GPU machine: ``bash benchmarks/gpu_check.sh``. On CPU (smoke): ``--device cpu --steps 2``
(which trains ``tiny`` instead of ``base``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refrad_builder.train import data, paligemma, tiny_paligemma  # noqa: E402
from refrad_builder.train.config import apply_overrides, preset  # noqa: E402
from refrad_builder.train.train import make_optimizer, train, train_step  # noqa: E402


def check_training(args, device: str) -> dict:
    """Train the preset and summarise the last logging window."""
    name = args.config or ("base" if device == "cuda" else "tiny")
    cfg = apply_overrides(preset(name), [f"data.shards={args.shards}", *args.set])
    cfg.steps = args.steps
    cfg.log_every = max(1, min(cfg.log_every, args.steps // 2))
    cfg.compile = args.compile
    out = Path(args.out)
    (out / "log.jsonl").unlink(missing_ok=True)
    summary = train(cfg, out, device, progress=False)
    last = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return {"config": name, **summary, **{k: v for k, v in last.items() if k != "loss_by_task"}}


def check_paligemma(args, device: str) -> dict:
    """One bf16 training step of the PaliGemma backend on a tiny random model."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset("paligemma")
        cfg.model.paligemma_path = str(tiny_paligemma.build(Path(tmp) / "pg"))
        cfg.data.augment = False
        model, codec = paligemma.load(cfg.model)
        model.to(device)
        urls = data.list_shards(args.shards, "train")
        stream = data.ShardStream(urls, cfg.data, cfg.model.image_size, epochs=1)
        items = [it for _, it in zip(range(4), stream, strict=False)]
        batch = data.collate(items, codec, cfg.model.max_text_len)
        opt = make_optimizer(model, cfg, torch.device(device))
        t0 = time.perf_counter()
        loss = train_step(model, model, [batch], opt, cfg, 1, torch.device(device))
        tasks_seen = sorted({it["example"].task for it in items})
        return {"paligemma_loss": loss, "paligemma_step_s": time.perf_counter() - t0,
                "paligemma_tasks": tasks_seen, "dtype": cfg.dtype}  # fmt: skip


def main(argv=None) -> dict:
    """Run both checks and print one JSON line plus a readable summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", default="out/shards")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--device", default="auto", help="auto | cuda | cpu")
    p.add_argument("--config", help="preset (default: base on cuda, tiny on cpu)")
    p.add_argument("--out", default="out/gpu-check")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(argv)
    device = (
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (cpu)"
    result = {"gpu": gpu, "torch": torch.__version__, **check_training(args, device)}
    result.update(check_paligemma(args, device))
    print(json.dumps(result))
    for key in ("gpu", "config", "samples_per_s", "tokens_per_s", "mfu", "data_wait",
                "peak_mem_gib", "paligemma_loss", "paligemma_step_s"):  # fmt: skip
        missing = "n/a (no bf16 peak known for this device)" if key == "mfu" else "n/a (not a GPU)"
        print(f"{key:>18}: {result.get(key, missing)}")
    return result


if __name__ == "__main__":
    main()
