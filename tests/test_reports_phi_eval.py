"""Report de-identification: the measured corpus, each recognizer in both languages, header
PHI in every form, and the offline guarantee."""

import json
import logging
import re
import socket
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from refrad_builder.reports import presidio_engine as pe
from refrad_builder.reports.evaluate import (
    CORPUS,
    HOLDOUT,
    PRESERVATION_MIN,
    RECALL_MIN,
    evaluate,
    load_corpus,
)
from refrad_builder.reports.evaluate import main as evaluate_main
from refrad_builder.reports.scrub import apply_spans, known_phi_hashes, scrub, scrub_known

KEY = b"phi-eval-test-key-0123456789abcd"


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


# --- the corpus and its measurement -------------------------------------------------------


def test_corpus_is_big_varied_and_consistent(corpus):
    langs = Counter(r["lang"] for r in corpus)
    assert langs["de"] >= 40 and langs["en"] >= 40
    assert len({r["id"] for r in corpus}) == len(corpus)
    phi = [p for r in corpus for p in r["phi"]]
    assert len(phi) >= 400
    assert {p["type"] for p in phi} == set(pe.KINDS)
    assert sum(len(r["keep"]) for r in corpus) >= 400
    assert len({r["style"] for r in corpus}) == len(corpus)
    for r in corpus:
        for span in r["phi"] + r["keep"]:
            assert r["text"][span["start"] : span["end"]] == span["text"]
        assert set(r["known"]) <= {"NAME", "ID", "DATE", "INST", "ADDR"}


def test_corpus_meets_thresholds(corpus):
    assert (RECALL_MIN, PRESERVATION_MIN) == (0.99, 0.97)
    result = evaluate(corpus)
    assert result.recall >= RECALL_MIN, result.misses
    assert result.preservation >= PRESERVATION_MIN, result.lost_terms
    for lang, (caught, total) in result.by_language.items():
        assert caught / total >= RECALL_MIN, lang
    assert result.leaks == 0
    assert result.unannotated_replacements <= 5, result.unannotated


def test_recognizers_alone_without_headers(corpus):
    result = evaluate(corpus, use_headers=False)
    assert result.recall >= 0.93
    assert result.preservation >= PRESERVATION_MIN
    for kind in ("DATE", "ID", "PHONE", "EMAIL", "URL", "ADDR", "AGE"):
        caught, total = result.by_type[kind]
        assert caught == total, kind


def test_holdout_set():
    result = evaluate(load_corpus(HOLDOUT))
    assert result.recall >= 0.98
    assert result.preservation >= PRESERVATION_MIN


