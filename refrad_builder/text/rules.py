"""Rule-based text products for one slice: captions, grounded captions and VQA (DE + EN).

Report sentences are linked to a slice by key-image reference first, then by mentioned
classes that are segmented in the slice (the set-intersection filter). Grounding only ever
uses classes visible in the slice, with the slice's own union boxes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from refrad_builder.anatomy.labels import LabelSchema
from refrad_builder.engine.records import Box, ReportRecord, Sentence, SliceRecord, VQAItem
from refrad_builder.reports.imagerefs import find_image_refs
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.reports.temporal import rewrite_temporal
from refrad_builder.text import grounding

LANGS = ("de", "en")
GENERATOR = "rules:1"

T = {
    "en": {
        "modality": {"CT": "CT", "MR": "MR"},
        "plane": {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal"},
        "caption": "{plane} {modality} image. Visible structures: {items}.",
        "caption_none": "{plane} {modality} image without segmented structures.",
        "grounded": "Visible structures: {items}.",
        "summary": "Report findings: {items}.",
        "summary_abnormal": "abnormal: {items}",
        "summary_normal": "unremarkable: {items}",
        "present_q": 'Is the structure "{name}" visible in this image?',
        "yes": "Yes",
        "no": "No",
        "list_q": "Which structures are segmented in this image?",
        "mc_q": "Which of the following structures is visible in this image?",
        "abnormal_q": 'According to the report, is the structure "{name}" abnormal?',
        "which_abnormal_q": "Which structures in this image are abnormal according to the report?",
        "mc_abnormal_q": "Which of these structures is abnormal according to the report?",
        "size_q": 'According to the report, how large is the finding in "{name}"?',
        "side_q": 'On which side is the finding in "{name}"?',
        "sides": {"left": "left", "right": "right"},
        "modality_q": "Which imaging modality was used?",
        "plane_q": "In which plane is this image?",
        "region_q": "Which body region does this image show?",
        "sex_q": "What is the sex of the patient?",
        "sex": {"M": "male", "F": "female", "O": "other"},
        "age_q": "How old is the patient (in years)?",
        "contrast_q": "Was contrast medium applied?",
    },
    "de": {
        "modality": {"CT": "CT", "MR": "MRT"},
        "plane": {"axial": "axiales", "coronal": "koronares", "sagittal": "sagittales"},
        "caption": "{plane} {modality}-Schnittbild. Sichtbare Strukturen: {items}.",
        "caption_none": "{plane} {modality}-Schnittbild ohne segmentierte Strukturen.",
        "grounded": "Sichtbare Strukturen: {items}.",
        "summary": "Befund laut Bericht: {items}.",
        "summary_abnormal": "auffällig: {items}",
        "summary_normal": "unauffällig: {items}",
        "present_q": "Ist die Struktur „{name}“ in diesem Bild sichtbar?",
        "yes": "Ja",
        "no": "Nein",
        "list_q": "Welche Strukturen sind in diesem Bild segmentiert?",
        "mc_q": "Welche der folgenden Strukturen ist in diesem Bild sichtbar?",
        "abnormal_q": "Ist die Struktur „{name}“ laut Befund auffällig?",
        "which_abnormal_q": "Welche Strukturen in diesem Bild sind laut Befund auffällig?",
        "mc_abnormal_q": "Welche dieser Strukturen ist laut Befund auffällig?",
        "size_q": "Wie groß ist der Befund in „{name}“ laut Befund?",
        "side_q": "Auf welcher Seite liegt der Befund in „{name}“?",
        "sides": {"left": "links", "right": "rechts"},
        "modality_q": "Mit welcher Bildgebungsmodalität wurde das Bild erstellt?",
        "plane_q": "In welcher Ebene liegt dieses Bild?",
        "region_q": "Welche Körperregion zeigt dieses Bild?",
        "sex_q": "Welches Geschlecht hat der Patient?",
        "sex": {"M": "männlich", "F": "weiblich", "O": "divers"},
        "age_q": "Wie alt ist der Patient (in Jahren)?",
        "contrast_q": "Wurde Kontrastmittel gegeben?",
    },
}
# DICOM BodyPartExamined defined terms -> (German, English) answers.
BODY_PARTS = {
    "ABDOMEN": ("Abdomen", "abdomen"),
    "CHEST": ("Thorax", "chest"),
    "THORAX": ("Thorax", "chest"),
    "CHESTABDOMEN": ("Thorax und Abdomen", "chest and abdomen"),
    "ABDOMENPELVIS": ("Abdomen und Becken", "abdomen and pelvis"),
    "CHESTABDOMENPELVIS": ("Thorax, Abdomen und Becken", "chest, abdomen and pelvis"),
    "PELVIS": ("Becken", "pelvis"),
    "HEAD": ("Kopf", "head"),
    "BRAIN": ("Gehirn", "brain"),
    "NECK": ("Hals", "neck"),
    "HEADNECK": ("Kopf und Hals", "head and neck"),
    "SPINE": ("Wirbelsäule", "spine"),
    "LSPINE": ("Lendenwirbelsäule", "lumbar spine"),
    "TSPINE": ("Brustwirbelsäule", "thoracic spine"),
    "CSPINE": ("Halswirbelsäule", "cervical spine"),
    "WHOLEBODY": ("Ganzkörper", "whole body"),
}
_PLANE_ANSWER = {
    "en": {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal"},
    "de": {"axial": "axial", "coronal": "koronar", "sagittal": "sagittal"},
}


@dataclass
class TextProducts:
    """Everything the text stage writes for one slice."""

    captions: dict[str, list[str]]
    grounded: dict[str, list[str]]
    vqa: list[VQAItem]


def _rank(seed: str, items: list[str]) -> list[str]:
    """A deterministic pseudo-random order (stable across runs and machines)."""
    return sorted(items, key=lambda s: hashlib.sha256(f"{seed}|{s}".encode()).hexdigest())


def visible_classes(sl: SliceRecord, schema: LabelSchema) -> dict[str, Box]:
    """Class name -> union box, including parents whose members are visible (lung_left)."""
    boxes = {b.class_name: b for b in sl.boxes}
    out = dict(boxes)
    for c in schema.classes:
        if c.name in out:
            continue
        members = [boxes[m] for m in schema.members(c.name) if m in boxes]
        if members:
            x0 = min(b.bbox[0] for b in members)
            y0 = min(b.bbox[1] for b in members)
            x1 = max(b.bbox[2] for b in members)
            y1 = max(b.bbox[3] for b in members)
            out[c.name] = Box(
                class_id=c.id,
                class_name=c.name,
                bbox=(x0, y0, x1, y1),
                area=sum(b.area for b in members),
            )
    return out


def linked_sentences(
    sl: SliceRecord, report: ReportRecord | None, visible: dict[str, Box], limit: int
) -> list[Sentence]:
    """Report sentences about this slice: image references first, then visible mentions.

    Sentences that compare with a prior study are rewritten by rules (the comparison
    removed, mentions found again in what is left) or left out when nothing remains.
    """
    if report is None:
        return []
    by_ref, by_mention = [], []
    for s in report.sentences:
        if s.temporal:
            s = _without_temporal(s, report.language)
            if s is None:
                continue
        if any(
            r.image == sl.instance_number and r.series in (-1, sl.series_number)
            for r in s.image_refs
        ):
            by_ref.append(s)
        elif any(m.class_name in visible for m in s.mentions) and s.section in (
            "findings",
            "impression",
        ):
            by_mention.append(s)
    return (by_ref + by_mention)[:limit]


# A section heading that ended up inside a sentence ("Befund: ...", "Findings: ...")
_HEADING = re.compile(
    r"^\s*(?:Befund|Befunde|Beurteilung|Zusammenfassung|Fragestellung|Findings|Impression|"
    r"Opinion|Conclusion|Report|Summary)\s*:\s*",
    re.IGNORECASE,
)
_EMPTY_BRACKETS = re.compile(r"[(\[]\s*(?:[,;:]\s*)*[)\]]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)])")


def clean_caption_text(text: str) -> str:
    """Caption text without key-image references ("(Bild 274)", "(series 4, image 57)") and
    without a leading section heading: the model cannot see image numbers. The references
    stay in the slice's metadata (``image_refs`` of the report sentence)."""
    for start, end in sorted(
        {span for _, span in find_image_refs(text)}, key=lambda sp: sp[0], reverse=True
    ):
        text = text[:start] + text[end:]
    text = _EMPTY_BRACKETS.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    return _HEADING.sub("", text).strip()


