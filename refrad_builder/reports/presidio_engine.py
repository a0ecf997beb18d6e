"""An offline presidio ``AnalyzerEngine`` for German and English radiology report text.

Nothing here downloads anything. The NLP engine wraps blank spaCy pipelines
(``spacy.blank("de")``/``spacy.blank("en")``: a tokenizer and stop-word lists, no model) and
reports each token's lower-case form as its lemma, so presidio's context words still work.
The e-mail and URL recognizers validate domains with ``tldextract`` on its bundled public
suffix snapshot (no suffix list URL, no cache directory), so analysis never opens a socket.

The recognizers are patterns (presidio ``PatternRecognizer`` subclasses); a pattern may mark
the PHI inside its match with named groups ``phi``/``phi2`` so that a title, label or unit
around it stays readable. Entity names are the scrubber's PHI kinds:

``NAME``   names after titles and salutations (Herr, Frau, Dr. med., Prof., Kollegin, Mr,
           Mrs, Ms, Dear, Lieber), after labels (Patient:, Überweiser:, Referring physician:,
           Dictated by, i.A., ...), before degrees (", MD", ", FRCR") and under a closing
           ("Mit freundlichen Grüßen", "Kind regards")
``DATE``   dates in German and English formats (see :func:`find_dates`) and birth years
           ("Jahrgang 1952", "born in 1952")
``PHONE``  labelled numbers (Tel., Fax, Durchwahl, Piepser, bleep, ...), German, UK, US and
           international formats, and phonenumbers' matcher near a phone word
``EMAIL``, ``URL``
``ID``     labelled patient/case/accession/insurance numbers (Pat.-Nr., Fallnr., KV-Nr.,
           Versichertennummer, MRN, Acc., NHS No., SSN, ...) and unlabelled codes that only
           identifiers look like (letters + 3 or more digits, 7+ digit numbers, ...)
``ADDR``   street addresses ("Hauptstraße 12", "Am Mühlbach 12a", "12 Baker Street"),
           postcodes with cities ("79106 Freiburg", "London NW1 6XE", "Boston, MA 02115"),
           the place of a German letter's date line ("Freiburg, den ...")
``INST``   institution names ("Klinikum Tannenberg", "St Mary's Hospital")
``AGE``    ages over 89 ("92-jährige", "93 years old", "aged 95")

:func:`analyze` returns ``(start, end, kind)`` spans; the engine is built once per process.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import regex
from presidio_analyzer import (
    AnalysisExplanation,
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer

LANGUAGES = ("de", "en")
SCORE_THRESHOLD = 0.5
KINDS = ("NAME", "DATE", "PHONE", "EMAIL", "URL", "ID", "ADDR", "INST", "AGE")

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
# Not glued to a number before ("3.14.03.1952" is no date), but "geb.14.03.1952" is one.
_NB = r"(?<!\d)(?<!\d[.,/-])"
_ORD = r"(?:\.|st|nd|rd|th)?"
_DAY_RANGE = r"(?:\.?[ \t]?[–-][ \t]?\d{1,2})?"

_DATE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # 14.03.1952, 14. 3. 1952, 12.–18.03.2024
    (
        re.compile(
            rf"{_NB}(?:\d{{1,2}}\.?[ \t]?[–-][ \t]?)?(\d{{1,2}})\.\s?(\d{{1,2}})\.\s?{_YEAR4}(?!\d)"
        ),
        "dmy",
    ),
    (re.compile(rf"{_NB}(\d{{1,2}})\.(\d{{1,2}})\.(\d{{2}})(?!\d|\.\d)"), "dmy"),
    (re.compile(rf"{_NB}{_YEAR4}[-/.](\d{{1,2}})[-/.](\d{{1,2}})(?![\d/-]|\.\d)"), "ymd"),
    (re.compile(r"(?<![\w/.])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/])"), "slash"),
    (re.compile(r"(?<![\d-])(\d{1,2})-(\d{1,2})-(\d{4})(?![\d-])"), "slash"),
    (
        re.compile(r"(?<!\d)((?:18|19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)"),
        "compact",
    ),
    # 28-Feb-1963, 19-FEB-61
    (
        re.compile(rf"(?<![\w.])(\d{{1,2}})[-/ ]{_MONTH}[-/ ]((?:18|19|20)?\d{{2}})(?!\d)"),
        "d_mon_y",
    ),
    # 14. März 1952, 9th February 2024, 12.–18. März 2024, 14th of March 1952
    (
        re.compile(
            rf"(?<![\w.])(?:\d{{1,2}}{_ORD}[ \t]?[–-][ \t]?)?(\d{{1,2}}){_ORD}\s*(?:of\s+)?{_MONTH},?\s*{_YEAR4}(?!\d)"
        ),
        "d_month_y",
    ),
    # March 14, 1952; August 8th 1959; March 12-18, 2024
    (
        re.compile(
            rf"(?<![\w.]){_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?{_DAY_RANGE},?\s+{_YEAR4}(?!\d)"
        ),
        "month_d_y",
    ),
    (re.compile(rf"(?<![\w.]){_MONTH}\s+{_YEAR4}(?!\d)"), "month_y"),
    (
        re.compile(rf"(?<![\w.])(\d{{1,2}})(?:\.|st|nd|rd|th)?\s*(?:of\s+)?{_MONTH}(?!\w)"),
        "d_month",
    ),
    (re.compile(rf"(?<![\w.]){_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)(?!\w)"), "month_d"),
    (re.compile(r"(?<![\w./])(0?[1-9]|1[0-2])/((?:18|19|20)\d{2})(?![\d/]|\.\d)"), "m_y"),
]
# German-only partial dates; in English text "3.2019" or "1.2." are more likely numbers.
_DATE_PATTERNS_DE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<![\w./])(0?[1-9]|1[0-2])\.((?:18|19|20)\d{2})(?![\d/]|\.\d)"), "m_y"),
    # not a version number ("RECIST 1.1.", "Version 2.1.")
    (re.compile(r"(?<![\w.])(?<![A-Z][A-Z] )(?<!Version )(\d{1,2})\.(\d{1,2})\.(?![\d])"), "d_m"),
]
# English month/day without a year only after a preposition: "since 1/8" (fractions stay).
_DATE_PATTERNS_EN: list[tuple[re.Pattern[str], str]] = [
    (
        regex.compile(
            r"(?<=\b(?:since|on|from|dated|until|till|by) )(0?[1-9]|1[0-2])/(0?[1-9]|[12]\d|3[01])(?![\d/])",
            regex.IGNORECASE,
        ),
        "m_d",
    ),
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
    elif kind == "d_mon_y":
        m = _month(g[1])
        out = [_ymd(y, m, int(g[0])) for y in _years(g[2])] if m else []
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
    elif kind == "month_d":
        return [] if _month(g[0]) and 1 <= int(g[1]) <= 31 else None
    elif kind in ("m_y", "m_d"):
        return []
    elif kind == "d_m":
        return [] if 1 <= int(g[0]) <= 31 and 1 <= int(g[1]) <= 12 else None
    valid = [c for c in out if c]
    return list(dict.fromkeys(valid)) if valid else None


def find_dates(text: str, lang: str = "en") -> list[tuple[int, int, list[str]]]:
    """Date-like strings: (start, end, YYYYMMDD readings; empty for a partial date)."""
    found: list[tuple[int, int, list[str]]] = []
    extra = _DATE_PATTERNS_DE if lang == "de" else _DATE_PATTERNS_EN
    for pattern, kind in _DATE_PATTERNS + extra:
        for m in pattern.finditer(text):
            if any(m.start() < e and m.end() > s for s, e, _ in found):
                continue
            cands = _candidates(kind, m.groups())
            if cands is not None:
                found.append((m.start(), m.end(), cands))
    return sorted(found)


# --- building blocks ----------------------------------------------------------------------

# any script's capitals and small letters ("Şahin", "Łukasz", "Yıldız"); regex module only
_UP = r"\p{Lu}"
_LOW = r"\p{Ll}"
_INITIAL = rf"[{_UP}]\.(?:-[{_UP}]\.)?"
_CAPWORD = rf"(?:Mc|Mac|O['’]|D['’])?[{_UP}][{_LOW}]+(?:[-'’][{_UP}]?[{_LOW}]+)*"
_ALLCAPS = rf"[{_UP}]{{2,}}(?:[-'’][{_UP}]{{2,}})*"
_PARTICLES = "von van de der den zu zur vom la le di du da dos del della ten ter".split()
_PARTICLE_SET = frozenset(_PARTICLES)
_PARTICLE = "(?:" + "|".join(_PARTICLES) + ")"
# a title never starts a name word ("Schäfer   Dr. med. Becker" is two names)
_NOT_TITLE = r"(?!(?:Dr|Dres|Prof|Herrn?|Frau|Mr|Mrs|Ms|Mx|Med)(?![\w'’-]))"
_W = rf"{_NOT_TITLE}(?:{_INITIAL}|{_CAPWORD})"
_WA = rf"{_NOT_TITLE}(?:{_INITIAL}|{_CAPWORD}|{_ALLCAPS})"
# continuation words may also be a bare middle initial ("SMITH, JOHN A")
_WC = rf"(?:{_WA}|[{_UP}](?![\w.]))"
_SEP = rf"[ \t]+(?:{_PARTICLE}[ \t]+)*"
_NAME_SEQ = rf"{_W}(?:{_SEP}{_W}){{0,3}}"
_NAME_SEQ_CAPS = rf"{_WA}(?:[ \t]*,[ \t]*{_WA})?(?:{_SEP}{_WC}){{0,3}}"

_TITLE_STRONG = (
    r"(?:Herrn?|Frau|Fr\.|Hr\.|Dres\.|Dr\.|Dr(?=[ \t])|Prof\.|Prof(?=[ \t])|Professor(?:in)?|"
    r"Priv\.-Doz\.|Mr\.?|Mrs\.?|Ms\.?|Mx\.?|Miss|Doctor|Dame|Sir)"
)
_TITLE_SOLO = (
    r"(?:Kollegen?|Kollegin|Schwester|Sr\.|Pfleger|Sister|Nurse|RN|NP|OA|OÄ|MTRA?|Oberarzt|"
    r"Oberärztin|Chefarzt|Chefärztin|Stationsarzt|Stationsärztin|Assistenzarzt|Assistenzärztin)"
)
_TITLE_WEAK = (
    r"(?:med\.|dent\.|vet\.|rer\.[ \t]?nat\.|habil\.|univ\.|phil\.|Dipl\.-(?:Med|Ing|Psych)\.|"
    r"PD|CA)"
)
_TITLE_ANY = rf"(?:{_TITLE_STRONG}|{_TITLE_SOLO}|{_TITLE_WEAK})"
_TITLE_CHAIN = (
    rf"(?:(?:{_TITLE_WEAK}|{_TITLE_SOLO})[ \t]+)*(?:{_TITLE_STRONG}|{_TITLE_SOLO})"
    rf"(?:[ \t]+{_TITLE_ANY})*[ \t]+"
)

# Capitalised words that are never (part of) a person's name in a report: headings,
# departments, roles, articles and clinical words that follow a name in running text.
_NOT_NAME = frozenset(
    """
    An The This That These Our Your My His Her Their At In On Of For From To By With And Or
    Der Die Das Den Dem Des Ein Eine Einer Im Am An Auf Aus Bei Mit Nach Von Vom Zum Zur Und
    Oder Kein Keine Ihr Ihre Ihren Ihrem Sehr Liebe Lieber Dear Re Betr Betreff Cc Pp
    Befund Befunde Befundet Beurteilung Rücksprache Station Stat Tel Telefon Telefonisch Fax
    Facharzt Fachärztin Radiologie Radiology Radiologist Radiologe Radiologin Klinik Klinikum
    Praxis Patient Patientin Patienten Patients Pat Team Radiologie-Team ZNA Notaufnahme
    Unfallchirurgie Chirurgie Anästhesie Urologie Orthopädie Gefäßchirurgie Innere Medizin
    Allgemeinmedizin Neurologie Neurochirurgie Kardiologie Onkologie Gynäkologie HNO Oberarzt
    Oberärztin Chefarzt Chefärztin Assistenzarzt Assistenzärztin Stationsarzt Stationsärztin
    Consultant Resident Fellow Attending Department Hospital Ward Emergency Surgery Medicine
    Orthopedics Urology Oncology Cardiology Neurology Anesthesia Trauma Vascular ED ICU ER
    Intensivstation Kollegen Kollegin Kollege Kolleginnen Colleague Colleagues Sir Madam
    Madame All Regards Grüße Grüßen Gruß Wishes Sincerely Unknown Unbekannt Mutter Vater Sohn
    Tochter Ehefrau Ehemann Eltern Mother Father Son Daughter Wife Husband Parents
    ID PID MRN DOB NHS SSN MD PhD CT MRT MRI MR PET SPECT US KM IV PA AP OP DD
    Untersuchung Vorbefund Fremdbefund Thorax Abdomen Becken Kopf Schädel Knie Schulter
    Leber Lunge Niere Nieren Herz Findings Impression Technique Comparison History Indication
    Clinical Information Question Fragestellung Technik Klinische Angaben Anamnese Diagnose
    Information Name Date Datum Exam Study Report Bericht Order Auftrag Case Fall
    Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag Monday Tuesday Wednesday
    Thursday Friday Saturday Sunday ENT Heute Today Gestern Yesterday Uhr Zeit Time Sekretariat
    Secretary Office Labor Lab Nuklearmedizin Strahlentherapie Pathologie Pathology
    Dr Prof Herr Herrn Frau Mr Mrs Ms Miss Dres Med Morbus Typ Type Grad Grade Stadium Stage
    Klasse Class Score Zeichen Sign Syndrom Syndrome Nach Laut Bei Seit Vorname Nachname
    """.split()
)
_NAME_TOKEN = regex.compile(rf"{_INITIAL}|[\w'’-]+\.?")


def _name_words(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(start + m.start(), start + m.end()) for m in _NAME_TOKEN.finditer(text[start:end])]


_NOT_NAME_FOLDED = frozenset(w.casefold() for w in _NOT_NAME)


def is_not_name(word: str) -> bool:
    """True for a word that is never part of a person's name in a report ("Befund",
    "Radiology", "Morbus", "Dr")."""
    return word.rstrip(".,").casefold() in _NOT_NAME_FOLDED


def _trim_name(text: str, start: int, end: int, anchor: str) -> tuple[int, int] | None:
    """Cut a name span at words that are never names; ``head`` keeps the start, ``tail``
    keeps the end. None when nothing name-like is left."""
    words = _name_words(text, start, end)
    if anchor == "head":
        kept = []
        for s, e in words:
            if is_not_name(text[s:e]):
                break
            kept.append((s, e))
    else:
        kept = []
        for s, e in reversed(words):
            if is_not_name(text[s:e]):
                break
            kept.insert(0, (s, e))
    # particles never open or close a name
    while kept and text[kept[0][0] : kept[0][1]] in _PARTICLE_SET:
        kept.pop(0)
    while kept and text[kept[-1][0] : kept[-1][1]] in _PARTICLE_SET:
        kept.pop()
    if not kept:
        return None
    return kept[0][0], kept[-1][1]


# --- the pattern recognizer with PHI groups -----------------------------------------------

Adjust = Callable[[str, int, int, "regex.Match[str]"], "tuple[int, int] | None"]


@dataclass(frozen=True)
class Rule:
    """One regular expression of a recognizer.

    ``groups``: the named groups holding PHI (the whole match when none matched);
    ``adjust``: optional ``(text, start, end, match) -> (start, end) | None`` to narrow or
    veto a span; ``flags``: ``regex`` flags (case-sensitive unless given).
    """

    name: str
    pattern: str
    score: float
    groups: tuple[str, ...] = ("phi", "phi2")
    adjust: Adjust | None = None
    flags: int = regex.MULTILINE


class GroupPatternRecognizer(PatternRecognizer):
    """A presidio ``PatternRecognizer`` whose results are the ``phi`` groups of its rules.

    Presidio reports whole matches; a report needs "Dr. med. [NAME]" and "Tel. [TELEFON]",
    so the title or label that made the match certain stays in the text.
    """

    def __init__(
        self,
        entity: str,
        language: str,
        rules: Iterable[Rule],
        context: list[str] | None = None,
        name: str | None = None,
    ):
        self.rules = list(rules)
        super().__init__(
            supported_entity=entity,
            name=name or f"{entity.lower()}_{language}",
            supported_language=language,
            patterns=[Pattern(r.name, r.pattern, r.score) for r in self.rules],
            context=context,
            global_regex_flags=regex.MULTILINE,
        )
        self._compiled = [regex.compile(r.pattern, r.flags) for r in self.rules]

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """The PHI spans of every rule's matches in ``text``."""
        results: list[RecognizerResult] = []
        for rule, compiled in zip(self.rules, self._compiled, strict=True):
            for m in compiled.finditer(text):
                spans = [m.span(g) for g in rule.groups if g in m.re.groupindex and m.group(g)]
                if not spans and not any(g in m.re.groupindex for g in rule.groups):
                    spans = [m.span()]
                for s, e in spans:
                    if rule.adjust is not None:
                        got = rule.adjust(text, s, e, m)
                        if got is None:
                            continue
                        s, e = got
                    if e <= s:
                        continue
                    results.append(
                        RecognizerResult(
                            entity_type=self.supported_entities[0],
                            start=s,
                            end=e,
                            score=rule.score,
                            analysis_explanation=AnalysisExplanation(
                                recognizer=self.name,
                                original_score=rule.score,
                                pattern_name=rule.name,
                            ),
                            recognition_metadata={
                                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                            },
                        )
                    )
        return EntityRecognizer.remove_duplicates(results)


