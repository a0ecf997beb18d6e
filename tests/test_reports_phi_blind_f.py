"""Issue 14 (blind_f round): rules for the forms the development set blind_f showed, each on
invented sentences in both languages (not taken from the eval corpora). Each case names the
PHI that must go and a clinical word in the same text that must stay."""

from __future__ import annotations

import pytest
from phi_cases import check_gone_kept as _check

from refrad_builder.reports.scrub import scrub

EPONYMS = [
    # a classification after a stage and "nach"
    (
        "Hodgkin-Lymphom, Stadium IIB nach Ann Arbor. Rücksprache mit Kerstin Vollmer.",
        "de",
        "Kerstin Vollmer",
        "Ann Arbor",
    ),
    (
        "Leptomeningeale Aussaat, M2 nach Chang, Vorstellung bei Dr. Jens Ottmann.",
        "de",
        "Jens Ottmann",
        "Chang",
    ),
    # an eponym before a grade letter
    (
        "Stanford B dissection from the left subclavian artery. Discussed with Tobias Hummel.",
        "en",
        "Tobias Hummel",
        "Stanford",
    ),
    # an eponym before a procedure or device word, possessive or not
    (
        "Status post Hartmann's procedure in 2019, rectal stump intact. Seen by Anna B. Kerr.",
        "en",
        "Kerr",
        "Hartmann",
    ),
    (
        "Imaged in an Aspen collar after the fall; no fracture. Reviewed by Helga Nordstrom.",
        "en",
        "Helga Nordstrom",
        "Aspen",
    ),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), EPONYMS)
def test_eponyms_in_classifications_and_procedures_stay(text, lang, gone, kept):
    _check(text, lang, gone, kept)


def test_a_grade_before_per_does_not_hide_a_name():
    _check("Bed 3 per Tobias Hummel, chest drain in situ.", "en", "Tobias Hummel", "chest drain")


AGES_AND_PHONES = [
    # an age of 90 and over as a year of life, ordinal in both languages
    ("Patientin im 93. Lebensjahr, Sturz aus dem Bett.", "de", "93", "Sturz"),
    ("A man in his 96th year with recurrent falls.", "en", "96", "recurrent falls"),
    # a lower-case "ph" label before a full number, and a French extension word
    ("Result phoned at 10:02 (ph 02 5550 1234), lactate 2.1.", "en", "02 5550 1234", "lactate"),
    ("Neurosurgery paged (poste 4417) at 22:05, no cord signal.", "en", "4417", "cord signal"),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), AGES_AND_PHONES)
def test_ages_and_phone_forms(text, lang, gone, kept):
    _check(text, lang, gone, kept)


@pytest.mark.parametrize(
    ("text", "lang", "kept"),
    [
        ("Im 3. Lebensjahr Fraktur, pH 7.354, 89. Lebensjahr.", "de", "89"),
        ("Fifth year of follow-up; 89th year; ph 7.312 on the gas.", "en", "7.312"),
        ("In the 3rd year of surveillance, pH 7.31.", "en", "3rd year"),
    ],
)
def test_ages_under_90_and_ph_values_stay(text, lang, kept):
    assert scrub(text, lang=lang).text == text
    _check(text, lang, None, kept)


INSTITUTIONS = [
    # letters outside ASCII inside an English institution name
    (
        "Ōtāhuhu Valley Hospital Emergency Department\nCT head: no acute haemorrhage.",
        "en",
        "Ōtāhuhu Valley Hospital",
        "haemorrhage",
    ),
    (
        "Referred from St. Jérôme-Lavoie General Hospital for a second read of the aorta.",
        "en",
        "St. Jérôme-Lavoie General Hospital",
        "aorta",
    ),
    # "of St. <name>" after the institution word
    (
        "Lakeshore Cancer Institute of St. Osmund\nPET-CT restaging, nodal disease.",
        "en",
        "Lakeshore Cancer Institute of St. Osmund",
        "nodal disease",
    ),
    # a practice word and specialty before the doctors' names
    (
        "Gemeinschaftspraxis für Nuklearmedizin Dres. Riedel und Kollegen\nSzintigraphie.",
        "de",
        "Gemeinschaftspraxis für Nuklearmedizin Dres. Riedel und Kollegen",
        "Szintigraphie",
    ),
    # an accident insurer as a labelled field, a company by its legal form
    (
        "D-Arzt-Bericht, UV-Träger: BG Nahrungsmittel und Gastgewerbe, Distorsion OSG.",
        "de",
        "BG Nahrungsmittel und Gastgewerbe",
        "Distorsion OSG",
    ),
    (
        "Zweitbefundung durch Radiologie Elbufer Nord GmbH, Befund: Meniskusriss medial.",
        "de",
        "Elbufer Nord GmbH",
        "Meniskusriss",
    ),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), INSTITUTIONS)
def test_institution_forms(text, lang, gone, kept):
    _check(text, lang, gone, kept)


def test_scanner_makers_and_generic_firms_stay():
    text = "Gerät: Philips Medizin Systeme GmbH (1,5 Tesla); Kostenträger: privat, Befund folgt."
    assert scrub(text, lang="de").text == text


ADDRESSES = [
    # Canadian city, province and postal code after the street
    (
        "Northshore Imaging\n88 Lakeview Rd, Sault Ste Marie ON P6A 2K1\nCT chest: no embolus.",
        "en",
        "Marie ON P6A 2K1",
        "embolus",
    ),
    # an Irish county after the town
    (
        "Sent from Ennis, Co. Clare for staging; liver lesion 14 mm.",
        "en",
        "Ennis, Co. Clare",
        "liver lesion",
    ),
    # a German city with an abbreviated region after the postcode
    (
        "Radiologie am Markt, Lindenweg 4, 92637 Weiden i.d.OPf.\nBefund: Meniskusläsion.",
        "de",
        "92637 Weiden i.d.OPf.",
        "Meniskusläsion",
    ),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), ADDRESSES)
def test_address_forms(text, lang, gone, kept):
    _check(text, lang, gone, kept)


def test_company_suffix_and_abbreviations_are_no_address():
    text = "Bracco GmbH & Co. KG; Befund i.d.R. unauffällig; CO2 retention, no Co Ltd."
    assert "[ADRESSE]" not in scrub(text, lang="de").text
    assert "[ADDRESS]" not in scrub(text, lang="en").text


NAMES = [
    # a surname that is an anatomy word after a German senior-doctor title
    ("Befund vorläufig, Freigabe durch OÄ Lunge am Nachmittag.", "de", "Lunge", "Befund"),
    ("Rücksprache mit OA Hals, Stenose 70 %.", "de", "Hals", "Stenose"),
    # a nickname in quotes after the name
    (
        'Patient: Margaret Olsen (known as "Peg"), acute chest pain.',
        "en",
        "Peg",
        "acute chest pain",
    ),
    ("Herr Johann Brix, genannt „Hansi“, Sturz von der Leiter.", "de", "Hansi", "Sturz"),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), NAMES)
def test_name_forms(text, lang, gone, kept):
    _check(text, lang, gone, kept)


def test_unquoted_known_as_and_anatomy_after_other_words_stay():
    text = "The lesion, also known as Normal variant, abuts the Lunge; Hals frei."
    assert "[NAME]" not in scrub(text, lang="en").text