def test_evaluate_cli_prints_pass(capsys):
    status = evaluate_main(["--no-headers", "--corpus", str(HOLDOUT)])
    out = capsys.readouterr().out
    assert "PHI recall" in out and ("FAIL" in out) == (status == 1)
    assert "by type: ADDR" in out
    assert evaluate_main(["--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert runs[0]["passed"] is True and runs[0]["use_headers"] is True
    assert runs[1]["use_headers"] is False
    assert runs[2]["set"] == "reports_phi_holdout" and runs[2]["reports"] == 24
    assert runs[3]["set"] == "reports_phi_dev2"


@pytest.mark.parametrize(
    ("text", "lang", "gone", "kept"),
    [
        ("und erst später als Hannelore Kuchenbäcker identifiziert.", "de", ["Kuchenbäcker"], []),
        (
            "Sehr geehrte Frau Kollegin Leber, die Leber ist unauffällig.",
            "de",
            ["Kollegin Leber"],
            ["die Leber"],
        ),
        ("Rücksprache mit Jens um 14:32 Uhr.", "de", ["Jens"], ["14:32"]),
        ("Zuweiser: Dr. van den Berg", "de", ["Berg"], []),
        ("Vorbefunde aus dem Marienhospital.", "de", ["Marienhospital"], []),
        ("Transferred from Harbourview Memorial.", "en", ["Harbourview"], []),
        ("seen at St. Brigid's Hospice", "en", ["Brigid"], []),
        ("Registry ID NCR-778812, PPSN 1234567TA", "en", ["778812", "1234567TA"], []),
        ("Referring: JOHANNES VAN DER MEULEN", "en", ["MEULEN", "JOHANNES"], []),
        ("Siobhan Gallagher, Dublin 8, D08 X2F5", "en", ["Gallagher", "Dublin 8", "X2F5"], []),
        ("circle of Willis, Tan score 3, Vena cava", "en", [], ["Willis", "Tan score 3", "Vena"]),
    ],
)
def test_issue14_recognizers(text, lang, gone, kept):
    out = _scrubbed(text, lang)
    for g in gone:
        assert g not in out
    for k in kept:
        assert k in out


# --- recognizers, both languages ----------------------------------------------------------


def _scrubbed(text, lang):
    return scrub_known(text, None, None, lang)[0]


@pytest.mark.parametrize(
    ("text", "lang", "gone", "kept"),
    [
        (
            "Sehr geehrter Herr Kollege Dr. med. Weber,",
            "de",
            ["Weber"],
            "Herr Kollege Dr. med. [NAME],",
        ),
        (
            "Befundet: Dr. Lisa Fuchs / OA Dr. Markus Vogel",
            "de",
            ["Lisa", "Fuchs", "Vogel"],
            "OA Dr. [NAME]",
        ),
        (
            "Prof. Dr. med. Katharina Schäfer   Dr. med. Jonas Becker",
            "de",
            ["Schäfer", "Becker"],
            "Dr. med. [NAME]",
        ),
        (
            "Mit freundlichen Grüßen\n\nSabine Roth, Fachärztin für Radiologie",
            "de",
            ["Roth"],
            "[NAME], Fachärztin",
        ),
        (
            "Lieber Michael,\nbei Frau Şahin zeigt sich",
            "de",
            ["Michael", "Şahin"],
            "Lieber [NAME],",
        ),
        (
            "Patient: Mustermann, Max, geb. 14.03.1952",
            "de",
            ["Mustermann", "Max"],
            "Patient: [NAME], geb.",
        ),
        ("Mit freundlichen Grüßen, Ihr Team\ni.A. S. Bergmann", "de", ["Bergmann"], "i.A. [NAME]"),
        (
            "Eltern: Tanja und Oliver Winkler",
            "de",
            ["Tanja", "Oliver", "Winkler"],
            "[NAME] und [NAME]",
        ),
        ("Dear Dr. Nguyen,", "en", ["Nguyen"], "Dear Dr. [NAME],"),
        ("Seen by Mr John Smith and Mrs O'Neil.", "en", ["John", "Smith", "O'Neil"], "Mrs [NAME]."),
        ("Dictated by: Lisa Fox, M.D.", "en", ["Lisa", "Fox"], "Dictated by: [NAME], M.D."),
        (
            "Kind regards,\nSophie Turner\nConsultant",
            "en",
            ["Sophie", "Turner"],
            "\n[NAME]\nConsultant",
        ),
        (
            "PATIENT: SMITH, JOHN A    DOB: 03/14/1952",
            "en",
            ["SMITH", "JOHN"],
            "PATIENT: [NAME]    DOB: [DATE]",
        ),
        (
            "accompanied by her parents Tanya and Oliver Bell",
            "en",
            ["Tanya", "Bell"],
            "parents [NAME] and [NAME]",
        ),
        (
            "Critical result called to Karen Moore, NP at 00:05",
            "en",
            ["Karen", "Moore"],
            "[NAME], NP at 00:05",
        ),
    ],
)
def test_names(text, lang, gone, kept):
    out = _scrubbed(text, lang)
    for value in gone:
        assert value not in out
    assert kept in out


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("14.03.1952", "de"),
        ("am 14.3.52 und", "de"),
        ("vom 14. März 1952", "de"),
        ("stationär 12.–18.03.2024", "de"),
        ("am Dienstag, 5. März 2024", "de"),
        ("Voruntersuchung 03/2019", "de"),
        ("Voruntersuchung März 2019", "de"),
        ("Jahrgang 1952", "de"),
        ("geb.16.08.1968", "de"),
        ("aufgenommen am 3.6.", "de"),
        ("March 14th, 1952", "en"),
        ("the 14th of March 1952", "en"),
        ("DOB 14/03/52", "en"),
        ("DOB 03/14/1952", "en"),
        ("DOB 28-Feb-1963", "en"),
        ("Jan 8, 2024", "en"),
        ("decreasing since 1/8", "en"),
        ("born in 1952", "en"),
        ("Baseline 2024-05-06", "en"),
    ],
)
def test_dates(text, lang):
    out = _scrubbed(text, lang)
    assert not re.search(r"\d", out.replace("[DATUM]", "").replace("[DATE]", "")), out
    assert "[DATUM]" in out or "[DATE]" in out


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Kontrolle nach Fleischner 2017, Lobektomie 2019.", "de"),
        ("Stable disease nach RECIST 1.1. Keine neuen Läsionen.", "de"),
        ("CT-Schweregrad 12/25, Se 3/Bi 142, L4/5 und C5/6.", "de"),
        ("Telefonisch um 10:30 Uhr mitgeteilt, seit 3 Monaten.", "de"),
        ("Involving 1/3 of the liver; in 2 may be", "en"),
        ("78-jährige Patientin, 46 y/o woman, 86 years", "de"),
    ],
)
def test_non_person_dates_and_numbers_stay(text, lang):
    assert _scrubbed(text, lang) == text


