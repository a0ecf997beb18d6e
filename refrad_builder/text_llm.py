"""The LLM generator of the text stage: temporal rewrite, translation and VQA, all checked.

Rules still link report sentences to the slice and make the grounded captions (they need the
exact mention spans); the model rewrites, translates and writes questions. Every answer is
checked against the report and the slice before it is used: VQA only about structures that
are visible in the slice *and* mentioned in the linked findings, closed answers from the
language's yes/no, multiple-choice answers among their choices, text in the requested
language. What fails the checks is left out and counted; a slice whose model output fails
entirely is a drop with a reason, never an empty success.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refrad_builder.anatomy import LabelSchema
from refrad_builder.llm import LLMClient, Request
from refrad_builder.prompts import load_prompt
from refrad_builder.records import ReportRecord, SliceRecord, VQAItem
from refrad_builder.reports.language import detect_language
from refrad_builder.reports.temporal import is_temporal
from refrad_builder.text_rules import LANGS, TextProducts, linked_sentences, make_products
from refrad_builder.text_rules import visible_classes as rules_visible

YES_NO = {"en": {"Yes", "No"}, "de": {"Ja", "Nein"}}
TASKS = ("temporal", "translate", "vqa")


class LLMRejected(Exception):
    """The model's output for a slice failed the checks (``reason`` is a short code)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class LLMOutcome:
    """Products plus what was checked and left out."""

    products: TextProducts
    prompts: list[str]
    rejected: dict[str, int] = field(default_factory=dict)


def prompt_ids(src: str) -> list[str]:
    """The prompt keys a slice with a report in ``src`` may use (for provenance/fingerprints)."""
    other = "en" if src == "de" else "de"
    return [
        load_prompt("temporal", src).key,
        load_prompt("translate", other).key,
        *(load_prompt("vqa", lang).key for lang in LANGS),
    ]


def _first(results, i):
    """The i-th answer; a failed request's exception is raised (the item is retried)."""
    if isinstance(results[i], Exception):
        raise results[i]
    return results[i]


def generate(
    client: LLMClient,
    sl: SliceRecord,
    report: ReportRecord | None,
    series_classes: list[str],
    schema: LabelSchema,
    max_sentences: int,
    max_negatives: int,
) -> LLMOutcome:
    """Rules products, upgraded by checked model output. Raises LLMUnavailable/LLMAnswerError
    (transient: retried next run) or LLMRejected (permanent for this prompt version)."""
    base = make_products(sl, report, series_classes, schema, max_sentences, max_negatives)
    if report is None:
        return LLMOutcome(base, [])
    visible = rules_visible(sl, schema)
    src = report.language
    other = "en" if src == "de" else "de"
    # only comparisons about this slice: a mentioned structure is visible, or it is referenced
    with_temporal = [
        s
        for s in report.sentences
        if s.temporal
        and s.section in ("findings", "impression")
        and (
            any(m.class_name in visible for m in s.mentions)
            or any(
                r.image == sl.instance_number and r.series in (-1, sl.series_number)
                for r in s.image_refs
            )
        )
    ]
    linked = linked_sentences(sl, report, visible, max_sentences)
    mentioned = {m.class_name for s in linked for m in s.mentions if m.class_name in visible}
    requests = [Request(load_prompt("temporal", src), {"text": s.text}) for s in with_temporal[:2]]
    n_temporal = len(requests)
    caption = " ".join(s.text for s in linked)
    if caption:
        requests.append(Request(load_prompt("translate", other), {"text": caption}))
    vqa_at = len(requests)
    if mentioned and caption:
        for lang in LANGS:
            names = ", ".join(
                f"{n} ({schema.display(schema.by_name[n].id, lang)})" for n in sorted(mentioned)
            )
            requests.append(
                Request(load_prompt("vqa", lang), {"visible": names, "findings": caption})
            )
    if not requests:
        return LLMOutcome(base, [])
    results = client.complete_many(requests)
    rejected: dict[str, int] = {}

    def reject(code: str) -> None:
        rejected[code] = rejected.get(code, 0) + 1

    captions = {lang: list(v) for lang, v in base.captions.items()}
    for i in range(n_temporal):
        sentence = _first(results, i)["sentence"].strip()
        if not sentence:
            continue
        if is_temporal(sentence):
            reject("temporal_rewrite_still_temporal")
        else:
            captions[src].append(sentence)
    if caption:
        translation = _first(results, n_temporal)["translation"].strip()
        if len(translation.split()) >= 4 and detect_language(translation) != other:
            reject("translation_wrong_language")
        else:
            captions[other].insert(0, translation)
    vqa = list(base.vqa)
    if vqa_at < len(requests):
        for j, lang in enumerate(LANGS):
            for item in _first(results, vqa_at + j)["items"]:
                checked = _check_vqa(item, lang, mentioned, schema)
                if isinstance(checked, str):
                    reject(checked)
                else:
                    vqa.append(checked)
    used = [r.prompt.key for r in requests]
    produced_llm = sum(len(captions[lang]) - len(base.captions[lang]) for lang in LANGS) + (
        len(vqa) - len(base.vqa)
    )
    if produced_llm == 0:
        raise LLMRejected(max(rejected, key=rejected.get) if rejected else "llm_output_empty")
    return LLMOutcome(TextProducts(captions, base.grounded, vqa), used, rejected)


def _check_vqa(item: dict, lang: str, mentioned: set[str], schema: LabelSchema) -> VQAItem | str:
    structure = item["structure"].strip()
    if structure not in mentioned:
        return "vqa_structure_not_visible_or_not_in_findings"
    q, a, kind = item["question"].strip(), item["answer"].strip(), item["question_type"]
    if len(q.split()) >= 4 and detect_language(q) != lang:
        return "vqa_wrong_language"
    if kind == "closed" and a not in YES_NO[lang]:
        return "vqa_closed_answer_not_yes_no"
    choices = [c.strip() for c in item["choices"] if c.strip()]
    if kind == "multiple" and (a not in choices or not 3 <= len(choices) <= 4):
        return "vqa_multiple_choice_inconsistent"
    if kind != "multiple":
        choices = []
    return VQAItem(
        question=q,
        answer=a,
        question_type=kind,
        choices=choices,
        language=lang,
        source="findings",
    )
