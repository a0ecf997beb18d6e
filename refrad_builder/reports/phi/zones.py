"""Zone-aware PHI policy: header, signature and copy-to zones are redacted aggressively.

A report's administrative zones hold names, numbers and places in forms no cue word
announces ("DELACROIX, AMARYLLIS" on a line of its own, "Hinrichsen / Wübbena" under a
closing). Inside a zone every capitalised word that is not vocabulary (``wordfreq`` below
:data:`_RARE` in both languages, or a gazetteer name below :data:`_NAME_RARE`) and not a
medical, heading or report word is a name, a name particle between such words goes with
them, and every number of three or more digits that no unit, time or age word follows is an
identifier. Labels (a word before ``:``) stay.

Zones:

* **header**: the lines before the first clinical heading ("Befund:", "FINDINGS", "Clinical
  details:"), when one stands within the first :data:`_HEADER_MAX_LINES` lines and before the
  first line of prose;
* **signature**: from a sign-off cue ("Electronically signed", "Dictated by", "Mit
  freundlichen Grüßen", "gez.", "Befundet von", "Read by") to the next heading or at most
  :data:`_SIGNATURE_LINES` lines;
* **copy-to** lines ("cc:", "Verteiler:", "Kopie an") and **administrative label lines**
  anywhere ("Patient:", "DOB:", "Station:", "Referring:"): the rest of the line.
"""

from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from refrad_builder.reports.phi.base import span_result
from refrad_builder.reports.phi.gazetteer import (
    is_listed_first_name,
    is_listed_surname,
    is_medical,
    zipf_max,
)
from refrad_builder.reports.phi.names import _PARTICLE_SET
from refrad_builder.reports.phi.people import is_first_name

_HEADER_MAX_LINES = 20
_SIGNATURE_LINES = 8
_RARE = 3.2
_NAME_RARE = 4.3
_CAPS_RARE = 2.0
_HEADING = regex.compile(
    r"^[ \t]*(?:\d+\.[ \t]*)?(?i:findings?|befunde?|beurteilung|impression|technique|technik|"
    r"clinical[ \t]+(?:history|details|information|indication|question|notes)|indications?|"
    r"indikation|rechtfertigende[ \t]+indikation|fragestellung|anamnese|klinische[ \t]+angaben|"
    r"klinik|history|comparison|vergleich|voraufnahmen?|report|opinion|conclusions?|"
    r"zusammenfassung|procedure|exam(?:ination)?|untersuchung|addendum|nachtrag|"
    r"reason[ \t]+for[ \t]+(?:exam|study)|protocol|protokoll)[ \t]*(?::|$)",
    regex.MULTILINE,
)
_SIGN_CUE = regex.compile(
    r"(?i:electronically[ \t]+(?:signed|verified)|e-signed|signed[ \t]+by|signed:|"
    r"dictated[ \t]+by|transcribed[ \t]+by|read[ \t]+by|reported[ \t]+by|verified[ \t]+by|"
    r"reviewed[ \t]+by|finali[sz]ed[ \t]+by|attending[ \t]+radiologist|mit[ \t]+freundlichen|"
    r"mit[ \t]+kollegialen|freundliche[ \t]+grüße|kollegiale[ \t]+grüße|kind[ \t]+regards|"
    r"best[ \t]+regards|yours[ \t]+(?:sincerely|faithfully)|befundet[ \t]+(?:von|durch)|"
    r"diktiert[ \t]+(?:von|durch)|vidiert|freigegeben[ \t]+(?:von|durch)|unterschrift)"
    r"|(?<![\w])gez\.",
)
_LINE_CUE = regex.compile(
    r"^[ \t]*(?:(?i:cc|c\.c\.|copy[ \t]+to|copies[ \t]+to|kopie[ \t]+an|kopien[ \t]+an|verteiler|"
    r"nachrichtlich(?:[ \t]+an)?|durchschlag[ \t]+an|patient(?:in)?|pat\.|name|vorname|nachname|"
    r"geb\.|geburtsdatum|dob|d\.o\.b\.|mrn|hosp(?:ital)?[ \t]+no\.?|nhs[ \t]+no\.?|address|adresse|"
    r"anschrift|wohnort|station|ward|location|referrer|referring(?:[ \t]+physician)?|"
    r"zuweiser(?:in)?|einsender(?:in)?|überweiser(?:in)?|hausarzt|hausärztin|gp|"
    r"kostenträger|versicherung|insurance|accession|acc\.|fallnummer|fall-nr\.|case|re|betreff))"
    r"[ \t]*[:#][ \t]*",
    regex.MULTILINE,
)
_TOKEN = regex.compile(
    r"(?P<num>[\p{L}\d]*\d[\p{L}\d/.-]*\d[\p{L}\d]*|\d{3,})|(?P<word>[\p{L}][\p{L}'’-]*)"
)
_UNIT_AFTER = regex.compile(
    r"[ \t]*(?:mm|cm|ml|mL|mGy|mSv|kg|g|%|s|sec|min|Uhr|h|kV|mAs|keV|ms|Hz|T|Tesla|mmol|mg|µg|"
    r"l|x|ng|HU|IE|U|°|-?(?:year|jährig|Jahre|J\.)|[ \t]*(?:years|Jahre|yo|y/o))(?![\p{L}])"
)
_SENTENCE_END = regex.compile(r"(?P<before>[\w.]+)\.[ \t]+(?=[\p{Lu}][\p{Ll}]{3,})")
_ABBREVIATIONS = frozenset(
    "dr prof med dres univ st sr jr rer nat habil priv doz m.d mr mrs ms".split()
)
_TIME = regex.compile(r"^\d{1,2}[:.]\d{2}$")


