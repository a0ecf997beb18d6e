"""The text of the export's rows: report snippets in both languages, boxes from the mask,
keywords that occur in the caption, VQA items, one Parquet row per slice."""

from __future__ import annotations

import numpy as np

from refrad_builder.anatomy.labels import LabelSchema, in_published_map
from refrad_builder.engine.records import ReportRecord, Sample, VQAItem
from refrad_builder.publish.refrad2d.layout import (
    LANGUAGES,
    ExportItem,
)
from refrad_builder.publish.refrad2d.models import (
    Refrad2DLanguage,
    Refrad2DReportRow,
    Refrad2DVQA,
)
from refrad_builder.text import grounding
from refrad_builder.text.rules import caption_sentence


def _clean(text: str | None) -> str | None:
    """Whitespace collapsed to single spaces; None for nothing."""
    if text is None:
        return None
    out = " ".join(text.split())
    return out or None


def _decompose(caption: str, sentences: list[str]) -> list[str] | None:
    """``caption`` as report sentences joined by single spaces, or None."""
    candidates = sorted({s for s in sentences if s}, key=lambda s: (-len(s), s))
    dead: set[int] = set()

    def walk(pos: int) -> list[str] | None:
        if pos in dead:
            return None
        for s in candidates:
            if not caption.startswith(s, pos):
                continue
            end = pos + len(s)
            if end == len(caption):
                return [s]
            if caption.startswith(" ", end):
                rest = walk(end + 1)
                if rest is not None:
                    return [s, *rest]
        dead.add(pos)
        return None

    return walk(0) if caption else None


def caption_texts(report: ReportRecord) -> list[str]:
    """Every form a report sentence can take in a caption: as the text stage makes it
    (:func:`~refrad_builder.text.rules.caption_sentence`: comparisons rewritten, key-image
    references and headings removed) and, for samples written before that, as it stands."""
    texts = [s.text for s in report.sentences]
    for s in report.sentences:
        cleaned = caption_sentence(s, report.language)
        if cleaned is not None:
            texts.append(cleaned.text)
    return texts


def report_snippets(sample: Sample, report: ReportRecord | None) -> list[str]:
    """The report sentences, in their caption form, that make up the sample's report caption
    (in order), if any."""
    if report is None:
        return []
    texts = caption_texts(report)
    for caption in sample.captions.get(report.language, []):
        parts = _decompose(caption, texts)
        if parts:
            return parts
    return []


def translation(sample: Sample, report: ReportRecord | None, snippets: list[str]) -> str:
    """The text stage's translation of the linked report text into the other language.

    Both generators put it first among the other language's captions (the rules' finding
    summary, or the model's checked translation before it), and always end that list with the
    descriptive caption of the slice; "" when the slice has no linked report text or no
    translation was made.
    """
    if report is None or not snippets:
        return ""
    other = "en" if report.language == "de" else "de"
    captions = sample.captions.get(other, [])
    return _clean(captions[0]) or "" if len(captions) >= 2 else ""


def mask_boxes(mask: np.ndarray, min_area: int = 0) -> list[tuple[int, int, int, int, int]]:
    """``[x_min, y_min, x_max, y_max, class_id]`` of every class in ``mask`` (max edges
    exclusive, one union box per class as RefRad2D's generator merges them), ascending class
    id; classes with fewer than ``min_area`` pixels get none."""
    out = []
    ids, areas = np.unique(mask, return_counts=True)
    for cid, area in zip(ids.tolist(), areas.tolist(), strict=True):
        if cid == 0 or area < min_area:
            continue
        ys, xs = np.nonzero(mask == cid)
        out.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, cid))
    return out


def keywords(
    grounded: list[str], caption: str, present: set[int], label_schema: LabelSchema
) -> list[tuple[str, str, int]]:
    """``(phrase, class_name, class_id)`` as RefRad2D's generator keeps them: grounded phrases
    of published classes present in the mask that occur in ``caption``, shortest first, a
    phrase left out when it occurs in one already kept."""
    found: list[tuple[str, str, int]] = []
    for text in grounded:
        for class_id, _bins, phrase in grounding.parse(text):
            cls = label_schema.by_id.get(class_id)
            if (
                cls is None
                or not in_published_map(class_id)
                or class_id not in present
                or phrase not in caption
                or (phrase, cls.name, class_id) in found
            ):
                continue
            found.append((phrase, cls.name, class_id))
    found.sort(key=lambda k: len(k[0]))
    out: list[tuple[str, str, int]] = []
    for kw in found:
        if not any(kw[0] in kept[0] for kept in out):
            out.append(kw)
    return out


def _vqa(item: VQAItem) -> Refrad2DVQA:
    return Refrad2DVQA(
        question=item.question,
        answer=item.answer,
        question_type=item.question_type,
        choices=list(item.choices) if item.question_type == "multiple" else None,
    )


def report_row(item: ExportItem, snippets: list[str]) -> Refrad2DReportRow:
    """The Parquet row of one exported slice: text fields in both languages, never null."""
    s = item.sample
    report = item.report
    blocks = {}
    for lang, key in LANGUAGES.items():
        vqa = [v for v in s.vqa if v.language == lang]
        own = report is not None and report.language == lang
        sections = report.sections if own and report is not None else {}
        if own:
            sentence = _clean(" ".join(snippets)) or ""
        else:
            sentence = translation(s, report, snippets)
        blocks[key] = Refrad2DLanguage(
            dicom_vqa=[_vqa(v) for v in vqa if v.source == "metadata"],
            snippet_vqa=[_vqa(v) for v in vqa if v.source != "metadata"],
            CleanedSentence=sentence,
            ReportFragestellungCleaned=_clean(sections.get("question")) or "",
            ReportKlinischeAngabenCleaned=_clean(sections.get("clinical_info")) or "",
        )
    return Refrad2DReportRow(
        rsopid=s.key,
        slice_id=s.key,
        split=s.split,
        modality=s.modality,
        body_part=s.body_part,
        english=blocks["english"],
        german=blocks["german"],
    )
