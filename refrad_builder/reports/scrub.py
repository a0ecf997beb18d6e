"""Report text de-identification: known PHI from the headers, dates, salutation names.

Known PHI arrives only as typed keyed hashes (``NAME:<hex>``, see
:func:`refrad_builder.pseudo.phi_hash`); every word of the report is hashed the same way and a
match is replaced by a typed placeholder. Independently of the headers, every date-like string,
every "Herr/Frau/Dr./Mr. <Name>" and "Patient: <Name>", e-mail address, URL and labelled phone
number is replaced.
Only counts by type leave this module, never a removed value.

Placeholders are German for German text (``[NAME]``, ``[ID]``, ``[DATUM]``,
``[EINRICHTUNG]``, ``[ADRESSE]``, ``[TELEFON]``) and English otherwise.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping

from refrad_builder.pseudo import PHI_TYPES, normalize_token, phi_hash

PLACEHOLDERS = {
    "de": {
        "NAME": "[NAME]",
        "ID": "[ID]",
        "DATE": "[DATUM]",
        "BIRTH_DATE": "[DATUM]",
        "INST": "[EINRICHTUNG]",
        "ADDR": "[ADRESSE]",
        "EMAIL": "[EMAIL]",
        "URL": "[URL]",
        "PHONE": "[TELEFON]",
    },
    "en": {
        "NAME": "[NAME]",
        "ID": "[ID]",
        "DATE": "[DATE]",
        "BIRTH_DATE": "[DATE]",
        "INST": "[INSTITUTION]",
        "ADDR": "[ADDRESS]",
        "EMAIL": "[EMAIL]",
        "URL": "[URL]",
        "PHONE": "[PHONE]",
    },
}
# A token that hashes to several kinds is replaced as the first of these.
_KIND_PRIORITY = ("ID", "NAME", "DATE", "INST", "ADDR")
# Name particles and titles: header name components that are also everyday words.
_NAME_STOPWORDS = frozenset(
    "von van vom zu zur der den de da di du la le del della dos das ten ter und y dr med "
    "prof phd md herr frau mr mrs ms jr sr ii iii".split()
)

# --- dates --------------------------------------------------------------------------------

_MONTHS = {
    1: "januar jänner january jan",
    2: "februar feber february feb",
    3: "märz maerz march mär mrz mar",
    4: "april apr",
    5: "mai may",
    6: "juni june jun",
    7: "juli july jul",
    8: "august aug",
    9: "september sept sep",
    10: "oktober october okt oct",
    11: "november nov",
    12: "dezember december dez dec",
}
_MONTH_OF = {w: n for n, words in _MONTHS.items() for w in words.split()}
# Month names are capitalised in both languages; matching only those keeps "2 may be" intact.
_MONTH_FORMS = sorted(
    {f for w in _MONTH_OF for f in (w[:1].upper() + w[1:], w.upper())}, key=len, reverse=True
)
_MONTH = "(" + "|".join(_MONTH_FORMS) + r")\.?"
_YEAR4 = r"((?:18|19|20)\d{2})"

_DATE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"(?<![\d.])(\d{{1,2}})\.\s?(\d{{1,2}})\.\s?{_YEAR4}(?!\d)"), "dmy"),
    (re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{2})(?!\d|\.\d)"), "dmy"),
    (re.compile(rf"(?<![\d/.-]){_YEAR4}[-/.](\d{{1,2}})[-/.](\d{{1,2}})(?![\d/-]|\.\d)"), "ymd"),
    (re.compile(r"(?<![\w/.])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/])"), "slash"),
    (re.compile(r"(?<![\d-])(\d{1,2})-(\d{1,2})-(\d{4})(?![\d-])"), "slash"),
    (re.compile(r"(?<!\d)((?:18|19|20)\d{2})(\d{2})(\d{2})(?!\d)"), "compact"),
    (
        re.compile(
            rf"(?<![\w.])(\d{{1,2}})(?:\.|st|nd|rd|th)?\s*(?:of\s+)?{_MONTH},?\s*{_YEAR4}(?!\d)",
        ),
        "d_month_y",
    ),
    (
        re.compile(rf"(?<![\w.]){_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+{_YEAR4}(?!\d)"),
        "month_d_y",
    ),
    (re.compile(rf"(?<![\w.]){_MONTH}\s+{_YEAR4}(?!\d)"), "month_y"),
    (
        re.compile(rf"(?<![\w.])(\d{{1,2}})(?:\.|st|nd|rd|th)?\s*(?:of\s+)?{_MONTH}(?!\w)"),
        "d_month",
    ),
    (re.compile(r"(?<![\w./])(0?[1-9]|1[0-2])/((?:18|19|20)\d{2})(?![\d/]|\.\d)"), "m_y"),
]
# German-only partial dates; in English text "3.2019" or "1.2." are more likely numbers.
_DATE_PATTERNS_DE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<![\w./])(0?[1-9]|1[0-2])\.((?:18|19|20)\d{2})(?![\d/]|\.\d)"), "m_y"),
    (re.compile(r"(?<![\w.])(\d{1,2})\.(\d{1,2})\.(?![\d])"), "d_m"),
]


def _ymd(y: int, m: int, d: int) -> str | None:
    try:
        return dt.date(y, m, d).strftime("%Y%m%d")
    except ValueError:
        return None


def _years(raw: str) -> list[int]:
    if len(raw) == 4:
        return [int(raw)]
    yy = int(raw)
    return [1900 + yy, 2000 + yy]


def _month(word: str) -> int | None:
    return _MONTH_OF.get(word.casefold().rstrip("."))


def _candidates(kind: str, g: tuple[str, ...]) -> list[str] | None:
    """YYYYMMDD readings of a match; [] for a valid partial date; None when no date."""
    out: list[str | None] = []
    if kind == "dmy":
        out = [_ymd(y, int(g[1]), int(g[0])) for y in _years(g[2])]
    elif kind == "ymd" or kind == "compact":
        out = [_ymd(int(g[0]), int(g[1]), int(g[2]))]
    elif kind == "slash":
        for y in _years(g[2]):
            out += [_ymd(y, int(g[0]), int(g[1])), _ymd(y, int(g[1]), int(g[0]))]
    elif kind == "d_month_y":
        m = _month(g[1])
        out = [_ymd(int(g[2]), m, int(g[0]))] if m else []
    elif kind == "month_d_y":
        m = _month(g[0])
        out = [_ymd(int(g[2]), m, int(g[1]))] if m else []
    elif kind == "month_y":
        return [] if _month(g[0]) else None
    elif kind == "d_month":
        return [] if _month(g[1]) and 1 <= int(g[0]) <= 31 else None
    elif kind == "m_y":
        return []
    elif kind == "d_m":
        return [] if 1 <= int(g[0]) <= 31 and 1 <= int(g[1]) <= 12 else None
    valid = [c for c in out if c]
    return list(dict.fromkeys(valid)) if valid else None


def find_dates(text: str, lang: str = "en") -> list[tuple[int, int, list[str]]]:
    """Date-like strings: (start, end, YYYYMMDD readings; empty for a partial date)."""
    found: list[tuple[int, int, list[str]]] = []
    patterns = _DATE_PATTERNS + (_DATE_PATTERNS_DE if lang == "de" else [])
    for pattern, kind in patterns:
        for m in pattern.finditer(text):
            if any(m.start() < e and m.end() > s for s, e, _ in found):
                continue
            cands = _candidates(kind, m.groups())
            if cands is not None:
                found.append((m.start(), m.end(), cands))
    return sorted(found)


def normalize_date_value(value: str) -> str | None:
    """A header or user date (YYYYMMDD, YYYY-MM-DD, dd.mm.yyyy, ...) as YYYYMMDD."""
    for _, _, cands in find_dates(value.strip()):
        if cands:
            return cands[0]
    return None


# --- known PHI hashes ---------------------------------------------------------------------


def known_phi_hashes(secret: bytes, values: Mapping[str, Iterable[str]]) -> list[str]:
    """Typed keyed hashes of raw header values by type (NAME, ID, DATE, INST, ADDR).

    Names, institutions and addresses are split into components at ``^`` and white space;
    dates are normalised to YYYYMMDD; IDs are hashed whole and by white-space component.
    """
    out: set[str] = set()
    for kind, raw_values in values.items():
        kind = kind.upper()
        if kind not in PHI_TYPES:
            raise ValueError(f"unknown PHI type {kind}; expected one of {', '.join(PHI_TYPES)}")
        for raw in raw_values:
            value = str(raw)
            if kind == "DATE":
                norm = normalize_date_value(value)
                if norm:
                    out.add(phi_hash(secret, "DATE", norm))
                continue
            parts = [p for p in re.split(r"[\^\s]+", value) if p]
            if kind == "ID":
                parts = [value.strip(), *parts]
            for part in parts:
                if len(normalize_token(part)) >= 2:
                    out.add(phi_hash(secret, kind, part))
    return sorted(out)


# --- patterns without header knowledge ----------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?<!\w)(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_PHONE = re.compile(
    r"(?<!\w)(?:(?:Tel(?:efon)?|Fax|Telefax|Mobil|Handy|Phone|Tel\.-Nr|Durchwahl|Pager)\.?"
    r"\s*(?:Nr\.?)?\s*:?\s*)(\+?\(?\d[\d ()/.-]{4,}\d)",
    re.IGNORECASE,
)
_INTL_PHONE = re.compile(r"(?<![\w+])\+\d{1,3}[ (]*\d[\d ()/.-]{5,}\d")
_TITLE = (
    r"(?:Herrn?|Frau|Fr\.|Hr\.|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.|Prof\.|Priv\.-Doz\.|"
    r"med\.|dent\.|rer\.|nat\.|univ\.|Dipl\.-Med\.)"
)
_PARTICLE = r"(?:von|van|de|der|den|zu|zur|vom|la|le|di|du|ten)"
_LOWER = "a-zäöüßéèáàçñ"
_NAME_WORD = (
    rf"(?:[A-ZÄÖÜ]\.|[A-ZÄÖÜ][{_LOWER}]*(?:['’-][A-ZÄÖÜ]?[{_LOWER}]+)+|[A-ZÄÖÜ][{_LOWER}]+"
    r"|[A-ZÄÖÜ]{2}[A-ZÄÖÜ'’-]*[A-ZÄÖÜ])"
)
_SALUTATION = re.compile(
    rf"(?<![\w.])(?P<title>(?:{_TITLE}[ \t]+)+)"
    rf"(?P<name>(?:{_PARTICLE}[ \t]+)*{_NAME_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_NAME_WORD})?)"
    r"(?![\w])"
)
# "Patient: Mustermann, Max" / "Name: ..." header lines copied into the report text
_LABELLED_NAME = re.compile(
    rf"(?<![\w.])(?:Patient(?:in)?|Pat\.|Name|Patientenname|Patient name|Patient's name)[ \t]*:[ \t]*"
    rf"(?P<name>{_NAME_WORD}(?:[ \t]*,?[ \t]+(?:{_PARTICLE}[ \t]+)*{_NAME_WORD}){{0,2}})(?!\w)"
)
_WORD = re.compile(r"\w+(?:[-/.'’]\w+)*")
_PLACEHOLDER = re.compile(r"\[[A-ZÄÖÜ_]+\]")
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def _variants(token: str) -> list[str]:
    low = token.casefold()
    out = [token]
    ascii_form = low.translate(_TRANSLIT)
    if ascii_form != low:
        out.append(ascii_form)
    umlaut = low.replace("ae", "ä").replace("oe", "ö").replace("ue", "ü")
    if umlaut != low:
        out.append(umlaut)
    return out


class _Scrubber:
    def __init__(self, text: str, lang: str, known: set[str], secret: bytes | None):
        self.text = text
        self.lang = lang
        self.places = PLACEHOLDERS["de" if lang == "de" else "en"]
        self.known = known
        self.secret = secret
        self.counts: Counter[str] = Counter()

    def _sub(self, spans: list[tuple[int, int, str]]) -> None:
        """Replace non-overlapping (start, end, type) spans with placeholders."""
        out, last = [], 0
        for s, e, kind in sorted(spans):
            if s < last:
                continue
            out.append(self.text[last:s])
            out.append(self.places[kind])
            self.counts[kind] += 1
            last = e
        out.append(self.text[last:])
        self.text = "".join(out)

    def patterns(self) -> None:
        spans = [(m.start(), m.end(), "EMAIL") for m in _EMAIL.finditer(self.text)]
        spans += [(m.start(), m.end(), "URL") for m in _URL.finditer(self.text)]
        self._sub(spans)
        spans = [(m.start(1), m.end(1), "PHONE") for m in _PHONE.finditer(self.text)]
        spans += [(m.start(), m.end(), "PHONE") for m in _INTL_PHONE.finditer(self.text)]
        self._sub(spans)

    def dates(self) -> None:
        spans = []
        for s, e, cands in find_dates(self.text, self.lang):
            birth = self.secret is not None and any(
                phi_hash(self.secret, "DATE", c) in self.known for c in cands
            )
            spans.append((s, e, "BIRTH_DATE" if birth else "DATE"))
        self._sub(spans)

    def _kind_of(self, token: str) -> str | None:
        if self.secret is None or not self.known:
            return None
        norm = normalize_token(token)
        if len(norm) < 2:
            return None
        for variant in _variants(token):
            for kind in _KIND_PRIORITY:
                if kind == "NAME" and norm in _NAME_STOPWORDS:
                    continue
                if phi_hash(self.secret, kind, variant) in self.known:
                    return kind
        return None

    def known_tokens(self) -> None:
        if self.secret is None or not self.known:
            return
        spans: list[tuple[int, int, str]] = []
        held = [m.span() for m in _PLACEHOLDER.finditer(self.text)]
        words = [
            m
            for m in _WORD.finditer(self.text)
            if not any(a <= m.start() and m.end() <= b for a, b in held)
        ]
        skip_until = -1
        for i, m in enumerate(words):
            if m.start() < skip_until:
                continue
            if i + 1 < len(words):
                nxt = words[i + 1]
                gap = self.text[m.end() : nxt.start()]
                # an ID written with a space or dash inside ("4711 0815")
                if (
                    gap in (" ", "-", "/")
                    and m.group(0)[-1:].isdigit()
                    and nxt.group(0)[:1].isdigit()
                ):
                    kind = self._kind_of(m.group(0) + nxt.group(0))
                    if kind is not None:
                        spans.append((m.start(), nxt.end(), kind))
                        skip_until = nxt.end()
                        continue
            kind = self._kind_of(m.group(0))
            if kind is not None:
                spans.append((m.start(), m.end(), kind))
                continue
            for part in re.finditer(r"\w+", m.group(0)):
                kind = self._kind_of(part.group(0))
                if kind is not None:
                    spans.append((m.start() + part.start(), m.start() + part.end(), kind))
        self._sub(spans)

    def salutations(self) -> None:
        spans = [(m.start("name"), m.end("name"), "NAME") for m in _SALUTATION.finditer(self.text)]
        spans += [
            (m.start("name"), m.end("name"), "NAME") for m in _LABELLED_NAME.finditer(self.text)
        ]
        self._sub(spans)

    def collapse(self) -> None:
        """Join runs of one placeholder ("[NAME] [NAME]"); an address swallows its number."""
        for place in set(self.places.values()):
            p = re.escape(place)
            self.text = re.sub(rf"{p}(?:[ \t]*,?[ \t]*{p})+", place, self.text)
        addr = re.escape(self.places["ADDR"])
        self.text = re.sub(rf"{addr}[ \t]+\d{{1,4}}[a-z]?(?!\w)", self.places["ADDR"], self.text)


def scrub_known(
    text: str, known_phi: Iterable[str] | None, secret: bytes | None, lang: str
) -> tuple[str, dict[str, int]]:
    """De-identify a report text; returns (scrubbed text, counts of replacements by type).

    ``known_phi`` holds typed keyed hashes made with ``secret`` (see :func:`known_phi_hashes`);
    without them only the header-independent rules run (dates, salutation names, e-mail, URL,
    labelled phone numbers). Count keys: NAME, ID, DATE, BIRTH_DATE (a date whose hash is a
    known DATE), INST, ADDR, EMAIL, URL, PHONE.
    """
    known = set(known_phi or ())
    if known and secret is None:
        raise ValueError("known PHI hashes need the secret they were made with")
    s = _Scrubber(text, lang, known, secret)
    s.patterns()
    s.dates()
    s.known_tokens()
    s.salutations()
    s.collapse()
    return s.text, dict(sorted(s.counts.items()))
