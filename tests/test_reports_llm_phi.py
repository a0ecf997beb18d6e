"""The optional LLM pass of report scrubbing (``report.llm_phi``) against an OpenAI-compatible
stub server: union with the rules, the span cache, schema validation, failure handling."""

from __future__ import annotations

import csv
import json

import pytest
from llm_stub import StubServer

from refrad_builder.engine.config import InputsConfig, LLMConfig, RunConfig, load_config
from refrad_builder.engine.records import ReportRecord
from refrad_builder.engine.stage import StageContext, WorkItem
from refrad_builder.reports.llm_phi import LLMPhiError, LLMPhiPass, locate
from refrad_builder.reports.scrub import ScrubOptions, scrub
from refrad_builder.stages.report import ReportStage

SECRET = b"llm-phi-secret-0123456789abcdef"
# "Tolliver" (no title, no cue) and the clinic are beyond the rules; Dr. Miller is not
TEXT = (
    "Findings: Images reviewed with Tolliver at the Quarrybank clinic. Mild hepatomegaly.\n"
    "Impression: Hepatomegaly. Dr. Miller, TOLLIVER informed."
)
MODEL_PHI = [
    {"text": "Tolliver", "kind": "NAME"},
    {"text": "Quarrybank clinic", "kind": "INST"},
    {"text": "hepatomegaly", "kind": "NAME"},  # a wrong answer costs a word, never a leak
    {"text": "Nobody Here", "kind": "NAME"},  # not in the text: ignored
]


def _answer(phi=MODEL_PHI):
    return lambda body: (200, json.dumps({"phi": phi}))


def _pass(tmp_path, url, model="stub-model", sub="cache") -> LLMPhiPass:
    cfg = LLMConfig(url=url, flavor="llamacpp", model=model, max_retries=0, timeout_s=10)
    return LLMPhiPass(cfg, tmp_path / sub, SECRET)


def test_locate_finds_every_occurrence_in_any_case_and_spacing():
    text = "Seen by Ann  Lee; ann lee again. Annette stays."
    spans, missed = locate(text, [{"text": "Ann Lee", "kind": "NAME"}, {"text": "x", "kind": "ID"}])
    assert [text[s:e] for s, e, _ in spans] == ["Ann  Lee", "ann lee"]
    assert missed == 1  # too short
    # whole words only: "Annette" keeps its name
    assert locate(text, [{"text": "Ann", "kind": "NAME"}])[0] == [(8, 11, "NAME"), (18, 21, "NAME")]


def test_model_spans_are_unioned_with_the_rules(tmp_path):
    rules_only = scrub(TEXT, lang="en")
    assert "TOLLIVER" in rules_only.text and "Miller" not in rules_only.text
    with StubServer(_answer()) as s:
        llm = _pass(tmp_path, s.url)
        spans = llm.spans(TEXT, "en")
        sent = s.requests[0]
    assert sent["response_format"]["type"] == "json_object"  # llama.cpp's structured output
    assert sent["response_format"]["schema"]["required"] == ["phi"]
    assert TEXT in sent["messages"][-1]["content"]
    out = scrub(TEXT, lang="en", options=ScrubOptions(extra=spans))
    for word in ("Tolliver", "TOLLIVER", "Quarrybank", "Miller"):
        assert word not in out.text
    assert out.text.count("[NAME]") >= 3 and "[INSTITUTION]" in out.text
    assert out.counts["NAME"] > rules_only.counts["NAME"]
    assert llm.missed == 1


def test_spans_are_cached_without_the_model_strings(tmp_path):
    with StubServer(_answer()) as s:
        first = _pass(tmp_path, s.url).spans(TEXT, "en")
        again = _pass(tmp_path, s.url)
        assert again.spans(TEXT, "en") == first and again.calls == 0 and again.cache_hits == 1
        assert len(s.requests) == 1
        # another model, another text or another language is asked again
        _pass(tmp_path, s.url, model="other").spans(TEXT, "en")
        again.spans(TEXT + " ", "en")
        again.spans(TEXT, "de")
        assert len(s.requests) == 4
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 4
    for f in files:
        data = f.read_text()
        assert "Tolliver" not in data and "Quarrybank" not in data
        assert "Tolliver" not in f.name


@pytest.mark.parametrize(
    "reply",
    [
        (200, "not json at all"),
        (200, json.dumps({"phi": [{"text": "Tolliver"}]})),  # kind missing
        (200, json.dumps({"phi": [{"text": "Tolliver", "kind": "PATIENT"}]})),  # not a kind
        (200, json.dumps({"names": ["Tolliver"]})),
        (500, ""),
        (400, ""),
    ],
    ids=["not_json", "no_kind", "bad_kind", "wrong_key", "server_error", "refused"],
)
def test_a_failed_answer_is_an_error_never_an_empty_success(tmp_path, reply):
    with StubServer(lambda body: reply) as s:
        llm = _pass(tmp_path, s.url)
        with pytest.raises(LLMPhiError) as err:
            llm.spans(TEXT, "en")
    assert "Tolliver" not in str(err.value) and "Quarrybank" not in str(err.value)
    assert not list((tmp_path / "cache").rglob("*.json"))  # nothing cached


def test_an_unreachable_server_is_an_error(tmp_path):
    with StubServer(_answer()) as s:
        url = s.url
    with pytest.raises(LLMPhiError):
        _pass(tmp_path, url).spans(TEXT, "en")


def _stage(tmp_path, url, **llm):
    table = tmp_path / "reports.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["accession_number", "report", "language"])
        w.writeheader()
        w.writerow({"accession_number": "A1", "report": TEXT, "language": "en"})
    cfg = RunConfig(work_dir=tmp_path / "work", demo=True, inputs=InputsConfig(reports=[table]))
    cfg = cfg.model_copy(
        update={
            "report": cfg.report.model_copy(update={"llm_phi": True}),
            "llm": LLMConfig(url=url, flavor="llamacpp", max_retries=0, timeout_s=10, **llm),
        }
    )
    stage = ReportStage(StageContext(cfg))
    stage.setup()
    item = WorkItem(
        id="s1",
        payload={"study_id": "s1", "patient_id": "p1", "table": 0, "row": 0, "known_phi": []},
        input_fingerprint="fp",
    )
    return stage, item


def test_report_stage_with_the_llm_pass(tmp_path):
    with StubServer(lambda body: (200, "{broken")) as bad:
        stage, item = _stage(tmp_path, bad.url)
        with pytest.raises(LLMPhiError):  # the item fails (retried next run), no record
            stage.process(item)
    with StubServer(_answer()) as good:
        stage, item = _stage(tmp_path, good.url)
        rec = stage.process(item)
        assert isinstance(rec, ReportRecord)
        dumped = rec.model_dump_json()
        assert "Tolliver" not in dumped and "Quarrybank" not in dumped and "Miller" not in dumped
        assert rec.phi_counts["INST"] == 1
        # a rerun answers from the span cache
        stage2, _ = _stage(tmp_path, good.url)
        assert stage2.process(item) == rec and len(good.requests) == 1
    # a new model is a new configuration: every report is asked again
    hashes = {_stage(tmp_path, "http://127.0.0.1:9/v1", model=m)[0].config_hash() for m in "ab"}
    assert len(hashes) == 2


def test_rules_alone_stay_the_default():
    cfg = load_config(None, [])
    assert cfg.report.llm_phi is False
    assert load_config(None, ["report.llm_phi=true"]).report.llm_phi is True
