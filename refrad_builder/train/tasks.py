"""Prompts and targets: how one slice becomes a (prompt, target) pair, as RadGrounder trains.

A slice with boxes gets a grounded caption; otherwise a report caption or a VQA item, chosen by
configurable weights. The language is drawn 50/50 where both exist. Targets keep the grounding
markup ``<p bbox=<locNNNN>x4 id=<segNNN>>phrase</p>`` (512 bins, x first).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PROMPTS = {
    "caption": {"en": "Caption this image:", "de": "Beschreibe dieses Bild:"},
    "grounded": {
        "en": "Caption this image and detect keywords:",
        "de": "Beschreibe dieses Bild und detektiere Schlüsselwörter:",
    },
    "answer": {"en": "Answer:", "de": "Antwort:"},
    "clinical": {"en": "Clinical information:", "de": "Klinische angaben:"},
    "question": {"en": "Question:", "de": "Fragestellung:"},
}
LANGS = ("en", "de")
TASKS = ("grounded", "caption", "vqa")


@dataclass(frozen=True)
class Example:
    """One training or evaluation pair made from a slice."""

    task: str
    lang: str
    prompt: str
    target: str
    question_type: str = ""


def _prefix(sample: dict, lang: str) -> str:
    # Schema 1.0.0 has no clinical fields; newer shards may carry them.
    parts = []
    if sample.get("clinical_information"):
        parts.append(f"{PROMPTS['clinical'][lang]} {sample['clinical_information']}")
    if sample.get("clinical_question"):
        parts.append(f"{PROMPTS['question'][lang]} {sample['clinical_question']}")
    return "".join(p + "\n" for p in parts)


def vqa_prompt(item: dict, lang: str) -> str:
    """The question, its choices on their own lines, then ``Answer:``."""
    lines = [item["question"], *item.get("choices", []), PROMPTS["answer"][lang]]
    return "\n".join(lines)


def candidates(sample: dict, max_vqa: int, langs=LANGS) -> dict[str, list[Example]]:
    """Every example a slice offers, by task (a task with nothing to offer is absent)."""
    out: dict[str, list[Example]] = {}
    for lang in langs:
        pre = _prefix(sample, lang)
        if sample.get("boxes"):
            for text in sample.get("grounded_captions", {}).get(lang, []):
                if "<p bbox=" in text:
                    p = pre + PROMPTS["grounded"][lang]
                    out.setdefault("grounded", []).append(Example("grounded", lang, p, text))
        for text in sample.get("captions", {}).get(lang, []):
            p = pre + PROMPTS["caption"][lang]
            out.setdefault("caption", []).append(Example("caption", lang, p, text))
        items = [v for v in sample.get("vqa", []) if v["language"] == lang]
        if max_vqa and len(items) > max_vqa:
            step = len(items) / max_vqa  # spread over the sources (presence, metadata, findings)
            items = [items[int(i * step)] for i in range(max_vqa)]
        for v in items:
            qtype = "closed" if v["question_type"] == "closed" else "open"
            p = pre + vqa_prompt(v, lang)
            out.setdefault("vqa", []).append(Example("vqa", lang, p, v["answer"], qtype))
    return out


def choose(sample, weights, grounded_first, rng: random.Random, max_vqa: int, langs=LANGS):
    """One example for training (``None`` when the slice offers nothing with weight > 0)."""
    cands = {t: c for t, c in candidates(sample, max_vqa, langs).items() if weights.get(t, 0) > 0}
    if not cands:
        return None
    if grounded_first and "grounded" in cands:
        task = "grounded"
    else:
        names = sorted(cands)
        task = rng.choices(names, weights=[weights[t] for t in names])[0]
    avail = sorted({e.lang for e in cands[task]})
    lang = rng.choice(avail)
    return rng.choice([e for e in cands[task] if e.lang == lang])


def expand(sample: dict, weights: dict, max_vqa: int, langs=LANGS) -> list[Example]:
    """All examples of a slice in a fixed order: per language the grounded caption with the most
    boxes, the first caption and up to ``max_vqa`` VQA items (for evaluation and overfitting)."""
    cands = candidates(sample, max_vqa, langs)
    out: list[Example] = []
    for lang in langs:
        if weights.get("grounded", 0) > 0:
            g = [e for e in cands.get("grounded", []) if e.lang == lang]
            if g:
                out.append(max(g, key=lambda e: e.target.count("<p bbox=")))
        if weights.get("caption", 0) > 0:
            out.extend([e for e in cands.get("caption", []) if e.lang == lang][:1])
        if weights.get("vqa", 0) > 0:
            out.extend(e for e in cands.get("vqa", []) if e.lang == lang)
    return out
