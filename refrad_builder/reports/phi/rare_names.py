"""Names anywhere, without a title or label: gazetteer surnames, rare capitalised words after
a person cue, and lower-case first-name + surname pairs.

* A **listed surname** (:mod:`~refrad_builder.reports.phi.gazetteer`) that is rare as a word
  in both languages and no medical word or eponym is a name wherever it stands ("discussed
  with Kaltenbrunner", "HALVORSEN"), with a capitalised word or particles before it.
* After a word that introduces a person ("with", "by", "per", "informed", "mit", "an",
  "durch") a capitalised word that is no vocabulary and no medical word is a name: alone in
  English text ("seen by Okwuosa"); in German, where every noun is capitalised, only before
  a second such word or a listed name.
* In lower case, a known first name that is no word followed by a rare word or a surname
  shape ("siobhan mcgarrigle").
"""

from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from refrad_builder.reports.phi.base import _LOW, _UP, span_result
from refrad_builder.reports.phi.gazetteer import (
    is_listed_first_name,
    is_listed_surname,
    is_medical,
    zipf_max,
)
from refrad_builder.reports.phi.names import _PARTICLE, _PARTICLE_SET
from refrad_builder.reports.phi.people import eponym_at, is_first_name

_CAP = rf"(?:[{_UP}](?:[{_LOW}]+|[{_UP}]+)(?:[-'’][{_UP}][{_LOW}{_UP}]+)*|(?:Mc|Mac|O['’])[{_UP}][{_LOW}]+)"
_CAP_WORD = regex.compile(rf"(?<![\w'’.-]){_CAP}(?![\w'’-])")
_SURNAME_RARE = 3.0
_CUE_RARE = 2.6
_PREV = regex.compile(rf"(?:(?<![\w'’-]){_CAP}[ \t]+(?:{_PARTICLE}[ \t]+)*|{_PARTICLE}[ \t]+)$")
_CUE = regex.compile(
    r"(?<![\w])(?:(?i:by|per|informed|contacted|paged|notified|called|d/w|"
    r"(?:discussed|reviewed|spoke|agreed|consulted)[ \t]+with|(?:spoke|communicated|conveyed|"
    r"relayed|handed[ \t]+over|reported|phoned|faxed|sent)[ \t]+to)|mit|an|durch|von|und|"
    r"informiert|verständigt)[ \t]+$"
)
_LOWER_PAIR = regex.compile(
    rf"(?<![\w'’.-])(?P<first>[{_LOW}]{{3,}})[ \t]+(?:{_PARTICLE}[ \t]+)*"
    rf"(?P<last>(?:o['’]|mc|mac)?[{_LOW}]{{3,}}(?:-[{_LOW}]{{3,}})?)(?![\w'’-])"
)
_SURNAME_SHAPE = regex.compile(r"^(?:o['’]|mc|mac)[a-z]{3,}$")
# a grade or class after a capitalised word makes it a classification ("ARCO II", "Bosniak 2F")
_GRADE_AFTER = regex.compile(r"[ \t]+(?:[IVX]{1,4}[a-cA-C]?|\d[a-fA-F]?|[A-D]\d?)(?![\w])")


def _word_ok(word: str) -> bool:
    return len(word) >= 3 and not is_medical(word)


def _extend_back(text: str, start: int) -> int:
    """Take a capitalised first word and particles right before a surname."""
    m = _PREV.search(text, max(0, start - 60), start)
    if m is None:
        return start
    first = regex.match(r"[\w'’-]+", m.group(0))
    if first and first.group(0).casefold() not in _PARTICLE_SET and is_medical(first.group(0)):
        return start
    return m.start()


def _listed_surnames(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _CAP_WORD.finditer(text):
        word = m.group(0)
        if len(word) < 4 or not is_listed_surname(word) or not _word_ok(word):
            continue
        if any(zipf_max(p) >= _SURNAME_RARE for p in word.split("-") if p):
            continue
        if eponym_at(text, m.start(), m.end()) or _GRADE_AFTER.match(text, m.end()):
            continue
        out.append((_extend_back(text, m.start()), m.end()))
    return out


def _rare_cap(word: str) -> bool:
    return _word_ok(word) and zipf_max(word) < _CUE_RARE and not word.isupper()


def _after_cue(text: str, lang: str) -> list[tuple[int, int]]:
    out = []
    for m in _CAP_WORD.finditer(text):
        word = m.group(0)
        if not _CUE.search(text, max(0, m.start() - 25), m.start()) or not _rare_cap(word):
            continue
        nxt = _CAP_WORD.match(text, m.end() + 1) if text[m.end() : m.end() + 1] == " " else None
        second = nxt is not None and (_rare_cap(nxt.group(0)) or is_listed_surname(nxt.group(0)))
        if lang == "de" and not (second or is_listed_surname(word) or is_first_name(word)):
            continue
        if eponym_at(text, m.start(), m.end()):
            continue
        out.append((m.start(), nxt.end() if second else m.end()))
    return out


def _lower_pairs(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _LOWER_PAIR.finditer(text, overlapped=True):
        first, last = m.group("first"), m.group("last")
        if not (is_first_name(first) or is_listed_first_name(first)) or zipf_max(first) >= 3.0:
            continue
        if not (_SURNAME_SHAPE.match(last) or zipf_max(last) < 2.0) or is_medical(last):
            continue
        out.append((m.start(), m.end()))
    return out


def rare_name_spans(text: str, lang: str) -> list[tuple[int, int]]:
    """Spans of every name this module finds in ``text``."""
    return _listed_surnames(text) + _after_cue(text, lang) + _lower_pairs(text)


class RareNameRecognizer(EntityRecognizer):
    """Presidio recognizer over :func:`rare_name_spans`."""

    def __init__(self, language: str):
        super().__init__(
            supported_entities=["NAME"], name=f"rare_names_{language}", supported_language=language
        )

    def load(self) -> None:
        """Nothing to load up front (the word lists load on first use)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """NAME results for the spans of ``text``."""
        return [
            span_result(self, "NAME", s, e, 0.6, "rare_name")
            for s, e in rare_name_spans(text, self.supported_language)
        ]
