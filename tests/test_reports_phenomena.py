"""Report phenomena fixed for issue 14 (error analysis of the former blind sets): dictated
text without capitals or punctuation, spoken punctuation, negation of an adjective only,
lexicon gaps and false friends, normal descriptors, devices, and key-image reference forms.
Each case is a short sentence of the kind radiologists write, in German and English."""

from __future__ import annotations

import pytest

from refrad_builder.reports.imagerefs import image_refs
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.reports.sentences import split_sentences
from refrad_builder.text.rules import clean_caption_text


def _state(sentence: str, lang: str) -> dict[str, bool]:
    return {m.class_name: m.abnormal for m in find_mentions(sentence, lang)}


def _sentences(text: str) -> list[str]:
    return [s.text for s in split_sentences(text)]


# --- sentence splitting ---------------------------------------------------------------------


def test_dictated_lower_case_lines_stay_sentences():
    de = (
        "im rechten unterlappen keilförmige verdichtung komma kleiner pleuraerguss rechts\n"
        "schilddrüse knotig vergrößert der ösophagus unauffällig\n"
        "die leber homogen die nebennieren schlank"
    )
    assert len(_sentences(de)) == 3
    en = (
        "the gallbladder is distended with pericholecystic fluid\n"
        "spleen pancreas and adrenal glands are unremarkable\n"
        "urinary bladder unremarkable period prostate mildly enlarged"
    )
    assert _sentences(en)[1] == "spleen pancreas and adrenal glands are unremarkable"
    # ordinary prose still joins a wrapped line that continues in lower case
    assert len(_sentences("Leber mit einer Zyste\nim Segment VI, sonst unauffällig.")) == 1


def test_table_rows_never_join():
    rows = "thorakal linkskonvex | BWK 4 bis BWK 11 | 38°\nlumbal rechtskonvex | BWK 11 bis LWK 4"
    assert len(_sentences(rows)) == 2


def test_number_abbreviations_and_units():
    assert _sentences("PATIENT: [NAME] FALLNR. [ID]") == ["PATIENT: [NAME] FALLNR. [ID]"]
    assert _sentences("Patient: [NAME] Unit no. [ID]") == ["Patient: [NAME] Unit no. [ID]"]
    assert _sentences("Riss mit Extrusion um 5 mm. Außenmeniskus intakt.") == [
        "Riss mit Extrusion um 5 mm.",
        "Außenmeniskus intakt.",
    ]


# --- negation and abnormality ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "lang", "cls", "abnormal"),
    [
        # spoken punctuation ends the scope of a negation like the mark itself
        (
            "kein pleuraerguss links komma infarktpneumonie im rechten unterlappen",
            "de",
            "lung_lower_lobe_right",
            True,
        ),
        ("no hydronephrosis period simple cyst in the left kidney", "en", "kidney_cyst_left", True),
        # "nicht" before attributive adjectives negates the adjective, not the finding
        ("Nicht dislozierte mediale Schenkelhalsfraktur links.", "de", "femur_left", True),
        ("Neue, nicht KM-aufnehmende Läsion im Centrum semiovale links.", "de", "brain", True),
        ("Leber nicht vergrößert.", "de", "liver", False),
        # normal descriptors
        ("Pfortader durchgängig, kein Thrombus.", "de", "portal_vein_and_splenic_vein", False),
        ("Gallenblase steinfrei.", "de", "gallbladder", False),
        ("Mittellappen belüftet.", "de", "lung_middle_lobe_right", False),
        ("Both kidneys enhance symmetrically.", "en", "kidney_left", False),
        ("Intervertebral discs are well hydrated.", "en", "intervertebral_discs", False),
        # a device in a structure is no finding of the structure
        ("The endotracheal tube tip is 3 cm above the carina.", "en", "trachea", False),
        ("Port catheter tip in the superior vena cava.", "en", "superior_vena_cava", False),
        ("Prostate volume 52 mL.", "en", "prostate", False),
        # degenerative change is a finding
        ("Degenerative changes at L4/5, no acute fracture.", "en", "vertebrae_L4", True),
    ],
)
def test_abnormal_flag(sentence, lang, cls, abnormal):
    assert _state(sentence, lang)[cls] is abnormal


