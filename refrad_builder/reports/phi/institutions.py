"""Institution names in German and English ("Klinikum Tannenberg", "St Mary's Hospital")."""

from __future__ import annotations

import re

import regex

from refrad_builder.reports.phi.base import _LOW, _UP, Rule
from refrad_builder.reports.phi.names import _NOT_NAME
from refrad_builder.reports.phi.words import phi_words

_DE_INST_HEAD = (
    r"(?:Universitätsklinikum|Universitätsklinik|Universitätsmedizin|Universitätsspital|"
    r"Kantonsspital|Uniklinik(?:um)?|Klinikum|Kreisklinik(?:um)?|"
    r"Kreiskrankenhaus|Krankenhaus|Klinik(?:en)?|Kinderklinik|Fachklinik|Sportklinik|Privatklinik|"
    r"Herzzentrum|Brustzentrum|Darmzentrum|Tumorzentrum|Zentrum|MVZ|Praxis|Gemeinschaftspraxis|"
    r"Schwerpunktpraxis|Praxisgemeinschaft|Radiologie|Teleradiologie|Seniorenstift|Seniorenheim|"
    r"Pflegeheim|Altenheim|Ambulanz|Hospital|Spital|Stroke[ \t]Unit|Institut|Stift|Hospiz|Diakonie)"
)
_DE_INST_COMPOUND = (
    rf"[{_UP}][\wäöüß]*-(?:Klinik(?:um)?|Krankenhaus|Hospital|Ambulanz|Stift|Zentrum|Praxis)"
)
_DE_INST = (
    rf"(?<![\w-])(?:St\.?[ \t]*|Sankt[ \t]+)?(?:[{_UP}][{_LOW}]+(?:ische[nrs]?|ches)[ \t]+)?"
    rf"(?:{_DE_INST_COMPOUND}|{_DE_INST_HEAD})"
    rf"(?:[ \t]+für[ \t]+[{_UP}][\wäöüß-]+)?"
    rf"(?P<tail>(?:[ \t]+(?:(?:am|im|an[ \t]der|auf[ \t]der|in|St\.|Sankt)[ \t]*)?[{_UP}][\wäöüß-]+){{1,2}})"
)
_EN_INST_TAIL = (
    r"(?:Hospital|Infirmary|Medical[ \t]+Cent(?:er|re)|Imaging[ \t]+(?:Cent(?:er|re)|Group|Services)|"
    r"Radiology[ \t]+(?:Partners|Associates|Group|Services)|Clinic|Health(?:care)?[ \t]+System|"
    r"Cancer[ \t]+(?:Institute|Cent(?:er|re))|Heart[ \t]+Institute|Surgery|Care[ \t]+Home|"
    r"Nursing[ \t]+Home|Breast[ \t]+Cent(?:er|re)|Colorectal[ \t]+Unit|MS[ \t]+Service|"
    r"Reading[ \t]+Services|Gastroenterology[ \t]+Associates|Practice|Health[ \t]+Cent(?:er|re)|"
    r"Medical[ \t]+Group|Institute|Regional(?:[ \t]+(?:Hospital|Medical[ \t]+Cent(?:er|re)))?|"
    r"Memorial(?:[ \t]+(?:Hospital|Medical[ \t]+Cent(?:er|re)))?|Hospice|Sanatorium|"
    r"(?:NHS[ \t]+)?(?:Foundation[ \t]+)?Trust|Health[ \t]+Board)"
)
_EN_INST = (
    r"(?<![\w])(?P<name>(?:(?:St\.?|Saint)[ \t]+[A-Z][a-z]+['’]s[ \t]+|[A-Z][A-Za-z]+(?:['’]s)?[ \t]+){1,3})"
    rf"{_EN_INST_TAIL}(?:[ \t]+of[ \t]+[A-Z][a-z]+(?:[ \t]+[A-Z][a-z]+)?)?(?![\w])"
)
GENERIC_INST_WORDS = phi_words("generic_institution")
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


# one-word German institutions whose first part is a proper name: Marienhospital,
# Elisabethenstift, Vinzenzkrankenhaus (not Kreiskrankenhaus, Tagesklinik: generic)
_DE_INST_WORD = (
    rf"(?<![\w-])[{_UP}][{_LOW}]{{2,}}(?:hospital|krankenhaus|klinikum|klinik|stift|hospiz|spital)"
    r"(?![\w-])"
)


def _inst_word_adjust(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    word = text[s:e]
    if word in GENERIC_INST_WORDS or word.startswith(_GENERIC_INST_PREFIXES):
        return None
    return s, e


_GENERIC_INST_PREFIXES = tuple(phi_words("generic_institution_prefixes"))
_INST_RULES_DE.append(
    Rule("de_institution_word", _DE_INST_WORD, 0.6, groups=(), adjust=_inst_word_adjust)
)
