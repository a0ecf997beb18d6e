"""A scripted "model" behind the stub server: it answers each prompt task from the request
text, some answers right and some deliberately wrong, so tests can check what the text stage
keeps and what it rejects (and why).

Right answers are built with the project's rule extractor, so they pass the checks when the
checks work; each wrong answer breaks exactly one check.
"""

from __future__ import annotations

import json
import re

from refrad_builder.anatomy.labels import schema
from refrad_builder.reports.language import detect_language
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.reports.sentences import split_sentences
from refrad_builder.text.checks import NO, YES, numbers, state_of

# the wrong VQA answers, one per check, with the reason the stage must count
WRONG_VQA = {
    "vqa_structure_not_visible_or_not_in_findings": "brain",
    "vqa_closed_answer_not_yes_no": "maybe",
    "vqa_numbers_not_in_findings": "97.5 cm",
    "vqa_answer_contradicts_findings": "flip",
}


def task_of(body: dict) -> str:
    """``translate.en``, ``temporal``, ``keywords``, ``vqa.de``... from the request."""
    user = body["messages"][-1]["content"]
    if '"translation"' in user:
        return "translate.de" if "Übersetze" in user else "translate.en"
    if '"sentence"' in user:
        return "temporal"
    if '"mentions"' in user:
        return "keywords"
    if '"items"' in user:
        return "vqa.de" if "Befunde" in user else "vqa.en"
    raise ValueError("unknown task")


def _field(user: str, label: str) -> str:
    m = re.search(rf"^{label}:\s*(.*)$", user, re.MULTILINE)
    return m.group(1).strip() if m else ""


def _name(cls: str, lang: str) -> str:
    shown = schema().display(schema().by_name[cls].id, lang)
    for side in (" right", " left"):
        if lang == "en" and shown.endswith(side):
            return f"{side.strip()} {shown[: -len(side)]}"
    return shown


def translate(text: str, src: str, dst: str) -> str:
    """A "translation" that keeps structures, abnormal flags and numbers (what is checked)."""
    out = []
    for s in split_sentences(text):
        for cls, abnormal in state_of(s.text, src).items():
            name = _name(cls, dst)
            if dst == "en":
                out.append(
                    f"There is a lesion in the {name}."
                    if abnormal
                    else f"The {name} is unremarkable."
                )
            else:
                out.append(f"{name} mit Läsion." if abnormal else f"{name} unauffällig.")
    values = sorted(numbers(text))
    if values:
        shown = [v.replace(".", ",") if dst == "de" else v for v in values]
        out.append(("Werte: " if dst == "de" else "Values: ") + "; ".join(shown) + ".")
    return " ".join(out) or ("Kein Befund." if dst == "de" else "No finding.")


def keywords(user: str, lang: str) -> dict:
    """The rules' own mentions, one plausible extra the rules missed (a finding word claimed
    as a visible class), and three wrong ones (unknown class, words not in the sentence, a
    class that contradicts the words)."""
    sentence = _field(user, "Satz" if lang == "de" else "Sentence")
    allowed = [
        c.strip()
        for c in _field(
            user, "Erlaubte Klassennamen" if lang == "de" else "Allowed class names"
        ).split(",")
        if c.strip()
    ]
    found = find_mentions(sentence, lang)
    mentions = [
        {"class": m.class_name, "abnormal": m.abnormal, "keyword": sentence[m.span[0] : m.span[1]]}
        for m in found
    ]
    unused = [c for c in allowed if c not in {m.class_name for m in found}]
    words = [w for w in re.findall(r"\w{5,}", sentence) if not find_mentions(w, lang)]
    if unused and words:
        mentions.append({"class": unused[0], "abnormal": True, "keyword": words[0]})
    mentions.append({"class": "liverr", "abnormal": True, "keyword": sentence.split()[0]})
    mentions.append(
        {"class": allowed[0] if allowed else "liver", "abnormal": True, "keyword": "zebra crossing"}
    )
    if found:
        m = found[0]
        other = "brain" if m.class_name != "brain" else "liver"
        mentions.append(
            {"class": other, "abnormal": True, "keyword": sentence[m.span[0] : m.span[1]]}
        )
    return {"mentions": mentions}


def vqa(user: str, lang: str) -> dict:
    """One right closed question about the first listed structure, plus one wrong item per
    entry of :data:`WRONG_VQA`."""
    listed = _field(
        user, "Im Bild sichtbare Strukturen" if lang == "de" else "Structures visible in the image"
    )
    findings = _field(user, "Befunde" if lang == "de" else "Findings")
    structure = listed.split(",")[0].split("(")[0].strip()
    name = _name(structure, lang)
    state = state_of(findings, detect_language(findings))
    abnormal = state.get(structure, True)
    q = (
        f"Zeigt die Struktur {name} eine Läsion?"
        if lang == "de"
        else f"Is there a lesion in the {name}?"
    )
    right = YES[lang] if abnormal else NO[lang]
    wrong = NO[lang] if abnormal else YES[lang]

    def item(question, answer, about=structure):
        return {
            "question": question,
            "answer": answer,
            "question_type": "closed",
            "choices": [],
            "structure": about,
        }

    size_q = (
        f"Wie groß ist der Befund in {name}?"
        if lang == "de"
        else f"How large is the finding in the {name}?"
    )
    return {
        "items": [
            item(q, right),
            item(q, right, about=WRONG_VQA["vqa_structure_not_visible_or_not_in_findings"]),
            item(q, WRONG_VQA["vqa_closed_answer_not_yes_no"]),
            {**item(size_q, WRONG_VQA["vqa_numbers_not_in_findings"]), "question_type": "open"},
            item(q, wrong),
        ]
    }


def answer(body: dict) -> tuple[int, str]:
    """The stub server's answer function."""
    task = task_of(body)
    user = body["messages"][-1]["content"]
    if task.startswith("translate"):
        dst = task[-2:]
        text = re.sub(r"^.*?(?:German text|Englischer Text):\s*", "", user, flags=re.DOTALL)
        return 200, json.dumps({"translation": translate(text, "de" if dst == "en" else "en", dst)})
    if task == "temporal":
        return 200, json.dumps({"sentence": ""})
    if task == "keywords":
        lang = "de" if "Satz:" in user else "en"
        return 200, json.dumps(keywords(user, lang))
    return 200, json.dumps(vqa(user, task[-2:]))
