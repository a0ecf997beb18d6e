import pytest

from refrad_builder.anatomy.labels import schema
from refrad_builder.reports.mentions import find_mentions, lexicon


def found(text, lang):
    return {m.class_name: (m.laterality, m.abnormal) for m in find_mentions(text, lang)}


# --- compounds and forms ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("Leberläsion im Segment 7.", "liver"),
        ("Homogenes Leberparenchym.", "liver"),
        ("Milzlazeration Grad II.", "spleen"),
        ("Fettleber.", "liver"),
        ("Gallenblasenhydrops.", "gallbladder"),
        ("Pankreaskopf verplumpt.", "pancreas"),
        ("Aortenaneurysma.", "aorta"),
        ("Harnblase gut gefüllt.", "urinary_bladder"),
        ("Kleinhirninfarkt.", "brain"),
        ("Schilddrüsenknoten.", "thyroid_gland"),
        ("Pfortaderthrombose.", "portal_vein_and_splenic_vein"),
        ("Struma.", "thyroid_gland"),
        ("Rippenknorpelverkalkung.", "costal_cartilages"),
        ("Densfraktur.", "vertebrae_C2"),
    ],
)
def test_german_compounds(text, cls):
    assert cls in found(text, "de")


def test_nebenniere_is_not_kidney():
    got = found("Nebennierenadenom links.", "de")
    assert set(got) == {"adrenal_gland_left"}


def test_blocked_and_unrelated_words():
    assert found("Mit freundlichen, herzlichen Grüßen.", "de") == {}
    assert found("Kein Nachweis einer Lungenarterienembolie.", "de") == {}
    assert "kidney_left" not in found("Infrarenales Aortenaneurysma.", "de")


def test_english_forms_and_plurals():
    got = found("Bilateral renal cysts; the iliac arteries are patent.", "en")
    assert {"kidney_cyst_left", "kidney_cyst_right", "kidney_left", "kidney_right"} <= set(got)
    assert got["iliac_artery_left"] == ("bilateral", False) or got["iliac_artery_left"][1] is False
    assert found("Splenomegaly.", "en") == {"spleen": (None, True)}


def test_german_stems_only_compound_in_german():
    assert found("Leberläsion", "en") == {}
    assert "liver" in found("Leberläsion", "de")


def test_truncated_compound():
    got = found("Ober- und Unterlappen links mit Infiltraten.", "de")
    assert got == {"lung_upper_lobe_left": ("left", True), "lung_lower_lobe_left": ("left", True)}


# --- laterality ---------------------------------------------------------------------------


def test_german_laterality_adjective_and_postposed():
    got = found("Nierenzyste links, rechte Niere unauffällig.", "de")
    assert got["kidney_left"] == ("left", True)
    assert got["kidney_cyst_left"] == ("left", True)
    assert got["kidney_right"] == ("right", False)
    assert "kidney_cyst_right" not in got
    assert found("Zyste der linken Lunge.", "de") == {"lung_left": ("left", True)}


def test_paired_without_side_expands_to_both():
    assert found("Nieren unauffällig.", "de") == {
        "kidney_left": (None, False),
        "kidney_right": (None, False),
    }
    assert found("The kidneys are unremarkable.", "en") == {
        "kidney_left": (None, False),
        "kidney_right": (None, False),
    }
    assert found("Lunge beidseits frei.", "de") == {
        "lung_left": ("bilateral", False),
        "lung_right": ("bilateral", False),
    }
    assert found("bds. Pleuraergüsse.", "de") == {
        "lung_left": ("bilateral", True),
        "lung_right": ("bilateral", True),
    }


def test_lobes():
    assert found("Rundherd im rechten Oberlappen.", "de") == {
        "lung_upper_lobe_right": ("right", True)
    }
    assert found("Mittellappen unauffällig.", "de") == {"lung_middle_lobe_right": ("right", False)}
    assert found("Nodule in the left lower lobe.", "en") == {"lung_lower_lobe_left": ("left", True)}
    assert found("Atelectasis of both lower lobes.", "en") == {
        "lung_lower_lobe_left": ("bilateral", True),
        "lung_lower_lobe_right": ("bilateral", True),
    }


