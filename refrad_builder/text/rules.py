"""Rule-based text products for one slice: captions, grounded captions and VQA (DE + EN).

Report sentences are linked to a slice by key-image reference first, then by mentioned
classes that are segmented in the slice (the set-intersection filter). Grounding only ever
uses classes visible in the slice, with the slice's own union boxes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from refrad_builder.anatomy.labels import LabelSchema
from refrad_builder.engine.records import (
    Box,
    ImageRef,
    ReportRecord,
    Sentence,
    SliceRecord,
    VQAItem,
)
from refrad_builder.reports.imagerefs import find_image_refs
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.reports.temporal import rewrite_temporal
from refrad_builder.text import grounding
from refrad_builder.text.phrases import LANGS, T
from refrad_builder.text.rules_vqa import finding_summary, findings_vqa, metadata_vqa, presence_vqa


@dataclass
class TextProducts:
    """Everything the text stage writes for one slice. ``image_refs``: the key-image
    references of the linked report sentences, kept as metadata since the caption text no
    longer names them."""

    captions: dict[str, list[str]]
    grounded: dict[str, list[str]]
    vqa: list[VQAItem]
    image_refs: list[ImageRef] = field(default_factory=list)


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
    """Report sentences about this slice: image references first, then visible mentions,
    each as :func:`caption_sentence` makes it (comparisons rewritten, key-image references
    and headings removed from the text, the references kept in ``image_refs``)."""
    if report is None:
        return []
    by_ref, by_mention = [], []
    for raw in report.sentences:
        s = caption_sentence(raw, report.language)
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
# what pointed at a removed reference ("see", "siehe", "vgl.") before the end of its clause
_POINTER = re.compile(r"[,;]?\s*\b(?:see|cf\.?|siehe|s\.|vgl\.?)\s*(?=[.,;:)]|$)", re.IGNORECASE)
_LEAD_PUNCT = re.compile(r"^[\s,;:]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)])")


def clean_caption_text(text: str) -> str:
    """Caption text without key-image references ("(Bild 274)", "(series 4, image 57)") and
    without a leading section heading: the model cannot see image numbers. The references
    stay in the slice's metadata (``image_refs`` of the report sentence)."""
    for start, end in sorted(
        {span for _, span in find_image_refs(text)}, key=lambda sp: sp[0], reverse=True
    ):
        text = text[:start] + text[end:]
    text = _POINTER.sub("", text)
    text = _EMPTY_BRACKETS.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    text = _LEAD_PUNCT.sub("", _HEADING.sub("", text)).strip()
    # a sentence that was only a reference ("(Bild 274)") or a heading leaves nothing to say
    return text if re.search(r"\w", text) else ""


def caption_sentence(s: Sentence, lang: str) -> Sentence | None:
    """A report sentence as captions, grounded captions and VQA use it: a comparison with a
    prior study rewritten (or None when nothing verifiable remains), key-image references
    and a leading heading removed from the text (:func:`clean_caption_text`); mentions are
    found again in the new text; ``image_refs`` keeps the references. The RefRad2D export
    matches caption text against the same function's output."""
    if s.temporal:
        rewritten = _without_temporal(s, lang)
        if rewritten is None:
            return None
        s = rewritten
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
    refs: list[ImageRef] = []
    for s in linked:
        refs.extend(r for r in s.image_refs if r not in refs)
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
        vqa.extend(presence_vqa(sl, lang, shown, series_classes, schema, max_negatives))
        vqa.extend(metadata_vqa(sl, lang))
        vqa.extend(findings_vqa(linked, visible, lang, schema))
    return TextProducts(captions=captions, grounded=grounded, vqa=vqa, image_refs=refs)
