"""Trainer models: loss masking, cached greedy decoding, the PaliGemma backend (tiny random model
saved by the test), checkpoints and resume."""

from __future__ import annotations

import json

import pytest
import torch

from refrad_builder.train import checkpoint, data, paligemma, tasks, tiny_paligemma
from refrad_builder.train.config import ModelConfig, preset
from refrad_builder.train.model import ScratchVLM
from refrad_builder.train.train import main as train_main
from refrad_builder.train.train import make_optimizer, train_step


def test_loss_counts_target_tokens_only():
    torch.manual_seed(0)
    model = ScratchVLM(ModelConfig(max_text_len=32), 50)
    ids = torch.randint(5, 50, (2, 12))
    labels = torch.full_like(ids, -100)
    labels[0, 4:9], labels[1, 6:12] = ids[0, 4:9], ids[1, 6:12]
    batch = {"pixels": torch.randn(2, 3, 64, 64), "input_ids": ids, "labels": labels,
             "prefix_len": torch.tensor([4, 6])}  # fmt: skip
    loss = model.token_losses(batch)
    assert ((loss != 0) == (labels[:, 1:] != -100)).all()
    # the target cannot see the future: changing the last token leaves earlier losses unchanged
    ids2 = ids.clone()
    ids2[0, 8] = (ids[0, 8] + 1) % 50
    loss2 = model.token_losses({**batch, "input_ids": ids2})
    assert torch.allclose(loss[0, :7], loss2[0, :7], atol=1e-6)


def test_cached_generation_matches_full_recompute():
    torch.manual_seed(0)
    model = ScratchVLM(ModelConfig(max_text_len=40), 60).eval()
    prompts = [[1, 7, 8, 3], [1, 9, 10, 11, 12, 13, 3], [1, 3]]
    pixels = torch.randn(3, 3, 64, 64)
    got = model.generate(pixels, prompts, 10, eos_id=2, pad_id=0)
    for i, p in enumerate(prompts):
        ids = list(p)
        for _ in range(10):
            logits = model(pixels[i : i + 1], torch.tensor([ids]), torch.tensor([len(p)]))
            ids.append(int(logits[0, -1].argmax()))
            if ids[-1] == 2:
                break
        assert got[i] == ids[len(p) :]


def test_paligemma_fails_fast_without_weights(tmp_path):
    cfg = ModelConfig(backend="paligemma", paligemma_path=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        paligemma.load(cfg)


def test_paligemma_tiny_trains_one_step_and_decodes(tmp_path, small_demo_shards):
    cfg = preset("paligemma")
    cfg.model.paligemma_path = str(tiny_paligemma.build(tmp_path / "pg"))
    cfg.data.augment = False
    model, codec = paligemma.load(cfg.model)
    assert cfg.model.image_size == 32 and codec.n_img == 16
    target = "Both <p bbox=<loc0320><loc0288><loc0378><loc0346> id=<seg003>>kidneys</p> are normal."
    ids, plen = codec.encode("Caption this image and detect keywords:", target)
    pg_tokens = codec.tok.convert_ids_to_tokens(ids[plen:])
    assert "<loc0640>" in pg_tokens and "<seg003>" in pg_tokens  # bin b -> PaliGemma's <loc{2b}>
    assert codec.decode(ids[plen:]) == target
    stream = data.ShardStream(data.list_shards(small_demo_shards, "train"), cfg.data, 32, epochs=1)
    items = [it for _, it in zip(range(2), stream, strict=False)]
    batch = data.collate(items, codec, 256)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in model.parameters()][:3]
    loss = train_step(model, model, [batch], opt, cfg, 1, torch.device("cpu"))  # bf16 autocast
    assert cfg.dtype == "bfloat16" and 0 < loss < 20
    assert any(
        not torch.equal(a, b) for a, b in zip(before, list(model.parameters())[:3], strict=True)
    )
    outs = model.generate(batch["pixels"], [codec.encode_prompt("Caption this image:")] * 2, 3,
                          codec.eos_id, codec.pad_id)  # fmt: skip
    assert all(1 <= len(o) <= 3 for o in outs)


@pytest.mark.slow
def test_resume_continues_where_it_stopped(tmp_path, small_demo_shards):
    common = ["--config", "tiny", "--shards", str(small_demo_shards), "--device", "cpu",
              "--no-progress", "--set", "log_every=1", "--set", "data.batch_size=2",
              "--set", "data.shuffle_buffer=4"]  # fmt: skip
    straight = train_main([*common, "--out", str(tmp_path / "a"), "--steps", "4", "--log-keys"])
    train_main([*common, "--out", str(tmp_path / "b"), "--steps", "2", "--log-keys"])
    state = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=False)
    assert state["step"] == 2 and state["data_positions"] == [{0: 4}]
    assert state["label_schema_version"] == "1" and state["tokenizer"]
    resumed = train_main([*common, "--out", str(tmp_path / "b"), "--steps", "4", "--log-keys",
                          "--resume", str(tmp_path / "b" / "ckpt.pt")])  # fmt: skip

    def keys(run: str) -> list:
        lines = (tmp_path / run / "keys-rank0.jsonl").read_text().splitlines()
        return [json.loads(x)["keys"] for x in lines]

    assert keys("b") == keys("a")  # the same samples in the same order
    assert resumed["steps"] == 4 and resumed["loss"] == pytest.approx(straight["loss"], rel=1e-4)
    model, codec, cfg, _ = checkpoint.load(tmp_path / "b" / "ckpt.pt")
    assert cfg.data.shards == str(small_demo_shards) and codec.vocab_size == model.vocab_size
    assert tasks.PROMPTS["caption"]["en"] in codec.decode(
        codec.encode_prompt("Caption this image:")
    )
