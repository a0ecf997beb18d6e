"""Street addresses, postcodes with cities (DE, UK, US) and a German letter's place line."""

from __future__ import annotations

import re

from refrad_builder.reports.phi.base import _LOW, _UP, Rule
from refrad_builder.reports.phi.names import is_not_name

_DE_STREET_SUFFIX = (
    r"(?:straße|strasse|str\.|Straße|Strasse|Str\.|str(?=[ \t]+\d)|Str(?=[ \t]+\d)|weg|Weg|gasse|Gasse|allee|Allee|platz|Platz|"
    r"damm|Damm|ufer|Ufer|chaussee|Chaussee|steig|Steig|pfad|Pfad|ring|Ring)"
)
_EN_STREET_SUFFIX = (
    r"(?:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|Drive|Dr\.?|Boulevard|Blvd\.?|Way|"
    r"Court|Ct\.?|Place|Pl\.?|Terrace|Close|Crescent|Square|Sq\.?|Parkway|Pkwy\.?|Highway|"
    r"Hwy\.?|Row|Gardens|Grove|Walk|Mews|Yard|Wynd|Rise|Parade|Green|Hill|View|Gate|Heights)"
)
_CITY = rf"[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"
_CITY_ANY = rf"(?:{_CITY}|[{_UP}]{{3,}}(?:-[{_UP}]{{3,}})*)"
_EN_SUFFIX_ANY = (
    r"(?i:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|Drive|Dr\.?|Boulevard|Blvd\.?|Way|"
    r"Court|Ct\.?|Place|Pl\.?|Terrace|Close|Crescent|Square|Sq\.?|Parkway|Pkwy\.?|Highway|"
    r"Hwy\.?|Row|Gardens|Grove|Walk|Mews|Yard|Wynd|Rise|Parade|Green|Hill|View|Gate|Heights)"
)
# 12, 12a, 12-14, and Austrian staircase/door numbers "88/2/4"
_HOUSE_NO = r"\d{1,4}(?:[ \t]?[a-z])?(?:[-/]\d{1,4}[a-z]?){0,3}"
_US_STATES = (
    r"(?:AL|AK|AZ|CA|CO|FL|GA|IA|IL|KS|KY|MI|MN|MO|MT|NC|ND|NE|NH|NJ|NM|NV|NY|OH|RI|SC|TN|TX|UT|"
    r"VT|WA|WI|WV|WY)"
)
_AU_STATES = r"(?:QLD|NSW|VIC|SA|WA|TAS|NT|ACT)"


def _not_common(text: str, s: int, e: int, m: object) -> tuple[int, int] | None:
    """Veto a place whose words are headings or report vocabulary ("Befund, 05.03.")."""
    words = re.findall(r"[\w]+", text[s:e])
    return None if any(is_not_name(w) for w in words if not w.isdigit()) else (s, e)


