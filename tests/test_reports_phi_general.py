"""Issue 14 (phi): general name, zone, number and institution mechanisms, on invented
sentences in both languages (not taken from the eval corpora)."""

from __future__ import annotations

import pytest

from refrad_builder.reports.phi.gazetteer import is_listed_surname, is_medical
from refrad_builder.reports.phi.zones import header_zone, signature_zones
from refrad_builder.reports.scrub import scrub


def _covered(text: str, lang: str) -> set[int]:
    covered: set[int] = set()
    for s, e, _ in scrub(text, lang=lang).spans:
        covered.update(range(s, e))
    return covered


def _removed(text: str, value: str, lang: str) -> bool:
    start, covered = text.index(value), _covered(text, lang)
    return all(i in covered for i in range(start, start + len(value)) if text[i].isalnum())


def _kept(text: str, value: str, lang: str) -> bool:
    start, covered = text.index(value), _covered(text, lang)
    return not any(i in covered for i in range(start, start + len(value)))


@pytest.mark.parametrize(
    ("text", "lang", "gone", "kept"),
    [
        # a listed surname that is no word, with no cue at all
        (
            "Befund am Nachmittag mit Kaltenbrunner abgestimmt. Kein Erguss.",
            "de",
            "Kaltenbrunner",
            "Erguss",
        ),
        (
            "Images were then compared by HALVORSEN with the outside CT.",
            "en",
            "HALVORSEN",
            "outside CT",
        ),
        # a rare capitalised word after a person cue (English alone, German needs two)
        (
            "Findings discussed with Oyinkansola Adebayo-Quartey at 14:10.",
            "en",
            "Oyinkansola Adebayo-Quartey",
            "Findings",
        ),
        (
            "Rückruf durch Wenzeslaus Pfitzenmaier erfolgt, Pneumothorax rechts.",
            "de",
            "Wenzeslaus Pfitzenmaier",
            "Pneumothorax",
        ),
        # lower-case dictation
        (
            "images reviewed with maeve o'callaghan today. no fracture.",
            "en",
            "maeve o'callaghan",
            "fracture",
        ),
    ],
)
def test_names_without_cues(text, lang, gone, kept):
    assert _removed(text, gone, lang)
    assert _kept(text, kept, lang)


@pytest.mark.parametrize(
    ("text", "lang", "kept"),
    [
        ("Hüftkopfnekrose rechts ARCO II, links ARCO I.", "de", "ARCO II"),
        ("MRI liver with Eovist showed no lesion.", "en", "Eovist"),
        ("Rundherd im Mittellappen, Pleuraerguss beidseits.", "de", "Pleuraerguss"),
        ("Crohn disease of the terminal ileum; Hodgkin lymphoma in remission.", "en", "Hodgkin"),
    ],
)
def test_clinical_words_are_no_names(text, lang, kept):
    assert _kept(text, kept, lang)


def test_gazetteer_and_medical_words():
    assert is_listed_surname("Kaltenbrunner") and is_listed_surname("Halvorsen")
    assert is_medical("Pleuraerguss") and is_medical("Lymphknotenmetastasen")
    assert not is_medical("Kaltenbrunner")


HEADER_EN = (
    "LAKEVIEW COMMUNITY HOSPITAL\n"
    "QUINTERO-BLACKWOOD, ISADORA\n"
    "0093318274   03/02/1948\n"
    "CT ABDOMEN AND PELVIS WITH CONTRAST\n"
    "FINDINGS: Cholelithiasis without cholecystitis.\n"
    "Electronically signed: Radomir Kowalczyk 04/05/2024 09:13\n"
)
HEADER_DE = (
    "Gemeinschaftspraxis Radiologie Feldbergblick\n"
    "Hedwig Trautwein-Ambach, geb. 04.04.1944\n"
    "MRT Schulter rechts\n"
    "Befund: Supraspinatussehnenruptur mit Retraktion.\n"
    "Mit freundlichen Grüßen\n\n"
    "Ruckaberle / Zinnecker\n"
)


@pytest.mark.parametrize(
    ("text", "lang", "gone", "kept"),
    [
        (
            HEADER_EN,
            "en",
            ["QUINTERO-BLACKWOOD, ISADORA", "0093318274", "Radomir Kowalczyk"],
            ["Cholelithiasis", "CT ABDOMEN"],
        ),
        (
            HEADER_DE,
            "de",
            ["Hedwig Trautwein-Ambach", "Ruckaberle", "Zinnecker"],
            ["Supraspinatussehnenruptur", "MRT Schulter"],
        ),
        (
            "Befund: Rundherd 9 mm.\nVerteiler: Dr. Oberholzner, Kiefersfelden\n",
            "de",
            ["Oberholzner"],
            ["Rundherd 9 mm"],
        ),
        (
            "Impression: Small effusion.\ncc: Thistlethwaite; Ellingboe\n",
            "en",
            ["Thistlethwaite", "Ellingboe"],
            ["Small effusion"],
        ),
    ],
)
def test_zones(text, lang, gone, kept):
    for value in gone:
        assert _removed(text, value, lang), value
    for value in kept:
        assert _kept(text, value, lang), value


def test_zone_bounds():
    assert header_zone(HEADER_EN) == (0, HEADER_EN.index("FINDINGS"))
    prose = "Kein Nachweis einer Fraktur oder Luxation im Bereich des rechten Handgelenks.\nBefund: ok\n"
    assert header_zone(prose) is None
    # a sign-off inside a line ends at the sentence that follows it
    text = "diktiert von dr. x, geschrieben ab. Pleuraerguss links.\n"
    ((s, e),) = signature_zones(text)
    assert text[s:e].endswith("ab.") and "Pleuraerguss" not in text[s:e]


@pytest.mark.parametrize(
    ("text", "lang", "value"),
    [
        ("Vergleich mit Voraufnahmen von Mitte März 2023.", "de", "Mitte März 2023"),
        ("Erstdiagnose im Frühjahr 2019, seither Chemotherapie.", "de", "Frühjahr 2019"),
        ("Compared with the outside study from mid-March 2023.", "en", "mid-March 2023"),
        ("Known since late 2021, treated elsewhere.", "en", "late 2021"),
    ],
)
def test_partial_dates(text, lang, value):
    assert _removed(text, value, lang)


@pytest.mark.parametrize(
    ("text", "lang", "gone", "kept"),
    [
        ("See outside report 2022/448812. Aorta 41 mm.", "en", "2022/448812", "41 mm"),
        ("Fremdbefund 2021-0073314 liegt vor, Lebergröße 16 cm.", "de", "2021-0073314", "16 cm"),
        (
            "Voruntersuchung in der Lindenhof-Klinik, Meniskusriss.",
            "de",
            "Lindenhof-Klinik",
            "Meniskusriss",
        ),
        ("Letter sent to 12 Coopers Yard, Alnwick NE66 1AA.", "en", "12 Coopers Yard", "Letter"),
    ],
)
def test_numbers_institutions_addresses(text, lang, gone, kept):
    assert _removed(text, gone, lang)
    assert _kept(text, kept, lang)
