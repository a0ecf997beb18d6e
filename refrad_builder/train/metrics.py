"""Scores: VQA (exact match, token F1; open/closed), captions (BLEU-1/4, ROUGE-L, CIDEr from
pycocoevalcap's pure-Python scorers, chrF from sacrebleu) and grounding (boxes parsed back from
``<p bbox=...>``, matched by class id then greedily by IoU)."""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict

from refrad_builder.text import grounding

_PUNCT = str.maketrans("", "", string.punctuation + "„“”«»")
_WORD = re.compile(r"\w+|[^\w\s]")
_STRAY = re.compile(r"</?p\b|<loc\d*|<seg\d*|bbox=| id=<")


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces."""
    return " ".join(text.lower().translate(_PUNCT).split())


def token_f1(pred: str, ref: str) -> float:
    """Bag-of-words F1 between normalised strings."""
    p, r = normalize(pred).split(), normalize(ref).split()
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r:
        return float(p == r)
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(r)
    return 2 * prec * rec / (prec + rec)


def vqa_scores(rows: list[dict]) -> dict:
    """Exact match and token F1, overall and split open/closed (rows: pred, target, qtype)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups["all"].append(r)
        groups[r["question_type"] or "open"].append(r)
    out = {}
    for name, rs in groups.items():
        em = sum(normalize(r["pred"]) == normalize(r["target"]) for r in rs) / len(rs)
        f1 = sum(token_f1(r["pred"], r["target"]) for r in rs) / len(rs)
        out[name] = {"n": len(rs), "exact_match": em, "token_f1": f1}
    return out


def _tok(text: str) -> str:
    # pycocoevalcap's PTB tokenizer needs Java: a lower-case word/punctuation split instead
    return " ".join(_WORD.findall(grounding.strip(text).lower()))


def caption_scores(rows: list[dict]) -> dict:
    """BLEU-1/4, ROUGE-L, CIDEr and chrF over (pred, target) pairs."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from sacrebleu.metrics import CHRF

    gts = {i: [_tok(r["target"])] for i, r in enumerate(rows)}
    res = {i: [_tok(r["pred"]) or "empty"] for i, r in enumerate(rows)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    chrf = CHRF().corpus_score(
        [grounding.strip(r["pred"]) for r in rows], [[grounding.strip(r["target"]) for r in rows]]
    )
    return {
        "n": len(rows),
        "bleu1": float(bleu[0]),
        "bleu4": float(bleu[3]),
        "rouge_l": float(rouge),
        "cider": float(cider),
        "chrf": float(chrf.score),
    }


def parses(text: str, task: str) -> bool:
    """Markup is well formed: grounded outputs hold only complete phrases, others none."""
    rest = grounding.strip(text)
    if _STRAY.search(rest):
        return False
    return task != "grounded" or bool(grounding.parse(text))


def iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union <= 0:
        return float(tuple(a) == tuple(b))
    return inter / union


def match_boxes(pred: list[tuple], true: list[tuple]) -> list[float]:
    """IoUs of matched pairs: same class id, then greedily by IoU (items: (class id, box))."""
    ious = []
    for cid in {c for c, _ in pred} & {c for c, _ in true}:
        ps = [b for c, b in pred if c == cid]
        ts = [b for c, b in true if c == cid]
        pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(ps) for j, t in enumerate(ts)),
                       reverse=True)  # fmt: skip
        used_p, used_t = set(), set()
        for v, i, j in pairs:
            if i not in used_p and j not in used_t:
                used_p.add(i)
                used_t.add(j)
                ious.append(v)
    return ious


def grounding_scores(rows: list[dict], threshold: float = 0.5) -> dict:
    """Precision, recall and F1 at IoU ``threshold``; mean IoU of the matched pairs."""
    n_pred = n_true = tp = 0
    all_ious: list[float] = []
    for r in rows:
        pred = [(c, b) for c, b, _ in grounding.parse(r["pred"])]
        true = [(c, b) for c, b, _ in grounding.parse(r["target"])]
        ious = match_boxes(pred, true)
        n_pred, n_true = n_pred + len(pred), n_true + len(true)
        tp += sum(v >= threshold for v in ious)
        all_ious += ious
    prec, rec = tp / max(1, n_pred), tp / max(1, n_true)
    return {
        "n": len(rows),
        "boxes_pred": n_pred,
        "boxes_true": n_true,
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "mean_iou": sum(all_ious) / len(all_ious) if all_ious else 0.0,
    }