def _head(text: str, s: int, e: int, m: object) -> tuple[int, int] | None:
    return _trim_name(text, s, e, "head")


def _tail(text: str, s: int, e: int, m: object) -> tuple[int, int] | None:
    return _trim_name(text, s, e, "tail")


# --- names --------------------------------------------------------------------------------

_LABEL_NAME = (
    r"(?:(?i:Patient(?:'s)?[ \t]+name|Patientenname|Patient(?:in|en)?|Pat\.|Pt\.?|Name|Betr\.|Betreff|"
    r"Re|Child|Überweiser(?:in)?|Zuweiser(?:in)?|Einsender(?:in)?|Zuweisende[rs]?[ \t]+(?:Arzt|Ärztin)|"
    r"Anfordernde[rs]?[ \t]+(?:Arzt|Ärztin)|Befundet(?:[ \t]+(?:von|durch))?|Befunder(?:in)?|"
    r"Diktiert(?:[ \t]+von)?|Untersucher(?:in)?|Assistenz|Radiologe|Radiologin|gez\.|"
    r"Hausarzt|Hausärztin|Referring(?:[ \t]+(?:physician|provider|doctor|clinician))?|"
    r"Referred[ \t]+by|Requested[ \t]+by|Ordering[ \t]+(?:provider|physician|clinician)|Attending|"
    r"Dictated[ \t]+by|Transcribed[ \t]+by|Reported[ \t]+by|Read[ \t]+by|Reviewed[ \t]+by|"
    r"(?:Electronically[ \t]+)?signed(?:[ \t]+by)?|Verified[ \t]+by|Finali[sz]ed[ \t]+by|Radiologist|"
    r"Operator|Technologist|Radiographer|Performed[ \t]+by|Consent[ \t]+obtained[ \t]+by|GP|"
    r"(?:Study[ \t]+)?Coordinator|Koordinator(?:in)?|Studienkoordinator(?:in)?|Ansprechpartner(?:in)?|"
    r"Kontakt(?:person)?|Contact[ \t]+person|Technician|Transcriptionist|Scribe|Schreibkraft|"
    r"Sachbearbeiter(?:in)?|Pflegekraft|Study[ \t]+nurse|Versicherte[rn]?|Insured|Policyholder|"
    r"Subject|Proband(?:in)?|"
    r"(?:Nach)?[Nn]ame,[ \t]*Vorname|Last[ \t]+name,[ \t]*first[ \t]+name|Surname,[ \t]*forename|"
    r"pp|cc|Attn\.?|c/o|z\.[ \t]?Hd\.?|ask[ \t]+for|contact|Begleitperson|accompanied[ \t]+by)"
    r"|i\.[ \t]?A\.|i\.[ \t]?V\.|Kind)(?:(?<=\.)|(?![\w]))"
)
_KIN_EN = r"(?:mother|father|son|daughter|wife|husband|parents|partner|sister|brother|guardian)"
_KIN_DE = r"(?:Mutter|Vater|Sohn|Tochter|Ehefrau|Ehemann|Eltern|Partner(?:in)?|Angehörige[rn]?|Betreuer(?:in)?)"
_CLOSING = (
    r"(?i:mit[ \t]+(?:freundlichen|kollegialen|besten)(?:[ \t]+(?:und[ \t]+)?(?:kollegialen|freundlichen))?[ \t]+grüßen|"
    r"(?:viele|herzliche|beste|freundliche|kollegiale)[ \t]+grüße|mfg|kind[ \t]+regards|best[ \t]+regards|"
    r"warm[ \t]+regards|regards|yours[ \t]+(?:sincerely|faithfully|truly)|sincerely|with[ \t]+best[ \t]+wishes|"
    r"best[ \t]+wishes|many[ \t]+thanks)"
)
_DEGREE = (
    r"(?:,[ \t]*|[ \t]+)(?:M\.D\.|MD|Ph\.D\.|PhD|MBBS|MBChB|FRCR|FRCP|FRCPC|FRANZCR|MRCP|DABR)(?![\w])"
    r"|,[ \t]*(?:DO|NP|RN|PA-C|RT\(R\)|ARNP)(?![\w])"
)