# --- lexicon ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "lang", "cls"),
    [
        ("Calcified plaque in the mid RCA with mild stenosis.", "en", "heart"),
        ("RIVA: gemischte Plaque mit hochgradiger Stenose.", "de", "heart"),
        ("Aortenklappe trikuspide mit geringen Verkalkungen.", "de", "heart"),
        ("The aortic valve is trileaflet.", "en", "heart"),
        ("Early ischemic change in the left insula.", "en", "brain"),
        ("Left pontine lesion.", "en", "brain"),
        ("Traumatische Subarachnoidalblutung in der Sylvischen Fissur rechts.", "de", "brain"),
        ("No calvarial fracture.", "en", "skull"),
        ("The conus lies at L1 and is normal.", "en", "spinal_cord"),
        ("Konus auf Höhe LWK 1, unauffällig.", "de", "spinal_cord"),
        ("Beckenring intakt.", "de", "hip_left"),
        ("No pelvic ring fracture.", "en", "hip_right"),
        ("Bone bruise in the lateral femoral condyle.", "en", "femur_left"),
        ("Endotrachealtubus 4 cm oberhalb der Carina.", "de", "trachea"),
        ("Polytrauma-CT (Ganzkörper) vom [DATUM].", "de", "body"),
    ],
)
def test_lexicon_names_the_structure(sentence, lang, cls):
    assert cls in _state(sentence, lang)


@pytest.mark.parametrize(
    ("sentence", "lang", "cls"),
    [
        ("T2 koronar und axial, DWI.", "de", "heart"),  # koronar: the plane
        ("Suprarenale Aorta 2,4 cm, nicht erweitert.", "de", "adrenal_gland_left"),
        ("Saddle embolus at the bifurcation of the pulmonary trunk.", "en", "lung_left"),
        ("The vertebral arteries are patent.", "en", "vertebrae"),
        ("Knochen- und Weichteilkernel, 3D-Rekonstruktion.", "de", "bone"),
        ("| T3 | Right lower lobe nodule | 9 mm |", "en", "vertebrae_T3"),  # a row label
    ],
)
def test_lexicon_false_friends(sentence, lang, cls):
    assert cls not in _state(sentence, lang)


# --- key-image references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ("Fracture line on STIR (4:11).", [(4, 11)]),
        ("Subdural haematoma (4:112).", [(4, 112)]),
        ("| T1 | Liver, segment VII | 3/41 | 27 mm |", [(3, 41)]),
        ("1 | Lebersegment VI | 4/97 | 18 mm", [(4, 97)]),
        ("Abszess (Bild 61, Serie 4) parakolisch.", [(4, 61)]),
        # never from a time, a ratio, a level or a telephone number
        ("Befund telefonisch übermittelt (14:32).", []),
        ("Kontrolle nach Drainageanlage (04:40 Uhr).", []),
        ("Gadolinium verdünnt (1:200).", []),
        ("Bandscheibenvorfall L4/5 und L5/S1.", []),
        ("Rückfragen unter Tel. 030/4711 oder (089) 1234.", []),
    ],
)
def test_image_reference_forms(text, refs):
    assert [(r.series, r.image) for r in image_refs(text)] == refs


def test_caption_text_drops_references_with_their_pointer():
    assert clean_caption_text("Liver lesion (see series 4, image 57).") == "Liver lesion."
    assert clean_caption_text("Raumforderung (vgl. Bild 12), 3 cm.") == "Raumforderung, 3 cm."
    assert clean_caption_text("Findings: Nodule | 3/41 | 8 mm") == "Nodule | 8 mm"
    assert clean_caption_text("(Bild 274)") == ""
