"""Names with no cue word: a known first name, alone or before surname words.

First names come from ``gender-guesser``'s packaged dictionary (German and English names
among many others); ``wordfreq``'s lists of both languages tell a first name that is also
everyday vocabulary ("Will", "May", "Grace", "Mark") from one that is only a name. A first
name followed by capitalised words or particles ("Hannelore Kuchenbäcker", "Elfriede ter
Horst", "Anneke de Vries") is a name with them; a rare first name alone ("Rücksprache mit
Jens") is a name too. Anatomy words never start a name; after a first name they may end it
("Fritz Herz"). Everything loads once per process, offline.
"""

from __future__ import annotations

import functools

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from refrad_builder.reports.phi.base import _LOW, _UP, span_result
from refrad_builder.reports.phi.names import _PARTICLE, _PARTICLE_SET, is_not_name
from refrad_builder.reports.phi.words import phi_words

# a first name followed by surname words; each word capitalised or all capitals
_CAP = rf"[{_UP}](?:[{_LOW}]+(?:[{_UP}][{_LOW}]{{2,}})?|[{_UP}]+)(?:[-'’][{_UP}][{_LOW}{_UP}]+)*"
_CANDIDATE = regex.compile(
    rf"(?<![\w.'’-])(?P<first>{_CAP})(?P<rest>(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_CAP}){{0,2}})"
    rf"(?=['’]s(?!\w)|[^\w'’-]|$)"
)
# what follows an eponym: "Jefferson fracture", "Hartmann's procedure", "Herbert B2",
# "Stanford A / DeBakey I"; a grade comes first, but a letter with a full stop or before a
# capitalised word is a middle initial ("Anna B. Kerr", "John B Smith")
_EPONYM_AFTER = regex.compile(
    rf"(?:['’]s)?[ \t]*(?:(?:[IVX]{{1,4}}[a-c]?|[A-D]\d?|\d[a-c]?)(?![\w.])"
    rf"(?![ \t]+[{_UP}][{_LOW}])|(?P<head>[\w-]+))"
)
# a grade and "nach"/"according to" before a capitalised word make it the classification:
# "M3 nach Chang", "Stadium III–IV nach Ann Arbor", "grade 2 according to Fazekas"
_GRADED_BY = regex.compile(
    r"(?<![\w])(?:[IVX]{1,4}|[A-Z]?\d{1,2})[a-dA-D]?(?:[ \t]*[-–/][ \t]*(?:[IVX]{1,4}|\d{1,2})"
    r"[a-dA-D]?)?[ \t]+(?:nach|gemäß|according[ \t]+to)[ \t]+$"
)
# word endings of findings and procedures, never of a surname ("Nephroblastom", "Myelitis")
_CLINICAL_END = regex.compile(
    r"(?i:om|oma|itis|ose|osis|ismus|ektomie|ectomy|graphie|graphy|skopie|scopy|tomie|plastik|"
    r"ung|tion|ität|ie)$"
)
_SURNAME_WORD = regex.compile(rf"{_CAP}")
# zipf frequency (wordfreq) at or above which a word counts as vocabulary
_VOCAB_ZIPF = 5.6
# a first name alone must be rarer in both languages (names count as words in the lists)
_ALONE_ZIPF = 4.4


@functools.lru_cache(maxsize=1)
def _detector():
    import gender_guesser.detector as gender

    return gender.Detector(case_sensitive=False)


@functools.lru_cache(maxsize=20000)
def _zipf(word: str, lang: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, lang)


@functools.lru_cache(maxsize=20000)
def is_first_name(word: str) -> bool:
    """Whether gender-guesser knows ``word`` as a first name (any gender)."""
    return _detector().get_gender(word) in (
        "male",
        "female",
        "mostly_male",
        "mostly_female",
        "andy",
    )


@functools.lru_cache(maxsize=1)
def _blocked() -> frozenset[str]:
    from refrad_builder.reports.lexicon import lexicon

    return frozenset(lexicon().exact) | frozenset(w.casefold() for w in phi_words("not_first_name"))


def _vocabulary(word: str, lang: str, limit: float) -> bool:
    w = word.casefold()
    return w in _blocked() or _zipf(w, lang) >= limit or is_not_name(word)


def _surname_ok(word: str, lang: str) -> bool:
    return (
        not is_not_name(word)
        and not (_zipf(word.casefold(), lang) >= 5.0)
        and not _CLINICAL_END.search(word)
    )


@functools.lru_cache(maxsize=1)
def _eponym_words() -> tuple[frozenset[str], frozenset[str]]:
    return (
        frozenset(w.casefold() for w in phi_words("eponyms")),
        frozenset(w.casefold() for w in phi_words("eponym_heads")),
    )


def eponym_at(text: str, start: int, end: int) -> bool:
    """Whether the capitalised words at ``[start, end)`` name a sign, fracture or
    classification: a listed eponym, or followed by an eponym's head word or a grade."""
    eponyms, heads = _eponym_words()
    if any(w.casefold() in eponyms for w in regex.findall(r"[\w'’-]+", text[start:end])):
        return True
    if _GRADED_BY.search(text[max(0, start - 40) : start]):
        return True
    m = _EPONYM_AFTER.match(text, end)
    if m is None or m.end() == end:
        return False
    return m.group("head") is None or m.group("head").casefold() in heads


def _first_name_parts(word: str) -> bool:
    parts = word.split("-")
    return all(len(p) >= 2 and is_first_name(p) for p in parts)


def _alone_ok(first: str, lang: str, other: str) -> bool:
    """A first name with no surname: capitalised (no acronym), rare as a word in both
    languages."""
    w = first.casefold()
    return (
        len(first) >= 3
        and not first.isupper()
        and _zipf(w, lang) < _ALONE_ZIPF
        and _zipf(w, other) < _ALONE_ZIPF + 0.3
    )


def name_spans(text: str, lang: str) -> list[tuple[int, int]]:
    """Spans of names that start with a known first name (see the module notes)."""
    other = "en" if lang == "de" else "de"
    spans = []
    for m in _CANDIDATE.finditer(text, overlapped=True):
        first = m.group("first")
        if (
            len(first) < 3
            or not _first_name_parts(first)
            or any(_vocabulary(p, lang, _VOCAB_ZIPF) for p in first.split("-"))
        ):
            continue
        end = m.end("first")
        for w in _SURNAME_WORD.finditer(text, m.start("rest"), m.end("rest")):
            word = w.group(0)
            if word.casefold() in _PARTICLE_SET:
                continue
            if not _surname_ok(word, lang) or word.isupper() != first.isupper():
                break
            end = w.end()
        if eponym_at(text, m.start(), end):
            continue
        if end > m.end("first"):
            spans.append((m.start(), end))
        elif _alone_ok(first, lang, other):
            spans.append((m.start(), end))
    return spans


class FirstNameRecognizer(EntityRecognizer):
    """Presidio recognizer over :func:`name_spans`."""

    def __init__(self, language: str):
        super().__init__(
            supported_entities=["NAME"], name=f"first_name_{language}", supported_language=language
        )

    def load(self) -> None:
        """Nothing to load up front (the dictionaries load on first use)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """NAME results for the first-name spans of ``text``."""
        return [
            span_result(self, "NAME", s, e, 0.6, "first_name")
            for s, e in name_spans(text, self.supported_language)
        ]
