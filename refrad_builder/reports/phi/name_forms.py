"""Name forms without a title before them: surname first ("Kaiser, Stefan", "KOPF, HEINRICH"),
initials ("M. Krause", "Keller T.", "Cook, T."), surname and first name in capitals ("HAAS
MARCO"), and lower-case names after a label, title or kin word ("dictated by dr priya
raghunathan", "attn marisol", "Sohnes (mats lindqvist").

Each form is accepted by what its words are, never by the string: a first name is one that
``gender-guesser`` knows and ``wordfreq`` does not rank as everyday vocabulary; a surname is
a word that is no anatomy term, heading or eponym ("M. Crohn", "Dawson fingers" stay) and,
where the form is weak, rare in both languages. After a label ("Patient:", "Pat.:") a
surname-first name is taken even when the surname is an anatomy word ("Leber, Gisela").
"""

from __future__ import annotations

import functools

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from refrad_builder.reports.phi.base import _LOW, _UP, span_result
from refrad_builder.reports.phi.names import (
    _KIN_DE,
    _KIN_EN,
    _LABEL_NAME,
    _PARTICLE,
    _PARTICLE_SET,
    is_not_name,
    surname_after_title,
)
from refrad_builder.reports.phi.people import _vocabulary, _zipf, is_first_name
from refrad_builder.reports.phi.words import phi_words

# a surname word: Title case (with O', Mc, hyphen parts) or all capitals
_SUR = (
    rf"(?:(?:[{_UP}]['’])?[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"
    rf"|(?:[{_UP}]['’])?[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})*)"
)
_FIRST = rf"(?:[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?|[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})?)"
_INI = rf"[{_UP}]\.(?:[ \t]?-?[{_UP}]\.)?"
_SURNAME_FIRST = regex.compile(
    rf"(?<![\w'’.-])(?P<sur>(?:{_PARTICLE}[ \t]+)*{_SUR}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_SUR})?)"
    rf"[ \t]*,[ \t]*(?P<first>{_FIRST})(?P<more>[ \t]+(?:{_FIRST}|[{_UP}]\.?(?![\w])))?"
    rf"(?![\w'’-])"
)
# "Keller T." ends its phrase (a line, a list item): "Galassi I. Zyste" is a classification
_SURNAME_INITIAL = regex.compile(
    rf"(?<![\w'’.-])(?P<sur>(?:{_PARTICLE}[ \t]+)*{_SUR})(?:(?P<comma>[ \t]*,)[ \t]*|[ \t]+)"
    rf"(?P<ini>{_INI}|(?<=,[ \t]*)[{_UP}](?=[ \t]*(?:$|\))|[ \t]{{2}}))"
    r"(?=[ \t]{2}|[ \t]*(?:$|[,;()|/–-]))",
    regex.MULTILINE,
)
# not right after a capitalised word: "Child-Pugh A. Surveillance", "BCLC B. Kontrolle"
_INITIAL_SURNAME = regex.compile(
    rf"(?<![\w.'’-])(?<![{_UP}][\w-]*[ \t])(?P<ini>{_INI})[ \t]?(?P<sur>(?:{_PARTICLE}[ \t]+)*{_SUR})(?![\w'’-])"
)
# "HAAS MARCO" as a field of its own: at a line start or after a separator, before a
# separator, a date or a birth star
_CAPS_PAIR = regex.compile(
    rf"(?:^|(?<=[|/;:,][ \t]*)|(?<=[ \t]{{2}}))[ \t]*(?P<sur>[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})?)"
    rf"[ \t]+(?P<first>[{_UP}]{{2,}})(?=[ \t]*(?:$|[,*(|/;]|\d))",
    regex.MULTILINE,
)
# a label right before a name ("Patient:", "Pat.:", "Name:")
_LABEL_BEFORE = regex.compile(rf"(?<![\w.-]){_LABEL_NAME}[ \t]*[:.#(]?[ \t]*$")
# initials that also abbreviate Latin anatomy (A. carotis, V. portae, M. psoas, N. ulnaris)
_LATIN_INITIALS = frozenset("AVMNRS")
_LATIN_END = regex.compile(r"(?i:us|is|ae|um|ii|ior|ius|alis|aris)$")
_RARE_ZIPF = 4.3
_DEGREE_INITIALS = frozenset("M.D. D.O. R.N. N.P. P.A. D.C. B.S. M.S. M.A. B.A.".split())
_LOWER_RARE_ZIPF = 3.5
# o'donnell, mcallister, d'angelo: shaped as surnames whatever their frequency
_SURNAME_SHAPE = regex.compile(r"(?:o['’]|d['’]|mc|mac)[a-z]{3,}$")

