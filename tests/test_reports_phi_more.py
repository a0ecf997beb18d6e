"""Issue 14 (phi, second round): institution, address, telephone, identifier, date, name and
age forms on invented sentences in both languages (not taken from the eval corpora). Each case
names the PHI that must go and a clinical word in the same text that must stay."""

from __future__ import annotations

import pytest
from phi_cases import check_gone_kept as _check

from refrad_builder.reports.scrub import scrub

INSTITUTIONS = [
    # a specialty practice named by a rare place name, as a field
    (
        "Überweisung: Dr. Lenz, Unfallchirurgie Kesselbrink\nSchulterluxation.",
        "de",
        "Unfallchirurgie Kesselbrink",
        "Schulterluxation",
    ),
    # article inside a German hospital name
    (
        "Zuweisung aus dem Klinikum links der Weser-Nord, Thoraxschmerz.",
        "de",
        "Klinikum links der Weser-Nord",
        "Thoraxschmerz",
    ),
    (
        "Vorbefund vom Krankenhaus Rechts der Ahr, Pleuraerguss links.",
        "de",
        "Krankenhaus Rechts der Ahr",
        "Pleuraerguss",
    ),
    # a practice "& Kollegen" and a practice named after its doctors
    (
        "Fremdaufnahmen der Radiologischen Praxis Dr. Wendelin & Kollegen, Leberzyste.",
        "de",
        "Radiologischen Praxis Dr. Wendelin & Kollegen",
        "Leberzyste",
    ),
    (
        "Gemeinschaftspraxis Dres. Lammers, Okafor & Partner\nMRT Knie: Meniskusriss.",
        "de",
        "Dres. Lammers, Okafor & Partner",
        "Meniskusriss",
    ),
    # a department before its hospital, joined by a dash
    (
        "Klinik für Neuroradiologie – Landesklinikum Oberwart\nCT Schädel: keine Blutung.",
        "de",
        "Klinik für Neuroradiologie – Landesklinikum Oberwart",
        "Blutung",
    ),
    # a specialty practice named by its place
    (
        "Überweisung: Orthopädie am Stadttor, Gonarthrose rechts.",
        "de",
        "Orthopädie am Stadttor",
        "Gonarthrose",
    ),
    # hyphenated English names, "Open MRI of", "Health Sciences Centre", "at Our Lady of ..."
    (
        "Prior study at Kilbride-Moran Private Clinic showed a renal cyst.",
        "en",
        "Kilbride-Moran Private Clinic",
        "renal cyst",
    ),
    (
        "St. Brendan-Hale Children's Hospital\nFindings: splenic laceration.",
        "en",
        "St. Brendan-Hale Children's Hospital",
        "splenic laceration",
    ),
    (
        "Outside MRI from Canyon Open MRI of Prescott: meniscal tear.",
        "en",
        "Canyon Open MRI of Prescott",
        "meniscal tear",
    ),
    (
        "Moncton Bayside Health Sciences Centre - Diagnostic Imaging\nFindings: no pneumothorax.",
        "en",
        "Moncton Bayside Health Sciences Centre",
        "pneumothorax",
    ),
    (
        "Delta Liver Institute at Our Lady of the Lakes\nFindings: cirrhosis.",
        "en",
        "Delta Liver Institute at Our Lady of the Lakes",
        "cirrhosis",
    ),
    # generic words that open a name belong to it
    (
        "University of Lakeport Health - Neuroradiology\nNo acute infarct.",
        "en",
        "University of Lakeport Health",
        "infarct",
    ),
    (
        "Location: Children's Hospital of Marlow, ED. Appendix normal.",
        "en",
        "Children's Hospital of Marlow",
        "Appendix",
    ),
    (
        "Stonebridge Lung & Imaging Center\nSolitary pulmonary nodule.",
        "en",
        "Stonebridge Lung & Imaging Center",
        "pulmonary nodule",
    ),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), INSTITUTIONS)
