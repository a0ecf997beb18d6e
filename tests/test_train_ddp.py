"""Data-parallel training under torchrun (2 CPU processes, gloo): ranks see disjoint samples and
the loss matches one process fed the same global batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import webdataset as wds

from refrad_builder.train import checkpoint, data, tasks
from refrad_builder.train.config import apply_overrides, preset
from refrad_builder.train.train import lr_at, make_optimizer, train_step

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [
    "data.shuffle_buffer=0",
    "data.batch_size=2",
    "data.mode=all",
    'data.languages=["en"]',
    'data.task_weights={"grounded": 1.0, "caption": 0.0, "vqa": 0.0}',
    "log_every=1",
]


def repack(src: Path, dst: Path, per_shard: int = 3) -> dict[str, dict]:
    """Every demo slice (all splits) into ``train-*.tar`` shards of ``per_shard`` samples."""
    raws = list(wds.DataPipeline(wds.SimpleShardList(sorted(map(str, src.glob("*.tar")))),
                                 wds.tarfile_to_samples()))  # fmt: skip
    dst.mkdir(parents=True)
    for i in range(0, len(raws), per_shard):
        with wds.TarWriter(str(dst / f"train-{i // per_shard:05d}.tar")) as w:
            for r in raws[i : i + per_shard]:
                w.write({k: v for k, v in r.items() if k in ("__key__", "json", "image.png")})
    return {r["__key__"]: data.decode(r) for r in raws}


@pytest.mark.slow
def test_two_ranks_disjoint_and_loss_matches_single_process(small_demo_shards, tmp_path):
    shards = tmp_path / "shards"
    decoded = repack(small_demo_shards, shards)  # 12 slices -> 4 shards, 2 per rank
    steps, out = 3, tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "refrad_builder.train.train", "--config", "tiny", "--shards", str(shards),
           "--out", str(out), "--steps", str(steps), "--device", "cpu", "--log-keys",
           "--no-progress"] + [a for s in SETTINGS for a in ("--set", s)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, timeout=600)

    logs = [[json.loads(x) for x in (out / f"keys-rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]  # fmt: skip
    seen = [[k for rec in log for k in rec["keys"]] for log in logs]
    assert len(seen[0]) == len(seen[1]) == steps * 2
    assert not set(seen[0]) & set(seen[1]), "ranks saw the same slice"
    assert len(set(seen[0] + seen[1])) == steps * 4

    # one process, same init, same global batches
    cfg = apply_overrides(preset("tiny"), [f"data.shards={shards}", *SETTINGS])
    cfg.steps = steps
    state = torch.load(out / "ckpt.pt", weights_only=False)
    model, codec = checkpoint.build(cfg, state["tokenizer"])
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        items = []
        for key in logs[0][step]["keys"] + logs[1][step]["keys"]:
            s = decoded[key]
            ex = tasks.expand(s["meta"], cfg.data.task_weights, 4, ("en",))[0]
            items.append(
                {**data.render(s, ex, cfg.data, cfg.model.image_size, None), "position": (0, 0)}
            )
        batch = data.collate(items, codec, cfg.model.max_text_len)
        single = train_step(model, model, [batch], opt, cfg, 1, torch.device("cpu"))
        ddp = logs[0][step]["loss"]
        assert logs[1][step]["loss"] == pytest.approx(ddp, rel=1e-6)
        assert single == pytest.approx(ddp, rel=1e-3), (step, single, ddp)
        print(
            f"step {step + 1}: 2 ranks {ddp:.6f}  1 process {single:.6f}  diff {abs(single - ddp):.2e}"
        )
