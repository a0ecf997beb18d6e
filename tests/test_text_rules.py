"""Rule-based text products for one slice: linking, grounding, VQA in DE and EN."""

from __future__ import annotations

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.records import Box, ReportRecord, SliceRecord
from refrad_builder.reports.analyze import build_record
from refrad_builder.reports.language import detect_language
from refrad_builder.text import grounding
from refrad_builder.text.rules import LANGS, make_products, visible_classes

S = schema()


def _box(name, bbox, area=100):
    return Box(class_id=S.by_name[name].id, class_name=name, bbox=bbox, area=area)


def _slice(**kw) -> SliceRecord:
    base = dict(
        slice_id="a" * 24,
        series_id="s",
        study_id="st",
        patient_id="p",
        modality="CT",
        plane="axial",
        index=10,
        series_number=3,
        instance_number=12,
        image_png="i.png",
        mask_png="m.png",
        width=100,
        height=80,
        pixel_spacing=(1.0, 1.0),
        rescale_slope=1.0,
        rescale_intercept=-1024.0,
        units="HU",
        windows=[],
        reasons=["referenced"],
        segmenter="precomputed",
        segmenter_version="x",
        sex="F",
        age_years=63,
        body_part="ABDOMEN",
        contrast=True,
        boxes=[
            _box("liver", (5, 10, 40, 60), 900),
            _box("kidney_left", (60, 40, 80, 70), 300),
            _box("lung_lower_lobe_left", (55, 5, 95, 30), 400),
        ],
    )
    base.update(kw)
    return SliceRecord(**base)


REPORT = (
    "Befund: In der Leber eine 3,2 cm große hypodense Läsion (Se 3/Bi 12). "
    "Die linke Niere mit einer 2 cm Zyste. Die Milz ist unauffällig. "
    "Kein Pleuraerguss links.\nBeurteilung: Leberläsion, DD Metastase."
)


def _report() -> ReportRecord:
    return build_record("st", "p", REPORT, lang="de")


def test_parent_classes_are_visible_with_union_boxes():
    vis = visible_classes(_slice(), S)
    assert vis["lung_left"].bbox == (55, 5, 95, 30)
    assert "lung_right" not in vis and "spleen" not in vis


def test_captions_grounding_and_vqa():
    sl = _slice()
    p = make_products(sl, _report(), ["liver", "kidney_left", "spleen", "aorta"], S, 3, 3)
    assert p.captions["de"][0].startswith("In der Leber")  # image-referenced sentence first
    assert set(p.captions) == set(LANGS) and all(p.captions[lang] for lang in LANGS)
    boxes = {b.class_id: b.bbox for b in sl.boxes}
    for lang in LANGS:
        for text in p.grounded[lang]:
            for cid, bins, _ in grounding.parse(text):
                expected = boxes.get(cid) or visible_classes(sl, S)[S.by_id[cid].name].bbox
                assert bins == grounding.quantize(expected, sl.width, sl.height)
    grounded_de = " ".join(p.grounded["de"])
    assert "id=<seg005>>Leber</p>" in grounded_de  # liver id 5, phrase from the report
    assert "Milz" not in " ".join(
        grounding.strip(t) for t in p.grounded["de"] if "Sichtbare" not in t
    )
    presence = {(q.language, q.question, q.answer) for q in p.vqa if q.source == "presence"}
    assert ("en", 'Is the structure "spleen" visible in this image?', "No") in presence
    assert ("de", "Ist die Struktur „Leber“ in diesem Bild sichtbar?", "Ja") in presence
    findings = [q for q in p.vqa if q.source == "findings"]
    for lang in LANGS:
        mine = [q for q in findings if q.language == lang]
        assert 1 <= len(mine) <= 5
        kinds = {q.question_type for q in mine}
        assert {"closed", "open"} <= kinds
        for q in mine:
            if q.question_type == "multiple":
                assert q.answer in q.choices and 3 <= len(q.choices) <= 4
    sizes = [q.answer for q in findings if q.language == "de" and "groß" in q.question]
    assert sizes and sizes[0] in ("3,2 cm", "2 cm")
    meta = {q.question: q.answer for q in p.vqa if q.source == "metadata" and q.language == "en"}
    assert meta["Which imaging modality was used?"] == "CT"
    assert meta["Which body region does this image show?"] == "abdomen"
    assert meta["How old is the patient (in years)?"] == "63"


def test_no_report_and_old_patient():
    p = make_products(_slice(age_years=93), None, ["liver"], S, 3, 3)
    assert all(p.captions[lang] for lang in LANGS)
    assert not [q for q in p.vqa if q.source == "findings"]
    assert not [q for q in p.vqa if "old" in q.question or "alt" in q.question]  # ages > 89 are PHI


