"""The scratch backend's tokenizer: byte-level BPE trained on the shards' text with the
``tokenizers`` library, plus the 512 ``<locNNNN>`` tokens, ``<segNNN>`` class tokens and the
grounding markup kept whole. It is saved with every checkpoint."""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from refrad_builder.text import grounding
from refrad_builder.train import tasks

SPECIAL = ["<pad>", "<bos>", "<eos>", "<sep>"]
MARKUP = ["<p bbox=", " id=", "</p>"]
SEG_CLASSES = 256


def grounding_tokens() -> list[str]:
    """Location, class and markup tokens, in a fixed order."""
    locs = [f"<loc{i:04d}>" for i in range(grounding.BINS)]
    segs = [f"<seg{i:03d}>" for i in range(SEG_CLASSES)]
    return locs + segs + MARKUP


def sample_texts(meta: dict) -> Iterable[str]:
    """Every piece of text a slice contributes to tokenizer training."""
    for lang in tasks.LANGS:
        yield from meta.get("captions", {}).get(lang, [])
        yield from (grounding.strip(t) for t in meta.get("grounded_captions", {}).get(lang, []))
    for v in meta.get("vqa", []):
        yield tasks.vqa_prompt(v, v["language"])
        yield v["answer"]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE over ``texts`` (prompts included) with the grounding tokens added."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    prompts = [p for group in tasks.PROMPTS.values() for p in group.values()]
    tok.train_from_iterator([*prompts, *texts], trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False) for t in grounding_tokens()])
    return tok


class ScratchCodec:
    """Text <-> ids for the scratch model: ``<bos> prompt <sep> target <eos>``."""

    def __init__(self, tok: Tokenizer):
        self.tok = tok
        self.pad_id = tok.token_to_id("<pad>")
        self.bos_id = tok.token_to_id("<bos>")
        self.eos_id = tok.token_to_id("<eos>")
        self.sep_id = tok.token_to_id("<sep>")
        self.vocab_size = tok.get_vocab_size()

    def encode_prompt(self, prompt: str) -> list[int]:
        """The prefix the model is given: ``<bos> prompt <sep>``."""
        return [self.bos_id, *self.tok.encode(prompt).ids, self.sep_id]

    def encode(self, prompt: str, target: str) -> tuple[list[int], int]:
        """Full sequence and the length of its prefix."""
        prefix = self.encode_prompt(prompt)
        return prefix + self.tok.encode(target).ids + [self.eos_id], len(prefix)

    def decode(self, ids: list[int]) -> str:
        """Generated ids (stopping at ``<eos>``) -> text."""
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tok.decode(ids, skip_special_tokens=True)

    def to_json(self) -> str:
        """Serialised tokenizer (stored in the checkpoint)."""
        return self.tok.to_str()

    @classmethod
    def from_json(cls, text: str) -> ScratchCodec:
        """Inverse of :meth:`to_json`."""
        return cls(Tokenizer.from_str(text))


def vocab_summary(codec: ScratchCodec) -> str:
    """A one-line description for logs."""
    return json.dumps({"vocab": codec.vocab_size, "grounding_tokens": len(grounding_tokens())})