def test_side_from_earlier_in_clause():
    got = found("Rechtsseitiger Pleuraerguss mit Kompressionsatelektase des Unterlappens.", "de")
    assert got == {"lung_right": ("right", True), "lung_lower_lobe_right": ("right", True)}


def test_english_sides():
    assert found("Small right pleural effusion.", "en") == {"lung_right": ("right", True)}
    assert found("Fracture of the femoral neck on the left.", "en") == {
        "femur_left": ("left", True)
    }
    assert found("Left and right adrenal glands are normal.", "en") == {
        "adrenal_gland_left": ("bilateral", False),
        "adrenal_gland_right": ("bilateral", False),
    }


def test_only_classes_of_the_schema():
    # there is no right atrial appendage class; "Vorhofohr" without side keeps the left one
    assert found("Thrombus im Vorhofohr.", "de") == {"atrial_appendage_left": (None, True)}


# --- spine and ribs -----------------------------------------------------------------------


def test_spine_levels_german():
    got = found("Deckplatteneinbruch LWK 4, BWK 12 und HWK 2 unauffällig.", "de")
    assert got == {
        "vertebrae_L4": (None, True),
        "vertebrae_T12": (None, False),
        "vertebrae_C2": (None, False),
    }
    assert set(found("Th12-Fraktur.", "de")) == {"vertebrae_T12"}
    assert set(found("Keilwirbel LWK 1-3.", "de")) == {
        "vertebrae_L1",
        "vertebrae_L2",
        "vertebrae_L3",
    }
    assert set(found("Fraktur des 3. Lendenwirbelkörpers.", "de")) == {"vertebrae_L3"}
    assert found("Keine Fraktur des Dens.", "de") == {"vertebrae_C2": (None, False)}


def test_spine_letter_levels_and_traps():
    assert set(found("Bandscheibenvorfall L4/5.", "de")) == {
        "intervertebral_discs",
        "vertebrae_L4",
        "vertebrae_L5",
    }
    assert set(found("Protrusion L5/S1.", "de")) == {"vertebrae_L5", "vertebrae_S1"}
    assert set(found("Compression fracture of T12 and L1.", "en")) == {
        "vertebrae_T12",
        "vertebrae_L1",
    }
    assert set(found("Spinal stenosis C5-C7.", "en")) >= {
        "vertebrae_C5",
        "vertebrae_C6",
        "vertebrae_C7",
    }
    # MR weightings, TNM stages, alcohol abuse and liver segments are no vertebrae
    assert found("T2-gewichtete Sequenzen, T1 nativ.", "de") == {}
    assert "vertebrae_T3" not in found("Magenkarzinom T3 N1 M0.", "de")
    assert found("Z.n. C2-Abusus.", "de") == {}
    assert set(found("Hypodense Läsion in Lebersegment S4.", "de")) == {"liver"}


def test_ribs():
    assert found("Fraktur der 7. und 8. Rippe rechts.", "de") == {
        "rib_right_7": ("right", True),
        "rib_right_8": ("right", True),
    }
    assert set(found("Frakturen der 5. bis 7. Rippe links.", "de")) == {
        "rib_left_5",
        "rib_left_6",
        "rib_left_7",
    }
    assert found("Left 5th and 6th rib fractures.", "en") == {
        "rib_left_5": ("left", True),
        "rib_left_6": ("left", True),
    }
    assert set(found("Fractures of ribs 5-7 on the left.", "en")) == {
        "rib_left_5",
        "rib_left_6",
        "rib_left_7",
    }
    assert set(found("Rippenfrakturen 9 und 10 rechts.", "de")) == {"rib_right_9", "rib_right_10"}
    # no side stated: both sides
    assert set(found("Fraktur der 3. Rippe.", "de")) == {"rib_left_3", "rib_right_3"}
    assert found("Rippenknorpel verkalkt.", "de") == {"costal_cartilages": (None, True)}


