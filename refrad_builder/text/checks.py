"""Checks of model answers against the report and the slice, with the project's own rules.

A schema-valid answer can still be wrong: a translation that drops a finding or changes a
number, a question about a structure the findings never mention, a yes/no answer that
contradicts the report. Each check returns ``None`` (passed) or a short reason code; what
fails is left out and counted, never used.

The report facts come from the rule extractor (:func:`~refrad_builder.reports.mentions.
find_mentions`, mention P 0.998 / R 0.996 on the project's corpus), which reads the model's
German or English output the same way it reads the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.records import Sentence
from refrad_builder.reports.language import detect_language
from refrad_builder.reports.mentions import find_mentions, states_condition
from refrad_builder.reports.sentences import split_sentences

YES = {"en": "Yes", "de": "Ja"}
NO = {"en": "No", "de": "Nein"}
# digits bound the number, letters do not: "23mm", "2,3x1,5cm", "L4" and "7th" all count
_NUMBER = re.compile(r"(?<![\d.,])\d+(?:[.,]\d+)?(?![\d]|[.,]\d)")
_SIDE = {
    "left": re.compile(r"\b(?:left|links|linke[nmrs]?)\b", re.IGNORECASE),
    "right": re.compile(r"\b(?:right|rechts|rechte[nmrs]?)\b", re.IGNORECASE),
}
# Fewer words than this are too short for langdetect; cue words decide or nothing does.
_MIN_WORDS_FOR_LANGUAGE = 4


def numbers(text: str) -> set[str]:
    """The numbers of a text, decimal comma and point alike ("2,30" and "2.3" -> "2.3")."""
    out = set()
    for raw in _NUMBER.findall(text):
        value = raw.replace(",", ".")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        out.add(value.lstrip("0") or "0")
    return out


def state_of(text: str, lang: str) -> dict[str, bool]:
    """Class -> abnormal (any abnormal mention wins) over the sentences of ``text``."""
    state: dict[str, bool] = {}
    for s in split_sentences(text):
        for m in find_mentions(s.text, lang):
            state[m.class_name] = state.get(m.class_name, False) or m.abnormal
    return state


def wrong_language(text: str, lang: str) -> bool:
    """Whether a text long enough to judge is not in ``lang``."""
    return len(text.split()) >= _MIN_WORDS_FOR_LANGUAGE and detect_language(text) != lang


@lru_cache(maxsize=4096)
def family(cls: str) -> frozenset[str]:
    """A class with its members and its ancestors: "lung_right" is about its lobes and a
    lobe is about its lung, so either answers a mention of the other."""
    sch = schema()
    out = set(sch.members(cls)) if cls in sch.by_name else {cls}
    node = sch.by_name.get(cls)
    while node is not None and node.parent:
        out.add(node.parent)
        node = sch.by_name.get(node.parent)
    return frozenset(out)


def _abnormal_in(cls: str, state: dict[str, bool]) -> bool | None:
    """Whether ``state`` calls ``cls`` (or a relative) abnormal; None when it is not there."""
    related = [v for c, v in state.items() if c in family(cls)]
    return any(related) if related else None


def check_translation(source: str, src: str, translation: str, dst: str) -> str | None:
    """Same language as asked, same numbers, every structure kept with its abnormal flag, no
    abnormal structure added. A structure the translation adds as normal passes: the two
    languages' words differ in what they name ("kein Harnstau" has no organ word, "no
    hydronephrosis" names the kidneys)."""
    if wrong_language(translation, dst):
        return "translation_wrong_language"
    if numbers(source) != numbers(translation):
        return "translation_numbers_differ"
    before, after = state_of(source, src), state_of(translation, dst)
    for cls, abnormal in before.items():
        found = _abnormal_in(cls, after)
        if found is None:
            return "translation_lost_structure"
        if found != abnormal:
            return "translation_abnormal_differs"
    for cls, abnormal in after.items():
        if abnormal and _abnormal_in(cls, before) is None:
            return "translation_added_finding"
    return None


@dataclass
class Findings:
    """What the linked findings say about the slice, for checking questions and answers.

    ``state``: structures that are mentioned *and* visible -> abnormal; ``mentioned``: every
    class any linked sentence mentions; ``sides``: lateralities the findings state.
    """

    text: str
    state: dict[str, bool]
    mentioned: set[str]
    numbers: set[str]
    sides: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, linked: list[Sentence], visible: set[str]) -> Findings:
        """The facts of the linked sentences (their rule mentions) about visible classes."""
        state: dict[str, bool] = {}
        sides: set[str] = set()
        for s in linked:
            for m in s.mentions:
                if m.laterality == "bilateral":
                    sides |= {"left", "right"}
                elif m.laterality:
                    sides.add(m.laterality)
                if m.class_name in visible:
                    state[m.class_name] = state.get(m.class_name, False) or m.abnormal
        text = " ".join(s.text for s in linked)
        mentioned = {m.class_name for s in linked for m in s.mentions}
        return cls(text, state, mentioned, numbers(text), sides)


def check_vqa(item: dict, lang: str, facts: Findings) -> str | None:
    """One model-written question-answer pair against the findings and the slice."""
    structure = item["structure"].strip()
    if structure not in facts.state:
        return "vqa_structure_not_visible_or_not_in_findings"
    q, a, kind = item["question"].strip(), item["answer"].strip(), item["question_type"]
    if wrong_language(q, lang):
        return "vqa_wrong_language"
    if kind == "closed" and a not in (YES[lang], NO[lang]):
        return "vqa_closed_answer_not_yes_no"
    choices = [c.strip() for c in item["choices"] if c.strip()]
    if kind == "multiple" and (a not in choices or not 3 <= len(choices) <= 4):
        return "vqa_multiple_choice_inconsistent"
    if not numbers(f"{q} {a}") <= facts.numbers:
        return "vqa_numbers_not_in_findings"
    in_question = find_mentions(q, lang)
    for mentions in (in_question, find_mentions(a, lang)):
        # A group ("Lunge" -> five lobes) is one hit with one span: it passes when any of
        # its classes is in the findings.
        by_span: dict[tuple[int, int], set[str]] = {}
        for m in mentions:
            by_span.setdefault(m.span, set()).add(m.class_name)
        if any(
            not any(family(c) & facts.mentioned for c in classes) for classes in by_span.values()
        ):
            return "vqa_anatomy_not_in_findings"
    if kind != "multiple":
        stated = {side for side, rx in _SIDE.items() if rx.search(a)}
        if stated - facts.sides:
            return "vqa_side_not_in_findings"
    about = [m for m in in_question if m.class_name in facts.state]
    if kind == "closed" and about:
        if states_condition(q, lang):
            # The question's own mention says whether it asks about an abnormality ("Is there
            # a lesion in the liver?") or about normality ("Is the liver unremarkable?").
            asks_abnormal = any(m.abnormal for m in about)
            is_abnormal = any(facts.state[m.class_name] for m in about)
            expected = YES[lang] if asks_abnormal == is_abnormal else NO[lang]
        else:
            expected = YES[lang]  # "Is the liver visible?": it is, or it would not be asked
        if a != expected:
            return "vqa_answer_contradicts_findings"
    return None