_NAME_RULES = [
    Rule(
        "title",
        rf"(?<![\w.]){_TITLE_CHAIN}(?P<phi>{_NAME_SEQ}|{_ALLCAPS}(?:[ \t]+{_W})?)",
        0.85,
        adjust=_head,
    ),
    Rule(
        "salutation",
        rf"(?<![\w])(?:Lieber|Liebe|Dear|Hallo|Hello|Hi)[ \t]+(?:{_TITLE_CHAIN})?(?P<phi>{_NAME_SEQ})",
        0.85,
        adjust=_head,
    ),
    Rule(
        "label",
        rf"(?<![\w.-]){_LABEL_NAME}[ \t]*(?::|\.|\(|\#)?[ \t]*(?:{_TITLE_CHAIN})?"
        rf"(?P<phi>{_NAME_SEQ_CAPS})(?:[ \t]+(?:und|and|&)[ \t]+(?P<phi2>{_NAME_SEQ}))?",
        0.8,
        adjust=_head,
    ),
    Rule(
        "kin_en",
        rf"(?<![\w])(?i:{_KIN_EN})[ \t]*(?::|\()?[ \t]*(?:{_TITLE_CHAIN})?(?P<phi>{_NAME_SEQ})"
        rf"(?:[ \t]+(?:and|&)[ \t]+(?P<phi2>{_NAME_SEQ}))?",
        0.8,
        adjust=_head,
    ),
    Rule(
        "kin_de",
        rf"(?<![\w]){_KIN_DE}[ \t]*(?::|\()[ \t]*(?:{_TITLE_CHAIN})?(?P<phi>{_NAME_SEQ})"
        rf"(?:[ \t]+(?:und|&)[ \t]+(?P<phi2>{_NAME_SEQ}))?",
        0.8,
        adjust=_head,
    ),
    Rule(
        "kin_pair_de",
        rf"(?<![\w])(?:Eltern|Geschwister|Großeltern)[ \t]+(?P<phi>{_NAME_SEQ})[ \t]+(?:und|&)[ \t]+(?P<phi2>{_NAME_SEQ})",
        0.8,
        adjust=_head,
    ),
    Rule(
        "degree",
        rf"(?<![\w.])(?P<phi>{_WA}(?:{_SEP}{_WA}){{0,3}})(?:{_DEGREE})",
        0.8,
        adjust=_tail,
    ),
    Rule(
        "signature",
        rf"{_CLOSING}[^\n]{{0,40}}\n(?:[ \t]*\n){{0,3}}[ \t]*(?:{_TITLE_CHAIN})?(?P<phi>{_NAME_SEQ})",
        0.75,
        adjust=_head,
    ),
]

