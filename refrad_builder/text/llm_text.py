"""The LLM generator of the text stage: temporal rewrite, translation, anatomy keywords and VQA.

Rules still link report sentences to the slice and make the grounded captions (they need the
exact mention spans); the model rewrites, translates, finds anatomy the rules missed and writes
questions. A slice is done in two steps so that a whole batch of slices shares one round of
concurrent requests: :func:`prepare` lists the requests, :func:`finish` checks the answers
(:mod:`refrad_builder.text.checks`) and builds the products. What fails the checks is left out
and counted; a slice whose model output fails entirely is a drop with a reason, never an empty
success.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from refrad_builder.anatomy.labels import LabelSchema
from refrad_builder.engine.records import Box, Mention, ReportRecord, Sentence, SliceRecord, VQAItem
from refrad_builder.reports.mentions import find_mentions, states_condition
from refrad_builder.reports.temporal import is_temporal
from refrad_builder.text.checks import Findings, check_translation, check_vqa
from refrad_builder.text.llm_client import LLMAnswerError, LLMClient, Request
from refrad_builder.text.prompts import load_prompt
from refrad_builder.text.rules import LANGS, TextProducts, linked_sentences, make_products
from refrad_builder.text.rules import ground_sentence as rules_ground
from refrad_builder.text.rules import visible_classes as rules_visible


class LLMRejected(Exception):
    """The model's output for a slice failed the checks (``reason`` is a short code)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class LLMOutcome:
    """Products plus what was checked and left out. ``from_model`` is False when every answer
    failed and the rules products stand alone (``llm.on_all_rejected: rules``)."""

    products: TextProducts
    prompts: list[str]
    rejected: dict[str, int] = field(default_factory=dict)
    from_model: bool = True


@dataclass
class SlicePlan:
    """One slice's rules products and the model requests that may upgrade them."""

    sl: SliceRecord
    base: TextProducts
    src: str = "en"
    linked: list[Sentence] = field(default_factory=list)
    visible: dict[str, Box] = field(default_factory=dict)
    facts: Findings | None = None
    caption: str = ""
    requests: list[Request] = field(default_factory=list)
    # what each request is for: ("temporal", None), ("translate", None), ("keywords", i),
    # ("vqa", lang)
    purposes: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def other(self) -> str:
        return "en" if self.src == "de" else "de"

    def ask(self, purpose: tuple[str, Any], task: str, lang: str, **variables: str) -> None:
        self.purposes.append(purpose)
        self.requests.append(Request(load_prompt(task, lang), variables))


def _about_slice(s: Sentence, sl: SliceRecord, visible: dict[str, Box]) -> bool:
    """A finding sentence whose structure is visible, or that references this image."""
    return s.section in ("findings", "impression") and (
        any(m.class_name in visible for m in s.mentions)
        or any(
            r.image == sl.instance_number and r.series in (-1, sl.series_number)
            for r in s.image_refs
        )
    )


def prepare(
    sl: SliceRecord,
    report: ReportRecord | None,
    series_classes: list[str],
    schema: LabelSchema,
    max_sentences: int,
    max_negatives: int,
) -> SlicePlan:
    """The rules products and the requests for one slice (none without a linked report)."""
    base = make_products(sl, report, series_classes, schema, max_sentences, max_negatives)
    plan = SlicePlan(sl, base)
    if report is None:
        return plan
    plan.src = report.language
    plan.visible = rules_visible(sl, schema)
    plan.linked = linked_sentences(sl, report, plan.visible, max_sentences)
    plan.facts = Findings.of(plan.linked, set(plan.visible))
    plan.caption = " ".join(s.text for s in plan.linked)
    # only comparisons about this slice are worth a model rewrite
    temporal = [s for s in report.sentences if s.temporal and _about_slice(s, sl, plan.visible)]
    for s in temporal[:2]:
        plan.ask(("temporal", None), "temporal", plan.src, text=s.text)
    if plan.caption:
        plan.ask(("translate", None), "translate", plan.other, text=plan.caption)
    # the series' classes (not the slice's) keep the request the same for every slice of a
    # series, so the cache answers it once
    allowed = ", ".join(series_classes)
    for i, s in enumerate(plan.linked):
        if allowed:
            plan.ask(("keywords", i), "keywords", plan.src, classes=allowed, text=s.text)
    if plan.facts.state and plan.caption:
        for lang in LANGS:
            names = ", ".join(
                f"{n} ({schema.display(schema.by_name[n].id, lang)})"
                for n in sorted(plan.facts.state)
            )
            plan.ask(("vqa", lang), "vqa", lang, visible=names, findings=plan.caption)
    return plan


def _keyword_mentions(
    answer: dict, s: Sentence, lang: str, visible: dict[str, Box], schema: LabelSchema, reject
) -> list[Mention]:
    """Model mentions the rules did not find, checked: a known class, its words in the
    sentence, words that name no finding or state, not contradicting the rules' reading of
    those words, visible in the slice."""
    ruled = {m.class_name for m in s.mentions}
    out: list[Mention] = []
    for found in answer["mentions"]:
        cls, words = found["class"].strip(), found["keyword"].strip()
        if cls not in schema.by_name:
            reject("keywords_unknown_class")
            continue
        # on the text itself, whole words only: casefold() changes lengths ("ß" -> "ss")
        hit = (
            re.search(rf"(?<!\w){re.escape(words)}(?!\w)", s.text, re.IGNORECASE) if words else None
        )
        if hit is None:
            reject("keywords_not_in_sentence")
            continue
        if states_condition(words, lang):
            reject("keywords_not_anatomy")  # "enlarged", "effusion", "unremarkable"
            continue
        by_rules = {m.class_name for m in find_mentions(words, lang)}
        if by_rules and cls not in by_rules:
            reject("keywords_class_mismatch")
            continue
        if cls in ruled or any(m.class_name == cls for m in out):
            continue  # the rules found it already: nothing to add
        if cls not in visible:
            reject("keywords_not_visible")
            continue
        out.append(Mention(class_name=cls, abnormal=found["abnormal"], span=hit.span()))
    return out