@pytest.mark.parametrize(
    ("text", "lang", "value"),
    [
        ("Tel. 0761 270-12345", "de", "270-12345"),
        ("Rückruf +49 (0)761 27012345", "de", "27012345"),
        ("Zentrale (0761) 270 12345", "de", "270 12345"),
        ("Tel.: 0761/270-0", "de", "270-0"),
        ("Piepser 4471", "de", "4471"),
        ("erreichbar unter 0151 4477 8899.", "de", "4477 8899"),
        ("Phone (617) 555-0142", "en", "555-0142"),
        ("call +44 20 7946 0958 now", "en", "7946 0958"),
        ("Tel: 020 7946 0958", "en", "7946 0958"),
        ("bleep 4471", "en", "4471"),
        ("Questions: 1-800-555-0123.", "en", "555-0123"),
    ],
)
def test_phone_numbers(text, lang, value):
    out, counts = scrub_known(text, None, None, lang)
    assert value not in out
    assert counts.get("PHONE", 0) >= 1


@pytest.mark.parametrize("lang", ["de", "en"])
def test_email_and_url(lang):
    text = (
        "Mail radiologie@uniklinik-lindenhoehe.de, https://pacs.klinik-muster.de/viewer?id=3 "
        "und www.radiologie-am-markt.de oder rz-rheinaue.de."
    )
    out, counts = scrub_known(text, None, None, lang)
    assert "uniklinik" not in out and "pacs" not in out and "markt" not in out
    assert "rheinaue" not in out
    assert counts["EMAIL"] == 1 and counts["URL"] == 3
    plain = "V.a. Metastase, z.B. Leber, Z.n. OP; unauffällig.In der Leber ca.3 cm."
    assert _scrubbed(plain, lang) == plain


@pytest.mark.parametrize(
    ("text", "lang", "value"),
    [
        ("Fallnr. 2023-004567", "de", "004567"),
        ("Pat.-Nr.: 10293847", "de", "10293847"),
        ("KV-Nr. A123456789", "de", "A123456789"),
        ("Versichertennummer: X987654321", "de", "X987654321"),
        ("Auftragsnummer RAD-2023-009911", "de", "009911"),
        ("MRN 00482913", "en", "00482913"),
        ("Acc. CT2023-118842", "en", "118842"),
        ("NHS No. 943 476 5919", "en", "5919"),
        ("SSN 078-05-1120", "en", "1120"),
        ("hospital no. 48291", "en", "48291"),
    ],
)
def test_identifiers(text, lang, value):
    out, counts = scrub_known(text, None, None, lang)
    assert value not in out
    assert counts.get("ID", 0) == 1


@pytest.mark.parametrize(
    "text",
    [
        "CA 19-9 480 U/ml, PI-RADS 5, T2w, COVID-19, cT2b cN2, ICD-10: C34.1, LI-RADS LR-5",
        "DLP 312 mGy*cm, CTDIvol 7,9 mGy, 120 kV, 80 ml Imeron 350, SUVmax 8,2",
    ],
)
def test_clinical_codes_are_not_identifiers(text):
    assert _scrubbed(text, "de") == text
    assert _scrubbed(text, "en") == text


