"""Telephone, fax and pager numbers: labelled, international, national (DE/UK) and US."""

from __future__ import annotations

from refrad_builder.reports.phi.base import Rule

_PHONE_LABEL = (
    r"(?i:Tel(?:efon)?\.?(?:[ \t]?-?[ \t]?Nr\.?)?|Telefax|Fax|Mobil(?:telefon)?|Handy|Durchwahl|"
    r"Rufnummer|Piepser|Funk|Pager|Bleep|Phone|Telephone|Cell|Mobile|Direct[ \t]+(?:line|dial)|"
    r"Call[ \t]?-?[ \t]?back|Rückrufnummer|"
    r"Ext\.?|Extension|Poste|Apparat|App\.|erreichbar[ \t]+unter|reachable[ \t]+(?:at|on)|call[ \t]+(?:me[ \t]+)?(?:on|at)|"
    r"unter[ \t]+der[ \t]+Nummer|Rückruf(?:nummer)?)"
)
_PHONE_NUMBER = r"\+?\(?\d[\d \t()/.–-]*\d"
_PHONE_RULES = [
    Rule(
        "labelled",
        rf"(?<![\w]){_PHONE_LABEL}[ \t]*(?::|\.)?[ \t]*(?P<phi>-?{_PHONE_NUMBER}|-?\d{{3,}}|-\d{{1,5}}(?!\d))",
        0.85,
        # an extension after a dash ("Fax -99": the switchboard number is written before)
        adjust=lambda t, s, e, m: (
            (s, e) if sum(c.isdigit() for c in t[s:e]) >= 3 or t[s] == "-" else None
        ),
    ),
    # "Ph 07 5592 8810", "PH: 0412 555 019", "ph 02 5550 1234" (not "pH": a pH value has
    # fewer digits than the six asked for)
    Rule(
        "ph_label",
        rf"(?<![\w])(?:Ph|PH|ph)\.?[ \t]*:?[ \t]*(?P<phi>{_PHONE_NUMBER})",
        0.8,
        adjust=lambda t, s, e, m: (s, e) if sum(c.isdigit() for c in t[s:e]) >= 6 else None,
    ),
    # a number with its extension: "604.555.0132 ext 4410", "555-0100 x7", "0761 270-0, App. 31"
    Rule(
        "with_extension",
        r"(?<![\w+])(?P<phi>\+?\(?\d[\d \t()/.-]{4,}\d[ \t]*,?[ \t]*"
        r"(?i:ext\.?|extension|x|app\.?|apparat|dw|durchwahl)[ \t]*\d{1,6})(?![\w])",
        0.8,
        adjust=lambda t, s, e, m: (s, e) if sum(c.isdigit() for c in t[s:e]) >= 7 else None,
    ),
    # +49 (0)761 27012345, +44 7700 900456, +1 (415) 555-0175
    Rule(
        "international",
        r"(?<![\w+])\+\d{1,3}[ \t]?(?:\(0\)[ \t]?)?\(?\d{1,5}\)?(?:[ \t/-]?\d{2,}){1,5}(?!\d)",
        0.75,
    ),
    # German/UK national numbers: 0761 270-38010, (0761) 270 12345, 0176 22334455, 020 7946 0958
    Rule(
        "national",
        r"(?<![\w+/.,-])(?:\(0\d{1,5}\)|0\d{2,5})(?:[ \t]?/[ \t]?|[ \t-])\d{2,}(?:[ \t-]\d{1,})*(?!\d|[.,/]\d)",
        0.6,
        adjust=lambda t, s, e, m: (s, e) if sum(c.isdigit() for c in t[s:e]) >= 7 else None,
    ),
    # an extension written "x4471" (after a number or alone)
    Rule("extension", r"(?<![\w])x\d{3,5}(?![\w])", 0.7),
    # US: (617) 555-0142, 617-555-0199, 1-800-555-0123
    Rule(
        "us",
        r"(?<![\w-])(?:1-)?(?:\(\d{3}\)[ \t]?|\d{3}[-.])\d{3}[-.]\d{4}(?![\d-])",
        0.75,
    ),
]
_PHONE_CONTEXT = [
    "tel",
    "telefon",
    "fax",
    "mobil",
    "handy",
    "durchwahl",
    "rufnummer",
    "erreichbar",
    "phone",
    "call",
    "mobile",
    "cell",
    "pager",
    "bleep",
    "reachable",
    "telephone",
    "telefonnummer",
]
