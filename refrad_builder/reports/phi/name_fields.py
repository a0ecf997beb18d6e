"""Person names in header fields and name forms the cue rules miss: "Last, First" after a
patient label even when the surname is a clinical word ("Name: HERZ, Konstantin"), nicknames
in quotes ('Benedikt "Ben" Lungershausen'), a name right before its identifier or birth date
("Grace Lee, MRN ..."), a lower-case name after a patient label before "geb", a line that
holds only "SURNAME, FIRSTNAME", and "SURNAME Given" with a listed surname."""

from __future__ import annotations

import regex

from refrad_builder.reports.phi.base import _LOW, _UP, Rule
from refrad_builder.reports.phi.gazetteer import (
    is_listed_first_name,
    is_listed_surname,
    is_medical,
    zipf_max,
)
from refrad_builder.reports.phi.names import _ALLCAPS, _CAPWORD, _SEP, is_not_name

_WORD = rf"(?:{_CAPWORD}|{_ALLCAPS})"
_PATIENT_LABEL = r"(?i:Patient(?:in)?(?:[ \t]+name)?|Pat\.?|Pt\.?|Name)"
_ID_CUE = (
    r"(?:MRN|URN|DOB|D\.O\.B\.|(?i:geb\.?|geboren)|\*[ \t]?\d|Pat\.?-?ID|PID|NHS|born|"
    r"Fall-?Nr\.?)"
)
_TOKENS = regex.compile(r"[\w'’-]+")


def _lexical(word: str) -> bool:
    """A word of report vocabulary (never-name words and anatomy/clinical terms)."""
    from refrad_builder.reports.lexicon import lexicon

    return is_not_name(word) or word.casefold() in lexicon().exact


def _words(text: str, s: int, e: int) -> list[str]:
    """The words of a candidate; one- and two-letter parts ("Van An", "Le") are not tested
    against the vocabulary."""
    return [w for w in _TOKENS.findall(text[s:e]) if len(w) > 2]


def _given_ok(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    """Last, First after a patient label: the surname may be a clinical word, the given
    names may not."""
    words = _words(text, s, e)
    given = words[1:]
    if not words or any(_lexical(w) or is_medical(w) for w in given):
        return None
    # a given name is a listed first name or no everyday word ("Segment", "Linke" are)
    ok = all(is_listed_first_name(w.title()) or zipf_max(w) < 3.0 for w in given)
    return (s, e) if ok else None


def _has_listed(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    """No vocabulary word, and at least one listed first name or surname."""
    words = _words(text, s, e)
    if not words or any(_lexical(w) for w in words):
        return None
    if any(is_listed_first_name(w.title()) or is_listed_surname(w.title()) for w in words):
        return s, e
    return None


def _no_vocabulary(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    words = _words(text, s, e)
    return None if not words or any(_lexical(w) for w in words) else (s, e)


def _surname_given(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    words = _TOKENS.findall(text[s:e])
    if any(_lexical(w) for w in _words(text, s, e)) or not is_listed_surname(words[0].title()):
        return None
    return (s, e) if any(is_listed_first_name(w) for w in words[1:]) else None


FIELD_NAME_RULES = [
    Rule(
        "label_last_first",
        rf"(?<![\w.-]){_PATIENT_LABEL}[ \t]*:?[ \t]*(?P<phi>{_WORD}[ \t]*,[ \t]*{_WORD}"
        rf"(?:[ \t]+(?:{_WORD}|[{_UP}]\.))?)(?![\w])",
        0.8,
        adjust=_given_ok,
    ),
    Rule(
        "nickname",
        rf"(?<![\w])(?P<phi>(?:{_WORD},?[ \t]+)?[\"“„]{_WORD}[\"”“][ \t]+(?:{_WORD}|[{_UP}]\.))",
        0.75,
        adjust=_has_listed,
    ),
    # a nickname in quotes after the name: '(known as "Pip")', 'genannt „Hansi“'
    Rule(
        "known_as",
        rf"(?<![\w])(?i:known[ \t]+as|goes[ \t]+by|a\.?k\.?a\.?|genannt|Rufname:?|"
        rf"preferred[ \t]+name:?)[ \t]*[\"“„'‘](?P<phi>{_WORD})[\"”“'’](?![\w])",
        0.7,
    ),
    Rule(
        "before_identifier",
        rf"(?:^|(?<=[(:;|][ \t]*)|(?<=[ \t]{{2}}))(?P<phi>{_CAPWORD}(?:{_SEP}{_CAPWORD}){{1,2}})"
        rf"(?=[ \t]*[,(]?[ \t]*{_ID_CUE})",
        0.7,
        adjust=_has_listed,
    ),
    Rule(
        "lower_patient",
        rf"(?<![\w.-]){_PATIENT_LABEL}[ \t]*:?[ \t]+(?P<phi>[{_LOW}]{{2,}}[ \t]+[{_LOW}]{{2,}})"
        r"(?=[ \t]+(?i:geb\.?|dob|born|\*)(?![\w]))",
        0.7,
        adjust=lambda t, s, e, m: (
            (s, e)
            if is_listed_first_name(t[s:e].split()[0]) and _no_vocabulary(t, s, e, m)
            else None
        ),
    ),
    Rule(
        "caps_line",
        rf"^[ \t]*(?P<phi>{_ALLCAPS}[ \t]*,[ \t]*{_ALLCAPS}(?:[ \t]+(?:{_ALLCAPS}|[{_UP}]\.?))?)[ \t]*$",
        0.7,
        adjust=_no_vocabulary,
    ),
    # an unidentified patient's numbered alias stands for the name: "UNBEKANNT, WEIBLICH 0417"
    # (not the description "als unbekannt, männlich aufgenommen")
    Rule(
        "alias",
        r"(?<![\w])(?P<phi>(?i:unbekannt|unknown|unidentified|trauma)[ \t]*,[ \t]*"
        r"(?i:weiblich|männlich|divers|female|male|patient(?:in)?)[ \t]+[A-Z]?\d{1,6})(?![\w])",
        0.75,
    ),
    Rule(
        "surname_given",
        rf"(?<![\w.-])(?P<phi>{_ALLCAPS}{_SEP}{_CAPWORD}(?:{_SEP}{_CAPWORD})?)(?![\w])",
        0.65,
        adjust=_surname_given,
    ),
]
