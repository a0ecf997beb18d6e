import pytest

from refrad_builder.deid.pseudo import phi_hash
from refrad_builder.reports.scrub import (
    find_dates,
    known_phi_hashes,
    normalize_date_value,
    scrub_known,
)

KEY = b"unit-test-key-0123456789abcdef"


def hashes(**values):
    return known_phi_hashes(KEY, values)


def test_known_phi_hashes_split_and_normalise():
    got = set(hashes(NAME=["Mustermann^Max Otto"], DATE=["1952-03-14"], ID=["4711-0815"]))
    assert phi_hash(KEY, "NAME", "Mustermann") in got
    assert phi_hash(KEY, "NAME", "Otto") in got
    assert phi_hash(KEY, "DATE", "19520314") in got
    assert phi_hash(KEY, "ID", "4711-0815") in got
    with pytest.raises(ValueError):
        known_phi_hashes(KEY, {"PHONE": ["1"]})


GERMAN = (
    "Patient: Mustermann, Max, geb. 14.03.1952, PID 4711-0815.\n"
    "Klinikum Musterstadt, Hauptstraße 5.\n"
    "Befund: Läsion 3,2 x 2,1 cm (Se 3/Bi 142), Spondylarthrose L4/5, HWK 2 unauffällig.\n"
    "Vergleich mit der Voruntersuchung vom 2019-04-01 und vom 3.5.21.\n"
    "Telefonisch mit Herrn Dr. med. Schmidt besprochen am 14. März 2023, Tel. 0761 270-12345."
)


def test_german_known_phi_and_dates():
    known = hashes(
        NAME=["Mustermann^Max"],
        ID=["4711-0815"],
        DATE=["19520314"],
        INST=["Klinikum Musterstadt"],
        ADDR=["Hauptstraße 5"],
    )
    out, counts = scrub_known(GERMAN, known, KEY, "de")
    for value in (
        "Mustermann",
        "Max",
        "1952",
        "4711",
        "0815",
        "Musterstadt",
        "Hauptstraße",
        "Schmidt",
        "2019",
        "3.5.21",
        "März",
        "270-12345",
    ):
        assert value not in out, value
    assert "Patient: [NAME], geb. [DATUM], PID [ID]." in out
    assert "[EINRICHTUNG], [ADRESSE]." in out
    assert "Herrn Dr. med. [NAME]" in out
    assert "am [DATUM], Tel. [TELEFON]" in out
    # clinical notation survives
    assert "3,2 x 2,1 cm (Se 3/Bi 142), Spondylarthrose L4/5, HWK 2 unauffällig" in out
    assert counts["BIRTH_DATE"] == 1
    assert counts["DATE"] == 3
    assert counts["ID"] == 1
    assert counts["NAME"] >= 2  # one count per placeholder: "Dr. med. [NAME]" is one
    assert counts["INST"] == 1 and counts["ADDR"] == 1 and counts["PHONE"] == 1


def test_english_placeholders_and_birth_date_forms():
    known = hashes(NAME=["Smith^John"], ID=["A1234567"], DATE=["19520314"])
    text = (
        "Mr. John Smith, MRN A1234567, DOB March 14, 1952. Seen 14 March 1952 and 03/14/1952. "
        "Prior study 2021-11-02. Nodule on series 4, image 57, 3.2 cm."
    )
    out, counts = scrub_known(text, known, KEY, "en")
    assert out == (
        "Mr. [NAME], MRN [ID], DOB [DATE]. Seen [DATE] and [DATE]. "
        "Prior study [DATE]. Nodule on series 4, image 57, 3.2 cm."
    )
    assert counts == {"BIRTH_DATE": 3, "DATE": 1, "ID": 1, "NAME": 1}


def test_salutation_names_without_headers():
    out, counts = scrub_known(
        "Befund mit Frau Dr. Meier-Lüdenscheid und Herrn Weber besprochen. Dear Ms. O'Neil.",
        None,
        None,
        "de",
    )
    assert out == "Befund mit Frau Dr. [NAME] und Herrn [NAME] besprochen. Dear Ms. [NAME]."
    assert counts == {"NAME": 3}


def test_name_variants_and_parts():
    known = hashes(NAME=["MUELLER^ERIKA"])
    out, counts = scrub_known(
        "Befund der Patientin Erika Müller, Müller-Thurgau.", known, KEY, "de"
    )
    assert "Müller" not in out and "Erika" not in out
    assert "[NAME]-Thurgau" in out
    assert counts["NAME"] == 1  # adjacent name parts merge into one placeholder


def test_id_written_with_space_and_case():
    known = hashes(ID=["4711-0815"], NAME=["de^la^Cruz"])
    out, _ = scrub_known("PID 4711 0815, Befund de la Cruz.", known, KEY, "de")
    assert "4711" not in out and "0815" not in out
    # header particles go with the name they belong to
    assert out == "PID [ID], Befund [NAME]."


def test_emails_and_urls():
    out, counts = scrub_known("Rückfragen: a.b@klinik.de, www.klinik-muster.de", None, None, "de")
    assert out == "Rückfragen: [EMAIL], [URL]"
    assert counts == {"EMAIL": 1, "URL": 1}


@pytest.mark.parametrize(
    ("text", "ymd"),
    [
        ("14.03.1952", "19520314"),
        ("4.3.52", "19520304"),
        ("1952-03-14", "19520314"),
        ("14. März 1952", "19520314"),
        ("March 14, 1952", "19520314"),
        ("14 March 1952", "19520314"),
        ("19520314", "19520314"),
    ],
)
def test_date_normalisation(text, ymd):
    assert normalize_date_value(text) == ymd


def test_slash_dates_are_ambiguous():
    ((_, _, cands),) = find_dates("03/04/1952")
    assert set(cands) == {"19520304", "19520403"}


@pytest.mark.parametrize(
    "text",
    [
        "Se 3/Bi 142",
        "L4/5",
        "3,2 x 2,1 cm",
        "HWK 2",
        "C5/6",
        "3.2 cm",
        "Serie 2, Bild 211",
        "in 2 may be",
    ],
)
def test_no_false_dates(text):
    assert find_dates(text, "de") == []
    assert scrub_known(text, None, None, "de")[0] == text


def test_known_phi_needs_secret():
    with pytest.raises(ValueError):
        scrub_known("x", ["NAME:abc"], None, "de")


def test_counts_never_hold_values():
    known = hashes(NAME=["Mustermann"])
    _, counts = scrub_known("Herr Mustermann, 14.03.1952", known, KEY, "de")
    assert all(isinstance(v, int) for v in counts.values())
    assert not any("Mustermann" in k or "1952" in k for k in counts)
