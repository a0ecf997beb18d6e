"""The measured report-understanding corpus: its coverage, the targets, and the rules it drove."""

import json
import re

import pytest

from refrad_builder.reports import evaluate_mentions as ev
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.reports.sections import sections_dict, split_sections
from refrad_builder.reports.sentences import split_sentences
from refrad_builder.reports.temporal import is_temporal, rewrite_temporal


@pytest.fixture(scope="module")
def corpus():
    return ev.load_corpus()


@pytest.fixture(scope="module")
def result(corpus):
    return ev.evaluate(corpus)


def found(text, lang):
    return {m.class_name: (m.laterality, m.abnormal) for m in find_mentions(text, lang)}


# --- the corpus ---------------------------------------------------------------------------


def test_corpus_is_well_formed_and_large_enough(corpus):
    assert ev.validate_corpus(corpus) == []
    dev = [r for r in corpus if r.get("split", "dev") == "dev"]
    assert sum(r["lang"] == "de" for r in dev) >= 25
    assert sum(r["lang"] == "en" for r in dev) >= 25
    assert {r["modality"] for r in corpus} == {"CT", "MR"}
    assert len({r["region"] for r in corpus}) >= 20


def test_validator_catches_a_broken_span(corpus):
    broken = json.loads(json.dumps(corpus[0]))
    broken["sentences"][1]["span"][0] += 3
    broken["sentences"][2]["temporal"] = not broken["sentences"][2]["temporal"]
    problems = ev.validate_corpus([broken])
    assert any("span" in p for p in problems)
    assert any("rewrite" in p for p in problems)


def test_corpus_covers_every_phenomenon(corpus):
    text = {
        lang: "\n".join(r["text"] for r in corpus if r["lang"] == lang) for lang in ("de", "en")
    }
    sentences = [(r["lang"], s) for r in corpus for s in r["sentences"]]
    for form in ("Se 3/Bi 142", "Serie 2, Bild 211", "Se 601/Bi 88", "(Bild 142)"):
        assert form in text["de"], form
    for form in ("series 4, image 57", "image 142 of series 2", "S3/I45"):
        assert form in text["en"], form
    for abbr in ("z.B.", "Z.n.", "V.a.", "ca.", "i.v.", "Dr.", "St. ", "re. "):
        assert abbr in text["de"], abbr
    assert "e.g." in text["en"] and "Dr." in text["en"]
    for form in ("LWK 4", "BWK 12", "HWK 2", "L4/5", "Dens", "7. und 8. Rippe rechts"):
        assert form in text["de"], form
    for form in ("L4", "T12", "C2", "left 5th and 6th ribs"):
        assert form in text["en"], form
    for form in ("Leberläsion", "Nierenzyste", "Milzlazeration", "Lunge beidseits", "Nieren"):
        assert form in text["de"], form
    assert re.search(r"\bkidneys\b", text["en"])
    for lang in ("de", "en"):
        mine = [s for lg, s in sentences if lg == lang]
        assert {s["section"] for s in mine} >= {
            "clinical_info",
            "question",
            "technique",
            "findings",
            "impression",
            "other",
        }
        mentions = [m for s in mine for m in s["mentions"]]
        assert {m["laterality"] for m in mentions} == {None, "left", "right", "bilateral"}
        assert any(m["abnormal"] for m in mentions) and any(not m["abnormal"] for m in mentions)
        assert any(s["image_refs"] for s in mine)
        rewrites = [s["rewrite"] for s in mine if s["temporal"]]
        assert any(rewrites) and "" in rewrites
    classes = {m["class"] for _, s in sentences for m in s["mentions"]}
    lobes = {c for c in classes if c.startswith("lung_") and "lobe" in c}
    assert len(lobes) == 5
    assert {"rib_right_7", "rib_left_5", "vertebrae_L4", "vertebrae_T12", "vertebrae_C2"} <= classes


# --- the targets ----------------------------------------------------------------------------


def test_targets_pass(result):
    m = result["metrics"]["all"]
    assert m["mention_precision"] >= 0.95
    assert m["mention_recall"] >= 0.90
    assert m["abnormal_accuracy"] >= 0.90
    assert m["image_ref_accuracy"] == 1.0
    assert all(result["targets"].values())


