"""Person-name gazetteer and vocabulary tests shared by the name and zone recognizers.

Surnames and first names come from ``Faker``'s person providers (MIT licence; the lists ship
inside its wheel, nothing is downloaded): the Latin-script locales of the countries whose
names turn up in German and English reports, about 25,000 surnames and 30,000 first names.
``gender-guesser`` adds its first names (see :mod:`refrad_builder.reports.phi.people`).
``names-dataset`` was considered and not used: its wheel is 55 MB, loading it takes 3.2 GB of
memory per process, and its lists were compiled from leaked social-network profiles.

A listed name still has to be rare as a word: ``wordfreq`` tells "Kaltenbrunner" (a name
only) from "Richter", "Long" or "Hand" (everyday words in one of the languages), and the
anatomy lexicon, the eponym list and clinical word endings keep "Leber", "Crohn" and
"Hodgkin" readable unless a title or a zone says otherwise.
"""

from __future__ import annotations

import functools
import importlib

import regex

from refrad_builder.reports.phi.words import phi_words

# Faker person locales searched (Latin script; the others cannot match report words)
_LOCALES = (
    "de_DE de_AT de_CH en_US en_GB en_IE en_NZ en_IN en_NG en_KE ga_IE nl_NL nl_BE fr_FR fr_CH "
    "it_IT es_ES es_MX pt_PT pt_BR pl_PL cs_CZ sk_SK sl_SI hr_HR hu_HU ro_RO tr_TR da_DK no_NO "
    "sv_SE fi_FI et_EE lt_LT lv_LV is_IS az_AZ id_ID sw yo_NG ig_NG ha_NG tw_GH"
).split()
_WORD = regex.compile(r"^[\p{L}][\p{L}'’-]+$")
# endings of findings, procedures and Latin/Greek terms, never of a surname
CLINICAL_END = regex.compile(
    r"(?i:om|oma|omas|itis|ose|osis|oses|ismus|ektomie|ectomy|graphie|graphy|skopie|scopy|"
    r"tomie|tomy|plastik|plasty|ung|ungen|tion|tionen|ität|ie|ia|iae|ale|alis|aris|eum|ium|"
    r"ären|ikel|iculus|ulum|ula|ulae|emia|ämie|algie|algia|pathie|pathy|ase|ulus|oid|ides|"
    r"ous|ic|ical|al|ary|ive|ent|ant|ische[rsnm]?|isch|iert|ierte[rsnm]?)$"
)


def _names_of(value: object) -> list[str]:
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(v) for v in value]
    return []


@functools.lru_cache(maxsize=1)
def _lists() -> tuple[frozenset[str], frozenset[str]]:
    surnames: set[str] = set()
    firsts: set[str] = set()
    for loc in _LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        except (ImportError, AttributeError):
            continue
        for attr in dir(provider):
            if attr.startswith("last_names"):
                surnames.update(_names_of(getattr(provider, attr)))
            elif attr.startswith("first_names"):
                firsts.update(_names_of(getattr(provider, attr)))
    fold = lambda words: frozenset(w.casefold() for w in words if _WORD.match(w))  # noqa: E731
    return fold(surnames), fold(firsts)


def is_listed_surname(word: str) -> bool:
    """Whether any part of ``word`` (hyphenated parts too) is a gazetteer surname."""
    surnames = _lists()[0]
    w = word.casefold().rstrip(".,")
    return w in surnames or any(p in surnames for p in w.split("-") if len(p) >= 3)


def is_listed_first_name(word: str) -> bool:
    """Whether ``word`` is a gazetteer first name."""
    return word.casefold().rstrip(".,") in _lists()[1]


@functools.lru_cache(maxsize=50000)
def zipf_max(word: str) -> float:
    """The higher ``wordfreq`` zipf frequency of ``word`` (case folded) in German and English."""
    from wordfreq import zipf_frequency

    w = word.casefold()
    return max(zipf_frequency(w, "de"), zipf_frequency(w, "en"))


@functools.lru_cache(maxsize=1)
def _medical() -> frozenset[str]:
    from refrad_builder.reports.lexicon import lexicon

    return (
        frozenset(lexicon().exact)
        | frozenset(w.casefold() for w in phi_words("eponyms"))
        | frozenset(w.casefold() for w in phi_words("eponym_heads"))
        | frozenset(w.casefold() for w in phi_words("not_name"))
        | frozenset(w.casefold() for w in phi_words("zone_keep"))
    )


def is_medical(word: str) -> bool:
    """An anatomy, clinical, eponym, heading or report word: never redacted for its rarity."""
    w = word.casefold().rstrip(".,:;")
    w = w.removesuffix("'s").removesuffix("’s")
    if w in _medical() or any(p in _medical() for p in w.split("-") if p):
        return True
    if is_listed_surname(w):
        return False
    from refrad_builder.reports.lexicon import lexicon

    lex = lexicon()
    if any(lex.match_word(w, lang) is not None or lex.is_finding(w, lang) for lang in ("de", "en")):
        return True  # an organ word, compound or finding ("Pleuraerguss", "Rundherd")
    return CLINICAL_END.search(w) is not None