def test_institution_forms(text, lang, gone, kept):
    _check(text, lang, gone, kept)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Kardiologie am Vormittag konsiliarisch gesehen, Perikarderguss.", "de"),
        ("Anforderung: Unfallchirurgie Ambulanz, Sprunggelenk.", "de"),
        ("Anforderung: Unfallchirurgie Ambulanz, Sprunggelenk.", "de"),
        ("Radiologie im Befund unauffällig.", "de"),
        ("Trauma Center activation; CT head normal.", "en"),
        ("Children's Hospital protocol used; no fracture.", "en"),
    ],
)
def test_generic_institution_words_alone_stay(text, lang):
    assert not scrub(text, lang=lang).spans


NUMBERS_AND_PLACES = [
    # telephone forms: "Ph" label, dotted with "ext", local number with "x", dash extension
    (
        "Northside Imaging | Ph 08 9381 4402 | Fax 08 9381 4403\nNo fracture.",
        "en",
        "08 9381 4402",
        "fracture",
    ),
    (
        "Referrer contact: 250.555.0187 ext 2231. Small pleural effusion.",
        "en",
        "250.555.0187 ext 2231",
        "pleural effusion",
    ),
    (
        "Callback 555-0143 x12 for critical result: pneumothorax.",
        "en",
        "555-0143 x12",
        "pneumothorax",
    ),
    ("Tel. 0341 / 97 17 40-0 · Fax -25\nKein Erguss.", "de", "-25", "Erguss"),
    # labelled identifiers with spaced digit groups
    ("Provider ABN 51 824 753 556. Liver normal.", "en", "51 824 753 556", "Liver"),
    ("Pt: FIELDING, Ross  PHN 9123 456 789  Spleen normal.", "en", "9123 456 789", "Spleen"),
    # addresses: shop/unit with slash, Austrian door numbers and postcode, street without dot
    (
        "Referrer: Dr Ong, Shop 2/45 Wattle St, Burleigh Heads QLD 4220\nKnee MRI.",
        "en",
        "Shop 2/45 Wattle St, Burleigh Heads QLD 4220",
        "Knee",
    ),
    (
        "Mariahilfer Straße 120/3/12, 1070 Wien – Tel. 01/523 11 22\nLeber unauffällig.",
        "de",
        "Mariahilfer Straße 120/3/12, 1070 Wien",
        "Leber",
    ),
    ("Zuweiser Dr Roth Bergstr 7 Marburg\nklinik: Lumbago", "de", "Bergstr 7 Marburg", "Lumbago"),
    (
        "Outside hospital: Riverbend Medical Center, Missoula, MT   Outside CT reviewed.",
        "en",
        "Missoula, MT",
        "CT",
    ),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), NUMBERS_AND_PLACES)
def test_number_and_address_forms(text, lang, gone, kept):
    _check(text, lang, gone, kept)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Arterial blood gas: pH 7.31, pCO2 52 mmHg.", "en"),
        ("BGA: Ph 7,38, Laktat 2,1 mmol/l.", "de"),
        ("Matrix 512 x 512, slice 1.25 mm, ext 4 cm beyond the capsule.", "en"),
        ("Carcinoma extends 12 mm into the fat, stage T3, MD review requested.", "en"),
        ("Spinalkanalstenose L4/5, Wirbelkörper 3/4 der Höhe erhalten.", "de"),
    ],
)
def test_clinical_numbers_stay(text, lang):
    assert not scrub(text, lang=lang).spans


DATES = [
    (
        "Sitzung vom Mi., 12.02.2025, Fall 3: Lebermetastasen.",
        "de",
        "Mi., 12.02.2025",
        "Lebermetastasen",
    ),
    (
        "CT LWS nativ, Fr, 7.3.25, 09:10 Uhr: Spondylolisthese.",
        "de",
        "Fr, 7.3.25",
        "Spondylolisthese",
    ),
    ("Rückenschmerzen seit Ende Oktober, Parästhesien.", "de", "Ende Oktober", "Parästhesien"),
    (
        "Result discussed with the surgeon on March 9. Appendicitis.",
        "en",
        "March 9",
        "Appendicitis",
    ),
    (
        "Fell on New Year's Eve; CT shows a distal radius fracture.",
        "en",
        "New Year's Eve",
        "radius fracture",
    ),
    (
        "Sturz am Heiligabend, Schenkelhalsfraktur rechts.",
        "de",
        "Heiligabend",
        "Schenkelhalsfraktur",
    ),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), DATES)