@pytest.mark.parametrize("lang", ["de", "en"])
def test_targets_hold_per_language(result, lang):
    m = result["metrics"][lang]
    assert m["mention_precision"] >= 0.95
    assert m["mention_recall"] >= 0.90
    assert m["abnormal_accuracy"] >= 0.90
    assert m["image_ref_accuracy"] == 1.0


def test_held_out_reports_pass_the_targets_too(result):
    m = result["metrics"]["heldout"]
    assert result["heldout"].reports >= 8
    assert m["mention_precision"] >= 0.95 and m["mention_recall"] >= 0.90
    assert m["abnormal_accuracy"] >= 0.90 and m["image_ref_accuracy"] == 1.0


@pytest.mark.parametrize("path", [ev.BLIND_C, ev.BLIND_D], ids=["blind_c", "blind_d"])
def test_former_blind_sets_pass_the_issue_targets(path):
    """blind_c and blind_d drove the issue-14 fixes, so they are development sets now and
    graded at the issue's targets (their first, blind figures are in data/eval/README.md)."""
    reports = ev.load_corpus(path)
    assert not ev.validate_corpus(reports)
    result = ev.evaluate(reports, ev.TARGETS_BY_SET[path.stem])
    m = result["metrics"]["all"]
    assert m["mention_precision"] >= 0.95 and m["mention_recall"] >= 0.93
    assert m["abnormal_accuracy"] >= 0.93 and m["image_ref_accuracy"] == 1.0
    assert all(result["targets"].values())


def test_structure_and_temporal_numbers(result):
    m = result["metrics"]["all"]
    assert m["sentence_boundary_accuracy"] >= 0.98
    assert m["section_accuracy"] >= 0.98
    assert m["temporal_accuracy"] >= 0.97
    assert m["temporal_precision"] >= 0.95
    assert m["rewrite_check_accuracy"] >= 0.9
    assert m["language_accuracy"] == 1.0


def test_summary_prints_numbers_and_passes(result):
    out = ev.format_result(result)
    lines = out.split("targets:")[1].strip().splitlines()
    assert len(lines) == 4 and all(line.endswith("PASS") for line in lines)
    assert "mentions de" in out and "mentions en" in out and "image refs" in out


def test_cli_fails_on_a_missed_target(tmp_path, capsys, corpus):
    # a gold mention the rules cannot find, in every sentence: recall collapses
    bad = json.loads(json.dumps(corpus[:3]))
    for r in bad:
        for s in r["sentences"]:
            s["mentions"].append(
                {"class": "gluteus_minimus_left", "laterality": "left", "abnormal": True}
            )
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in bad), encoding="utf-8")
    assert ev.main(["--corpus", str(path)]) == 1
    targets = capsys.readouterr().out.split("targets:")[1]
    assert re.search(r"mention recall\s+0\.\d+ >= 0\.90\s+FAIL", targets)
    bad[0]["sentences"][0]["span"] = [0, 1]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in bad), encoding="utf-8")
    assert ev.main(["--corpus", str(path)]) == 2


# --- the temporal rewrite ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang", "expected", "keeps"),
    [
        (
            "Hypodense Leberläsion ca. 1,2 cm, größenkonstant zur Voruntersuchung vom [DATUM].",
            "de",
            "Hypodense Leberläsion ca. 1,2 cm.",
            "liver",
        ),
        (
            "Im Vergleich zur Voruntersuchung unveränderte Nierenzyste links.",
            "de",
            "Nierenzyste links.",
            "kidney_left",
        ),
        ("Neu aufgetretener Pleuraerguss rechts.", "de", "Pleuraerguss rechts.", "lung_right"),
        (
            "The nodule in the right upper lobe is unchanged compared with the prior study.",
            "en",
            "The nodule in the right upper lobe.",
            "lung_upper_lobe_right",
        ),
        (
            "New since [DATE] is a small left pleural effusion.",
            "en",
            "A small left pleural effusion.",
            "lung_left",
        ),
    ],
)
def test_rewrite_removes_temporal_phrases(text, lang, expected, keeps):
    assert is_temporal(text)
    got = rewrite_temporal(text, lang)
    assert got == expected
    assert not is_temporal(got)
    assert keeps in found(got, lang)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Befund unverändert.", "de"),
        ("Keine neuen Lungenrundherde.", "de"),  # "keine Lungenrundherde" would be false
        ("Der Pleuraerguss links ist vollständig rückläufig.", "de"),
        ("The previously noted nodule is no longer seen.", "en"),
        ("No new hepatic lesions.", "en"),
        ("Comparison: CT dated [DATE].", "en"),
    ],
)
def test_rewrite_drops_what_only_compares(text, lang):
    assert rewrite_temporal(text, lang) == ""


