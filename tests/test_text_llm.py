"""The text stage's LLM path end to end against a scripted model: what is kept, what is
rejected (and counted), batching across slices and request de-duplication."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from types import SimpleNamespace

import pytest
from llm_fake_model import WRONG_VQA, answer
from llm_stub import StubServer

from refrad_builder.anatomy.labels import schema
from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import Box
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.reports.language import detect_language
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.text import grounding
from refrad_builder.text.rules import visible_classes

UPSTREAM = ["ingest", "deid", "report", "volume", "segment", "slices"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """Two demo studies (DE and EN reports) run up to the slices, once for the module."""
    root = tmp_path_factory.mktemp("text_llm")
    mp = pytest.MonkeyPatch()
    mp.setenv("REFRAD_SECRET", "llm-test-secret-0123456789")
    make_demo(root / "demo", studies=2, seed=1, include_real=False)
    cfg = load_config(
        root / "demo" / "config.yaml", [f"work_dir={root / 'work'}", f"out_dir={root / 'out'}"]
    )
    run_pipeline(cfg, stages=UPSTREAM, executor=LocalExecutor(), progress=lambda x: None)
    yield root
    mp.undo()


def _text_run(upstream, tmp_path, monkeypatch, server, *overrides):
    monkeypatch.setenv("REFRAD_SECRET", "llm-test-secret-0123456789")
    shutil.copytree(upstream / "work", tmp_path / "work")
    cfg = load_config(
        upstream / "demo" / "config.yaml",
        [
            f"work_dir={tmp_path / 'work'}",
            f"out_dir={tmp_path / 'out'}",
            "text.generator=llm",
            f"llm.url={server.url}",
            "llm.max_retries=0",
            "llm.model=stub-model",
            *overrides,
        ],
    )
    run_pipeline(cfg, stages=["text"], executor=LocalExecutor(), progress=lambda x: None)
    return cfg


def test_checked_answers_are_kept_and_wrong_ones_counted(upstream, tmp_path, monkeypatch):
    with StubServer(answer) as s:
        cfg = _text_run(upstream, tmp_path, monkeypatch, s)
    st = Ledger(cfg.work_dir / "text").status("text")
    assert st.failed == {} and st.pending == 0 and st.done + sum(st.dropped.values()) == st.planned
    outputs = Ledger(cfg.work_dir / "text").current_outputs()
    samples = [recs[0]["sample"] for _, _, recs in outputs]
    with_llm = [x for x in samples if x["provenance"]["prompt"]]
    assert len(with_llm) >= 10
    rejected = Counter()
    for x in samples:
        rejected.update(x["provenance"]["llm_rejected"])
    # every deliberately wrong answer was caught by its own check
    for reason in (
        *WRONG_VQA,
        "keywords_unknown_class",
        "keywords_not_in_sentence",
        "keywords_class_mismatch",
    ):
        assert rejected[reason] > 0, reason
    sch = schema()
    extra_grounded = 0
    for x in with_llm:
        src = x["language"]
        other = "en" if src == "de" else "de"
        assert x["provenance"]["generator"] == "llm:stub-model"
        assert f"keywords.{src}@1" in x["provenance"]["prompt"]
        # no wrong answer was kept; the right and wrong answers share the question
        answers: dict[str, set[str]] = {}
        for v in x["vqa"]:
            assert v["answer"] not in ("maybe", "97.5 cm")
            answers.setdefault(v["question"], set()).add(v["answer"])
        assert all(len(a) == 1 for a in answers.values())
        model_q = [q for q in answers if q.startswith(("Is there a lesion", "Zeigt die Struktur"))]
        assert model_q, "no model question was kept"
        translated = [
            c
            for c in x["captions"][other]
            if c.startswith(("There is", "The ", "Values"))
            or "mit Läsion" in c
            or "unauffällig." in c
        ]
        for c in translated:
            assert detect_language(c) == other
        # a model keyword the rules missed is grounded with a box of a visible class
        visible = visible_classes(SimpleNamespace(boxes=[Box(**b) for b in x["boxes"]]), sch)
        visible_ids = {b.class_id for b in visible.values()}
        for g in x["grounded_captions"][src]:
            for _, _, cid, _, phrase in grounding.finditer(g):
                assert cid in visible_ids
                if not find_mentions(phrase, src):
                    extra_grounded += 1
    assert extra_grounded > 0, "no keyword found by the model was grounded"
    assert any(
        c.startswith(("There is", "The ")) or "mit Läsion" in c
        for x in with_llm
        for c in x["captions"]["en" if x["language"] == "de" else "de"]
    ), "no checked translation was kept"


def test_a_batch_of_slices_shares_one_round_of_requests(upstream, tmp_path, monkeypatch):
    """With one round per batch the server sees up to ``llm.concurrency`` requests in flight;
    slice by slice it never sees more than one slice's few. Identical requests go out once."""
    # long enough that the client's own work per request (~10 ms) cannot drain the round
    with StubServer(answer, delay_s=0.5) as s:
        _text_run(upstream, tmp_path / "a", monkeypatch, s, "llm.concurrency=16")
        batched, sent = s.max_in_flight, list(s.requests)
    with StubServer(answer, delay_s=0.1) as s:
        _text_run(
            upstream, tmp_path / "b", monkeypatch, s, "llm.concurrency=16", "llm.batch_slices=1"
        )
        one_by_one = s.max_in_flight
    distinct = {json.dumps(b["messages"], sort_keys=True) for b in sent}
    assert len(sent) == len(distinct) > 16
    # one slice asks at most 8 things (2 temporal, 1 translation, 3 keywords, 2 VQA): more in
    # flight means slices share the round; never more than llm.concurrency (16 when the
    # machine is idle; a busy one may not have sent the 16th before the first answer is back)
    assert 8 < batched <= 16
    assert one_by_one <= 8
