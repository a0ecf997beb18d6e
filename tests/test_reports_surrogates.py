"""Hide in plain sight: surrogates of the same kind, keyed and deterministic, no original
PHI left; placeholders stay the default."""

from __future__ import annotations

import re

from refrad_builder.deid.pseudo import date_shift_days
from refrad_builder.reports.scrub import ScrubOptions, known_phi_hashes, scrub
from refrad_builder.reports.surrogates import first_names

SECRET = b"surrogate-secret-0123456789abcdef"
TEXT = (
    "Patient: Herr Hubertus Wendelstein, geb. 14.02.1951, Pat.-Nr. 48151623.\n"
    "Zuweisung durch Dr. med. Kunigunde Plattner, Klinikum Tannenberg, Tel. 0761 270-4455.\n"
    "CT Thorax vom 03.05.2021: Lunge unauffällig. Voruntersuchung vom 12.11.2020."
)
ORIGINALS = [
    "Wendelstein",
    "Hubertus",
    "14.02.1951",
    "48151623",
    "Plattner",
    "Kunigunde",
    "Tannenberg",
    "270-4455",
    "03.05.2021",
    "12.11.2020",
]


def _opts(shift: int | None = -30) -> ScrubOptions:
    return ScrubOptions(surrogates=True, date_shift=shift)


def test_placeholders_stay_the_default() -> None:
    out = scrub(TEXT, None, SECRET, "de").text
    assert "[NAME]" in out and "[DATUM]" in out


def test_surrogates_are_deterministic_and_keyed() -> None:
    a = scrub(TEXT, None, SECRET, "de", _opts()).text
    b = scrub(TEXT, None, SECRET, "de", _opts()).text
    c = scrub(TEXT, None, b"another-secret-0123456789abcdefgh", "de", _opts()).text
    assert a == b
    assert a != c
    assert "[NAME]" not in a and "[DATUM]" not in a


def test_no_original_phi_survives_and_kinds_are_kept() -> None:
    known = known_phi_hashes(SECRET, {"NAME": ["Wendelstein^Hubertus"], "ID": ["48151623"]})
    result = scrub(TEXT, known, SECRET, "de", _opts())
    out = result.text
    for original in ORIGINALS:
        assert original not in out, original
    # dates: shifted by the patient's days, same format
    assert "03.04.2021" in out  # 03.05.2021 - 30 days
    assert "13.10.2020" in out
    # names: from the packaged lists; the title stays
    names = set(first_names())
    m = re.search(r"Herr (\w+) (\w+)", out)
    assert m and m.group(1) in names
    # numbers keep their shape
    nr = re.search(r"Pat\.-Nr\. (\S+)\.", out)
    assert nr and re.fullmatch(r"\d{8}", nr.group(1))
    assert result.counts["NAME"] >= 2


def test_dates_use_the_dicom_shift() -> None:
    shift = date_shift_days(SECRET, "pat123", 365)
    out = scrub("Untersuchung vom 03.05.2021.", None, SECRET, "de", _opts(shift)).text
    assert "03.05.2021" not in out and re.search(r"\d\d\.\d\d\.2\d{3}", out)
    # dates not retained in the DICOM: placeholders
    assert "[DATUM]" in scrub("vom 03.05.2021.", None, SECRET, "de", _opts(None)).text