# lower-case names: a cue, then words walked one by one
_LOWER_TITLE = r"(?i:dr|doctor|doktor|prof|herrn?|frau|mrs?|ms)\.?"
_LOWER_CUE = regex.compile(
    rf"(?<![\w.-])(?:{_LABEL_NAME}|(?i:identified[ \t]+as|identifiziert[ \t]+als|attn|sohnes|vaters|"
    rf"ehemannes|{_KIN_EN}|{_KIN_DE})(?![\w])|(?={_LOWER_TITLE}[ \t]))[ \t]*[:.#(]?[ \t]*"
)
_LOWER_TOKEN = regex.compile(
    rf"(?P<title>{_LOWER_TITLE}(?=[ \t]))|(?P<ini>[{_LOW}]\.?)(?![\w'’-])|"
    rf"(?P<word>[{_LOW}][{_LOW}'’]*(?:-[{_LOW}]+)*)(?![\w])"
)
_NEXT_FIRST = regex.compile(rf"[ \t]*,[ \t]*([{_LOW}]+)(?![\w'’-])")
_GAP = regex.compile(r"[ \t]*,[ \t]*|[ \t]+")
_LOWER_STOP = frozenset("med med. rer nat univ habil und and the der die das".split())


@functools.lru_cache(maxsize=1)
def _eponyms() -> frozenset[str]:
    return frozenset(w.casefold() for w in phi_words("eponyms"))


@functools.lru_cache(maxsize=1)
def _anatomy() -> frozenset[str]:
    from refrad_builder.reports.lexicon import lexicon

    return frozenset(lexicon().exact)


def _rare(word: str, limit: float) -> bool:
    w = word.casefold()
    return _zipf(w, "de") < limit and _zipf(w, "en") < limit


def _not_surname(word: str) -> bool:
    """A heading, role, anatomy term or eponym: never a surname without a title."""
    w = word.casefold()
    return is_not_name(word) or w in _anatomy() or w in _eponyms()


def first_name_ok(word: str, lang: str) -> bool:
    """A first name (each part of a hyphenated one) that is not everyday vocabulary."""
    parts = word.split("-")
    return all(
        len(p) >= 2 and is_first_name(p) and not _vocabulary(p.capitalize(), lang, 5.6)
        for p in parts
    )


def _surname_words(text: str) -> list[str]:
    return [w for w in regex.split(r"[ \t]+", text) if w and w.casefold() not in _PARTICLE_SET]


def _after_label(text: str, start: int) -> bool:
    return bool(_LABEL_BEFORE.search(text, max(0, start - 60), start))


def _surname_first(text: str, lang: str) -> list[tuple[int, int]]:
    spans = []
    for m in _SURNAME_FIRST.finditer(text, overlapped=True):
        first, sur = m.group("first"), m.group("sur")
        if not first_name_ok(first, lang):
            continue
        words = _surname_words(sur)
        if not words or sur.isupper() != first.isupper() and not first.isupper():
            continue
        labelled = _after_label(text, m.start())
        if not labelled and any(_not_surname(w) for w in words):
            continue
        spans.append((m.start(), m.end()))
    return spans


