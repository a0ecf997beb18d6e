"""A tiny randomly initialised PaliGemma (tiny SigLIP + Gemma) with a tokenizer built here, saved
to a folder: it exercises the ``paligemma`` backend's real loading path without any download."""

from __future__ import annotations

from pathlib import Path

from refrad_builder.train import tasks


def build(out: str | Path, image_size: int = 32, patch: int = 8) -> Path:
    """Write config, weights and tokenizer to ``out``; returns ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from refrad_builder.train.paligemma import _import_transformers

    _import_transformers()
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PreTrainedTokenizerFast,
        SiglipVisionConfig,
    )

    out = Path(out)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<eos>", "<bos>", "<unk>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([p for g in tasks.PROMPTS.values() for p in g.values()], trainer)
    tok.add_tokens([f"<loc{i:04d}>" for i in range(1024)])  # PaliGemma's 1024 location tokens
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
        unk_token="<unk>",
    )  # fmt: skip
    fast.save_pretrained(out)
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        image_size=image_size, patch_size=patch, vision_use_head=False,
    )  # fmt: skip
    text = GemmaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, vocab_size=len(fast),
    )  # fmt: skip
    cfg = PaliGemmaConfig(
        vision_config=vision, text_config=text, vocab_size=len(fast), projection_dim=32,
        hidden_size=32, image_token_index=fast.convert_tokens_to_ids("<image>"),
    )  # fmt: skip
    PaliGemmaForConditionalGeneration(cfg).save_pretrained(out)
    return out
