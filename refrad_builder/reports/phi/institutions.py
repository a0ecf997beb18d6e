"""Institution names in German and English ("Klinikum Tannenberg", "St Mary's Hospital")."""

from __future__ import annotations

import re

import regex

from refrad_builder.reports.phi.base import _LOW, _UP, Rule
from refrad_builder.reports.phi.names import _NOT_NAME
from refrad_builder.reports.phi.words import phi_words

_DE_INST_HEAD = (
    r"(?i:Universitätsklinikum|Universitätsklinik|Universitätsmedizin|Universitätsspital|"
    r"Kantonsspital|Uniklinik(?:um)?|Klinikum|Kreisklinik(?:um)?|"
    r"Kreiskrankenhaus|Krankenhaus|Klinik(?:en)?|Kinderklinik|Fachklinik|Sportklinik|Privatklinik|"
    r"Herzzentrum|Brustzentrum|Darmzentrum|Tumorzentrum|Zentrum|MVZ|Praxis|Gemeinschaftspraxis|"
    r"Schwerpunktpraxis|Praxisgemeinschaft|Radiologie|Teleradiologie|Seniorenstift|Seniorenheim|"
    r"Pflegeheim|Altenheim|Ambulanz|Hospital|Spital|Stroke[ \t]Unit|Institut|Stift|Hospiz|Diakonie)"
)
_DE_INST_COMPOUND = (
    rf"(?:[{_UP}][\wäöüß]*-)+(?i:Klinik(?:um)?|Krankenhaus|Hospital|Ambulanz|Stift|Zentrum|Praxis)"
    # one-word compounds with a generic first part: Röntgeninstitut, Versorgungszentrum,
    # Seniorenresidenz, Kreiskliniken, Radiologiezentrum (a proper name must follow)
    rf"|(?:[{_UP}][\wäöüß]+-[ \t]+und[ \t]+)?[{_UP}][{_LOW}]+(?:klinik(?:en|um)?|krankenhaus|zentrum|"
    r"institut|praxis|residenz|stift|hospiz|ambulanz)"
)
_DE_INST = (
    rf"(?<![\w-])(?:(?i:St)\.?[ \t]*|(?i:Sankt)[ \t]+)?(?:[{_UP}][{_LOW}]+(?:ische[nrs]?|ches)[ \t]+)?"
    rf"(?:{_DE_INST_COMPOUND}|{_DE_INST_HEAD})"
    rf"(?:[ \t]+für[ \t]+[{_UP}][\wäöüß-]+)?"
    rf"(?P<tail>(?:[ \t]+(?:(?:[Aa]m|[Ii]m|[Aa]n[ \t]der|[Aa]uf[ \t]der|in|St\.|Sankt|Dr\.|der|des|"
    rf"vom|zum|zur|[Rr]echts[ \t]+der|[Ll]inks[ \t]+der)[ \t]*)?[{_UP}][\wäöüß-]+){{1,3}})"
    r"(?:[ \t]*(?:&|und)[ \t]*(?:Partner(?:n|in|innen)?|Kolleg(?:en|innen))(?![\w]))?"
)
_EN_INST_TAIL = (
    r"(?i:Hospital|Infirmary|Medical[ \t]+Cent(?:er|re)|Imaging[ \t]+(?:Cent(?:er|re)|Group|Services)|"
    r"Radiology[ \t]+(?:Partners|Associates|Group|Services)|Clinic|Health(?:care)?[ \t]+System|"
    r"Cancer[ \t]+(?:Institute|Cent(?:er|re))|Heart[ \t]+Institute|Surgery|Care[ \t]+Home|"
    r"Nursing[ \t]+Home|Breast[ \t]+Cent(?:er|re)|Colorectal[ \t]+Unit|MS[ \t]+Service|"
    r"Reading[ \t]+Services|Gastroenterology[ \t]+Associates|Practice|Health[ \t]+Cent(?:er|re)|"
    r"Medical[ \t]+Group|Institute|Regional(?:[ \t]+(?:Hospital|Medical[ \t]+Cent(?:er|re)))?|"
    r"Memorial(?:[ \t]+(?:Hospital|Medical[ \t]+Cent(?:er|re)))?|Hospice|Sanatorium|"
    r"(?:NHS[ \t]+)?(?:Foundation[ \t]+)?Trust|Health[ \t]+Board|"
    r"Associates|Partners|Radiology|Teleradiology|Imaging|Physio(?:therapy)?|"
    r"(?:Treatment|Trauma|Diagnostic|Surgical|Rehabilitation)[ \t]+Cent(?:er|re)|Hospitals|"
    r"Assisted[ \t]+Living|(?:Health|Medical)[ \t]+Sciences?[ \t]+Cent(?:er|re)|Open[ \t]+MRI|"
    r"MRI[ \t]+Cent(?:er|re)|Diagnostics|Cent(?:er|re)|Health|General(?=[ \t]*(?:$|[,.;)])))"
)
# name words: Title case or capitals, "St." or "Saint" with a name, joined by "&", "and", "of"
_EN_WORD = r"\p{Lu}\p{L}+(?:-\p{Lu}\p{L}+)*(?:['’][sS])?"
_EN_NAME_WORD = rf"(?:(?:St\.?|Saint|ST\.?)[ \t]+{_EN_WORD}|{_EN_WORD}|[IVX]{{1,3}}(?=[ \t]))"
_EN_INST = (
    rf"(?<![\w])(?P<name>{_EN_NAME_WORD}(?:[ \t]+(?:(?:&|and|of)[ \t]+)?{_EN_NAME_WORD}){{0,4}}[ \t]+)"
    rf"(?P<tail>{_EN_INST_TAIL})(?:[ \t]+(?:of|at)[ \t]+(?:the[ \t]+|St\.?[ \t]+|Saint[ \t]+)?[A-Z][a-z]+"
    r"(?:[ \t]+(?:of[ \t]+(?:the[ \t]+)?)?[A-Z][a-z]+){0,4})?(?![\w])"
)
GENERIC_INST_WORDS = phi_words("generic_institution")
GENERIC_INST_FOLDED = frozenset(w.casefold() for w in GENERIC_INST_WORDS)
_NOT_NAME_FOLDED = frozenset(w.casefold() for w in _NOT_NAME)