_CITY_PREFIX = r"(?:(?:Bad|Sankt|St\.|Neu|Alt|Groß|Klein|Hohen|Markt|Schwäbisch|Hann\.)[ \t]+)?"
_CA_PROVINCES = r"(?:ON|QC|BC|AB|MB|SK|NS|NB|NL|PE|YT|NT|NU)"
_ADDR_RULES = [
    # Canadian city, province and postal code: "Red Deer AB T4N 5E1", "Gatineau, QC J8X 2K4"
    Rule(
        "ca_city_postcode",
        rf"(?<![\w])(?:{_CITY}[ \t]+){{0,2}}{_CITY},?[ \t]+{_CA_PROVINCES}[ \t]+"
        r"[A-CEGHJ-NPR-TVXY]\d[A-CEGHJ-NPR-TV-Z][ \t]?\d[A-CEGHJ-NPR-TV-Z]\d(?![\w])",
        0.75,
    ),
    # an Irish or British county after its town: "Tullamore, Co. Offaly", "Navan, Co Meath"
    Rule(
        "county",
        rf"(?<![\w])(?:{_CITY},[ \t]+)?Co\.?[ \t]+(?!Ltd\b|Inc\b|KG\b){_CITY}(?![\w])",
        0.65,
        adjust=_not_common,
    ),
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
        rf"(?<![\w-])(?:[{_UP}][{_LOW}]+[ \t])?(?:[{_UP}][\w-]*?)?{_DE_STREET_SUFFIX}[ \t]+{_HOUSE_NO}(?![\w,.]\d|\w)",
        0.75,
        adjust=lambda t, s, e, m: None if re.match(r"(?:\w+-)?Ring[ \t]", t[s:e]) else (s, e),
    ),
    # the city right after a street and house number, without a postcode: "Bergstr 7 Marburg"
    Rule(
        "de_street_city",
        rf"(?<![\w-])(?:[{_UP}][\w-]*?)?{_DE_STREET_SUFFIX}[ \t]+{_HOUSE_NO},?[ \t]+"
        rf"(?P<phi>{_CITY_PREFIX}{_CITY})(?=[ \t]*(?:$|[,;|·–—]))",
        0.7,
        adjust=_not_common,
    ),
    # Am Mühlbach 12a, An der Kirche 3 (only as a standalone address phrase)
    Rule(
        "de_street_prep",
        rf"(?<![\w])(?:Am|Im|In[ \t]der|In[ \t]den|Beim|An[ \t]der|An[ \t]den|Auf[ \t]dem|Auf[ \t]der|Zum|Zur|"
        rf"Unter[ \t]den|Hinter[ \t]der|Vor[ \t]dem)[ \t]+[{_UP}][\wäöüß-]+"
        r"[ \t]+\d{1,4}(?:[ \t]?[a-z])?(?=[ \t]*(?:[,;)]|$))",
        0.7,
    ),
    # 79106 Freiburg, D-79106 Freiburg im Breisgau
    Rule(
        "de_postcode_city",
        rf"(?<![\w.,/-])(?:(?:D|DE|A|CH)-)?\d{{5}}[ \t]+{_CITY_PREFIX}{_CITY}(?:[ \t]+(?:im|am|an[ \t]der|ob[ \t]der)[ \t]+{_CITY})?(?!\w)"
        # a river or region abbreviated after the city: "Buchholz i.d.N.", "Weiden i.d.OPf."
        r"(?:[ \t]+(?:[ia]\.[ \t]?(?:d\.[ \t]?)?|b\.[ \t]?|a\.[ \t]?d\.[ \t]?)\p{Lu}[\p{L}]{0,3}\.)?",
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
    # 3105 N Division St, 2200 E 71ST ST, Level 2, 310 Old Cleveland Rd
    Rule(
        "en_street_any",
        r"(?<![\w.,])(?:(?:Flat|Apt\.?|Apartment|Unit|Level|Suite|Shop|Office)[ \t]+"
        r"(?:\d+[A-Z]?,?[ \t]+|(?=\d+[A-Z]?/\d)))?(?:\d{1,4}[A-Z]?/)?"
        r"\d{1,5}[A-Z]?[ \t]+(?!(?i:mm|cm|ml|mg|x|h|min|mgy|kv|mas|t)\b)(?:(?:[NSEW]|NE|NW|SE|SW)\.?[ \t]+)?"
        rf"(?:(?:[A-Z][a-z]+|[A-Z]{{2,}}|\d{{1,3}}(?i:st|nd|rd|th))[ \t]+){{1,3}}{_EN_SUFFIX_ANY}(?![\w])"
        r"(?:,?[ \t]+(?:Suite|Ste\.?|Apt\.?|Apartment|Unit|Floor)[ \t]*\#?\d+[A-Z]?)?",
        0.7,
    ),
    # Unit 4, Ballybrit Business Park
    Rule(
        "business_park",
        r"(?<![\w])(?:Unit|Level|Building)[ \t]+\d+[A-Z]?,[ \t]+(?:[A-Z][\w'’]+[ \t]+){1,3}"
        r"(?:Business|Industrial|Retail|Technology|Science|Medical)[ \t]+(?:Park|Estate|Centre|Center)",
        0.7,
    ),
    # a street of any name right before a postcode: "Anger 37, 99084 Erfurt"
    Rule(
        "street_before_postcode",
        rf"(?<![\w-])(?P<phi>[{_UP}][\wäöüß.-]+(?:[ \t][{_UP}][\wäöüß.-]*){{0,2}}[ \t]+{_HOUSE_NO})"
        rf",[ \t]*(?:(?:D|A|CH)-)?\d{{4,5}}[ \t]+{_CITY_PREFIX}{_CITY}(?=[ \t]*(?:$|[,·|;(–—]))",
        0.7,
        adjust=_not_common,
    ),
    # Austrian and Swiss 4-digit postcodes, as a field of their own: ", 8008 Zürich"
    Rule(
        "at_ch_postcode_city",
        rf"(?:^|(?<=[,·|;][ \t]*))(?:(?:A|CH)-)?\d{{4}}[ \t]+{_CITY_PREFIX}{_CITY}"
        r"(?=[ \t]*(?:$|[,·|;–—]))",
        0.65,
        adjust=_not_common,
    ),
    # Tulsa, OK 74136; CHICAGO IL 60614
    Rule(
        "us_city_zip_any",
        rf"(?<![\w])(?:{_CITY_ANY}[ \t]){{0,2}}{_CITY_ANY},?[ \t]*[A-Z]{{2}}[ \t]+\d{{5}}(?:-\d{{4}})?(?![\w])",
        0.7,
        adjust=_not_common,
    ),
    Rule(
        "us_city_state",
        rf"(?<![\w])(?:{_CITY}[ \t]){{0,2}}{_CITY},[ \t]*{_US_STATES}(?=[ \t]{{2,}}|[ \t]*(?:$|[,;|·)–—]))",
        0.65,
        adjust=_not_common,
    ),
    # Coorparoo QLD 4151
    Rule(
        "au_city_postcode",
        rf"(?<![\w])(?:{_CITY_ANY}[ \t]){{0,2}}{_CITY_ANY},?[ \t]+{_AU_STATES}[ \t]+\d{{4}}(?![\w])",
        0.7,
    ),
    # Galway H91 P8Y2 (a city before an Eircode)
    Rule(
        "ie_city_eircode",
        rf"(?<![\w])(?:{_CITY},?[ \t]+){{1,2}}(?=[AC-FHKNPRTV-Y]\d{{2}}[ \t]?[0-9AC-FHKNPRTV-Y]{{4}}(?![\w]))"
        r"[AC-FHKNPRTV-Y]\d{2}[ \t]?[0-9AC-FHKNPRTV-Y]{4}",
        0.7,
    ),
    # Postfach 10 44 21, PO Box 1234
    Rule(
        "po_box",
        r"(?<![\w])(?:Postfach|P\.?[ \t]?O\.?[ \t]+Box|PO[ \t]+Box)[ \t]+(?P<phi>\d[\d \t]{1,10}\d)",
        0.75,
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
    # ... and without "den": "Heilbronn, 05.03.2024", "Speyer, 18. November 2024"
    Rule(
        "de_letter_place_date",
        rf"^[ \t]*(?P<phi>{_CITY}(?:[ \t]+(?:im|am)[ \t]+{_CITY})?),[ \t]*"
        rf"(?=\d{{1,2}}\.[ \t]?(?:\d{{1,2}}\.[ \t]?\d{{2,4}}|[{_UP}][{_LOW}]+[ \t]+\d{{4}})[ \t]*$)",
        0.7,
        adjust=_not_common,
    ),
]
