"""Rule-made VQA for one slice: structure presence (visible and absent classes of the series),
slice metadata (modality, plane, body part) and findings (abnormal/normal, sizes) from the
linked report sentences, in German and English."""

from __future__ import annotations

import re

from refrad_builder.anatomy.labels import LabelSchema
from refrad_builder.engine.records import Box, Sentence, SliceRecord, VQAItem
from refrad_builder.text import grounding
from refrad_builder.text.phrases import BODY_PARTS, PLANE_ANSWER, T, rank


def presence_vqa(sl, lang, shown, series_classes, schema, max_negatives) -> list[VQAItem]:
    t = T[lang]
    out = []
    present = [b.class_name for b in shown]
    absent = rank(sl.slice_id, [c for c in series_classes if c not in present])[:max_negatives]
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
        choices = rank(sl.slice_id + lang, [right, *absent[:3]])
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


def metadata_vqa(sl: SliceRecord, lang: str) -> list[VQAItem]:
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
            answer=PLANE_ANSWER[lang][sl.plane],
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


def findings_vqa(linked, visible, lang, schema) -> list[VQAItem]:
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
        others = [c for c in rank("mc" + lang + abnormal[0], list(visible)) if not state.get(c)]
        distractors = (normal + [c for c in others if c not in normal])[:3]
        if len(distractors) >= 2:
            choices = rank(lang + abnormal[0], [abnormal[0], *distractors])
            out.append(
                item(t["mc_abnormal_q"], name(abnormal[0]), "multiple", [name(c) for c in choices])
            )
    for cls, value in sorted(size.items())[:1]:
        out.append(item(t["size_q"].format(name=name(cls)), value, "open"))
    for cls, value in sorted(side.items())[:1]:
        out.append(item(t["side_q"].format(name=name(cls)), t["sides"][value], "open"))
    return out[:MAX_FINDINGS_VQA]