def test_rewrite_drops_a_resolved_clause_and_keeps_the_rest():
    got = rewrite_temporal(
        "Neu aufgetretener Erguss rechts, der Pleuraerguss links ist nicht mehr nachweisbar.",
        "de",
    )
    assert got == "Erguss rechts."


def test_every_corpus_rewrite_is_no_longer_temporal(corpus):
    for r in corpus:
        for s in r["sentences"]:
            if s["temporal"]:
                assert not is_temporal(rewrite_temporal(s["text"], r["lang"])), s["text"]


@pytest.mark.parametrize(
    "text",
    [
        "PSA 9.2 ng/mL, prior negative TRUS biopsy.",
        "Vomiting, prior laparotomy.",
        "Hämodynamisch stabile Patientin.",
        "Dornfortsatzfraktur HWK 6, stabil.",
        "Stationäre Aufnahme zur Schmerztherapie.",
    ],
)
def test_history_and_mechanical_stability_are_not_temporal(text):
    assert not is_temporal(text)


# --- rules the corpus drove -------------------------------------------------------------------


def test_decimal_comma_is_no_clause_boundary():
    got = found("In der rechten Nebenniere ein glatt begrenzter, 2,3 cm großer Knoten.", "de")
    assert got == {"adrenal_gland_right": ("right", True)}


def test_neighbourhood_compounds_and_ung_plurals_are_no_mentions():
    assert found("Lymphknoten paraaortal und perirenale Imbibierung.", "de") == {}
    assert found("Peripankreatische Flüssigkeitsansammlungen.", "de") == {}
    assert found("Retrosternale Ausdehnung.", "de") == {}


def test_kidney_cyst_attached_to_the_kidney():
    assert found("Incidental simple cyst in the left kidney.", "en") == {
        "kidney_left": ("left", True),
        "kidney_cyst_left": ("left", True),
    }
    got = found("Beide Nieren mit kortikalen Zysten.", "de")
    assert set(got) == {"kidney_left", "kidney_right", "kidney_cyst_left", "kidney_cyst_right"}


def test_liver_segments_but_not_lung_segments():
    assert found("Im Segment VIII eine 1,8 cm große Läsion.", "de") == {"liver": (None, True)}
    assert "liver" not in found("Rundherd im Segment 6 des rechten Unterlappens.", "de")


def test_spine_range_across_regions():
    got = found("Axiale T2 von HWK 6 bis BWK 2.", "de")
    assert set(got) == {"vertebrae_C6", "vertebrae_C7", "vertebrae_T1", "vertebrae_T2"}
    assert not any(abnormal for _, abnormal in got.values())  # technique: no finding


def test_side_from_the_same_organ_in_the_sentence():
    assert found("Pneumonie im linken Unterlappen.", "de") == {
        "lung_left": ("left", True),
        "lung_lower_lobe_left": ("left", True),
    }
    got = found("Consolidation in the RLL, concerning for pneumonia.", "en")
    assert set(got) == {"lung_lower_lobe_right", "lung_right"}
    # a normal remark about the rest of the lung keeps both sides
    assert set(found("Rundherd im rechten Oberlappen, Lunge sonst frei.", "de")) == {
        "lung_upper_lobe_right",
        "lung_left",
        "lung_right",
    }


def test_elliptic_other_side():
    got = found("A. iliaca communis rechts auf 2,4 cm erweitert, links 1,6 cm normkalibrig.", "de")
    assert got == {"iliac_artery_right": ("right", True), "iliac_artery_left": ("left", False)}
    got = found("Pleuraerguss rechts, links kein Erguss.", "de")
    assert got == {"lung_right": ("right", True), "lung_left": ("left", False)}


