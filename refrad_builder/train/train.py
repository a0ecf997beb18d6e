"""Training loop: ``python -m refrad_builder.train.train --config tiny --shards DIR --out DIR``.

Runs on one device or data-parallel under ``torchrun`` (NCCL on GPUs, gloo on CPU). The loss is
the mean over the *global* batch's target tokens, so N ranks match one process with the same
global batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from refrad_builder.train import checkpoint, data
from refrad_builder.train.config import TrainConfig, apply_overrides, preset
from refrad_builder.train.meter import Meter


def setup_dist(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); starts the process group under torchrun."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if "RANK" not in os.environ:
        return 0, 1, torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    dev = torch.device(f"cuda:{local}") if device == "cuda" else torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), dev


def cpu_threads(requested: int = 0, world: int = 1) -> int:
    """Set and return torch's intra-op thread count for CPU work.

    ``requested`` > 0 is taken as is, then ``OMP_NUM_THREADS`` (torchrun sets it). Otherwise the
    count is the cores the 1-minute load average leaves idle, shared by the ``world`` processes of
    this machine, at least one: on a shared machine, an OpenMP thread per core makes every
    operator wait at its barrier for a thread the scheduler has given to someone else (the tiny
    preset ran 3-6x slower with two threads than with one on two busy cores)."""
    if requested <= 0 and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        requested = int(os.environ["OMP_NUM_THREADS"])
    if requested <= 0:
        cores = len(os.sched_getaffinity(0))
        idle = min(cores, round(cores - os.getloadavg()[0]))
        requested = max(1, idle // world)
    torch.set_num_threads(requested)
    return requested


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to ``min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * frac))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device):
    """AdamW (fused on CUDA); no weight decay on biases, norms and positions."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other}]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0, fused=fused)


