"""Issue 14: PHI forms by kind, on invented examples (not taken from the eval corpora)."""

from __future__ import annotations

import pytest

from refrad_builder.reports.scrub import known_phi_hashes, scrub


def _removed(text: str, value: str, lang: str = "en") -> bool:
    out = scrub(text, lang=lang)
    start = text.index(value)
    covered = set()
    for s, e, _ in out.spans:
        covered.update(range(s, e))
    return all(i in covered for i in range(start, start + len(value)) if text[i].isalnum())


def _kept(text: str, value: str, lang: str = "en") -> bool:
    out = scrub(text, lang=lang)
    start = text.index(value)
    return not any(s < start + len(value) and start < e for s, e, _ in out.spans)


@pytest.mark.parametrize(
    ("text", "value", "lang"),
    [
        ("Patientin: Brandauer, Wiebke   geb. 1.2.1960", "Brandauer, Wiebke", "de"),
        ("Befund 3/24 / Ostrowski, Hanne / Kontrolle", "Ostrowski, Hanne", "de"),
        ("PATIENT: NIERE, WALTRAUD  *01.01.1950", "NIERE, WALTRAUD", "de"),
        ("MRT LWS 02.02.24 – Pfeffinger R.\n- Befund", "Pfeffinger R.", "de"),
        ("Follow-up, 3/3/24, J. Brackenbury (70 y)\n", "J. Brackenbury", "en"),
        ("Pat.: LINDGREN OSKAR * 01.01.1970", "LINDGREN OSKAR", "de"),
        ("reviewed by dr t abernathy-quist, radiology", "dr t abernathy-quist", "en"),
        ("Patient: o'hanlon, bridget   MRN: Q12", "o'hanlon, bridget", "en"),
        ("dictated by dr annika sorensby transcribed later", "annika sorensby", "en"),
        ("Dr. med. Magen\nInnere Medizin", "Magen", "de"),
        ("CALLED TO DR. LIVER AT 02:00", "LIVER", "en"),
        ("Reported by Dr Carys ap Gruffydd, Consultant", "Carys ap Gruffydd", "en"),
        ("Waldemeier-Stotz, Oberarzt\n", "Waldemeier-Stotz", "de"),
        ("Patient: VAN DER ZANDT, H   DOB 1/1/60", "VAN DER ZANDT, H", "en"),
    ],
)
def test_name_forms(text, value, lang):
    assert _removed(text, value, lang)


@pytest.mark.parametrize(
    ("text", "value", "lang"),
    [
        ("No fracture; no Jefferson fracture of C1.", "Jefferson fracture", "en"),
        ("Skaphoidfraktur (Herbert B1).", "Herbert B1", "de"),
        ("Arachnoidalzyste Typ Galassi I. Kein Befund.", "Galassi I", "de"),
        ("Leberzirrhose Child-Pugh A. Surveillance empfohlen.", "Surveillance", "de"),
        ("Bekannter M. Crohn, Ileitis terminalis.", "M. Crohn", "de"),
        ("AORTIC DISSECTION STANFORD TYPE B, SMA ARISES FROM", "SMA ARISES", "en"),
        ("A. carotis interna links frei, V. portae offen.", "V. portae", "de"),
        ("the patient per protocol", "per protocol", "en"),
    ],
)
def test_clinical_words_stay(text, value, lang):
    assert _kept(text, value, lang)


@pytest.mark.parametrize(
    ("text", "value", "lang"),
    [
        ("geboren am 7 oktober 49 fall", "7 oktober 49", "de"),
        ("geb. 7. Okt. 49, Fall", "7. Okt. 49", "de"),
        ("date of birth august 2nd 1966 mrn", "august 2nd 1966", "en"),
        ("DOB: the fourth of June 1970\n", "fourth of June 1970", "en"),
        ("geb. 07 . 10 . 1949,", "07 . 10 . 1949", "de"),
        ("D.O.B. 07 / 10 / 49\n", "07 / 10 / 49", "en"),
        ("Unchanged since September. No new lesion.", "September", "en"),
        ("Neu aufgetreten seit Oktober.", "Oktober", "de"),
    ],
)
def test_dates(text, value, lang):
    assert _removed(text, value, lang)


