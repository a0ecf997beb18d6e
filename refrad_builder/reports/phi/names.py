"""Person names: after titles, salutations, labels and kin words, before degrees, under a
closing. The words that are never names are data (``data/phi_words.yaml``)."""

from __future__ import annotations

import regex

from refrad_builder.reports.phi.base import _LOW, _UP, Rule
from refrad_builder.reports.phi.words import phi_words

_INITIAL = rf"[{_UP}]\.(?:-[{_UP}]\.)?"
# an inner capital after a short prefix belongs to the word ("LeBlanc", "DeVries", "DiNapoli")
_CAPWORD = (
    rf"(?:Mc|Mac|O['’]|D['’])?[{_UP}][{_LOW}]+(?:[{_UP}][{_LOW}]{{2,}})?(?:[-'’][{_UP}]?[{_LOW}]+)*"
)
_ALLCAPS = rf"(?:[{_UP}]['’])?[{_UP}]{{2,}}(?:[-'’][{_UP}]{{2,}})*"
# Dutch, German, Romance, Irish ("Ó", "Ní", "Mac"), Welsh ("ap") name particles
_PARTICLES = (
    "von van de der den zu zur vom la le di du da dos del della ten ter ap ó ní nic mac ua"
).split()
_PARTICLE_SET = frozenset(_PARTICLES)
_PARTICLE = "(?i:" + "|".join(_PARTICLES) + ")"
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
    r"DR\.?(?=[ \t])|PROF\.?(?=[ \t])|HERRN?(?=[ \t])|FRAU(?=[ \t])|Doktor|Doctor(?=[ \t])|"
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
_NOT_NAME = phi_words("not_name")
_TITLE_SURNAMES = phi_words("title_surnames")
_TITLE_BEFORE = regex.compile(
    r"(?:Herrn?|Frau|Mr\.?|Mrs\.?|Ms\.?|(?i:Dr|Prof)\.?|(?i:Doktor|Doctor)|Kollegin|Kollege|Dear|"
    r"Liebe[r]?|OA|OÄ|Oberarzt|Oberärztin|Chefarzt|Chefärztin)(?:[ \t]+(?:med\.|dent\.|rer\.[ \t]?nat\.|univ\.|habil\.|Dr\.|Prof\.))*[ \t]+$"
)
_NAME_TOKEN = regex.compile(rf"{_INITIAL}|[\w'’-]+\.?")


def _name_words(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(start + m.start(), start + m.end()) for m in _NAME_TOKEN.finditer(text[start:end])]


_NOT_NAME_FOLDED = frozenset(w.casefold() for w in _NOT_NAME)


def is_not_name(word: str) -> bool:
    """True for a word that is never part of a person's name in a report ("Befund",
    "Radiology", "Morbus", "Dr")."""
    return word.rstrip(".,").casefold() in _NOT_NAME_FOLDED


_TITLE_SURNAMES_FOLDED = frozenset(w.casefold() for w in _TITLE_SURNAMES)


def surname_after_title(word: str) -> bool:
    """Whether a word that is otherwise never a name is a surname right after a title: an
    anatomy or clinical word ("Dr. Lunge", "DR. HEAD", "Dr. Colon's office")."""
    from refrad_builder.reports.lexicon import lexicon

    w = word.rstrip(".,").casefold()
    w = w.removesuffix("'s").removesuffix("’s")
    return w in _TITLE_SURNAMES_FOLDED or w in lexicon().exact


def _after_title(text: str, start: int) -> bool:
    """Whether a strong title or salutation stands right before ``start``."""
    return bool(_TITLE_BEFORE.search(text, max(0, start - 40), start))