@pytest.mark.parametrize(
    ("text", "lang", "gone", "kept"),
    [
        (
            "Hugstetter Straße 55, 79106 Freiburg",
            "de",
            ["Hugstetter", "55", "79106", "Freiburg"],
            "[ADRESSE]",
        ),
        ("Praxis: Kaiser-Joseph-Str. 219", "de", ["Kaiser", "219"], "Praxis: [ADRESSE]"),
        ("wohnhaft Am Mühlbach 12a, 53129 Bonn", "de", ["Mühlbach", "Bonn"], "wohnhaft [ADRESSE]"),
        ("Freiburg, den 16.03.2023", "de", ["Freiburg"], "[ADRESSE], den [DATUM]"),
        ("of 12 Baker Street, London NW1 6XE", "en", ["Baker", "London", "6XE"], "of [ADDRESS]"),
        ("1400 Harbor Avenue, Boston, MA 02115", "en", ["Harbor", "Boston", "02115"], "[ADDRESS]"),
    ],
)
def test_addresses(text, lang, gone, kept):
    out = _scrubbed(text, lang)
    for value in gone:
        assert value not in out
    assert kept in out


def test_address_words_in_clinical_text_stay():
    text = "Im Segment 6 links ein Rundherd, Schatzki-Ring 3 mm, Baker-Zyste 2,4 cm."
    assert _scrubbed(text, "de") == text


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("Eine 92-jährige Patientin", "de", "Eine [ALTER]-jährige Patientin"),
        ("Frau K., 95 Jahre alt", "de", "[ALTER] Jahre alt"),
        ("Alter: 93 J.", "de", "Alter: [ALTER] J."),
        ("a 93 years old man", "en", "a [AGE] years old man"),
        ("a 95-year-old woman", "en", "a [AGE]-year-old woman"),
        ("aged 101, on apixaban", "en", "aged [AGE], on apixaban"),
    ],
)
def test_ages_over_89(text, lang, expected):
    assert expected in _scrubbed(text, lang)


@pytest.mark.parametrize(
    ("text", "lang", "gone", "kept"),
    [
        (
            "Zuweisung aus dem Kreiskrankenhaus Emmendingen.",
            "de",
            ["Emmendingen"],
            "aus dem [EINRICHTUNG].",
        ),
        (
            "PET-CT Universitätsklinikum Lindenhöhe, Klinik für Radiologie",
            "de",
            ["Lindenhöhe"],
            ", Klinik für Radiologie",
        ),
        ("Transferred from St Mary's Hospital today", "en", ["Mary"], "from [INSTITUTION] today"),
        (
            "Riverside General Hospital - Department of Radiology",
            "en",
            ["Riverside"],
            "- Department of Radiology",
        ),
    ],
)
def test_institutions(text, lang, gone, kept):
    out = _scrubbed(text, lang)
    for value in gone:
        assert value not in out
    assert kept in out


def test_clinical_terms_and_eponyms_survive():
    de = (
        "MR Knie: PD fs, Baker-Zyste 2,4 x 1,1 cm. Morbus Crohn des terminalen Ileums, "
        "Hounsfield 1050 HE, Typ Weber B, Chiari-Malformation, Fazekas 2, Se 3/Bi 12, L4/5, "
        "Hill-Sachs-Delle, Schmorl-Knötchen, 3,2 cm."
    )
    en = (
        "MRI knee: Baker's cyst 24 x 11 mm. Crohn's disease, 1050 HU, no Weber B fracture, "
        "Chiari I malformation, Dawson's fingers, series 4, image 57, L4-5, 3.2 cm."
    )
    assert _scrubbed(de, "de") == de
    assert _scrubbed(en, "en") == en


# --- header PHI ---------------------------------------------------------------------------


def test_header_names_in_every_order_case_and_spelling():
    known = known_phi_hashes(KEY, {"NAME": ["MUELLER^ERIKA^von der"], "ID": ["485 777 3456"]})
    text = (
        "ERIKA MÜLLER; Mueller, Erika; erika müller; Frau von der Müller; E. Müller; "
        "NHS 485 777 3456; Befund grenzwertig."
    )
    out = scrub(text, known, KEY, "de").text
    for value in (
        "ERIKA",
        "MÜLLER",
        "Mueller",
        "Erika",
        "erika",
        "müller",
        "von der",
        "E.",
        "3456",
    ):
        assert value not in out, value
    assert out.endswith("Befund grenzwertig.")