def _de_inst_adjust(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    tail_s, tail_e = m.span("tail")
    words = re.findall(r"[\wäöüß-]+", text[tail_s:tail_e])
    proper = [w for w in words if w.casefold() not in ("am", "im", "an", "der", "auf", "in")]
    # generic words between the head and the name ("MVZ Radiologie Seetor") are skipped
    while proper and (_generic(proper[0]) or proper[0] in ("St", "Sankt", "Dr")):
        proper.pop(0)
    if not proper or proper[0] in _NOT_NAME:
        return None
    # a second tail word that is generic ("Klinikum Tannenberg Radiologie") is not the name
    end = m.end() if m.end() > tail_e else tail_e
    if len(proper) > 1 and (proper[-1] in GENERIC_INST_WORDS or proper[-1] in _NOT_NAME):
        end = tail_s + text[tail_s:tail_e].rfind(proper[-1])
        end = len(text[:end].rstrip(" \t")) if end > tail_s else tail_e
    return s, end


def _generic(word: str) -> bool:
    """A generic institution word, department, heading or anatomy/imaging term (any case)."""
    from refrad_builder.reports.lexicon import lexicon

    w = word.casefold().removesuffix("'s").removesuffix("’s")
    return (
        word.casefold() in GENERIC_INST_FOLDED
        or w in GENERIC_INST_FOLDED
        or w in _NOT_NAME_FOLDED
        or w in lexicon().exact
    )


# generic words that open an institution's name and belong to it ("University of Westbrook
# Health", "Children's Hospital of Eastbrook"), unlike sentence words ("The", "Outside")
_NAME_LEAD = frozenset(
    "university children's childrens women's womens men's mens community regional memorial "
    "general teaching public".split()
)


def _en_inst_adjust(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    if not m.group("tail")[:1].isupper():
        return None
    ns, ne = m.span("name")
    words = re.findall(r"[A-Za-z'’]+", text[ns:ne])
    # drop leading generic or sentence words ("The Riverside ...", "Outside ...")
    start = ns
    for w in words:
        if _generic(w) or w in ("St", "ST", "Saint", "and", "of"):
            if w in ("St", "ST", "Saint") or w.casefold() in _NAME_LEAD:
                break
            start = text.index(w, start) + len(w)
            while start < ne and text[start] in " \t":
                start += 1
            continue
        break
    specific = [
        w
        for w in re.findall(r"[A-Za-z'’]+", text[start:e])
        if not _generic(w) and w != m.group("tail") and w not in ("and", "of", "St", "ST", "Saint")
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
    rf"(?![\w-])(?:[ \t]+(?P<city>[{_UP}][{_LOW}]+)(?![\w-]))?"
)
# St. Hildegard Hospiz, Sankt Anna Klinik
_DE_SAINT_INST = (
    rf"(?<![\w])(?:St\.|Sankt)[ \t]*[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)?[ \t-]+"
    r"(?:Hospiz|Klinik(?:um)?|Krankenhaus|Hospital|Stift|Spital|Heim)(?![\w])"
)


def _inst_word_adjust(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    word = m.group(0).split()[0]
    if word in GENERIC_INST_WORDS or word.startswith(_GENERIC_INST_PREFIXES):
        return None
    city = m.group("city")
    if city and (_generic(city) or city in _NOT_NAME):
        e = m.start() + len(word)
    return s, e


_GENERIC_INST_PREFIXES = tuple(phi_words("generic_institution_prefixes"))
_INST_RULES_DE.append(
    Rule("de_institution_word", _DE_INST_WORD, 0.6, groups=(), adjust=_inst_word_adjust)
)
_INST_RULES_DE.append(Rule("de_saint_institution", _DE_SAINT_INST, 0.7, groups=()))

# a practice named after its doctors: "Dres. Albers, Kühn & Partner", "Dres. med. Ott und Sahin"
_NAME_TOKEN = rf"[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"
_DE_DOCTORS_PRACTICE = (
    rf"(?<![\w])(?:(?:Praxis|Gemeinschaftspraxis|Praxisgemeinschaft|MVZ)(?:[ \t]+für[ \t]+"
    rf"[{_UP}][\wäöüß-]+(?:[ \t]+(?:und|&)[ \t]+[{_UP}][\wäöüß-]+)?)?[ \t]+)?Dres\.[ \t]*(?:med\.[ \t]*)?{_NAME_TOKEN}"
    rf"(?:(?:[ \t]*,[ \t]*|[ \t]+und[ \t]+|[ \t]*&[ \t]*){_NAME_TOKEN}(?![\w]))*"
    r"(?:(?:[ \t]*,[ \t]*|[ \t]+und[ \t]+|[ \t]*&[ \t]*)(?:Partner(?:n|in|innen)?|Kolleg(?:en|innen))"
    r"(?![\w]))?"
)
# a department named before its hospital: "Institut für Radiologie – Landesklinikum Nord"
_DE_DEPARTMENT_OF = (
    rf"(?<![\w])(?:Institut|Klinik|Abteilung|Zentrum|Sektion|Department)[ \t]+für[ \t]+"
    rf"[{_UP}][\wäöüß-]+(?:[ \t]+(?:und|&)[ \t]+[{_UP}][\wäöüß-]+)?(?=[ \t]*[–—-][ \t]*"
    rf"(?:[{_UP}][{_LOW}]*(?:klinik(?:um|en)?|krankenhaus|spital|hospital)|{_DE_INST_HEAD})(?![\w]))"
)
# a specialty practice named by its place, as a field of its own (not in a sentence: "Kardiologie
# am Vormittag gesehen"): "Zuweiser: Kardiologie am Marktplatz", "Unfallchirurgie Lindenhof, Dr. X"
_DE_SPECIALTY_AT = (
    rf"(?<![\w-])[{_UP}][{_LOW}]+(?:ologie|medizin|chirurgie|pädie|iatrie)[ \t]+"
    rf"(?P<prep>(?:am|im|an[ \t]der|auf[ \t]der|beim|zum|zur)[ \t]+)?[{_UP}][\wäöüß-]+(?![\w])"
    r"(?=[ \t]*(?:$|[,;)|·]))"
)


def _place_adjust(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    """Veto "Radiologie im Befund"-like phrases: the place must be no report vocabulary."""
    from refrad_builder.reports.phi.gazetteer import zipf_max

    place = text[s:e].split()[-1]
    if place in _NOT_NAME or _generic(place) and place != "Zentrum":
        return None
    # without a preposition the name must be no everyday word ("Unfallchirurgie Lindenhof",
    # not "Kardiologie Station")
    return (s, e) if m.group("prep") or zipf_max(place) < 3.0 else None


_INST_RULES_DE += [
    Rule("de_doctors_practice", _DE_DOCTORS_PRACTICE, 0.7, groups=()),
    Rule("de_department_of", _DE_DEPARTMENT_OF, 0.65, groups=()),
    Rule("de_specialty_at", _DE_SPECIALTY_AT, 0.65, groups=(), adjust=_place_adjust),
]

# the insurer of an accident case, as a labelled field: "UV-Träger: BG Verkehr"
_DE_INSURER_FIELD = (
    r"(?<![\w])(?i:UV-Träger|Unfallversicherungsträger|Kostenträger|Berufsgenossenschaft)"
    rf"[ \t]*:[ \t]*(?P<phi>[{_UP}][^\n,;|]{{1,60}}?)(?=[ \t]*(?:$|[,;|]))"
)
# a company by its legal form: "Teleradiologie Nordwest GmbH", "Coastal Reporting Pty Ltd"
_COMPANY = (
    rf"(?<![\w])(?P<phi>[{_UP}][\w&-]*(?:[ \t]+(?:&[ \t]+)?[{_UP}][\w&-]*){{0,3}}[ \t]+"
    r"(?:gGmbH|GmbH(?:[ \t]*&[ \t]*Co\.[ \t]*KG)?|Pty[ \t]+Ltd|Ltd|LLC|PLLC))(?![\w])"
)


def _company_adjust(text: str, s: int, e: int, m: regex.Match[str]) -> tuple[int, int] | None:
    """A scanner maker or contrast agent firm is no PHI: the name must hold a word that is no
    generic institution or report word."""
    words = re.findall(r"[\wäöüß]+", text[s:e])[:-1]
    if any(w.casefold() in _VENDORS for w in words):
        return None
    return (s, e) if any(not _generic(w) for w in words) else None


# makers of scanners, contrast agents and software named in technique sections
_VENDORS = frozenset(
    "siemens healthineers philips ge healthcare canon toshiba fujifilm hitachi bayer bracco "
    "guerbet agfa esaote mediso samsung medtronic brainlab".split()
)


_INST_RULES_DE += [
    Rule("de_insurer_field", _DE_INSURER_FIELD, 0.7),
    Rule("company", _COMPANY, 0.65, groups=("phi",), adjust=_company_adjust),
]
