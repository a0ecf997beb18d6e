from refrad_builder.reports.sections import sections_dict, split_sections
from refrad_builder.reports.sentences import split_sentences

DE_REPORT = """CT Thorax/Abdomen vom [DATUM]

Klinische Angaben:
Z.n. Verkehrsunfall, Schmerzen rechts thorakal.

Fragestellung: Rippenfrakturen? Pneumothorax?

Technik: Spiral-CT nach i.v. Kontrastmittelgabe.

BEFUND
Fraktur der 7. und 8. Rippe rechts. Kein Pneumothorax.
Leber, Milz und Pankreas unauffällig.

Beurteilung:
1. Rippenfrakturen rechts.
2. Kein Pneumothorax.
"""

EN_REPORT = """Clinical information: Fall from a ladder.
Indication
Rule out fracture.
Technique: CT of the chest without contrast.
Findings: Left 5th and 6th rib fractures. No pneumothorax.
Impression
Rib fractures as above.
"""


def test_german_sections_with_and_without_colon():
    secs = sections_dict(split_sections(DE_REPORT))
    assert set(secs) == {
        "other",
        "clinical_info",
        "question",
        "technique",
        "findings",
        "impression",
    }
    assert secs["other"].startswith("CT Thorax/Abdomen")
    assert secs["question"] == "Rippenfrakturen? Pneumothorax?"
    assert secs["technique"].startswith("Spiral-CT")
    assert secs["findings"].startswith("Fraktur der 7. und 8. Rippe rechts.")
    assert "Leber, Milz" in secs["findings"]
    assert secs["impression"].startswith("1. Rippenfrakturen")


def test_english_sections():
    secs = sections_dict(split_sections(EN_REPORT))
    assert secs["clinical_info"] == "Fall from a ladder."
    assert secs["question"] == "Rule out fracture."
    assert secs["technique"] == "CT of the chest without contrast."
    assert secs["findings"] == "Left 5th and 6th rib fractures. No pneumothorax."
    assert secs["impression"] == "Rib fractures as above."


def test_conclusion_anamnese_zusammenfassung_map():
    secs = sections_dict(
        split_sections("Anamnese: Husten.\nZusammenfassung: Pneumonie.\nConclusion: ok.")
    )
    assert secs["clinical_info"] == "Husten."
    assert secs["impression"] == "Pneumonie.\n\nok."


def test_heading_word_starting_prose_is_not_a_heading():
    secs = sections_dict(split_sections("Befund unauffällig.\nBeurteilung: Normalbefund."))
    assert secs == {"other": "Befund unauffällig.", "impression": "Normalbefund."}


def test_report_without_headings_is_findings():
    secs = sections_dict(split_sections("Die Leber ist unauffällig. Kein Erguss."))
    assert secs == {"findings": "Die Leber ist unauffällig. Kein Erguss."}


def texts(text):
    return [s.text for s in split_sentences(text)]


def test_german_abbreviations_do_not_split():
    assert texts(
        "Z.n. Cholezystektomie. V.a. Pneumonie, z.B. im Unterlappen. Läsion ca. 3 cm nach "
        "i.v. KM. Rücksprache mit Dr. [NAME] bzw. Prof. [NAME]. Ggf. Kontrolle, s. o."
    ) == [
        "Z.n. Cholezystektomie.",
        "V.a. Pneumonie, z.B. im Unterlappen.",
        "Läsion ca. 3 cm nach i.v. KM.",
        "Rücksprache mit Dr. [NAME] bzw. Prof. [NAME].",
        "Ggf. Kontrolle, s. o.",
    ]


def test_english_abbreviations_and_decimals():
    assert texts(
        "Approx. 3.2 cm lesion, e.g. in segment 4. Cyst vs. hemangioma, i.e. benign. "
        "Dr. Smith was informed."
    ) == [
        "Approx. 3.2 cm lesion, e.g. in segment 4.",
        "Cyst vs. hemangioma, i.e. benign.",
        "Dr. Smith was informed.",
    ]


def test_decimal_comma_and_ordinals():
    assert texts("Läsion 3,2 x 2,1 cm. Fraktur der 7. und 8. Rippe rechts. Bild 267. Ende.") == [
        "Läsion 3,2 x 2,1 cm.",
        "Fraktur der 7. und 8. Rippe rechts.",
        "Bild 267.",
        "Ende.",
    ]


def test_enumerations_and_list_items():
    assert texts("1. Leberzysten. 2. Keine Metastasen.\n3) Nierenzyste links") == [
        "Leberzysten.",
        "Keine Metastasen.",
        "Nierenzyste links",
    ]
    assert texts("- Leber unauffällig\n- Milz unauffällig\n• Pankreas schlank") == [
        "Leber unauffällig",
        "Milz unauffällig",
        "Pankreas schlank",
    ]
    assert texts("Leber unauffällig\nMilz unauffällig") == ["Leber unauffällig", "Milz unauffällig"]


def test_ordinal_line_is_not_an_enumeration():
    assert texts("7. Rippe rechts frakturiert.") == ["7. Rippe rechts frakturiert."]


def test_wrapped_lines_are_joined():
    assert texts("Kein Nachweis einer\nLeberläsion. Nieren beidseits\nnormal groß.") == [
        "Kein Nachweis einer Leberläsion.",
        "Nieren beidseits normal groß.",
    ]


def test_sentence_offsets_point_into_the_input():
    text = "Erste Zeile.\n  Zweiter Satz hier. Dritter."
    for s in split_sentences(text):
        assert text[s.start : s.end].split() == s.text.split()


def test_sign_off_is_other():
    text = "Befund:\nLeber unauffällig.\nBeurteilung:\nNormalbefund.\n\nMit freundlichen Grüßen\nDr. med. [NAME]"
    secs = sections_dict(split_sections(text))
    assert secs["impression"] == "Normalbefund."
    assert secs["other"] == "Mit freundlichen Grüßen\nDr. med. [NAME]"
    secs = sections_dict(split_sections("The liver is normal.\nReported by Dr [NAME]"))
    assert secs == {"findings": "The liver is normal.", "other": "Reported by Dr [NAME]"}

    secs = sections_dict(split_sections("Beurteilung: Normalbefund.\nDr. med. [NAME], Oberarzt"))
    assert secs == {"impression": "Normalbefund.", "other": "Dr. med. [NAME], Oberarzt"}
    secs = sections_dict(split_sections("Beurteilung: Fraktur.\nDr. [NAME] wurde informiert."))
    assert secs == {"impression": "Fraktur.\nDr. [NAME] wurde informiert."}
