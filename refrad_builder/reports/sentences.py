"""Sentence splitting for German and English radiology reports.

Rules, in order: lines are joined when a line obviously continues (the next line starts in
lower case, or the line ends with a comma, a hyphen or a function word); every other line
break ends a sentence, so list items become sentences. Inside a line a sentence ends at
``. ! ?`` followed by white space and an upper-case letter, digit or opening bracket, unless
the word before the period is a known abbreviation, a single letter, or a German ordinal
("7. Rippe", "3. LWK"), and unless the period ends a leading enumeration marker ("1.").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ABBREVIATIONS = frozenset(
    a.casefold()
    for a in (
        # German
        "z.B",
        "z. B",
        "Z.n",
        "V.a",
        "ca",
        "i.v",
        "p.o",
        "s.c",
        "i.m",
        "Dr",
        "Prof",
        "St",
        "bzw",
        "ggf",
        "evtl",
        "vgl",
        "u.a",
        "d.h",
        "o.B",
        "o.g",
        "s.o",
        "s.u",
        "bds",
        "re",
        "li",
        "Nr",
        "Abb",
        "max",
        "Pat",
        "med",
        "Dipl",
        "Hr",
        "Fr",
        "Se",
        "Bi",
        "Ser",
        "Ima",
        "Img",
        "inkl",
        "geb",
        "gest",
        "Tel",
        "App",
        "Ext",
        "Str",
        "Hr",
        "insb",
        "mind",
        "Mio",
        "Mrd",
        "sog",
        "usw",
        "etc",
        "zzgl",
        "Jh",
        "A",
        "V",
        "M",
        "Aa",
        "Vv",
        "Mm",
        "Lig",
        "Ligg",
        "Proc",
        "rez",
        "lat",
        "med",
        "ant",
        "post",
        "sup",
        "inf",
        "dist",
        "prox",
        "Jan",
        "Feb",
        "Mär",
        "Apr",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Sept",
        "Okt",
        "Nov",
        "Dez",
        # English
        "e.g",
        "i.e",
        "approx",
        "vs",
        "Mr",
        "Mrs",
        "Ms",
        "Fig",
        "Figs",
        "cf",
        "al",
        "et al",
        "incl",
        "Oct",
        "Dec",
        "Mar",
    )
)

# Nouns that a German ordinal number ("7.") precedes; the period is then no sentence end.
ORDINAL_NOUNS = frozenset(
    "rippe rippen icr interkostalraum lendenwirbel lendenwirbelkörper brustwirbel "
    "brustwirbelkörper halswirbel halswirbelkörper wirbel wirbelkörper lwk bwk hwk swk "
    "segment segments lebensjahr lj woche ssw monat tag tage jahr mal grades grad ordnung "
    "zehe finger strahl stelle zyklus kurs serie bild und bis oder sowie".split()
    + "januar februar märz maerz april mai juni juli august september oktober november "
    "dezember".split()
)

_CONTINUATION_END = frozenset(
    "und oder sowie bzw der die das des dem den ein eine einer eines einem mit ohne bei "
    "von vom zum zur im in am an auf aus nach bis als wie mit_ and or the a an of with "
    "without to in on at by from for as".split()
)

# Abbreviations that often end a sentence too ("Pleuraerguss re. Kein Pneumothorax.").
_FINAL_ABBREVIATIONS = frozenset({"re", "li", "bds", "etc", "usw"})
_SENTENCE_STARTERS = frozenset(
    "kein keine keinen die der das im es ein eine nach bei zudem ansonsten außerdem "
    "weiterhin sonst the no there".split()
)

# A salutation or sign-off line ending in a comma is a line of its own ("Dear Dr [NAME],",
# "Kind regards,"), not a wrapped sentence.
_GREETING = re.compile(
    r"^\s*(?:dear|sehr\s+geehrte[rs]?|liebe[rs]?|hallo|hello|kind\s+regards|best\s+regards|"
    r"regards|yours\s+(?:sincerely|faithfully)|sincerely|mit\s+(?:freundlichen|kollegialen|"
    r"besten)\b.*grüßen|mfg)\b.*,\s*$",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(r"^\s*(?:[-*•–·]\s+|\(?\d{1,2}[.)]\s+|\(?[a-z][)]\s+)")
_BOUNDARY = re.compile(r"[.!?]+(?=\s+[\"'(\[]?[A-ZÄÖÜ0-9\[(•\-–*])")
_WORD_BEFORE = re.compile(r"([\w.]+)$")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SentenceSpan:
    """A sentence: whitespace-normalised text and its start/end offsets in the input."""

    text: str
    start: int
    end: int


def _starts_ordinal_noun(rest: str) -> bool:
    m = re.match(r"\s*([\wÄÖÜäöüß]+)", rest)
    return bool(m) and m.group(1).casefold() in ORDINAL_NOUNS


def _is_abbreviation(before: str) -> bool:
    m = _WORD_BEFORE.search(before)
    if not m:
        return False
    word = m.group(1).rstrip(".")
    folded = word.casefold()
    if folded in ABBREVIATIONS or (len(folded) > 2 and folded.endswith("nr")):
        return True  # "Fallnr.", "Auftragsnr." as well as the listed abbreviations
    # "z. B." / "i. v.": the abbreviation spans a space
    two = re.search(r"(\w\.\s?\w)$", before)
    if two and two.group(1).replace(" ", "").casefold() in ABBREVIATIONS:
        return True
    if "." in word and all(len(p) <= 2 for p in word.split(".") if p):
        return True  # dotted initialisms like "o.B", "u.U"
    return len(word) == 1 and word.isalpha()


def _unit_after_number(before: str) -> bool:
    """Whether the text ends in a number and a lower-case unit ("5 mm", "2,4 cm")."""
    return re.search(r"\d\s*(?:mm|cm|ml|m)$", before) is not None


def _final_abbreviation(before: str, rest: str) -> bool:
    """Whether a side abbreviation ends the sentence: "Pleuraerguss re. Übrige Lunge frei."

    It does before a usual sentence opener, and, after a noun or number (the abbreviation
    then follows what it qualifies), before any capitalised word that is not a paired organ
    it could qualify instead ("re. Unterlappen").
    """
    m = _WORD_BEFORE.search(before)
    nxt = re.match(r"\s*(\w+)", rest)
    if m is None or nxt is None or m.group(1).casefold() not in _FINAL_ABBREVIATIONS:
        return False
    word = nxt.group(1)
    if word.casefold() in _SENTENCE_STARTERS:
        return True
    prev = re.search(r"(\w+)\W+\w+\.?$", before)
    if prev is None or not word[:1].isupper():
        return False
    if not (prev.group(1)[:1].isupper() or prev.group(1).isdigit()):
        return False
    return not _paired_organ(word)


def _paired_organ(word: str) -> bool:
    # imported here: the lexicon is only needed for this rare case
    from refrad_builder.reports.mentions import lexicon

    lex = lexicon()
    idx = lex.match_word(word, "de")
    return idx is not None and any("{side}" in t or "_right" in t for t in lex.targets[idx])


def _caseless(text: str, lines: list[tuple[int, int]]) -> bool:
    """Whether most lines open in lower case (dictated or typed without capitals): then a
    lower-case line start is no sign that the line continues the one before."""
    starts = [m.group(0) for s, e in lines if (m := re.search(r"[^\W\d_]", text[s:e]))]
    lower = sum(1 for c in starts if c.islower())
    return len(starts) >= 2 and starts[0].islower() and lower * 2 >= len(starts)


def _line_breaks(text: str) -> list[tuple[int, int]]:
    """(start, end) of logical lines: physical lines joined where a line continues."""
    lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)]
    lines = [(s, e) for s, e in lines if text[s:e].strip()]
    lower_continues = not _caseless(text, lines)
    out: list[tuple[int, int]] = []
    for s, e in lines:
        if out:
            ps, pe = out[-1]
            prev = text[ps:pe].rstrip()
            cur = text[s:e].lstrip()
            last_word = re.search(r"(\w+)\W*$", prev)
            table_rows = "|" in prev and "|" in cur
            joins = not (_LIST_MARKER.match(text[s:e]) or table_rows) and (
                (lower_continues and cur[:1].islower())
                or prev.endswith(("-", "(", "/"))
                or (prev.endswith(",") and not _GREETING.match(prev))
                or (
                    last_word is not None
                    and last_word.group(1).casefold() in _CONTINUATION_END
                    and not prev.endswith((".", ":", ";", "!", "?"))
                )
            )
            if joins:
                out[-1] = (ps, e)
                continue
        out.append((s, e))
    return out


def _strip_marker(text: str) -> str:
    m = _LIST_MARKER.match(text)
    if not m:
        return text
    marker = m.group(0).strip()
    if marker[:1].isdigit() and marker.endswith(".") and _starts_ordinal_noun(text[m.end() :]):
        return text  # "7. Rippe rechts frakturiert": an ordinal, not an enumeration
    return text[m.end() :]


def split_sentences(text: str) -> list[SentenceSpan]:
    """Split text into sentences (list items and lines included); empty pieces are dropped."""
    out: list[SentenceSpan] = []
    for ls, le in _line_breaks(text):
        line = text[ls:le]
        cuts = [0]
        lead = _LIST_MARKER.match(line)
        for m in _BOUNDARY.finditer(line):
            end = m.end()
            before = line[: m.start()]
            if lead and m.start() < lead.end():
                continue  # the period of a leading "1." enumeration marker
            if line[m.start()] == "." and len(m.group(0)) == 1:
                if re.fullmatch(r"\s*(?:[-–•*]\s*)?\(?\d{1,2}", line[cuts[-1] : m.start()]):
                    continue  # an enumeration marker "2." opening a sentence
                if _unit_after_number(before):
                    pass  # "5 mm. Außenmeniskus intakt.": a unit, not "Mm." (musculi)
                elif _is_abbreviation(before) and not _final_abbreviation(before, line[end:]):
                    continue
                if re.search(r"(?i)\bno$", before) and re.match(r"\s*[\[\d]", line[end:]):
                    continue  # "Unit no. [ID]": a number sign
                if re.search(r"(?<![\d.,])\d{1,2}$", before) and _starts_ordinal_noun(line[end:]):
                    continue
            cuts.append(end)
        cuts.append(len(line))
        for a, b in zip(cuts, cuts[1:], strict=False):
            piece = line[a:b]
            stripped = piece.strip()
            if not stripped:
                continue
            lead_ws = len(piece) - len(piece.lstrip())
            body = _strip_marker(stripped)
            body = _SPACE.sub(" ", body).strip()
            if body and re.search(r"\w", body):
                start = ls + a + lead_ws
                out.append(SentenceSpan(body, start, ls + a + lead_ws + len(stripped)))
    return out