# --- dates --------------------------------------------------------------------------------


_WEEKDAY_BEFORE = regex.compile(
    r"(?i:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)"
    r"\.?,?[ \t]+(?:(?i:den|the)[ \t]+)?$"
)


class DateRecognizer(GroupPatternRecognizer):
    """Dates by :func:`find_dates`, plus birth years after a birth word."""

    def __init__(self, language: str):
        super().__init__(
            "DATE",
            language,
            [
                Rule(
                    "birth_year",
                    r"(?<![\w])(?i:geb\.?|geboren(?:[ \t]+(?:am|im(?:[ \t]+Jahr(?:e)?)?|in))?|Jahrgang|"
                    r"Jg\.|born(?:[ \t]+in)?|year[ \t]+of[ \t]+birth|YOB|DOB|d\.o\.b\.)"
                    r"[ \t]*:?[ \t]*\*?[ \t]*(?P<phi>(?:18|19|20)\d{2})(?![\d/-]|\.\d)",
                    0.85,
                ),
                Rule(
                    "star_year", r"(?<![\w*])\*[ \t]?(?P<phi>(?:18|19|20)\d{2})(?![\d/-]|\.\d)", 0.7
                ),
            ],
        )

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """Birth years and every date :func:`find_dates` finds for this language, with a
        weekday written before it ("Dienstag, 5. März 2024")."""
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for s, e, _ in find_dates(text, self.supported_language):
            weekday = _WEEKDAY_BEFORE.search(text, max(0, s - 24), s)
            if weekday:
                s = weekday.start()
            results.append(
                RecognizerResult(
                    entity_type="DATE",
                    start=s,
                    end=e,
                    score=0.9,
                    analysis_explanation=AnalysisExplanation(
                        recognizer=self.name, original_score=0.9, pattern_name="date"
                    ),
                    recognition_metadata={
                        RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                    },
                )
            )
        return EntityRecognizer.remove_duplicates(results)