def _all_sum(x: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(x)
    return x


def train_step(model, ddp, batches, optimizer, cfg, world, device, meter=None) -> float:
    """One optimizer step over ``batches`` (the grad-accumulation micro-batches of this rank);
    returns the global mean target-token loss."""
    n_local = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
    n_global = _all_sum(torch.tensor(float(n_local), device=device), world)
    loss_sum = torch.zeros((), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.dtype == "bfloat16" else None
    for i, b in enumerate(batches):
        b = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in b.items()}
        sync = ddp.no_sync() if world > 1 and i < len(batches) - 1 else nullcontext()
        with sync, amp or nullcontext():
            tok_loss = ddp.token_losses(b) if not isinstance(ddp, DDP) else ddp(b)
            total = tok_loss.sum()
            (total * world / n_global).backward()
        loss_sum += total.detach().float()
        if meter is not None:
            meter.add_batch(
                b, tok_loss, model.flops_per_sample(b["input_ids"].shape[1]) * len(b["keys"])
            )
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(_all_sum(loss_sum, world) / n_global)


class _LossModule(torch.nn.Module):
    """DDP wraps a module whose ``forward`` is the token losses."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.token_losses(batch)


def _log(out: Path, record: dict, bar) -> None:
    with (out / "log.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    parts = [f"step {record['step']}", f"loss {record['loss']:.4f}", f"lr {record['lr']:.2e}"]
    parts += [f"{k} {v:.3f}" for k, v in record["loss_by_task"].items()]
    parts += [f"tok/s {record['tokens_per_s']:.0f}", f"smp/s {record['samples_per_s']:.1f}"]
    parts += [f"wait {record['data_wait']:.0%}"]
    if record.get("cut_fraction"):
        parts.append(f"cut {record['cut_fraction']:.0%}")
    if "mfu" in record:
        parts.append(f"mfu {record['mfu']:.1%}")
    if "peak_mem_gib" in record:
        parts.append(f"mem {record['peak_mem_gib']:.1f}GiB")
    (bar.write if bar is not None else print)(" | ".join(parts))


def train(cfg: TrainConfig, out: Path, device="auto", resume=None, log_keys=False, progress=True):
    """Train ``cfg`` and write ``out/ckpt.pt`` and ``out/log.jsonl``; returns a summary."""
    rank, world, dev = setup_dist(device)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0 and not resume:  # a fresh run starts a fresh log
        (out / "log.jsonl").unlink(missing_ok=True)
    if dev.type == "cpu":
        threads = cpu_threads(cfg.threads, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
        if rank == 0:
            print(f"cpu threads: {threads}")
    state = torch.load(resume, map_location="cpu", weights_only=False) if resume else None
    codec_json = state["tokenizer"] if state else None
    if codec_json is None and world > 1 and cfg.model.backend == "scratch":
        box = [None]
        if rank == 0:  # one tokenizer for every rank
            box = [
                checkpoint.fit_tokenizer(
                    cfg.data.shards, cfg.data.split, cfg.model.vocab_size
                ).to_json()
            ]
        dist.broadcast_object_list(box, src=0)
        codec_json = box[0]
    model, codec = checkpoint.build(cfg, codec_json)
    if state:
        model.load_state_dict(state["model"])
    model.to(dev)
    optimizer = make_optimizer(model, cfg, dev)
    step = 0
    stream = data.ShardStream(
        data.list_shards(cfg.data.shards, cfg.data.split), cfg.data, cfg.model.image_size,
        rank=rank, world=world, seed=cfg.seed,
    )  # fmt: skip
    if state:
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        stream.skip = dict(state["data_positions"][rank])
    positions = dict(stream.skip)
    ddp = DDP(_LossModule(model)) if world > 1 else model
    if cfg.compile:
        ddp = torch.compile(ddp)
    batches = iter(
        data.loader(stream, codec, cfg.model.max_text_len, cfg.data.batch_size, cfg.data.workers)
    )
    meter, t_start, first_step = Meter(dev, world), time.perf_counter(), step
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, dynamic_ncols=True)
    loss = float("nan")
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        micro = []
        for _ in range(cfg.grad_accum):
            t0 = time.perf_counter()
            micro.append(next(batches))
            meter.wait += time.perf_counter() - t0
        loss = train_step(model, ddp, micro, optimizer, cfg, world, dev, meter)
        for b in micro:
            positions.update({w: n for w, n in b["positions"]})
        step += 1
        bar.update(1)
        if log_keys:
            with (out / f"keys-rank{rank}.jsonl").open("a") as f:
                keys = [k for b in micro for k in b["keys"]]
                f.write(json.dumps({"step": step, "keys": keys, "loss": loss}) + "\n")
        if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
            _log(
                out,
                {"step": step, "loss": loss, "lr": lr_at(step - 1, cfg), **meter.summary()},
                bar,
            )
            meter.reset()
        if cfg.ckpt_every and step % cfg.ckpt_every == 0:
            _save(out, model, optimizer, step, positions, cfg, codec, world, rank)
    _save(out, model, optimizer, step, positions, cfg, codec, world, rank)
    bar.close()
    seconds = time.perf_counter() - t_start
    samples = (step - first_step) * cfg.grad_accum * cfg.data.batch_size * world
    return {"steps": step, "loss": loss, "seconds": seconds, "samples_per_s": samples / seconds}


def _save(out, model, optimizer, step, positions, cfg, codec, world, rank) -> None:
    everyone = [None] * world
    if world > 1:
        dist.all_gather_object(everyone, positions)
    else:
        everyone = [positions]
    if rank == 0:
        checkpoint.save(out / "ckpt.pt", model, optimizer, step, everyone, cfg, codec)
    if world > 1:
        dist.barrier()


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Train a vision-language model on refrad shards.")
    p.add_argument("--config", default="tiny", help="tiny | base | paligemma")
    p.add_argument("--shards", required=True, help="folder with *.tar and shards.json")
    p.add_argument("--out", default="out/train")
    p.add_argument("--steps", type=int)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. data.batch_size=4 or model.paligemma_path=DIR")  # fmt: skip
    p.add_argument("--log-keys", action="store_true", help="write the sample keys of every step")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Entry point."""
    args = parse_args(argv)
    cfg = apply_overrides(preset(args.config), [f"data.shards={args.shards}", *args.set])
    if args.steps is not None:
        cfg.steps = args.steps
    summary = train(
        cfg, Path(args.out), args.device, args.resume, args.log_keys, not args.no_progress
    )
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(summary))
    if dist.is_initialized():
        dist.destroy_process_group()
    return summary


if __name__ == "__main__":
    main()