def _surname_initial(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _SURNAME_INITIAL.finditer(text, overlapped=True):
        words = _surname_words(m.group("sur"))
        if not words or regex.sub(r"[ \t-]", "", m.group("ini")) in _DEGREE_INITIALS:
            continue  # "Fox, M.D.": a degree, not an initial
        sur = words[-1]
        if sur.isupper() and (not m.group("comma") or len(sur) < 4):
            continue  # "BCLC B.", "ARCO I.": a classification and its grade
        if _not_surname(sur) or any(_not_surname(p) for p in sur.split("-")):
            continue
        if not m.group("comma") and not _rare(sur, 5.0):
            continue
        spans.append((m.start(), m.end()))
    return spans


def _initial_surname(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _INITIAL_SURNAME.finditer(text, overlapped=True):
        words = _surname_words(m.group("sur"))
        if not words:
            continue
        last = words[-1]
        if _not_surname(last) or not _rare(last, _RARE_ZIPF):
            continue
        if m.group("ini")[0] in _LATIN_INITIALS and _LATIN_END.search(last):
            continue
        spans.append((m.start(), m.end()))
    return spans


def _caps_pairs(text: str, lang: str) -> list[tuple[int, int]]:
    spans = []
    for m in _CAPS_PAIR.finditer(text, overlapped=True):
        sur, first = m.group("sur"), m.group("first")
        if first_name_ok(first, lang) and not _not_surname(sur) and _rare(sur, 4.5):
            spans.append((m.start(), m.end()))
    return spans


def _lower_first_name(word: str, lang: str) -> bool:
    """A lower-case first name: rarer as a word than a capitalised one must be ("per",
    "will", "may" are words)."""
    other = "en" if lang == "de" else "de"
    return first_name_ok(word, lang) and _zipf(word, lang) < 4.7 and _zipf(word, other) < 5.0


def _first_word_ok(text: str, word: str, end: int, lang: str, titled: bool) -> bool:
    """The first word of a lower-case name: after a title any surname; otherwise a first
    name, or a surname followed by ", first name" ("o'brien, kathleen")."""
    if titled:
        return surname_after_title(word) or (not is_not_name(word) and _zipf(word, lang) < 5.5)
    if _lower_first_name(word, lang):
        return True
    nxt = _NEXT_FIRST.match(text, end)
    return nxt is not None and _lower_first_name(nxt.group(1), lang) and not _not_surname(word)


def _lower_names(text: str, lang: str) -> list[tuple[int, int]]:
    """Lower-case names after a cue: each further word a first name or rare in both
    languages."""
    spans = []
    for cue in _LOWER_CUE.finditer(text):
        pos = cue.end()
        titled = regex.search(rf"{_LOWER_TITLE}[ \t]*[:.#(]?[ \t]*$", cue.group(0)) is not None
        start = end = particle_start = None
        comma_used = False
        while (m := _LOWER_TOKEN.match(text, pos)) is not None:
            if m.group("title"):
                if start is not None:
                    break
                titled = True
                # a lower-case title is written as part of the name ("dr s okonjo")
                particle_start = m.start() if particle_start is None else particle_start
            elif m.group("ini"):
                if start is None:
                    start = m.start() if particle_start is None else particle_start
                    particle_start = None
                end = m.end()
            else:
                word = m.group("word")
                if word.casefold() in _PARTICLE_SET:
                    particle_start = m.start() if particle_start is None else particle_start
                elif word in _LOWER_STOP:
                    break
                else:
                    if start is None:
                        ok = _first_word_ok(text, word, m.end(), lang, titled)
                    else:
                        ok = (
                            _lower_first_name(word, lang)
                            or _rare(word, _LOWER_RARE_ZIPF)
                            or _SURNAME_SHAPE.match(word) is not None
                        )
                    if not ok:
                        break
                    if start is None:
                        start = m.start() if particle_start is None else particle_start
                    end = m.end()
                    particle_start = None
            gap = _GAP.match(text, m.end())
            if gap is None:
                break
            if "," in gap.group(0):
                if comma_used or start is None:
                    break
                comma_used = True
            pos = gap.end()
        if start is not None and end is not None:
            spans.append((start, end))
    return spans


def name_form_spans(text: str, lang: str) -> list[tuple[int, int]]:
    """Spans of every name form of this module in ``text``."""
    return (
        _surname_first(text, lang)
        + _surname_initial(text)
        + _initial_surname(text)
        + _caps_pairs(text, lang)
        + _lower_names(text, lang)
    )


class NameFormRecognizer(EntityRecognizer):
    """Presidio recognizer over :func:`name_form_spans`."""

    def __init__(self, language: str):
        super().__init__(
            supported_entities=["NAME"], name=f"name_forms_{language}", supported_language=language
        )

    def load(self) -> None:
        """Nothing to load up front (the dictionaries load on first use)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """NAME results for the name-form spans of ``text``."""
        return [
            span_result(self, "NAME", s, e, 0.6, "name_form")
            for s, e in name_form_spans(text, self.supported_language)
        ]
