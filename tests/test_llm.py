"""The LLM client and the text stage's LLM path against an OpenAI-compatible stub server."""

from __future__ import annotations

import json

import pytest
from llm_fake_model import task_of
from llm_stub import StubServer

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import LLMConfig, load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.text.llm_client import LLMAnswerError, LLMClient, Request, response_format
from refrad_builder.text.prompts import load_prompt

GOOD = {
    "temporal": {"sentence": "Hypodense lesion in the liver."},
    "translate.en": {"translation": "There is a hypodense lesion in the liver of the patient."},
    "translate.de": {
        "translation": "Es zeigt sich eine hypodense Läsion in der Leber des Patienten."
    },
}


def test_response_format_per_flavour():
    p = load_prompt("translate", "en")
    assert response_format("vllm", p)["type"] == "json_schema"
    assert response_format("vllm", p)["json_schema"]["schema"] == p.output_schema
    assert response_format("llamacpp", p) == {"type": "json_object", "schema": p.output_schema}


def test_client_caches_and_validates(tmp_path):
    p = load_prompt("translate", "en")
    with StubServer(lambda b: (200, json.dumps(GOOD["translate.en"]))) as s:
        client = LLMClient(LLMConfig(url=s.url, flavor="llamacpp", max_retries=0), tmp_path)
        reqs = [Request(p, {"text": f"Satz {i}"}) for i in range(3)]
        out = client.complete_many(reqs)
        assert all(o == GOOD["translate.en"] for o in out) and client.calls == 3
        assert s.requests[0]["response_format"]["type"] == "json_object"
        again = LLMClient(LLMConfig(url=s.url, flavor="llamacpp"), tmp_path)
        assert again.complete_many(reqs) == out and again.calls == 0 and len(s.requests) == 3
    with StubServer(lambda b: (200, '{"translation": ""}')) as s:
        client = LLMClient(LLMConfig(url=s.url, max_retries=0), tmp_path / "c2")
        [err] = client.complete_many([Request(p, {"text": "x"})])
        assert isinstance(err, LLMAnswerError)
        assert not any((tmp_path / "c2").rglob("*.json"))  # invalid answers are never cached


def _llm_run(tmp_path, monkeypatch, answer, *overrides):
    monkeypatch.setenv("REFRAD_SECRET", "llm-test-secret-0123456789")
    make_demo(tmp_path / "demo", studies=2, seed=1, include_real=False)
    with StubServer(answer) as s:
        cfg = load_config(
            tmp_path / "demo" / "config.yaml",
            [
                f"work_dir={tmp_path / 'work'}",
                f"out_dir={tmp_path / 'out'}",
                "text.generator=llm",
                f"llm.url={s.url}",
                "llm.max_retries=0",
                "llm.model=stub-model",
                *overrides,
            ],
        )
        runs = run_pipeline(cfg, executor=LocalExecutor(), progress=lambda x: None)
        return cfg, s.requests, {r.stage: r for r in runs}


def test_unparsable_answers_and_refused_requests_are_counted_drops(tmp_path, monkeypatch):
    """An answer that is no JSON of its schema (or a request the server refuses) is the same
    on every retry: a counted rejection, and a drop when nothing else came back. A server
    that cannot be reached is transient: the slices stay failed and are retried."""
    cfg, _, runs = _llm_run(tmp_path, monkeypatch, lambda b: (200, "not json at all"))
    st = Ledger(cfg.work_dir / "text").status("text")
    assert st.failed == {} and st.dropped == {"llm_answer_unparsable": st.planned - st.done}
    assert st.dropped["llm_answer_unparsable"] > 0

    # or, when asked to, the slice keeps its rules products, with the rejections recorded
    cfg, _, _ = _llm_run(
        tmp_path / "keep", monkeypatch, lambda b: (200, "{}"), "llm.on_all_rejected=rules"
    )
    st = Ledger(cfg.work_dir / "text").status("text")
    assert st.done == st.planned and st.failed == {} and st.dropped == {}
    samples = [r[2][0]["sample"] for r in Ledger(cfg.work_dir / "text").current_outputs()]
    asked = [x for x in samples if x["provenance"]["prompt"]]
    assert asked and all(x["provenance"]["generator"] == "rules:1" for x in samples)
    assert all(x["provenance"]["llm_rejected"].get("llm_answer_unparsable") for x in asked)

    cfg, _, _ = _llm_run(tmp_path / "refused", monkeypatch, lambda b: (400, ""))
    st = Ledger(cfg.work_dir / "text").status("text")
    assert st.failed == {} and st.dropped.get("llm_request_refused", 0) > 0

    cfg, _, _ = _llm_run(tmp_path / "down", monkeypatch, lambda b: (503, ""))
    st = Ledger(cfg.work_dir / "text").status("text")
    assert st.failed.get("LLMUnavailable", 0) > 0 and st.pending == 0
    assert (
        not (cfg.out_dir / "shards.json").exists()
        or json.loads((cfg.out_dir / "summary.json").read_text())["samples"] < st.planned
    )

    def wrong_language(body):
        task = task_of(body)
        if task.startswith("translate"):
            # a "translation" in the source language fails the language check
            bad = GOOD["translate.de" if task == "translate.en" else "translate.en"]
            return 200, json.dumps(bad)
        if task.startswith("vqa"):
            return 200, json.dumps({"items": []})
        if task == "keywords":
            return 200, json.dumps({"mentions": []})
        return 200, json.dumps({"sentence": ""})  # nothing left after the temporal rewrite

    cfg, _, _ = _llm_run(tmp_path / "b", monkeypatch, wrong_language)
    st = Ledger(cfg.work_dir / "text").status("text")
    assert st.dropped.get("translation_wrong_language", 0) > 0


@pytest.mark.parametrize("flavor", ["vllm", "llamacpp"])
def test_prompt_messages_have_no_unfilled_fields(flavor):
    for task, variables in [
        ("translate", {"text": "x"}),
        ("temporal", {"text": "x"}),
        ("keywords", {"text": "x", "classes": "liver"}),
        ("vqa", {"visible": "liver", "findings": "f"}),
    ]:
        for lang in ("de", "en"):
            p = load_prompt(task, lang)
            content = " ".join(m["content"] for m in p.messages(**variables))
            assert "{text}" not in content and "{{" not in content
            assert response_format(flavor, p)


def test_prompt_schemas_and_answer_models_agree():
    from refrad_builder.text.answers import MODELS
    from refrad_builder.text.llm_client import parse_answer

    examples = {
        "translate": {"translation": "x"},
        "temporal": {"sentence": ""},
        "keywords": {"mentions": [{"class": "liver", "abnormal": True, "keyword": "Leber"}]},
        "vqa": {
            "items": [
                {
                    "question": "Ist die Leber auffällig?",
                    "answer": "Ja",
                    "question_type": "closed",
                    "choices": [],
                    "structure": "liver",
                }
            ]
        },
    }
    for task, answer in examples.items():
        for lang in ("de", "en"):
            parsed = parse_answer(json.dumps(answer), load_prompt(task, lang))
            assert parsed == MODELS[task].model_validate(answer).model_dump(by_alias=True)
    with pytest.raises(LLMAnswerError):
        parse_answer('{"items": [{"question": "q?"}]}', load_prompt("vqa", "en"))
    with pytest.raises(LLMAnswerError):
        parse_answer("```json\n{oops", load_prompt("translate", "en"))
