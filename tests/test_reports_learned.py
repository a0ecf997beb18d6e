"""The optional learned recognizer: a tiny random token-classification model the test builds,
loaded from its folder through the same path as a configured one; its spans join the rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from refrad_builder.engine.config import ReportConfig
from refrad_builder.reports import presidio_engine
from refrad_builder.reports.learned import _hide_broken_torchvision, learned_spec
from refrad_builder.reports.scrub import ScrubOptions, scrub

torch = pytest.importorskip("torch")
_hide_broken_torchvision()
transformers = pytest.importorskip("transformers")

WORDS = "befund lunge unauffallig am herr muller die leber ist normal . , : 12 03 2019".split()


def _tiny_model(folder: Path, label: str = "B-PER") -> Path:
    """A random 1-layer BERT whose classifier bias makes every token ``label``."""
    vocab = folder / "vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    config = transformers.BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
        num_labels=2,
        id2label={0: "O", 1: label},
        label2id={"O": 0, label: 1},
    )
    torch.manual_seed(0)
    model = transformers.BertForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([-10.0, 10.0]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_missing_folder_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no model folder"):
        ReportConfig(learned_recognizer=tmp_path / "absent")
    with pytest.raises(ValidationError, match="learned_labels does nothing"):
        ReportConfig(learned_labels={"PER": "NAME"})


def test_learned_spans_are_unioned_with_the_rules(tmp_path: Path) -> None:
    folder = _tiny_model(tmp_path / "model")
    cfg = ReportConfig(learned_recognizer=folder)
    spec = learned_spec(cfg.learned_recognizer, cfg.learned_labels)
    text = "Befund: Lunge unauffällig am 12.03.2019."
    rules = scrub(text, lang="de")
    learned = scrub(text, lang="de", options=ScrubOptions(learned=spec))
    assert "Lunge" in rules.text and "[DATUM]" in rules.text
    assert "Lunge" not in learned.text and "Befund" not in learned.text
    assert learned.counts.get("NAME", 0) >= 1
    # every rule span is still covered
    for s, e, _ in rules.spans:
        assert any(ls <= s and e <= le for ls, le, _ in learned.spans)
    # the recognizer sits in the analyzer through the configured path
    names = [r.name for r in presidio_engine.get_analyzer(spec).registry.recognizers]
    assert "learned_de" in names and "learned_en" in names


def test_unmapped_labels_are_ignored(tmp_path: Path) -> None:
    folder = _tiny_model(tmp_path / "model", label="B-MISC")
    spec = learned_spec(folder, {"PER": "NAME"})
    text = "Befund: Lunge unauffällig."
    assert scrub(text, lang="de", options=ScrubOptions(learned=spec)).text == text