@pytest.mark.parametrize(
    ("text", "value", "lang"),
    [
        ("Trial ID: ABC-XY 2022-0113   MRN", "ABC-XY 2022-0113", "en"),
        ("Hosp No: QZ/118/20931\n", "QZ/118/20931", "en"),
        ("Register: KLM-AB12-0931\n", "KLM-AB12-0931", "de"),
        ("AHV-Nr. 756.1111.2222.33, Pat", "756.1111.2222.33", "de"),
        ("medical record number 512 633 41\n", "512 633 41", "en"),
        ("Our ref: QQ-4431/22\n", "QQ-4431/22", "en"),
        ("Unit no: XK4Z0099123\n", "XK4Z0099123", "en"),
    ],
)
def test_identifiers(text, value, lang):
    assert _removed(text, value, lang)


@pytest.mark.parametrize(
    "text",
    ["Fusion C5-C6 und Th12-L1, L4/5.", "T2N1M0, COVID-19, BI-RADS 4, 2019-2021.", "DLP 2140"],
)
def test_levels_scores_and_numbers_are_no_identifiers(text):
    assert scrub(text, lang="de").spans == ()


@pytest.mark.parametrize(
    ("text", "value", "lang"),
    [
        ("Imaging, 4410 W Larkspur Ave, Boise, ID 83702\n", "4410 W Larkspur Ave", "en"),
        ("CENTER, 91 E 12TH ST, ENID, OK 73701\n", "ENID, OK 73701", "en"),
        ("Clinic | Suite 3, 12 Wattle Rd, Toowong QLD 4066 |", "Toowong QLD 4066", "en"),
        ("Ordination, Lindengasse 12/4, 1070 Wien\n", "1070 Wien", "de"),
        ("Praxis, Weiher 4, 79100 Hinterzarten\n", "Weiher 4", "de"),
        ("Imaging, Unit 7, Corrib Business Park, Galway H91 A2F3.", "Galway H91 A2F3", "en"),
        ("\nLörrach, 04.05.2024\n\nSehr geehrte", "Lörrach", "de"),
        ("Postfach 12 34 56 · 79100 Freiburg", "12 34 56", "de"),
    ],
)
def test_addresses(text, value, lang):
    assert _removed(text, value, lang)


@pytest.mark.parametrize(
    ("text", "value", "lang"),
    [
        ("Reading room 555-0100 x2291\n", "x2291", "en"),
        ("Sekretariat, Durchwahl -5512\n", "-5512", "de"),
        ("Ph (08) 9123 4567\n", "(08) 9123 4567", "en"),
        ("HISTORY: 93 YEAR OLD MAN, FALL", "93", "en"),
    ],
)
def test_phones_and_ages(text, value, lang):
    assert _removed(text, value, lang)


@pytest.mark.parametrize(
    ("text", "value", "lang"),
    [
        ("BIRCHWOOD GENERAL HOSPITAL - RADIOLOGY", "BIRCHWOOD GENERAL HOSPITAL", "en"),
        ("Outside study, Ferncliff Imaging Associates.", "Ferncliff Imaging Associates", "en"),
        ("Reviewed at St. Oswin Hospice.", "St. Oswin Hospice", "en"),
        ("Report by Thornbury Sports Physio\n", "Thornbury Sports Physio", "en"),
        ("KREISKLINIKUM WALDHAUSEN\n", "KREISKLINIKUM WALDHAUSEN", "de"),
        ("MVZ Radiologie Birkenfeld-Ost\n", "MVZ Radiologie Birkenfeld-Ost", "de"),
        ("Überweisung: Röntgeninstitut Tannhof\n", "Röntgeninstitut Tannhof", "de"),
        ("Seniorenresidenz Am Lindenhain\n", "Seniorenresidenz Am Lindenhain", "de"),
        ("Praxis Dr. Wendelin & Partner\n", "Praxis Dr. Wendelin & Partner", "de"),
    ],
)
def test_institutions(text, value, lang):
    assert _removed(text, value, lang)


@pytest.mark.parametrize(
    "text", ["Diagnostic Radiology", "Interventional Radiology", "CT PERFUSION IMAGING"]
)
def test_specialties_are_no_institutions(text):
    assert scrub(text, lang="en").spans == ()


def test_degree_after_a_surname_is_no_initial():
    out = scrub("Read by: Anna Birk, M.D.", lang="en")
    assert out.text == "Read by: [NAME], M.D."


def test_header_address_takes_the_house_number_before_the_street():
    key = b"k" * 32
    known = known_phi_hashes(key, {"ADDR": ["7 Bóthar na Trá^Claddagh"]})
    text = "Re: Jane Roe, 7 Bóthar na Trá, Claddagh\n"
    out = scrub(text, known, key, "en")
    assert "7" not in out.text and "Trá" not in out.text