# --- phone numbers ------------------------------------------------------------------------

_PHONE_LABEL = (
    r"(?i:Tel(?:efon)?\.?(?:[ \t]?-?[ \t]?Nr\.?)?|Telefax|Fax|Mobil(?:telefon)?|Handy|Durchwahl|"
    r"Rufnummer|Piepser|Funk|Pager|Bleep|Phone|Telephone|Cell|Mobile|Direct[ \t]+(?:line|dial)|"
    r"Ext\.?|Extension|Apparat|App\.|erreichbar[ \t]+unter|reachable[ \t]+(?:at|on)|call[ \t]+(?:me[ \t]+)?(?:on|at)|"
    r"unter[ \t]+der[ \t]+Nummer|Rückruf(?:nummer)?)"
)
_PHONE_NUMBER = r"\+?\(?\d[\d \t()/.–-]*\d"
_PHONE_RULES = [
    Rule(
        "labelled",
        rf"(?<![\w]){_PHONE_LABEL}[ \t]*(?::|\.)?[ \t]*(?P<phi>{_PHONE_NUMBER}|\d{{3,}})",
        0.85,
        adjust=lambda t, s, e, m: (s, e) if sum(c.isdigit() for c in t[s:e]) >= 3 else None,
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
        r"(?<![\w+/.,-])(?:\(0\d{2,5}\)|0\d{2,5})(?:[ \t]?/[ \t]?|[ \t-])\d{2,}(?:[ \t-]\d{1,})*(?!\d|[.,/]\d)",
        0.6,
        adjust=lambda t, s, e, m: (s, e) if sum(c.isdigit() for c in t[s:e]) >= 7 else None,
    ),
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

# --- e-mail and URL -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def tld_extractor():
    """A ``tldextract.TLDExtract`` on the bundled suffix snapshot: no HTTP, no disk cache."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's e-mail recognizer, validating the domain on the bundled suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        """True when the address ends in a known public suffix."""
        parts = tld_extractor()(pattern_text.rsplit("@", 1)[-1])
        return bool(parts.suffix and parts.domain)


_URL_RULES = [
    Rule(
        "scheme_or_www",
        r"(?i)(?<![\w@/])(?:https?://|ftp://|www\d{0,3}\.)[^\s<>\"'()\[\]]*[^\s<>\"'()\[\].,;:!?]",
        0.85,
    ),
    Rule(
        "bare_domain",
        r"(?<![\w@./-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:de|com|org|net|at|ch|eu|info|edu|gov|uk|nl|fr|it|io|us)"
        r"(?:/[^\s<>\"'()\[\]]*[^\s<>\"'()\[\].,;:!?])?(?![\w@-])",
        0.6,
    ),
]


class UrlRecognizer(GroupPatternRecognizer):
    """URLs with a scheme or ``www.``, and bare domains with a known suffix (offline)."""

    def __init__(self, language: str):
        super().__init__("URL", language, _URL_RULES, context=["url", "website", "link", "online"])

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """URL spans whose host has a public suffix on the bundled list."""
        out = []
        for r in super().analyze(text, entities, nlp_artifacts, regex_flags):
            host = re.sub(r"(?i)^[a-z]+://", "", text[r.start : r.end]).split("/", 1)[0]
            parts = tld_extractor()(host)
            if parts.suffix and parts.domain:
                out.append(r)
        return out


# --- identifiers --------------------------------------------------------------------------

_ID_LABEL = (
    r"(?i:Pat(?:ienten)?\.?[ \t]?-?[ \t]?(?:Nr|ID|Nummer)\.?|PID|Patientennummer|Patienten-Nummer|"
    r"Fall(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)?|Aufnahme(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)|"
    r"Auftrag(?:s)?(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)?|Acc\.?(?:[ \t]?-?[ \t]?(?:Nr|No)\.?)?|Acc\#|"
    r"Accession(?:[ \t]?(?:Nr|No|Number|\#)\.?)?|Untersuchungs(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)|"
    r"Befund(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)|KV[ \t]?-?[ \t]?Nr\.?|Versicherten(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)|"
    r"Vers\.[ \t]?-?[ \t]?Nr\.?|Krankenversichertennummer|Versicherungsnummer|LANR|BSNR|"
    r"Notfall[ \t]?-?[ \t]?(?:ID|Nr\.?|Nummer)|Zugangscode|Code|Studien[ \t]?-?[ \t]?ID|"
    r"MRN|Medical[ \t]+record(?:[ \t]+(?:number|no\.?))?|Hospital[ \t]+(?:number|no\.?)|"
    r"NHS(?:[ \t]+(?:number|no\.?))?|FIN|CSN|Visit[ \t]+(?:no\.?|number|\#)|Aktenzeichen|Case(?:[ \t]+(?:ID|no\.?|number))?|Encounter(?:[ \t]+(?:ID|no\.?|number))?|"
    r"Admission[ \t]+(?:no\.?|number)|Order(?:[ \t]+(?:no\.?|number|\#))?|Report[ \t]+(?:no\.?|number|\#)|"
    r"Study[ \t]+(?:number|ID|no\.?)|Insurance[ \t]+(?:ID|no\.?|number)|Member[ \t]+ID|"
    r"Policy[ \t]+(?:no\.?|number)|Medicare(?:[ \t]+(?:ID|no\.?|number))?|Medicaid[ \t]+ID|SSN|"
    r"Social[ \t]+security[ \t]+(?:number|no\.?)|NPI|ID|Alias|trauma[ \t]+alias|access[ \t]+code|"
    r"token|Hospital[ \t]+ID)"
)
_ID_VALUE = r"(?=[A-Za-z0-9./-]*\d)[A-Za-z0-9][A-Za-z0-9./-]*[A-Za-z0-9](?:[ \t]\d{3,}){0,3}"


def _not_a_year_range(text: str, s: int, e: int, m: object) -> tuple[int, int] | None:
    if re.fullmatch(r"(?:19|20)\d{2}[-–/](?:19|20)\d{2}", text[s:e]):
        return None
    return s, e


_ID_RULES = [
    Rule(
        "labelled",
        rf"(?<![\w]){_ID_LABEL}[ \t]*(?::|\.|\#|-)?[ \t]*(?P<phi>{_ID_VALUE})(?![\w])",
        0.85,
        adjust=lambda t, s, e, m: (s, e) if sum(c.isalnum() for c in t[s:e]) >= 3 else None,
    ),
    # RAD-2023-009911, A1234567, MRN00482913, K2024-4417, PX-20240317-005
    Rule(
        "code",
        rf"(?<![\w./-])(?=[{_UP}0-9-]*\d{{3}})[{_UP}]{{1,7}}-?\d{{2,}}(?:[-/]\d+)*[{_UP}]?(?![\w/-])",
        0.6,
    ),
    Rule("long_number", r"(?<![\w.,/:-])\d{7,}(?![\w.,]\d|\w)", 0.6),
    # 4711-0815, 64-22318, 71-55-2390, 078-05-1120 (6+ digits in dash groups)
    Rule(
        "dashed_number",
        r"(?<![\w.,/-])\d{2,}(?:-\d{2,}){1,3}(?![\w./-])",
        0.55,
        adjust=lambda t, s, e, m: (
            _not_a_year_range(t, s, e, m) if sum(c.isdigit() for c in t[s:e]) >= 6 else None
        ),
    ),
    # Medicare beneficiary identifier 1EG4-TE5-MK73
    Rule("mbi", r"(?<![\w-])\d[A-Z][A-Z0-9]\d-?[A-Z][A-Z0-9]\d-?[A-Z]{2}\d{2}(?![\w-])", 0.7),
    # bare 5-6 digit numbers need an ID word nearby (presidio context)
    Rule("short_number", r"(?<![\w.,/:-])\d{5,6}(?![\w.,/]\d|\w)", 0.3),
]
_ID_CONTEXT = [
    "nr",
    "nummer",
    "id",
    "pid",
    "mrn",
    "number",
    "fall",
    "fallnr",
    "fallnummer",
    "case",
    "acc",
    "accession",
    "auftrag",
    "auftragsnummer",
    "versichertennummer",
    "patientennummer",
    "hospital",
]

# --- addresses ----------------------------------------------------------------------------

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
_ADDR_RULES = [
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
        rf"(?<![\w.,/-])(?:(?:D|DE|A|CH)-)?\d{{5}}[ \t]+{_CITY}(?:[ \t]+(?:im|am|an[ \t]der|ob[ \t]der)[ \t]+{_CITY})?(?!\w)",
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

# --- institutions -------------------------------------------------------------------------

_DE_INST_HEAD = (
    r"(?:Universitätsklinikum|Universitätsklinik|Universitätsmedizin|Universitätsspital|"
    r"Kantonsspital|Uniklinik(?:um)?|Klinikum|Kreisklinik(?:um)?|"
    r"Kreiskrankenhaus|Krankenhaus|Klinik(?:en)?|Kinderklinik|Fachklinik|Sportklinik|Privatklinik|"
    r"Herzzentrum|Brustzentrum|Darmzentrum|Tumorzentrum|Zentrum|MVZ|Praxis|Gemeinschaftspraxis|"
    r"Schwerpunktpraxis|Praxisgemeinschaft|Radiologie|Teleradiologie|Seniorenstift|Seniorenheim|"
    r"Pflegeheim|Altenheim|Ambulanz|Hospital|Spital|Stroke[ \t]Unit|Institut)"
)
_DE_INST_COMPOUND = (
    rf"[{_UP}][\wäöüß]*-(?:Klinik(?:um)?|Krankenhaus|Hospital|Ambulanz|Stift|Zentrum|Praxis)"
)
_DE_INST = (
    rf"(?<![\w-])(?:St\.?[ \t]*|Sankt[ \t]+)?(?:[{_UP}][{_LOW}]+(?:ische[nrs]?|ches)[ \t]+)?"
    rf"(?:{_DE_INST_COMPOUND}|{_DE_INST_HEAD})"
    rf"(?:[ \t]+für[ \t]+[{_UP}][\wäöüß-]+)?"
    rf"(?P<tail>(?:[ \t]+(?:(?:am|im|an[ \t]der|auf[ \t]der|in)[ \t]+)?[{_UP}][\wäöüß-]+){{1,2}})"
)
_EN_INST_TAIL = (
    r"(?:Hospital|Infirmary|Medical[ \t]+Cent(?:er|re)|Imaging[ \t]+(?:Cent(?:er|re)|Group|Services)|"
    r"Radiology[ \t]+(?:Partners|Associates|Group|Services)|Clinic|Health(?:care)?[ \t]+System|"
    r"Cancer[ \t]+(?:Institute|Cent(?:er|re))|Heart[ \t]+Institute|Surgery|Care[ \t]+Home|"
    r"Nursing[ \t]+Home|Breast[ \t]+Cent(?:er|re)|Colorectal[ \t]+Unit|MS[ \t]+Service|"
    r"Reading[ \t]+Services|Gastroenterology[ \t]+Associates|Practice|Health[ \t]+Cent(?:er|re)|"
    r"Medical[ \t]+Group|Institute|Regional(?:[ \t]+(?:Hospital|Medical[ \t]+Cent(?:er|re)))?)"
)
_EN_INST = (
    r"(?<![\w])(?P<name>(?:St\.?[ \t]+[A-Z][a-z]+['’]s[ \t]+|[A-Z][A-Za-z]+(?:['’]s)?[ \t]+){1,3})"
    rf"{_EN_INST_TAIL}(?:[ \t]+of[ \t]+[A-Z][a-z]+(?:[ \t]+[A-Z][a-z]+)?)?(?![\w])"
)
# words that do not make an institution name specific ("Klinik für Radiologie", "the
# University Hospital", "Vascular Surgery")
GENERIC_INST_WORDS = frozenset(
    """
    Radiologie Nuklearmedizin Strahlentherapie Innere Medizin Chirurgie Unfallchirurgie
    Neurologie Neurochirurgie Kardiologie Onkologie Urologie Orthopädie Diagnostische
    Interventionelle Diagnostik Befund Patient Patientin Station Tel Fax Dr Prof Abteilung
    Department Radiology Emergency University General Children's Childrens Community Memorial
    Teaching Medical Imaging Outside Prior Local Referring The A An Our Your This That Their
    At From To In Of And Vascular Trauma Cardiac Thoracic Orthopedic Orthopaedic Plastic
    Pediatric Paediatric Oral Neuro General Colorectal Breast Heart Cancer Health Nursing Care
    Reading Gastroenterology Family Day Same Sports Eye Dental Hand Spine Pain Sleep
    Universitätsklinikum Klinikum Klinik Krankenhaus Zentrum Praxis MVZ Hospital Clinic Institut
    Institute Unit Service Services Group Partners Associates Center Centre Surgery Practice
    Universitätsklinik Universitätsmedizin Universitätsspital Kantonsspital Uniklinik Uniklinikum Kreisklinik Kreisklinikum Kreiskrankenhaus
    Kinderklinik Fachklinik Sportklinik Privatklinik Herzzentrum Brustzentrum Darmzentrum
    Tumorzentrum Gemeinschaftspraxis Schwerpunktpraxis Praxisgemeinschaft Teleradiologie
    Seniorenstift Seniorenheim Pflegeheim Altenheim Ambulanz Spital Radiologische
    """.split()
)
GENERIC_INST_FOLDED = frozenset(w.casefold() for w in GENERIC_INST_WORDS)


def _de_inst_adjust(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    tail_s, tail_e = m.span("tail")
    words = re.findall(r"[\wäöüß-]+", text[tail_s:tail_e])
    proper = [w for w in words if w not in ("am", "im", "an", "der", "auf", "in")]
    if not proper or proper[0] in GENERIC_INST_WORDS or proper[0] in _NOT_NAME:
        return None
    # a second tail word that is generic ("Klinikum Tannenberg Radiologie") is not the name
    end = tail_e
    if len(proper) > 1 and (proper[-1] in GENERIC_INST_WORDS or proper[-1] in _NOT_NAME):
        end = tail_s + text[tail_s:tail_e].rfind(proper[-1])
        end = len(text[:end].rstrip(" \t")) if end > tail_s else tail_e
    return s, end


def _en_inst_adjust(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    ns, ne = m.span("name")
    words = re.findall(r"[A-Za-z'’]+", text[ns:ne])
    # drop leading generic or sentence words ("The Riverside ...", "Outside ...")
    start = ns
    for w in words:
        if w in GENERIC_INST_WORDS or w in _NOT_NAME or w == "St":
            if w == "St":
                break
            start = text.index(w, start) + len(w)
            while start < ne and text[start] in " \t":
                start += 1
            continue
        break
    specific = [
        w for w in re.findall(r"[A-Za-z'’]+", text[start:ne]) if w not in GENERIC_INST_WORDS
    ]
    if not specific:
        return None
    return start, e


_INST_RULES_DE = [Rule("de_institution", _DE_INST, 0.7, groups=(), adjust=_de_inst_adjust)]
_INST_RULES_EN = [Rule("en_institution", _EN_INST, 0.7, groups=(), adjust=_en_inst_adjust)]

# --- ages over 89 -------------------------------------------------------------------------

_AGE90 = r"(?P<phi>9\d|1[01]\d)"
_AGE_RULES = [
    Rule(
        "de_age",
        rf"(?<![\d,.]){_AGE90}(?=[ \t]*-?[ \t]*(?:jährig|Jährig|Jahre\b|Jahren\b|J\.|j\.|Lebensjahr|LJ\b))",
        0.8,
    ),
    Rule(
        "en_age",
        rf"(?<![\d,.]){_AGE90}(?=[ \t]*-?[ \t]*(?:years?\b|year-old|yrs?\b|yo\b|y/o|y\.o\.|y\b|-y-o))",
        0.8,
    ),
    Rule(
        "age_label",
        rf"(?<![\w])(?i:Alter|age|aged|im[ \t]+Alter[ \t]+von)[ \t]*:?[ \t]*{_AGE90}(?![\d,.]\d|\d)",
        0.8,
    ),
]


# --- the offline NLP engine ---------------------------------------------------------------


def _plain_lemma(lower: str) -> str:
    """A lemma for a blank pipeline's token: its last word part ("pat.-nr" -> "nr",
    "tel." -> "tel"), so whole-word context matching sees the label word."""
    parts = [p for p in re.split(r"[.\-/:]+", lower) if p]
    return parts[-1] if parts else lower


class BlankSpacyNlpEngine(SpacyNlpEngine):
    """presidio's spaCy engine over already-built blank pipelines (no model, no download).

    Blank pipelines have no lemmatizer and no NER: a token's lemma is its lower-case form
    (presidio matches context words against lemmas) and there are no entities.
    """

    def __init__(self, pipelines: dict[str, object]):
        super().__init__(models=[{"lang_code": k, "model_name": f"blank:{k}"} for k in pipelines])
        self.nlp = dict(pipelines)

    def load(self) -> None:
        """Nothing to load: the pipelines were given."""

    def get_supported_entities(self) -> list[str]:
        """No NER entities: blank pipelines have no entity recognizer."""
        return []

    def _doc_to_nlp_artifact(self, doc, language: str) -> NlpArtifacts:
        return NlpArtifacts(
            entities=[],
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lemma_ or _plain_lemma(t.lower_) for t in doc],
            nlp_engine=self,
            language=language,
            scores=[],
        )


def _recognizers(language: str) -> list[EntityRecognizer]:
    return [
        GroupPatternRecognizer("NAME", language, _NAME_RULES),
        DateRecognizer(language),
        GroupPatternRecognizer("PHONE", language, _PHONE_RULES, context=_PHONE_CONTEXT),
        PhoneRecognizer(
            supported_language=language,
            supported_entity="PHONE",
            # numbers with "+" parse in any region; national formats by the text's language
            supported_regions=("DE",) if language == "de" else ("GB", "US"),
            context=_PHONE_CONTEXT,
            name=f"phonenumbers_{language}",
        ),
        OfflineEmailRecognizer(supported_language=language, supported_entity="EMAIL"),
        UrlRecognizer(language),
        GroupPatternRecognizer("ID", language, _ID_RULES, context=_ID_CONTEXT),
        GroupPatternRecognizer("ADDR", language, _ADDR_RULES),
        GroupPatternRecognizer("INST", language, _INST_RULES_DE + _INST_RULES_EN),
        GroupPatternRecognizer("AGE", language, _AGE_RULES),
    ]


class _QuietBelowWarning(logging.Filter):
    """Drops presidio's debug and info records: its context enhancer logs the words around
    each match ("Context list is: ..."), which are report text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _silence_presidio_text_logging() -> None:
    log = logging.getLogger("presidio-analyzer")
    if not any(isinstance(f, _QuietBelowWarning) for f in log.filters):
        log.addFilter(_QuietBelowWarning())


@functools.lru_cache(maxsize=1)
def get_analyzer() -> AnalyzerEngine:
    """The process-wide analyzer for German and English (built on first use, ~2 s)."""
    import spacy

    _silence_presidio_text_logging()

    nlp = BlankSpacyNlpEngine({lang: spacy.blank(lang) for lang in LANGUAGES})
    registry = RecognizerRegistry(
        recognizers=[r for lang in LANGUAGES for r in _recognizers(lang)],
        supported_languages=list(LANGUAGES),
    )
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp,
        supported_languages=list(LANGUAGES),
        default_score_threshold=SCORE_THRESHOLD,
        # substring matching would let "id" fire on "fluid" and "nr" on "Anreicherung"
        context_aware_enhancer=LemmaContextAwareEnhancer(context_matching_mode="whole_word"),
    )


def analyze(text: str, lang: str) -> list[tuple[int, int, str]]:
    """PHI spans ``(start, end, kind)`` in ``text`` (``lang``: ``de`` or ``en``), sorted;
    spans may overlap (the scrubber merges them)."""
    language = lang if lang in LANGUAGES else "en"
    results = get_analyzer().analyze(text=text, language=language)
    return sorted((r.start, r.end, r.entity_type) for r in results)