def test_date_forms(text, lang, gone, kept):
    _check(text, lang, gone, kept)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("So weit unauffällig. Da keine Blutung, Kontrolle.", "de"),
        ("Lesion measures 14 mm on series 3, March protocol.", "en"),
        ("Christmas tree pattern of the bladder wall.", "en"),
        ("Positive nodes 3/18 on pathology, margin 1/2 cm.", "en"),
    ],
)
def test_date_like_words_stay(text, lang):
    assert not scrub(text, lang=lang).spans


NAMES = [
    # Last, First after a patient label, the surname a clinical word
    (
        "Name: LEBER, Annegret   geb.: 3.5.61\nCT Abdomen: Cholezystolithiasis.",
        "de",
        "LEBER, Annegret",
        "Cholezystolithiasis",
    ),
    # nicknames in quotes
    (
        'Patient: Frederick "Freddie" Harrowgate  (52M)\nHepatic steatosis.',
        "en",
        'Frederick "Freddie" Harrowgate',
        "steatosis",
    ),
    (
        'Patient: OSTRANDER, MARGARET "PEG" L.     MRN 55102\nNo embolus.',
        "en",
        'OSTRANDER, MARGARET "PEG" L.',
        "embolus",
    ),
    # a name right before its record number or birth date
    (
        "CT neck (Olivia Hartwell, MRN 8812044): tonsillar abscess.",
        "en",
        "Olivia Hartwell",
        "tonsillar abscess",
    ),
    (
        "Befund zu Auftrag 44190 (Tran Van Minh, * 4.9.1977)\nLeberhämangiom.",
        "de",
        "Tran Van Minh",
        "Leberhämangiom",
    ),
    # lower-case name after a patient label in dictation
    (
        "MRT LWS Pat stefanie brückner geb 2.2.80 bandscheibenvorfall L5/S1",
        "de",
        "stefanie brückner",
        "bandscheibenvorfall",
    ),
    # a header line of SURNAME, FIRSTNAME alone
    (
        "HARBOR VIEW MEDICAL CENTER\nQUILLFEATHER, ROSAMUND\n00881234   03/02/1949\nCT CHEST",
        "en",
        "QUILLFEATHER, ROSAMUND",
        "CT CHEST",
    ),
    # SURNAME Given with a listed surname
    (
        "URN 5518820  TRAN Thi Lan  64Y F\nExam: MRI lumbar spine",
        "en",
        "TRAN Thi Lan",
        "lumbar spine",
    ),
    # an unidentified patient's alias
    (
        "Patient: UNKNOWN, MALE 2231   Trauma No. T-88\nNo acute fracture.",
        "en",
        "UNKNOWN, MALE 2231",
        "fracture",
    ),
    # inner capitals after a short prefix
    (
        "Renal cyst, Bosniak II.\n\nMarcel DeSantis, MD — Body Imaging",
        "en",
        "Marcel DeSantis",
        "Renal cyst",
    ),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), NAMES)
def test_name_forms(text, lang, gone, kept):
    _check(text, lang, gone, kept)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Known Barrett's oesophagus, distal wall thickening.", "en"),
        ("LUNGS, PLEURA\nNo effusion.", "en"),
        ('Typical "Bamboo" Spine appearance, ankylosis.', "en"),
        ("Name: NIERE, Zyste links.", "de"),
        ("Pat. LEBER, Segment VII unauffällig.", "de"),
    ],
)
def test_name_like_clinical_text_stays(text, lang):
    assert not scrub(text, lang=lang).spans