# --- negation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("Kein Nachweis einer Leberläsion.", "de", {"liver": False}),
        ("Keine Leberläsion, Milz vergrößert.", "de", {"liver": False, "spleen": True}),
        (
            "Leber, Milz, Pankreas und Nieren unauffällig.",
            "de",
            {"liver": False, "pancreas": False},
        ),
        ("Unauffällige Darstellung von Leber, Milz und Pankreas.", "de", {"pancreas": False}),
        ("Leber: keine fokalen Läsionen.", "de", {"liver": False}),
        ("Nieren beidseits ohne Harnstau.", "de", {"kidney_left": False}),
        ("Leber bis auf eine Zyste unauffällig.", "de", {"liver": True}),
        ("Milz nicht vergrößert, mit kleiner Zyste.", "de", {"spleen": True}),
        ("Leber unauffällig und Milz mit Zyste.", "de", {"liver": False, "spleen": True}),
        ("Schlanke Nebennieren.", "de", {"adrenal_gland_left": False}),
        ("Regelrechte Weite der Aorta.", "de", {"aorta": False}),
        ("Keine Größenzunahme der Lebermetastasen.", "de", {"liver": True}),
        ("Metastasen in der Leber nicht ausgeschlossen.", "de", {"liver": True}),
        (
            "Kein Nachweis suspekter fokaler Läsionen in Leber oder Milz.",
            "de",
            {"liver": False, "spleen": False},
        ),
        ("Hypodense Läsion der Leber.", "de", {"liver": True}),
        ("Leber.", "de", {"liver": True}),
        ("No focal liver lesion.", "en", {"liver": False}),
        ("The liver is not enlarged.", "en", {"liver": False}),
        ("The lungs are clear.", "en", {"lung_left": False}),
        ("Mild hepatomegaly, spleen unremarkable.", "en", {"liver": True, "spleen": False}),
        ("Metastasis cannot be excluded in the liver.", "en", {"liver": True}),
        ("Both kidneys are normal in size without hydronephrosis.", "en", {"kidney_right": False}),
        ("No change in the liver lesion.", "en", {"liver": True}),
        ("Intact vertebral bodies.", "en", {"vertebrae": False}),
        ("Liver cyst, otherwise unremarkable.", "en", {"liver": True}),
        ("Hepatic steatosis but no focal lesion.", "en", {"liver": True}),
    ],
)
def test_abnormal(text, lang, expected):
    got = {m.class_name: m.abnormal for m in find_mentions(text, lang)}
    for cls, abnormal in expected.items():
        assert got[cls] is abnormal, (text, cls, got)


def test_one_mention_per_class_and_spans():
    text = "Leberzyste, Leber sonst unauffällig."
    ms = find_mentions(text, "de")
    assert len(ms) == 1
    m = ms[0]
    assert m.class_name == "liver" and m.abnormal is True
    assert text[m.span[0] : m.span[1]] == "Leberzyste"
    text = "Fraktur der 7. Rippe rechts."
    (m,) = find_mentions(text, "de")
    assert text[m.span[0] : m.span[1]] == "7. Rippe"


def test_lexicon_targets_are_schema_classes():
    names = set(schema().by_name)
    lex = lexicon()
    for targets in lex.targets:
        for t in targets:
            if "{side}" in t:
                assert (
                    t.replace("{side}", "left") in names or t.replace("{side}", "right") in names
                ), t
            else:
                assert t in names, t


@pytest.mark.parametrize(
    ("sentence", "lang", "cls", "abnormal"),
    [
        ("Hüftgelenk rechts: kein Erguss, ausgeprägte Arthrose.", "de", "hip_right", True),
        ("Right hip: no effusion, severe osteoarthritis.", "en", "hip_right", True),
        ("Leber ohne Herdbefund, deutliche Steatose.", "de", "liver", True),
        ("No effusion. Both lungs clear.", "en", "lung_left", False),
    ],
)
def test_negation_scope_ends_at_clause(sentence, lang, cls, abnormal):
    got = {m.class_name: m.abnormal for m in find_mentions(sentence, lang)}
    assert got[cls] is abnormal
