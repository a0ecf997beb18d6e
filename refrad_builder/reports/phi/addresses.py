"""Street addresses, postcodes with cities (DE, UK, US) and a German letter's place line."""

from __future__ import annotations

import re

from refrad_builder.reports.phi.base import _LOW, _UP, Rule

_DE_STREET_SUFFIX = (
    r"(?:straße|strasse|str\.|Straße|Strasse|Str\.|weg|Weg|gasse|Gasse|allee|Allee|platz|Platz|"
    r"damm|Damm|ufer|Ufer|chaussee|Chaussee|steig|Steig|pfad|Pfad|ring|Ring)"
)
_EN_STREET_SUFFIX = (
    r"(?:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|Drive|Dr\.?|Boulevard|Blvd\.?|Way|"
    r"Court|Ct\.?|Place|Pl\.?|Terrace|Close|Crescent|Square|Sq\.?|Parkway|Pkwy\.?|Highway|"
    r"Hwy\.?|Row|Gardens|Grove|Walk|Mews)"
)
_CITY = rf"[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"
_CITY_PREFIX = r"(?:(?:Bad|Sankt|St\.|Neu|Alt|Groß|Klein|Hohen|Markt|Schwäbisch|Hann\.)[ \t]+)?"
_ADDR_RULES = [
    # Irish postal districts and Eircodes: Dublin 8, D08 X2F5, A65 F4E2
    Rule("ie_dublin", r"(?<![\w])Dublin[ \t]+\d{1,2}W?(?![\w])", 0.7),
    Rule(
        "ie_eircode",
        r"(?<![\w])(?:[AC-FHKNPRTV-Y]\d{2}|D6W)[ \t]?(?=[0-9AC-FHKNPRTV-Y]{0,3}\d)"
        r"(?=[0-9AC-FHKNPRTV-Y]{0,3}[AC-FHKNPRTV-Y])[0-9AC-FHKNPRTV-Y]{4}(?![\w])",
        0.7,
    ),
    # Hugstetter Straße 55, Kaiser-Joseph-Str. 219, Schillerstr. 22, Lindenallee 17a
    Rule(
        "de_street",
        rf"(?<![\w-])(?:[{_UP}][{_LOW}]+[ \t])?(?:[{_UP}][\w-]*?)?{_DE_STREET_SUFFIX}[ \t]+\d{{1,4}}(?:[ \t]?[a-z])?(?![\w,.]\d|\w)",
        0.75,
        adjust=lambda t, s, e, m: None if re.match(r"(?:\w+-)?Ring[ \t]", t[s:e]) else (s, e),
    ),
    # Am Mühlbach 12a, An der Kirche 3 (only as a standalone address phrase)
    Rule(
        "de_street_prep",
        rf"(?<![\w])(?:Am|An[ \t]der|An[ \t]den|Auf[ \t]dem|Auf[ \t]der|Zum|Zur|Unter[ \t]den)[ \t]+[{_UP}][\wäöüß-]+"
        r"[ \t]+\d{1,4}(?:[ \t]?[a-z])?(?=[ \t]*(?:[,;)]|$))",
        0.7,
    ),
    # 79106 Freiburg, D-79106 Freiburg im Breisgau
    Rule(
        "de_postcode_city",
        rf"(?<![\w.,/-])(?:(?:D|DE|A|CH)-)?\d{{5}}[ \t]+{_CITY_PREFIX}{_CITY}(?:[ \t]+(?:im|am|an[ \t]der|ob[ \t]der)[ \t]+{_CITY})?(?!\w)",
        0.7,
    ),
    # 12 Baker Street, 221B Baker Street, 500 Market Street, Suite 210, 300 Lake Shore Dr
    Rule(
        "en_street",
        rf"(?<![\w.,])(?:(?:Flat|Apt\.?|Apartment|Unit)[ \t]+\d+[A-Z]?,?[ \t]+)?\d{{1,5}}[A-Z]?[ \t]+"
        rf"(?:[A-Z][a-z]+[ \t]+){{1,3}}{_EN_STREET_SUFFIX}(?![\w])"
        r"(?:,?[ \t]+(?:Suite|Ste\.?|Apt\.?|Apartment|Unit|Floor)[ \t]*\#?\d+[A-Z]?)?",
        0.7,
    ),
    Rule(
        "en_street_name",
        r"(?<![\w])(?:[A-Z][a-z]+[ \t]+){1,2}(?:Street|Road|Lane|Avenue|Boulevard|Crescent|Terrace)(?![\w])",
        0.6,
    ),
    # London NW1 6XE, Eastbrook EB4 2QT, NW1 6XE
    Rule(
        "uk_postcode",
        rf"(?<![\w])(?:(?:{_CITY}[ \t]){{0,2}}{_CITY},?[ \t]+)?(?:[A-Z]{{1,2}}\d[A-Z\d]?)[ \t]?\d[A-Z]{{2}}(?![\w])",
        0.7,
    ),
    # Boston, MA 02115; Portland, OR 97204-1234
    Rule(
        "us_city_zip",
        rf"(?<![\w])(?:{_CITY}[ \t]){{0,2}}{_CITY},[ \t]*[A-Z]{{2}}[ \t]+\d{{5}}(?:-\d{{4}})?(?![\w])",
        0.75,
    ),
    # the place of a German letter's date line: "Freiburg, den 16.03.2023"
    Rule(
        "de_letter_place",
        rf"^[ \t]*(?P<phi>{_CITY}(?:[ \t]+(?:im|am)[ \t]+{_CITY})?),[ \t]*den[ \t]+(?=\d)",
        0.7,
    ),
]
