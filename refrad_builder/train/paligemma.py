"""The ``paligemma`` backend: fine-tunes a PaliGemma / PaliGemma2 checkpoint from a local folder
with ``transformers`` (nothing is downloaded).

Location tokens: PaliGemma has 1024 ``<locNNNN>`` tokens; our 512 bins are *mapped* onto them
(bin b -> ``<loc{2b}>``, and back by k // 2), so each bin keeps the pretrained meaning of its
position. Our markup keeps x before y (PaliGemma's own detection output is y first). Markup and any
missing ``<segNNN>`` tokens are added to the vocabulary.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from refrad_builder.train.config import ModelConfig
from refrad_builder.train.tokenizer import MARKUP, SEG_CLASSES

_LOC = re.compile(r"<loc(\d{4})>")


def to_paligemma_locs(text: str) -> str:
    """Our 512-bin tokens -> PaliGemma's 1024-bin tokens."""
    return _LOC.sub(lambda m: f"<loc{2 * int(m.group(1)):04d}>", text)


def from_paligemma_locs(text: str) -> str:
    """PaliGemma's 1024-bin tokens -> our 512-bin tokens."""
    return _LOC.sub(lambda m: f"<loc{int(m.group(1)) // 2:04d}>", text)


class PaliGemmaCodec:
    """``<image>`` x N, ``<bos>`` prompt ``\\n`` | target ``<eos>`` (PaliGemma's prefix-LM form)."""

    def __init__(self, tok, image_token_id: int, n_img: int):
        self.tok, self.image_token_id, self.n_img = tok, image_token_id, n_img
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.bos_id, self.eos_id = tok.bos_token_id, tok.eos_token_id
        self.vocab_size = len(tok)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Image placeholders, ``<bos>``, the prompt and a newline."""
        ids = self.tok(prompt + "\n", add_special_tokens=False)["input_ids"]
        return [self.image_token_id] * self.n_img + [self.bos_id, *ids]

    def encode(self, prompt: str, target: str) -> tuple[list[int], int]:
        """Full sequence and the length of its prefix."""
        prefix = self.encode_prompt(prompt)
        ids = self.tok(to_paligemma_locs(target), add_special_tokens=False)["input_ids"]
        return prefix + ids + [self.eos_id], len(prefix)

    def decode(self, ids: list[int]) -> str:
        """Generated ids -> text in our 512-bin markup."""
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return from_paligemma_locs(self.tok.decode(ids, skip_special_tokens=True))


class PaliGemmaVLM(nn.Module):
    """Adapter giving a ``PaliGemmaForConditionalGeneration`` the scratch model's interface."""

    def __init__(self, hf_model, codec: PaliGemmaCodec):
        super().__init__()
        self.hf, self.codec = hf_model, codec
        self.n_params = sum(p.numel() for p in hf_model.parameters())

    def _logits(self, pixels, input_ids, prefix_len, length=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        token_type = (pos >= prefix_len[:, None]).long()  # 0 = prefix (bidirectional)
        end = length if length is not None else torch.full_like(prefix_len, input_ids.shape[1])
        attn = (pos < end[:, None]).long()
        pixels = pixels.to(next(self.hf.parameters()).dtype)
        out = self.hf(
            input_ids=input_ids, pixel_values=pixels, attention_mask=attn,
            token_type_ids=token_type, use_cache=False,
        )  # fmt: skip
        return out.logits

    def token_losses(self, batch: dict) -> torch.Tensor:
        """Per-token cross-entropy [B, T-1] (0 where the label is masked)."""
        logits = self._logits(
            batch["pixels"], batch["input_ids"], batch["prefix_len"], batch["length"]
        )
        labels = batch["labels"][:, 1:]
        ce = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
            reduction="none",
        )  # fmt: skip
        return ce.view(labels.shape)

    @torch.no_grad()
    def generate(self, pixels, prompts: list[list[int]], max_new: int, eos_id: int, pad_id: int):
        """Greedy decoding, one prompt at a time (prompts differ in length)."""
        outs = []
        for i, p in enumerate(prompts):
            ids = torch.tensor([p], device=pixels.device)
            plen = torch.tensor([len(p)], device=pixels.device)
            new: list[int] = []
            for _ in range(max_new):
                nxt = int(self._logits(pixels[i : i + 1], ids, plen)[0, -1].argmax())
                new.append(nxt)
                if nxt == eos_id:
                    break
                ids = torch.cat([ids, torch.tensor([[nxt]], device=ids.device)], dim=1)
            outs.append(new)
        return outs

    def flops_per_sample(self, text_len: int) -> float:
        """6 x parameters x tokens (attention terms left out)."""
        return 6.0 * self.n_params * (self.codec.n_img + text_len)


def _import_transformers():
    # A torchvision wheel built for another torch (a CUDA build beside a CPU torch) fails on
    # import; transformers would import it for image utilities this backend never uses.
    try:
        import torchvision  # noqa: F401
    except Exception:
        import sys

        import transformers.utils as tu
        import transformers.utils.import_utils as iu

        for mod in (tu, iu):
            mod.is_torchvision_available = lambda: False
        sys.modules.pop("torchvision", None)
    from transformers import AutoTokenizer, PaliGemmaForConditionalGeneration

    return AutoTokenizer, PaliGemmaForConditionalGeneration


def load(cfg: ModelConfig, dtype: torch.dtype = torch.float32):
    """Model and codec from ``cfg.paligemma_path`` (local files only; fails fast if absent)."""
    path = Path(cfg.paligemma_path or "")
    if not cfg.paligemma_path or not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"PaliGemma weights not found at {str(path)!r}: pass a local folder with config.json,"
            " the weights and the tokenizer (model.paligemma_path=...); nothing is downloaded"
        )
    AutoTokenizer, PaliGemmaForConditionalGeneration = _import_transformers()  # noqa: N806
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = PaliGemmaForConditionalGeneration.from_pretrained(
        path, local_files_only=True, dtype=dtype
    )
    vocab = tok.get_vocab()
    wanted = [f"<loc{i:04d}>" for i in range(1024)] + [f"<seg{i:03d}>" for i in range(SEG_CLASSES)]
    missing = [t for t in [*wanted, *MARKUP] if t not in vocab]
    if missing:
        tok.add_tokens(missing)
        model.resize_token_embeddings(len(tok), mean_resizing=False)
    cfg.image_size = model.config.vision_config.image_size
    n_img = model.config.text_config.num_image_tokens
    codec = PaliGemmaCodec(tok, model.config.image_token_index, n_img)
    return PaliGemmaVLM(model, codec), codec