def _line_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in regex.finditer(r"[^\n]*", text) if m.end() > m.start()]


def header_zone(text: str) -> tuple[int, int] | None:
    """The header zone ``[0, end)``, or None when no clinical heading opens the report body."""
    for s, e in _line_spans(text)[:_HEADER_MAX_LINES]:
        if _HEADING.match(text, s, e):
            return (0, s) if s > 0 else None
        if len(regex.findall(r"\w+", text[s:e])) >= 9:
            return None
    return None


def _cue_line_end(text: str, start: int) -> tuple[int, bool]:
    """Where the sign-off on the cue's line ends: the line end, or a sentence end before
    report text ("geschrieben jk. Pleuraerguss links"); whether it went on to the line end."""
    nl = text.find("\n", start)
    nl = len(text) if nl < 0 else nl
    for m in _SENTENCE_END.finditer(text, start, nl):
        if m.group("before").casefold().rstrip(".") not in _ABBREVIATIONS:
            return m.end("before") + 1, False
    return nl, True


def signature_zones(text: str) -> list[tuple[int, int]]:
    """Zones from each sign-off cue to the next heading, a blank-free line of prose or at
    most :data:`_SIGNATURE_LINES` lines."""
    zones = []
    for cue in _SIGN_CUE.finditer(text):
        end, whole_line = _cue_line_end(text, cue.start())
        pos, lines = end + 1, 1
        while whole_line and pos < len(text) and lines < _SIGNATURE_LINES:
            nl = text.find("\n", pos)
            nl = len(text) if nl < 0 else nl
            if _HEADING.match(text, pos, nl) or len(regex.findall(r"\w+", text[pos:nl])) > 6:
                break
            end, pos, lines = nl, nl + 1, lines + 1
        zones.append((cue.start(), min(end, len(text))))
    return zones


def line_zones(text: str) -> list[tuple[int, int]]:
    """The values of copy-to and administrative label lines."""
    out = []
    for m in _LINE_CUE.finditer(text):
        nl = text.find("\n", m.end())
        out.append((m.end(), len(text) if nl < 0 else nl))
    return out


def _compound_of_words(word: str) -> bool:
    """A German compound of two everyday words ("Nachsorge", "Zyklustag", "Kniegelenks")."""
    w = word.casefold()
    for i in range(3, len(w) - 2):
        head, tail = w[:i], w[i:]
        if zipf_max(tail) >= _RARE and (
            zipf_max(head) >= _RARE or zipf_max(head.rstrip("s")) >= _RARE
        ):
            return True
    return False


def _name_like(word: str) -> bool:
    core = word.strip("'’-")
    if len(core) < 3 or not core[0].isupper() or (core.isupper() and len(core) <= 3):
        return False
    if is_medical(core):
        return False
    named = is_listed_surname(core) or is_listed_first_name(core) or is_first_name(core)
    rarity = zipf_max(core)
    if named:
        return rarity < _NAME_RARE
    if core.isupper():
        return rarity < _CAPS_RARE  # all-caps report text ("LUMBAR") is vocabulary more often
    return rarity < _RARE and not _compound_of_words(core)


def _number_is_id(text: str, m: regex.Match[str]) -> bool:
    value = m.group(0)
    if sum(c.isdigit() for c in value) < 3 or _TIME.match(value):
        return False
    return _UNIT_AFTER.match(text, m.end()) is None


def zone_spans(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """The name and identifier spans of one zone ``[start, end)``."""
    out: list[tuple[int, int, str]] = []
    pending: tuple[int, int] | None = None  # a particle waiting for the word after it
    for m in _TOKEN.finditer(text, start, end):
        if m.group("num"):
            if _number_is_id(text, m):
                out.append((m.start(), m.end(), "ID"))
            pending = None
            continue
        word = m.group("word")
        if regex.match(r"[ \t]*:", text[m.end() : m.end() + 3]):
            pending = None  # a label
            continue
        if word.casefold() in _PARTICLE_SET:
            pending = (m.start(), m.end()) if pending is None else (pending[0], m.end())
            continue
        if _name_like(word):
            s = pending[0] if pending and out and out[-1][2] == "NAME" else m.start()
            out.append((s, m.end(), "NAME"))
        pending = None
    return out


def all_zone_spans(text: str) -> list[tuple[int, int, str]]:
    """Name and identifier spans of every zone of ``text``."""
    zones = signature_zones(text) + line_zones(text)
    head = header_zone(text)
    if head is not None:
        zones.append(head)
    return [span for s, e in zones for span in zone_spans(text, s, e)]


class ZoneRecognizer(EntityRecognizer):
    """Presidio recognizer over :func:`all_zone_spans`."""

    def __init__(self, language: str):
        super().__init__(
            supported_entities=["NAME", "ID"], name=f"zones_{language}", supported_language=language
        )

    def load(self) -> None:
        """Nothing to load up front (the word lists load on first use)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """NAME and ID results for the zone spans of ``text``."""
        return [span_result(self, kind, s, e, 0.6, "zone") for s, e, kind in all_zone_spans(text)]