def _for_caption(s: Sentence, lang: str) -> Sentence | None:
    text = clean_caption_text(s.text)
    if text == s.text:
        return s
    if not text:
        return None
    return s.model_copy(update={"text": text, "mentions": find_mentions(text, lang)})


def _without_temporal(s: Sentence, lang: str) -> Sentence | None:
    text = rewrite_temporal(s.text, lang)
    if not text:
        return None
    return s.model_copy(
        update={"text": text, "mentions": find_mentions(text, lang), "temporal": False}
    )


def ground_sentence(s: Sentence, visible: dict[str, Box], sl: SliceRecord) -> str | None:
    """The sentence with each mention of a visible class wrapped in its grounding token
    (the slice's box); None when no mentioned class is visible."""
    spans = sorted(
        (m for m in s.mentions if m.class_name in visible), key=lambda m: m.span[0], reverse=True
    )
    if not spans:
        return None
    text = s.text
    last_start = len(text) + 1
    for m in spans:
        start, end = m.span
        if end > last_start:  # overlapping spans: keep the later one only
            continue
        b = visible[m.class_name]
        text = (
            text[:start]
            + grounding.token(b.class_id, text[start:end], b.bbox, sl.width, sl.height)
            + text[end:]
        )
        last_start = start
    return text


def make_products(
    sl: SliceRecord,
    report: ReportRecord | None,
    series_classes: list[str],
    schema: LabelSchema,
    max_sentences: int,
    max_negatives: int,
) -> TextProducts:
    """Captions, grounded captions and VQA for one slice in German and English."""
    visible = visible_classes(sl, schema)
    shown = [b for b in sorted(sl.boxes, key=lambda b: -b.area)]
    captions: dict[str, list[str]] = {lang: [] for lang in LANGS}
    grounded: dict[str, list[str]] = {lang: [] for lang in LANGS}
    vqa: list[VQAItem] = []

    linked = linked_sentences(sl, report, visible, max_sentences)
    # TODO(issue 14): apply _for_caption here once publish/refrad2d/export.py's
    # report_snippets decomposes captions into cleaned sentences (clean_caption_text);
    # today it matches raw report sentences and would lose CleanedSentence.
    if report is not None and linked:
        captions[report.language].append(" ".join(s.text for s in linked))
        for s in linked:
            g = ground_sentence(s, visible, sl)
            if g:
                grounded[report.language].append(g)
        other = "en" if report.language == "de" else "de"
        summary = finding_summary(linked, other, schema)
        if summary:
            captions[other].append(summary)
            summary_grounded = finding_summary(linked, other, schema, visible, sl)
            if summary_grounded != summary:  # only when at least one structure is visible
                grounded[other].append(summary_grounded)

    for lang in LANGS:
        t = T[lang]
        plane = t["plane"][sl.plane]
        modality = t["modality"].get(sl.modality, sl.modality)
        names = [schema.display(b.class_id, lang) for b in shown]
        if names:
            captions[lang].append(
                t["caption"].format(
                    plane=plane.capitalize(), modality=modality, items=", ".join(names)
                )
            )
            items = ", ".join(
                grounding.token(
                    b.class_id, schema.display(b.class_id, lang), b.bbox, sl.width, sl.height
                )
                for b in shown
            )
            grounded[lang].append(t["grounded"].format(items=items))
        else:
            captions[lang].append(
                t["caption_none"].format(plane=plane.capitalize(), modality=modality)
            )
        vqa.extend(_presence(sl, lang, shown, series_classes, schema, max_negatives))
        vqa.extend(_metadata(sl, lang))
        vqa.extend(_findings(linked, visible, lang, schema))
    return TextProducts(captions=captions, grounded=grounded, vqa=vqa)


