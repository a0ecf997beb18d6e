"""The ``scratch`` backend: a small ViT encoder, a projector and a causal decoder with prefix
attention (bidirectional over image + prompt, causal over the target). Random init, offline."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from refrad_builder.train.config import ModelConfig


class Block(nn.Module):
    """Pre-norm transformer block; the attention mask comes from the caller."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache=None) -> torch.Tensor:
        """``cache`` (a dict) keeps keys/values for incremental decoding."""
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        drop = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(self.norm2(x))


class VisionEncoder(nn.Module):
    """Patchify, learned positions, bidirectional blocks."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.patch = nn.Conv2d(3, cfg.vit_dim, cfg.patch_size, stride=cfg.patch_size)
        n = (cfg.image_size // cfg.patch_size) ** 2
        self.pos = nn.Parameter(torch.randn(1, n, cfg.vit_dim) * 0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.vit_dim, cfg.vit_heads, cfg.mlp_ratio, cfg.dropout)
            for _ in range(cfg.vit_layers)
        )
        self.norm = nn.LayerNorm(cfg.vit_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch(pixels).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            x = blk(x, None)
        return self.norm(x)


def prefix_mask(n_img: int, t: int, prefix_len: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, S, S]: causal, plus full attention inside image + prompt."""
    s = n_img + t
    idx = torch.arange(s, device=prefix_len.device)
    causal = idx[None, :] <= idx[:, None]
    in_prefix = idx[None, None, :] < (n_img + prefix_len)[:, None, None]
    return (causal[None] | in_prefix)[:, None]


class ScratchVLM(nn.Module):
    """Image tokens + text tokens -> next-token logits over the text positions."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.n_img = (cfg.image_size // cfg.patch_size) ** 2
        self.vision = VisionEncoder(cfg)
        self.projector = nn.Sequential(
            nn.Linear(cfg.vit_dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim)
        )
        self.tok = nn.Embedding(vocab_size, cfg.dim)
        self.pos = nn.Parameter(torch.randn(1, self.n_img + cfg.max_text_len, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Projected image embeddings [B, N, dim]."""
        return self.projector(self.vision(pixels))

    def forward(self, pixels, input_ids, prefix_len, image=None) -> torch.Tensor:
        """Logits [B, T, V] for the text positions (``image`` reuses encoded pixels)."""
        img = self.image_tokens(pixels) if image is None else image
        t = input_ids.shape[1]
        x = torch.cat([img, self.tok(input_ids)], dim=1) + self.pos[:, : self.n_img + t]
        mask = prefix_mask(self.n_img, t, prefix_len)
        for blk in self.blocks:
            x = blk(x, mask)
        return F.linear(self.norm(x[:, self.n_img :]), self.tok.weight)  # tied embeddings

    def token_losses(self, batch: dict) -> torch.Tensor:
        """Per-token cross-entropy [B, T-1] (0 where the label is masked)."""
        logits = self(batch["pixels"], batch["input_ids"], batch["prefix_len"])
        labels = batch["labels"][:, 1:]
        ce = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
            reduction="none",
        )  # fmt: skip
        return ce.view(labels.shape)

    def _decode_step(self, x: torch.Tensor, mask, caches: list[dict]) -> torch.Tensor:
        for blk, cache in zip(self.blocks, caches, strict=True):
            x = blk(x, mask, cache)
        return F.linear(self.norm(x[:, -1]), self.tok.weight)

    @torch.no_grad()
    def generate(self, pixels, prompts: list[list[int]], max_new: int, eos_id: int, pad_id: int):
        """Greedy decoding of a batch with a key/value cache. Prompts are left-padded; the pads
        are masked out and every sample keeps the positions it had in training."""
        dev, b, n = pixels.device, len(prompts), max(len(p) for p in prompts)
        pad = torch.tensor([n - len(p) for p in prompts], device=dev)
        ids = torch.tensor([[pad_id] * (n - len(p)) + p for p in prompts], device=dev)
        col = torch.arange(self.n_img + n, device=dev)[None]
        text_pos = (col - self.n_img - pad[:, None]).clamp(min=0) + self.n_img
        positions = torch.where(col < self.n_img, col, text_pos)
        valid = (col < self.n_img) | (col >= self.n_img + pad[:, None])  # keys that are not pads
        x = torch.cat([self.image_tokens(pixels), self.tok(ids)], 1) + self.pos[0, positions]
        eye = torch.eye(self.n_img + n, dtype=torch.bool, device=dev)
        mask = (valid[:, None, None, :] & ~eye) | eye  # prefix: all of it, minus the pads
        caches: list[dict] = [{} for _ in self.blocks]
        logits = self._decode_step(x, mask, caches)
        out: list[list[int]] = [[] for _ in prompts]
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        lens = torch.tensor([len(p) for p in prompts], device=dev)
        for t in range(min(max_new, self.cfg.max_text_len - n)):
            nxt = logits.argmax(-1)
            for i in range(b):
                if not done[i]:
                    out[i].append(int(nxt[i]))
            done |= nxt == eos_id
            if bool(done.all()):
                break
            valid = torch.cat([valid, torch.ones(b, 1, dtype=torch.bool, device=dev)], 1)
            x = self.tok(nxt[:, None]) + self.pos[0, self.n_img + lens + t][:, None]
            logits = self._decode_step(x, valid[:, None, None, :], caches)
        return out

    def flops_per_sample(self, text_len: int) -> float:
        """Analytic training FLOPs (forward + backward) for one sample: 6 x params x tokens plus
        attention, per stack."""
        c = self.cfg
        n, s_dec = self.n_img, self.n_img + text_len
        vit_layer, dec_layer = (
            (4 + 2 * c.mlp_ratio) * c.vit_dim**2,
            (4 + 2 * c.mlp_ratio) * c.dim**2,
        )
        vit = 6 * vit_layer * c.vit_layers * n + 12 * c.vit_layers * c.vit_dim * n**2
        dec = 6 * dec_layer * c.layers * s_dec + 12 * c.layers * c.dim * s_dec**2
        head = 6 * c.dim * self.vocab_size * text_len
        return float(vit + dec + head)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