class _Products:
    """The rules products of a slice, with checked model answers added one by one."""

    def __init__(self, plan: SlicePlan, schema: LabelSchema) -> None:
        self.plan, self.schema = plan, schema
        self.captions = {lang: list(v) for lang, v in plan.base.captions.items()}
        self.grounded = {lang: list(v) for lang, v in plan.base.grounded.items()}
        self.vqa = list(plan.base.vqa)
        self.added = 0
        self.rejected: dict[str, int] = {}

    def reject(self, code: str) -> None:
        self.rejected[code] = self.rejected.get(code, 0) + 1

    def add(self, kind: str, ctx, answer) -> None:
        if isinstance(answer, LLMAnswerError):
            self.reject(answer.reason)
        elif kind == "temporal":
            self._temporal(answer["sentence"].strip())
        elif kind == "translate":
            self._translation(answer["translation"].strip())
        elif kind == "keywords":
            self._keywords(answer, self.plan.linked[ctx])
        else:
            self._vqa(answer["items"], ctx)

    def _temporal(self, sentence: str) -> None:
        if not sentence:
            return
        if is_temporal(sentence):
            self.reject("temporal_rewrite_still_temporal")
        else:
            self.captions[self.plan.src].append(sentence)
            self.added += 1

    def _translation(self, translation: str) -> None:
        plan = self.plan
        problem = check_translation(plan.caption, plan.src, translation, plan.other)
        if problem:
            self.reject(problem)
        else:
            self.captions[plan.other].insert(0, translation)
            self.added += 1

    def _keywords(self, answer, s) -> None:
        plan = self.plan
        extra = _keyword_mentions(answer, s, plan.src, plan.visible, self.schema, self.reject)
        if not extra:
            return
        before = rules_ground(s, plan.visible, plan.sl)
        after = rules_ground(
            s.model_copy(update={"mentions": s.mentions + extra}), plan.visible, plan.sl
        )
        if after == before:  # the new span overlapped one the rules grounded
            return
        grounded = self.grounded[plan.src]
        if before in grounded:
            grounded[grounded.index(before)] = after
        else:
            grounded.insert(0, after)
        self.added += 1

    def _vqa(self, items: list, lang: str) -> None:
        for item in items:
            problem = check_vqa(item, lang, self.plan.facts)
            if problem:
                self.reject(problem)
                continue
            kind_q = item["question_type"]
            choices = [c.strip() for c in item["choices"] if c.strip()]
            self.vqa.append(
                VQAItem(
                    question=item["question"].strip(),
                    answer=item["answer"].strip(),
                    question_type=kind_q,
                    choices=choices if kind_q == "multiple" else [],
                    language=lang,
                    source="findings",
                )
            )
            self.added += 1


def finish(
    plan: SlicePlan, results: list, schema: LabelSchema, keep_rules: bool = False
) -> LLMOutcome:
    """Check the answers and build the products. A failed request's exception is raised (the
    slice is retried next run); output that fails every check raises LLMRejected, or, with
    ``keep_rules``, leaves the rules products alone."""
    if not plan.requests:  # nothing to ask (no report): the rules products as they are
        return LLMOutcome(plan.base, [], from_model=False)
    for r in results:
        # an unreachable server is transient (the slice is retried); an answer that is no
        # valid JSON of its schema, or a request the server refuses, is the same next time
        if isinstance(r, Exception) and not isinstance(r, LLMAnswerError):
            raise r
    products = _Products(plan, schema)
    for (kind, ctx), answer in zip(plan.purposes, results, strict=True):
        products.add(kind, ctx, answer)
    used = list(dict.fromkeys(r.prompt.key for r in plan.requests))
    rejected = products.rejected
    if products.added == 0:
        if keep_rules:
            return LLMOutcome(plan.base, used, rejected, from_model=False)
        raise LLMRejected(max(rejected, key=rejected.get) if rejected else "llm_output_empty")
    return LLMOutcome(
        TextProducts(products.captions, products.grounded, products.vqa, plan.base.image_refs),
        used,
        rejected,
    )


def generate_many(
    client: LLMClient, plans: list[SlicePlan], schema: LabelSchema, keep_rules: bool = False
) -> list:
    """One round of requests for a batch of slices; per slice an LLMOutcome or the exception
    (LLMRejected, or a transient LLMUnavailable/LLMAnswerError)."""
    results = client.complete_many([r for p in plans for r in p.requests])
    out: list[LLMOutcome | Exception] = []
    at = 0
    for p in plans:
        mine, at = results[at : at + len(p.requests)], at + len(p.requests)
        try:
            out.append(finish(p, mine, schema, keep_rules))
        except Exception as exc:  # per slice: one slice's failure is not the batch's
            out.append(exc)
    return out