def _presence(sl, lang, shown, series_classes, schema, max_negatives) -> list[VQAItem]:
    t = T[lang]
    out = []
    present = [b.class_name for b in shown]
    absent = _rank(sl.slice_id, [c for c in series_classes if c not in present])[:max_negatives]
    for name in present[:max_negatives]:
        out.append(
            VQAItem(
                question=t["present_q"].format(name=schema.display(schema.by_name[name].id, lang)),
                answer=t["yes"],
                question_type="closed",
                language=lang,
                source="presence",
            )
        )
    for name in absent:
        out.append(
            VQAItem(
                question=t["present_q"].format(name=schema.display(schema.by_name[name].id, lang)),
                answer=t["no"],
                question_type="closed",
                language=lang,
                source="presence",
            )
        )
    if present:
        out.append(
            VQAItem(
                question=t["list_q"],
                answer=", ".join(schema.display(schema.by_name[n].id, lang) for n in present),
                question_type="open",
                language=lang,
                source="presence",
            )
        )
    if present and len(absent) >= 2:
        right = present[0]
        choices = _rank(sl.slice_id + lang, [right, *absent[:3]])
        out.append(
            VQAItem(
                question=t["mc_q"],
                answer=schema.display(schema.by_name[right].id, lang),
                question_type="multiple",
                choices=[schema.display(schema.by_name[c].id, lang) for c in choices],
                language=lang,
                source="presence",
            )
        )
    return out