def test_common_words_that_are_also_the_patients_name():
    known = known_phi_hashes(KEY, {"NAME": ["Groß^Ferdinand", "White^Helen"]})
    out = scrub(
        "Herr Groß: Herz grenzwertig groß. Mrs White: white matter normal.", known, KEY, "de"
    ).text
    assert out == "Herr [NAME]: Herz grenzwertig groß. Mrs [NAME]: white matter normal."


@pytest.mark.parametrize(
    "written",
    [
        "14.03.1952",
        "14.3.52",
        "14. März 1952",
        "March 14th, 1952",
        "1952-03-14",
        "03/14/1952",
        "14/03/52",
        "19520314",
    ],
)
def test_birth_date_in_every_format(written):
    known = known_phi_hashes(KEY, {"DATE": ["19520314"]})
    result = scrub(f"geb. {written}, Untersuchung 2023-01-02.", known, KEY, "de")
    assert written not in result.text
    assert result.counts == {"BIRTH_DATE": 1, "DATE": 1}


def test_header_institution_and_address_phrases():
    known = known_phi_hashes(
        KEY,
        {"INST": ["Radiologie im Zentrum"], "ADDR": ["Rosenweg 4, 79111 Freiburg"]},
    )
    text = "Radiologie im Zentrum, Rosenweg 4. Läsion im Zentrum der Leber."
    out = scrub(text, known, KEY, "de").text
    assert out == "[EINRICHTUNG], [ADRESSE]. Läsion im Zentrum der Leber."


def test_spans_rebuild_the_text_and_counts_hold_no_values():
    text = "Patient: Mustermann, Max, geb. 14.03.1952, Tel. 0761 270-12345, Se 3/Bi 12."
    known = known_phi_hashes(KEY, {"NAME": ["Mustermann^Max"]})
    result = scrub(text, known, KEY, "de")
    assert apply_spans(text, result.spans, "de") == result.text
    starts = [s for s, _, _ in result.spans]
    assert starts == sorted(starts)
    assert all(e <= s2 for (_, e, _), (s2, _, _) in pairwise(result.spans))
    assert result.text == "Patient: [NAME], geb. [DATUM], Tel. [TELEFON], Se 3/Bi 12."
    assert all(isinstance(v, int) for v in result.counts.values())
    assert set(result.counts) <= {*pe.KINDS, "BIRTH_DATE"}


def test_known_phi_needs_its_secret():
    with pytest.raises(ValueError):
        scrub("x", ["NAME:abc"], None, "de")


# --- privacy of the machinery -------------------------------------------------------------


def test_no_phi_in_logs(caplog):
    text = "Herr Dr. Zacharias Quendt, Tel. 0761 270-99881, q.z@klinik-quendt.de, geb. 01.02.1950"
    with caplog.at_level(logging.DEBUG):
        scrub(text, known_phi_hashes(KEY, {"NAME": ["Quendt^Zacharias"]}), KEY, "de")
    for value in ("Quendt", "Zacharias", "99881", "klinik-quendt", "1950"):
        assert value not in caplog.text


def test_engine_is_built_once():
    assert pe.get_analyzer() is pe.get_analyzer()


def test_analysis_works_with_the_network_blocked(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    import spacy.cli

    monkeypatch.setattr(spacy.cli, "download", refuse)
    monkeypatch.setattr("spacy.load", refuse)
    pe.get_analyzer.cache_clear()
    pe.tld_extractor.cache_clear()
    text = "Kontakt a.b@klinik-muster.de, www.klinik-muster.de, Tel. 0761 270-12345, Dr. Weber."
    spans = pe.analyze(text, "de")
    assert {k for _, _, k in spans} >= {"EMAIL", "URL", "PHONE", "NAME"}
    assert pe.tld_extractor().suffix_list_urls == ()
    assert pe.tld_extractor()("x.y.co.uk").suffix == "co.uk"


def test_corpus_path_ships_with_the_package():
    assert CORPUS.is_file()
    assert CORPUS.parent == Path(pe.__file__).resolve().parents[1] / "data" / "eval"
