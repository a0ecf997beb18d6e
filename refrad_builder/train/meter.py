"""Throughput, model FLOPs utilisation and data-wait bookkeeping for the training log."""

from __future__ import annotations

import time
from collections import defaultdict

import torch

#: Datasheet dense bf16 peaks (TFLOP/s); MFU is quoted against these. Unknown devices: omitted.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def peak_flops(device: torch.device) -> float | None:
    """The datasheet bf16 peak of ``device`` in FLOP/s, or ``None`` when unknown (CPU too)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name and "PCIe" in name:
        return None  # the table holds the SXM part only
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


class Meter:
    """Accumulates one logging window: losses by task, tokens, samples, FLOPs, waiting time."""

    def __init__(self, device: torch.device, world: int):
        self.device, self.world, self.peak = device, world, peak_flops(device)
        self.reset()

    def reset(self) -> None:
        """Start a new window."""
        self.t0 = time.perf_counter()
        self.wait = 0.0
        self.tokens = self.samples = self.cut = 0
        self.flops = 0.0
        self.task_sum: dict[str, float] = defaultdict(float)
        self.task_n: dict[str, int] = defaultdict(int)

    def add_batch(self, batch: dict, tok_loss: torch.Tensor, flops: float) -> None:
        """Book one micro-batch (this rank's share)."""
        mask = batch["labels"][:, 1:] != -100
        per_sample = (tok_loss.detach().float() * mask).sum(1).tolist()
        counts = mask.sum(1).tolist()
        for ex, s, n in zip(batch["examples"], per_sample, counts, strict=True):
            self.task_sum[ex.task] += s
            self.task_n[ex.task] += n
        self.tokens += int(batch["length"].sum())
        self.samples += batch["pixels"].shape[0]
        self.cut += batch.get("cut", 0)
        self.flops += flops

    def summary(self) -> dict:
        """Rates over the window, scaled by the world size (every rank does the same work)."""
        dt = max(time.perf_counter() - self.t0, 1e-9)
        out = {
            "tokens_per_s": self.tokens * self.world / dt,
            "samples_per_s": self.samples * self.world / dt,
            "data_wait": self.wait / dt,
            # examples whose target was shortened to fit max_text_len (see data.fit_target)
            "cut_fraction": self.cut / max(1, self.samples),
            "loss_by_task": {t: self.task_sum[t] / max(1, self.task_n[t]) for t in self.task_sum},
        }
        if self.peak:
            out["mfu"] = self.flops / dt / self.peak
        if self.device.type == "cuda":
            out["peak_mem_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return out