def _metadata(sl: SliceRecord, lang: str) -> list[VQAItem]:
    t = T[lang]
    out = [
        VQAItem(
            question=t["modality_q"],
            answer=t["modality"].get(sl.modality, sl.modality),
            question_type="open",
            language=lang,
            source="metadata",
        ),
        VQAItem(
            question=t["plane_q"],
            answer=_PLANE_ANSWER[lang][sl.plane],
            question_type="open",
            language=lang,
            source="metadata",
        ),
    ]
    region = BODY_PARTS.get((sl.body_part or "").upper().replace(" ", ""))
    if region:
        out.append(
            VQAItem(
                question=t["region_q"],
                answer=region[0 if lang == "de" else 1],
                question_type="open",
                language=lang,
                source="metadata",
            )
        )
    if sl.sex in t["sex"]:
        out.append(
            VQAItem(
                question=t["sex_q"],
                answer=t["sex"][sl.sex],
                question_type="open",
                language=lang,
                source="metadata",
            )
        )
    if sl.age_years is not None and sl.age_years <= 89:
        out.append(
            VQAItem(
                question=t["age_q"],
                answer=str(sl.age_years),
                question_type="open",
                language=lang,
                source="metadata",
            )
        )
    if sl.contrast is not None:
        out.append(
            VQAItem(
                question=t["contrast_q"],
                answer=t["yes"] if sl.contrast else t["no"],
                question_type="closed",
                language=lang,
                source="metadata",
            )
        )
    return out


_MEASURE = re.compile(r"\b\d+(?:[.,]\d+)?\s*(?:x\s*\d+(?:[.,]\d+)?\s*)?(?:mm|cm)\b")
MAX_FINDINGS_VQA = 5


def _decimal(value: str, lang: str) -> str:
    """A measurement with the target language's decimal separator (de: comma, en: point)."""
    return re.sub(r"(\d)[.,](\d)", r"\1,\2" if lang == "de" else r"\1.\2", value)