def _trim_name(text: str, start: int, end: int, anchor: str) -> tuple[int, int] | None:
    """Cut a name span at words that are never names; ``head`` keeps the start, ``tail``
    keeps the end. None when nothing name-like is left. Right after a title, a surname that
    is also an anatomy or clinical word ("Frau Leber", "Herr Fritz Herz") stays a name, and
    a particle may open the name ("Dr. van den Berg")."""
    words = _name_words(text, start, end)
    opened = anchor == "head" and _after_title(text, start)
    if anchor == "head":
        kept = []
        for i, (s, e) in enumerate(words):
            word = text[s:e]
            if (
                is_not_name(word)
                and word.casefold() not in _PARTICLE_SET
                and not (opened and i <= 1 and surname_after_title(word))
            ):
                break
            kept.append((s, e))
    else:
        kept = []
        for s, e in reversed(words):
            if is_not_name(text[s:e]):
                break
            kept.insert(0, (s, e))
    # particles never open or close a name
    while kept and text[kept[-1][0] : kept[-1][1]].casefold() in _PARTICLE_SET:
        kept.pop()
    while kept and text[kept[0][0] : kept[0][1]].casefold() in _PARTICLE_SET and not opened:
        kept.pop(0)
    if not kept:
        return None
    return kept[0][0], kept[-1][1]


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
    r"Dictated[ \t]+by|Transcribed[ \t]+by|Typed[ \t]+by|Typist|Requesting|Referrer|Requester|"
    r"Geschrieben[ \t]+von|Reported[ \t]+by|Read[ \t]+by|Reviewed[ \t]+by|"
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

_LOWER_STOP = frozenset("med med. rer nat univ habil und and the der die das".split())
_ROLE_LINE = (
    r"(?:Consultant|Specialist|Registrar|Attending|Resident|Fellow|Radiologist|Facharzt|"
    r"Fachärztin|Oberarzt|Oberärztin|Chefarzt|Chefärztin|Assistenzarzt|Assistenzärztin|"
    r"Radiologe|Radiologin|Funktionsoberarzt|Funktionsoberärztin)"
)
_LOWER_WORD = r"[a-zäöüßéè][a-zäöüßéè'’-]+"

_NAME_RULES = [
    # "herrn schulze", "dr. o'brien": a lower-case title and a lower-case name
    Rule(
        "lower_title",
        rf"(?<![\w.])(?:herrn?|frau|dr\.|prof\.|mr\.|mrs\.|ms\.)[ \t]+(?P<phi>{_LOWER_WORD})",
        0.7,
        adjust=lambda t, s, e, m: None if is_not_name(t[s:e]) or t[s:e] in _LOWER_STOP else (s, e),
    ),
    # "als Hannelore K. identifiziert", "identified as Margaret O."
    Rule(
        "identified",
        rf"(?<![\w])(?:(?i:identifiziert[ \t]+als|identified[ \t]+as|namens|named|called)[ \t]+"
        rf"(?:{_TITLE_CHAIN})?(?P<phi>{_NAME_SEQ})|(?i:als)[ \t]+(?P<phi2>{_NAME_SEQ})[ \t]+identifiziert)",
        0.75,
        adjust=_head,
    ),
    # a name line right above a role line (a signature block without a closing)
    Rule(
        "role_line",
        rf"^[ \t]*(?:{_TITLE_CHAIN})?(?P<phi>{_NAME_SEQ})[ \t]*(?:,[^\n]*)?\n[ \t]*{_ROLE_LINE}",
        0.75,
        adjust=_head,
    ),
    # a signature line "Schulte-Bockholt, Oberarzt", "Jane Doe, Consultant Radiologist"
    Rule(
        "name_role",
        rf"^[ \t]*(?:{_TITLE_CHAIN})?(?P<phi>{_NAME_SEQ}),[ \t]*{_ROLE_LINE}(?![\w])",
        0.75,
        adjust=_head,
    ),
    Rule(
        "title",
        rf"(?<![\w.]){_TITLE_CHAIN}(?P<phi>(?:{_PARTICLE}[ \t]+)*{_NAME_SEQ}|{_ALLCAPS}(?:[ \t]+{_W})?)",
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
