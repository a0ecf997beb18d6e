"""Trainer data path: HU and windows, prompts, the box-aware crop, shard splitting, tokenizer."""

from __future__ import annotations

import random

import numpy as np
import pytest

from refrad_builder.text import grounding
from refrad_builder.train import augment, data, metrics, tasks, tokenizer


def test_hu_from_png_and_ct_windows():
    stored = np.array([[0, 1024 + 40], [1024 - 1000, 4095]], dtype=np.uint16)
    hu = data.to_hu(stored, {"rescale_slope": 1.0, "rescale_intercept": -1024.0})
    assert hu.tolist() == [[-1024.0, 40.0], [-1000.0, 3071.0]]
    unit = data.to_unit(hu, "CT")
    assert unit.shape == (3, 2, 2)
    # HU 40 sits at the centre of the (350, 40) and (80, 40) windows; (2250, -100): 1265/2250
    assert unit[1, 0, 1] == pytest.approx(0.5) and unit[2, 0, 1] == pytest.approx(0.5)
    assert unit[0, 0, 1] == pytest.approx(1265 / 2250)
    assert unit[:, 1, 1].tolist() == [1.0, 1.0, 1.0] and unit[2, 0, 0] == 0.0
    x = data.to_model_input(unit, 8)
    assert tuple(x.shape) == (3, 8, 8) and float(x.min()) >= -1 and float(x.max()) <= 1


def test_mr_is_min_max_scaled():
    unit = data.to_unit(np.array([[10.0, 20.0], [30.0, 50.0]]), "MR")
    assert unit[0].tolist() == [[0.0, 0.25], [0.5, 1.0]] and (unit[0] == unit[2]).all()


def test_prompts_exact():
    item = {"question": "Which?", "choices": ["a", "b"], "answer": "a"}
    assert tasks.vqa_prompt(item, "en") == "Which?\na\nb\nAnswer:"
    assert tasks.vqa_prompt({**item, "choices": []}, "de") == "Which?\nAntwort:"
    assert (
        tasks.PROMPTS["grounded"]["de"] == "Beschreibe dieses Bild und detektiere Schlüsselwörter:"
    )
    meta = {
        "clinical_information": "Fieber",
        "clinical_question": "Abszess?",
        "captions": {"de": ["x"]},
    }
    ex = tasks.candidates(meta, 0)["caption"][0]
    assert (
        ex.prompt == "Klinische angaben: Fieber\nFragestellung: Abszess?\nBeschreibe dieses Bild:"
    )


def test_grounded_first_and_language_mix():
    box = grounding.token(5, "liver", (10, 10, 30, 30), 100, 100)
    meta = {"boxes": [{"bbox": [10, 10, 30, 30], "class_id": 5}],
            "grounded_captions": {"en": [box], "de": [box.replace("liver", "Leber")]},
            "captions": {"en": ["c"], "de": ["k"]},
            "vqa": [{"question": "q", "answer": "a", "question_type": "open", "language": "en"}]}  # fmt: skip
    rng = random.Random(0)
    picks = [
        tasks.choose(meta, {"grounded": 1, "caption": 1, "vqa": 1}, True, rng, 4)
        for _ in range(200)
    ]
    assert {p.task for p in picks} == {"grounded"}
    assert 70 < sum(p.lang == "de" for p in picks) < 130
    picks = [
        tasks.choose(meta, {"grounded": 0, "caption": 1, "vqa": 3}, True, rng, 4)
        for _ in range(400)
    ]
    assert 220 < sum(p.task == "vqa" for p in picks) < 380


def test_crop_keeps_boxes_and_rewrites_locations():
    h, w = 80, 120
    values = np.zeros((h, w), np.float32)
    boxes = [{"bbox": [30, 20, 60, 50], "class_id": 5, "class_name": "liver", "area": 900},
             {"bbox": [70, 40, 90, 70], "class_id": 2, "class_name": "kidney", "area": 600}]  # fmt: skip
    for b in boxes:
        x0, y0, x1, y1 = b["bbox"]
        values[y0:y1, x0:x1] = b["class_id"]
    target = "A " + ", ".join(
        grounding.token(b["class_id"], b["class_name"], b["bbox"], w, h) for b in boxes
    )
    rng = random.Random(3)
    for _ in range(20):
        crop, moved, new = augment.crop_sample(values, boxes, target, rng)
        ch, cw = crop.shape
        parsed = grounding.parse(new)
        assert [c for c, _, _ in parsed] == [5, 2] and grounding.strip(new) == grounding.strip(
            target
        )
        for (cid, bins, _), b in zip(parsed, moved, strict=True):
            x0, y0, x1, y1 = b["bbox"]
            assert 0 <= x0 < x1 <= cw and 0 <= y0 < y1 <= ch
            assert bins == grounding.quantize((x0, y0, x1, y1), cw, ch)
            assert (crop[y0:y1, x0:x1] == cid).all()  # the moved box still frames its organ
            assert (crop == cid).sum() == (x1 - x0) * (y1 - y0)
    assert any(augment.crop_sample(values, boxes, target, rng)[0].shape != (h, w) for _ in range(5))


@pytest.mark.parametrize("n_shards", [8, 3])
def test_shard_slots_disjoint_and_complete(n_shards):
    urls = [f"s{i}.tar" for i in range(n_shards)]
    world, workers = 2, 2
    seen = []
    for rank in range(world):
        for worker in range(workers):
            shards, stride, offset = data._slot(urls, rank, world, worker, workers, 0, 0)
            seen += [(u, i) for u in shards for i in range(12) if i % stride == offset]
    assert len(seen) == len(set(seen)) == n_shards * 12  # every sample once


def test_tokenizer_keeps_markup_whole():
    text = "Both " + grounding.token(3, "kidneys", (10, 20, 30, 40), 96, 96) + " are normal."
    tok = tokenizer.train_tokenizer(["Both kidneys are normal.", "Visible structures: aorta"], 300)
    enc = tok.encode(text)
    for piece in ("<p bbox=", "<loc0053>", "<seg003>", " id=", "</p>"):
        assert piece in enc.tokens
    codec = tokenizer.ScratchCodec(tok)
    ids, plen = codec.encode("Caption this image:", text)
    assert codec.decode(ids[plen:]) == text and ids[plen - 1] == codec.sep_id


def test_long_grounded_target_is_cut_at_a_phrase_and_keeps_its_end_token():
    phrases = [
        grounding.token(c, name, (4 * c, 8, 4 * c + 20, 40), 96, 96)
        for c, name in ((3, "kidney"), (5, "liver"), (7, "spleen"), (9, "aorta"), (11, "stomach"))
    ]
    text = "Visible: " + ", ".join(phrases) + "."
    tok = tokenizer.train_tokenizer([text, "Visible structures: aorta"], 300)
    codec = tokenizer.ScratchCodec(tok)
    prompt = "Caption this image and detect keywords:"
    full, plen = codec.encode(prompt, text)
    ids, plen2, cut = data.fit_target(codec, prompt, text, len(full) - 3)
    assert cut and plen2 == plen and len(ids) <= len(full) - 3
    assert ids[-1] == codec.eos_id  # the model still learns to stop
    target = codec.decode(ids[plen:])
    assert text.startswith(target) and target.endswith("</p>")
    assert metrics.parses(target, "grounded")
    assert len(grounding.parse(target)) == 4  # the last whole phrase that fits is kept
    same, _, not_cut = data.fit_target(codec, prompt, text, len(full))
    assert same == full and not not_cut