def test_temporal_sentences_are_rewritten_not_copied():
    text = (
        "Befund: Die Leber mit einer 3 cm Läsion, größenkonstant zur Voruntersuchung vom "
        "[DATUM]. Die linke Niere unauffällig."
    )
    report = build_record("st", "p", text, lang="de")
    assert any(s.temporal for s in report.sentences)
    p = make_products(_slice(), report, ["liver"], S, 3, 3)
    caption = p.captions["de"][0]
    assert (
        "Leber" in caption and "Voruntersuchung" not in caption and "größenkonstant" not in caption
    )
    assert any("id=<seg005>>Leber</p>" in g for g in p.grounded["de"])


def _token(sl: SliceRecord, name: str, text: str) -> str:
    box = visible_classes(sl, S)[name]
    return grounding.token(box.class_id, text, box.bbox, sl.width, sl.height)


def test_german_findings_are_summarised_in_english_with_grounding():
    sl = _slice(boxes=[_box("liver", (5, 10, 40, 60), 900), _box("spleen", (60, 10, 90, 40))])
    text = "Befund: Hypodense Läsion im rechten Leberlappen, 2,3 cm. Milz unauffällig."
    report = build_record("st", "p", text, lang="de")
    p = make_products(sl, report, ["liver", "spleen"], S, 3, 3)
    summary = p.captions["en"][0]
    assert summary == "Report findings: abnormal: liver (2.3 cm); unremarkable: spleen."
    assert detect_language(summary) == "en"
    assert (
        p.captions["de"][0] == "Hypodense Läsion im rechten Leberlappen, 2,3 cm. Milz unauffällig."
    )
    assert p.grounded["en"][0] == (
        f"Report findings: abnormal: {_token(sl, 'liver', 'liver')} (2.3 cm); "
        f"unremarkable: {_token(sl, 'spleen', 'spleen')}."
    )
    assert grounding.strip(p.grounded["en"][0]) == summary
    assert p.grounded["en"][1].startswith("Visible structures:")  # template stays after it


def test_english_findings_are_summarised_in_german():
    sl = _slice(boxes=[_box("liver", (5, 10, 40, 60), 900), _box("spleen", (60, 10, 90, 40))])
    text = (
        "Findings: Hypodense lesion in the right hepatic lobe measuring 2.3 cm. "
        "The spleen is unremarkable."
    )
    report = build_record("st", "p", text, lang="en")
    p = make_products(sl, report, ["liver", "spleen"], S, 3, 3)
    summary = p.captions["de"][0]
    assert summary == "Befund laut Bericht: auffällig: Leber (2,3 cm); unauffällig: Milz."
    assert detect_language(summary) == "de"
    assert _token(sl, "liver", "Leber") + " (2,3 cm)" in p.grounded["de"][0]
    assert p.captions["en"][0].startswith("Hypodense lesion")


def test_summary_names_structures_not_in_the_slice_without_grounding_them():
    sl = _slice()  # liver, left kidney and a left lung lobe; no right kidney
    text = "Befund: Rechte Niere mit 12 x 8 mm Zyste (Se 3/Bi 12). Leber unauffällig."
    report = build_record("st", "p", text, lang="de")
    p = make_products(sl, report, ["liver"], S, 3, 3)
    summary = p.captions["en"][0]
    assert "right kidney (12 x 8 mm)" in summary and "unremarkable: liver." in summary
    g = p.grounded["en"][0]
    assert {cid for cid, _, _ in grounding.parse(g)} == {S.by_name["liver"].id}
    assert _token(sl, "liver", "liver") in g
    assert grounding.strip(g) == summary


def test_no_summary_without_linked_sentences():
    sl = _slice()
    unlinked = build_record("st", "p", "Befund: Milz unauffällig.", lang="de")  # spleen not shown
    with_report = make_products(sl, unlinked, ["liver"], S, 3, 3)
    without = make_products(sl, None, ["liver"], S, 3, 3)
    assert with_report.captions == without.captions
    assert with_report.grounded == without.grounded
    assert not any("Report findings" in c for c in with_report.captions["en"])


def test_caption_text_drops_image_refs_and_headings():
    from refrad_builder.text.rules import clean_caption_text

    assert clean_caption_text("Befund: Rundherd im Unterlappen (Bild 274).") == (
        "Rundherd im Unterlappen."
    )
    assert clean_caption_text("Nodule in the RLL (series 4, image 57), 8 mm.") == (
        "Nodule in the RLL, 8 mm."
    )
    assert clean_caption_text("Liver lesion, see Se 3/Bi 142.") == "Liver lesion."