def finding_summary(
    linked: list[Sentence],
    lang: str,
    schema: LabelSchema,
    visible: dict[str, Box] | None = None,
    sl: SliceRecord | None = None,
) -> str | None:
    """A rule-made translation of the linked findings: a structured summary in ``lang``.

    Each mentioned structure is listed once (first mention order) as abnormal, with the first
    measurement of a sentence calling it abnormal, or unremarkable. Free text is not
    translated, so nothing is said that the rules did not extract. With ``visible`` and ``sl``
    the names of structures visible in the slice become grounding tokens with their boxes.
    None when the sentences mention no structure.
    """
    t = T[lang]
    state: dict[str, bool] = {}
    size: dict[str, str] = {}
    for s in linked:
        found = _MEASURE.search(s.text)
        for m in s.mentions:
            if m.class_name not in schema.by_name:
                continue
            state[m.class_name] = state.get(m.class_name, False) or m.abnormal
            if m.abnormal and found:
                size.setdefault(m.class_name, _decimal(found.group(0), lang))
    if not state:
        return None

    def name(cls: str) -> str:
        text = schema.display(schema.by_name[cls].id, lang)
        if visible is not None and sl is not None and cls in visible:
            b = visible[cls]
            text = grounding.token(b.class_id, text, b.bbox, sl.width, sl.height)
        return f"{text} ({size[cls]})" if cls in size else text

    parts = []
    abnormal = [c for c, v in state.items() if v]
    normal = [c for c, v in state.items() if not v]
    if abnormal:
        parts.append(t["summary_abnormal"].format(items=", ".join(name(c) for c in abnormal)))
    if normal:
        parts.append(t["summary_normal"].format(items=", ".join(name(c) for c in normal)))
    return t["summary"].format(items="; ".join(parts))


def _findings(linked, visible, lang, schema) -> list[VQAItem]:
    """Up to five questions from the linked findings about visible structures: yes/no on
    abnormality, which structure is abnormal (open and multiple choice), size, side."""
    t = T[lang]
    state: dict[str, bool] = {}
    side: dict[str, str] = {}
    size: dict[str, str] = {}
    for s in linked:
        for m in s.mentions:
            if m.class_name not in visible:
                continue
            state[m.class_name] = state.get(m.class_name, False) or m.abnormal
            if m.abnormal and m.laterality in ("left", "right"):
                side.setdefault(m.class_name, m.laterality)
            found = _MEASURE.search(s.text)
            if m.abnormal and found:
                # the answer's decimal separator follows the question's language
                size.setdefault(m.class_name, _decimal(found.group(0), lang))

    def name(cls: str) -> str:
        return schema.display(schema.by_name[cls].id, lang)

    def item(q, a, kind="closed", choices=()):
        return VQAItem(
            question=q,
            answer=a,
            question_type=kind,
            choices=list(choices),
            language=lang,
            source="findings",
        )

    abnormal = sorted(c for c, v in state.items() if v)
    normal = sorted(c for c, v in state.items() if not v)
    out = [
        item(t["abnormal_q"].format(name=name(c)), t["yes"] if state[c] else t["no"])
        for c in sorted(state)
    ][:2]
    if abnormal:
        out.append(item(t["which_abnormal_q"], ", ".join(name(c) for c in abnormal), "open"))
        others = [c for c in _rank("mc" + lang + abnormal[0], list(visible)) if not state.get(c)]
        distractors = (normal + [c for c in others if c not in normal])[:3]
        if len(distractors) >= 2:
            choices = _rank(lang + abnormal[0], [abnormal[0], *distractors])
            out.append(
                item(t["mc_abnormal_q"], name(abnormal[0]), "multiple", [name(c) for c in choices])
            )
    for cls, value in sorted(size.items())[:1]:
        out.append(item(t["size_q"].format(name=name(cls)), value, "open"))
    for cls, value in sorted(side.items())[:1]:
        out.append(item(t["side_q"].format(name=name(cls)), t["sides"][value], "open"))
    return out[:MAX_FINDINGS_VQA]