@pytest.mark.parametrize(
    ("text", "lang", "cls", "abnormal"),
    [
        ("MRT der LWS nativ.", "de", "vertebrae", False),
        ("Wir empfehlen eine MRT der Leber.", "de", "liver", False),
        ("The prostate measures 4.1 x 3.2 cm.", "en", "prostate", False),
        ("Harnblase gering gefüllt, unauffällig.", "de", "urinary_bladder", False),
        ("Zervikales Myelon, soweit miterfasst, ohne Läsion.", "de", "spinal_cord", False),
        ("Cervical spine: No fracture.", "en", "vertebrae", False),
        (
            "No pneumatosis, portal venous gas or free air.",
            "en",
            "portal_vein_and_splenic_vein",
            False,
        ),
        (
            "The previously noted left lower lobe nodule is no longer seen.",
            "en",
            "lung_lower_lobe_left",
            False,
        ),
        ("Der Pleuraerguss links ist vollständig rückläufig.", "de", "lung_left", False),
        ("Lungs are otherwise clear.", "en", "lung_left", False),
        ("Nicht dislozierte Fraktur des Dornfortsatzes HWK 6.", "de", "vertebrae_C6", True),
        (
            "L3-L4: Mild disc bulge without significant stenosis.",
            "en",
            "intervertebral_discs",
            True,
        ),
        ("Kalibersprung im Ileum (Se 3/Bi 156).", "de", "small_bowel", True),
    ],
)
def test_abnormal_cues_found_by_the_corpus(text, lang, cls, abnormal):
    assert found(text, lang)[cls][1] is abnormal


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        ("CT pulmonary angiogram: no pulmonary embolism.", "lung_left"),
        ("The renal arteries are patent.", "kidney_left"),
        ("CT in portal venous phase.", "portal_vein_and_splenic_vein"),
        ("Samenblasen unauffällig.", "urinary_bladder"),
        ("Rekonstruktion im Knochen- und Weichteilfenster.", "bone"),
        ("Fracture of the left parietal bone.", "bone"),
    ],
)
def test_blocked_forms(text, absent):
    lang = "de" if re.search(r"[äöü]|Samenblasen|Rekonstruktion", text) else "en"
    assert absent not in found(text, lang)


def test_anatomy_added_from_the_corpus():
    assert "brain" in found("Regelrechte Mark-Rinden-Differenzierung.", "de")
    assert "brain" in found("The ventricles and sulci are normal.", "en")
    assert "heart" in found("Ausgeprägte Koronarsklerose.", "de")
    assert set(found("The bowel is unremarkable.", "en")) == {"small_bowel", "colon"}
    assert "spinal_cord" in found("Severe cord compression at T8.", "en")
    assert "skull" in found("Fracture of the left parietal bone.", "en")
    assert set(found("The scapulae are intact.", "en")) == {"scapula_left", "scapula_right"}


# --- sentences and sections the corpus drove --------------------------------------------------


def test_side_abbreviation_can_end_a_sentence():
    assert [s.text for s in split_sentences("Kleiner Pleuraerguss re. Übrige Lunge frei.")] == [
        "Kleiner Pleuraerguss re.",
        "Übrige Lunge frei.",
    ]
    assert len(split_sentences("Rundherd im re. Unterlappen.")) == 1


def test_salutation_and_sign_off_lines_stay_apart():
    text = "Dear Dr [NAME],\nThank you for the referral.\nKind regards,\nDr [NAME]"
    assert [s.text for s in split_sentences(text)] == [
        "Dear Dr [NAME],",
        "Thank you for the referral.",
        "Kind regards,",
        "Dr [NAME]",
    ]
    # a wrapped German list still joins
    assert len(split_sentences("Leber, Milz,\nPankreas und Nieren unauffällig.")) == 1


def test_more_headings():
    secs = sections_dict(
        split_sections(
            "EXAMINATION: CT chest.\nClinical details: Cough.\nReport: Lungs clear.\n"
            "Opinion: Normal.\nVoraufnahme: CT vom [DATUM].\nKlinische Fragestellung: Fraktur?"
        )
    )
    assert secs == {
        "technique": "CT chest.",
        "clinical_info": "Cough.",
        "findings": "Lungs clear.",
        "impression": "Normal.",
        "other": "CT vom [DATUM].",
        "question": "Fraktur?",
    }
