"""Known PHI from a study's own headers: typed keyed hashes of header values and the spans of
a report text whose words (or word groups) hash to one of them.

:func:`known_phi_hashes` makes the hashes (only they ever leave ingest); :class:`KnownMatcher`
finds a report's tokens that match them, in any case, with umlauts spelt out or not, and
widens a match by what belongs to it (initials, a first name, generic institution words, a
house number). See :mod:`refrad_builder.reports.scrub` for the policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import regex

from refrad_builder.deid.pseudo import PHI_TYPES, normalize_token, phi_hash
from refrad_builder.reports import presidio_engine
from refrad_builder.reports.presidio_engine import GENERIC_INST_FOLDED, find_dates

__all__ = ["KnownMatcher", "known_phi_hashes", "normalize_date_value"]

# A token that hashes to several kinds is replaced as the first of these.
_KIND_PRIORITY = ("ID", "NAME", "DATE", "INST", "ADDR")

# Name particles and titles: header name components that are also everyday words.
_NAME_STOPWORDS = frozenset(
    "von van vom zu zur der den de da di du la le del della dos das ten ter und y dr med "
    "prof phd md herr frau mr mrs ms jr sr ii iii".split()
)
# Lower-case words that are also surnames or first names: written in lower case they are the
# word ("grenzwertig groß", "white matter", "max. Dicke"), not the patient.
_COMMON_LOWER = frozenset(
    """
    groß gross klein lang kurz weiß weiss schwarz braun jung alt neu frank frei fromm froh gut
    hart hoch kühn lieb rasch reich schön stark still voll wild weise fest bald ernst max min
    white black brown green gray grey young long short little small strong hill hall stone
    bell king cook baker hunter price rose wood rice may will mark bill rich hardy hale fair
    bright sharp low best early hope grant chase case cross ward field lane marsh moss page
    park pool rush shore street wall west north south east wells waters bush banks fox bird
    crane drake fisher frost snow rain day knight love joy grace swift summer winter dean
    bishop major minor rust gold silver steel iron bone head heart hand foot lung back side
    hip knee mild more most
    """.split()
)
# Connectives inside header values ("Radiologie am Schlossberg", "Hospital of Port Allen"):
# as PHI they would blank every "am" and "of" of the report.
_CONNECTIVES = frozenset(
    "of the and for at in on to de la le du des del della di da van von vom zu zum zur der "
    "die das den dem und für am an im auf st".split()
)
_MAX_PHRASE = 5
_ADDR_NOT_SPECIFIC = frozenset(
    "straße strasse str weg gasse allee platz street st road rd avenue ave lane ln drive "
    "suite flat apt".split()
)


def normalize_date_value(value: str) -> str | None:
    """A header or user date (YYYYMMDD, YYYY-MM-DD, dd.mm.yyyy, ...) as YYYYMMDD."""
    for _, _, cands in find_dates(value.strip()):
        if cands:
            return cands[0]
    return None


# --- known PHI hashes ---------------------------------------------------------------------


def known_phi_hashes(secret: bytes, values: Mapping[str, Iterable[str]]) -> list[str]:
    """Typed keyed hashes of raw header values by type (NAME, ID, DATE, INST, ADDR).

    Names, institutions and addresses are split into components at ``^``, ``,`` and white
    space; dates are normalised to YYYYMMDD; IDs are hashed whole and by white-space
    component.
    """
    out: set[str] = set()
    for kind, raw_values in values.items():
        kind = kind.upper()
        if kind not in PHI_TYPES:
            raise ValueError(f"unknown PHI type {kind}; expected one of {', '.join(PHI_TYPES)}")
        for raw in raw_values:
            value = str(raw)
            if kind == "DATE":
                norm = normalize_date_value(value)
                if norm:
                    out.add(phi_hash(secret, "DATE", norm))
                continue
            parts = [p for p in re.split(r"[\^\s,]+", value) if p]
            if kind == "ID":
                parts = [value.strip(), *parts]
            elif kind in ("INST", "ADDR") and 1 < len(parts) <= _MAX_PHRASE:
                # the whole phrase too: "Radiologie im Zentrum" has no specific word
                out.add(phi_hash(secret, kind, "".join(parts)))
            for part in parts:
                norm = normalize_token(part)
                # name particles are kept: they count only beside a name (see KnownMatcher)
                if len(norm) >= 2 and (kind in ("ID", "NAME") or norm not in _CONNECTIVES):
                    out.add(phi_hash(secret, kind, part))
    return sorted(out)


# --- finding spans ------------------------------------------------------------------------

_WORD = re.compile(r"\w+(?:[-/.'’]\w+)*")
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_INITIAL_AFTER = re.compile(r"[ \t]*,?[ \t]*[A-ZÄÖÜ]\.(?:-[A-ZÄÖÜ]\.)?")
_INITIAL_BEFORE = re.compile(r"[A-ZÄÖÜ]\.(?:-[A-ZÄÖÜ]\.)?[ \t]*$")
_WORD_BEFORE = regex.compile(r"(?<![\w.-])(\p{Lu}\p{Ll}{1,11}) $")
_HOUSE_NUMBER = re.compile(r"[ \t]+\d{1,4}(?:[ \t]?[a-z])?(?![\w,.]\d|\w)")
_HOUSE_NUMBER_BEFORE = re.compile(r"(?<![\w.,/-])\d{1,5}[A-Za-z]?[ \t]+$")
_INST_WORD_AFTER = re.compile(r"[ \t-]+([A-ZÄÖÜ][\w'’]+)")
_INST_WORD_BEFORE = re.compile(r"([A-ZÄÖÜ][\w'’]+)[ \t-]+$")


def _variants(token: str) -> list[str]:
    low = token.casefold()
    out = [token]
    ascii_form = low.translate(_TRANSLIT)
    if ascii_form != low:
        out.append(ascii_form)
    umlaut = low.replace("ae", "ä").replace("oe", "ö").replace("ue", "ü")
    if umlaut != low:
        out.append(umlaut)
    return out


class KnownMatcher:
    """Matches report tokens against the typed keyed hashes of header values."""

    def __init__(self, known: set[str], secret: bytes):
        self.known = known
        self.secret = secret
        self._kinds: dict[str, tuple[str, ...]] = {}
        probe = [phi_hash(secret, k, "probe").partition(":") for k in _KIND_PRIORITY]
        # phi_hash keys the value only and prefixes the kind: one HMAC serves every kind
        self._shared = all(
            p[0] == k and p[2] == probe[0][2] for p, k in zip(probe, _KIND_PRIORITY, strict=True)
        )

    def _matching_kinds(self, variant: str) -> tuple[str, ...]:
        key = normalize_token(variant)
        if key not in self._kinds:
            if self._shared:
                digest = phi_hash(self.secret, _KIND_PRIORITY[0], variant).partition(":")[2]
                kinds = tuple(k for k in _KIND_PRIORITY if f"{k}:{digest}" in self.known)
            else:
                kinds = tuple(
                    k for k in _KIND_PRIORITY if phi_hash(self.secret, k, variant) in self.known
                )
            self._kinds[key] = kinds
        return self._kinds[key]

    def kind_of(self, token: str) -> tuple[str, bool] | None:
        """The kind a token's hash is known as, and whether the match stands on its own
        (a name particle such as "van", "de", "der" only counts next to a name)."""
        norm = normalize_token(token)
        if len(norm) < 2:
            return None
        for variant in _variants(token):
            for kind in self._matching_kinds(variant):
                strength = self._eligible(kind, token, norm)
                if strength is not None:
                    return kind, strength
        return None

    @staticmethod
    def _eligible(kind: str, token: str, norm: str) -> bool | None:
        """True: a match; False: a match only beside a name; None: no match."""
        if kind == "NAME":
            if token.islower() and norm in _COMMON_LOWER:
                return None
            return norm not in _NAME_STOPWORDS and norm not in _CONNECTIVES
        if norm in _CONNECTIVES:
            return None
        if kind == "ID":
            # short header IDs (a StudyID "12") would blank every "12" in the text
            return True if len(norm) >= 4 else None
        if kind == "INST":
            return None if norm in GENERIC_INST_FOLDED or norm in _NAME_STOPWORDS else True
        if kind == "ADDR":
            if norm.isdigit():
                return True if len(norm) >= 4 else None
            return None if norm in _ADDR_NOT_SPECIFIC else True
        return True

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """Spans of the text whose tokens (or token groups) are known header values."""
        words = list(_WORD.finditer(text))
        strong: list[tuple[int, int, str]] = []
        weak: list[tuple[int, int]] = []
        skip_until = -1
        for i, m in enumerate(words):
            if m.start() < skip_until:
                continue
            group_end = self._id_group(text, words, i)
            if group_end is not None:
                strong.append((m.start(), group_end, "ID"))
                skip_until = group_end
                continue
            parts = [(m.start(), m.end(), m.group(0))]
            found = self.kind_of(m.group(0))
            if found is None:
                parts = [
                    (m.start() + p.start(), m.start() + p.end(), p.group(0))
                    for p in re.finditer(r"\w+", m.group(0))
                ]
            for s, e, token in parts:
                found = self.kind_of(token)
                if found is None:
                    continue
                kind, stands = found
                if stands:
                    strong.append((s, e, kind))
                else:
                    weak.append((s, e))
        strong += self._phrases(text, words)
        strong += _beside_names(text, weak, strong)
        return [_extend(text, s, e, k) for s, e, k in strong]

    def _id_group(self, text: str, words: list[re.Match[str]], i: int) -> int | None:
        """End of a known ID written in 2 to 4 digit groups ("4711 0815", "485 777 3456")."""
        if not words[i].group(0)[-1:].isdigit():
            return None
        joined = words[i].group(0)
        best = None
        for j in range(i + 1, min(i + 4, len(words))):
            gap = text[words[j - 1].end() : words[j].start()]
            if gap not in (" ", "-", "/") or not words[j].group(0)[:1].isdigit():
                break
            joined += words[j].group(0)
            found = self.kind_of(joined)
            if found is not None and found[0] == "ID":
                best = words[j].end()
        return best

    def _phrases(self, text: str, words: list[re.Match[str]]) -> list[tuple[int, int, str]]:
        """Runs of 2 to 5 words on one line whose joined form is a known INST/ADDR phrase."""
        found = []
        for i, first in enumerate(words):
            if not first.group(0)[:1].isupper():
                continue
            for j in range(i + 1, min(i + _MAX_PHRASE, len(words))):
                word = words[j].group(0)
                if "\n" in text[words[j - 1].end() : words[j].start()]:
                    break
                if not (word[:1].isupper() or word[:1].isdigit() or word.lower() in _CONNECTIVES):
                    break
                if not (word[:1].isupper() or word[:1].isdigit()):
                    continue
                joined = "".join(w.group(0) for w in words[i : j + 1])
                kind = next(
                    (k for k in self._matching_kinds(joined) if k in ("INST", "ADDR")), None
                )
                if kind is not None:
                    found.append((first.start(), words[j].end(), kind))
        return found


_NAME_GAP = re.compile(r"[ \t]*,?[ \t]*|-")


def _beside_names(
    text: str, weak: list[tuple[int, int]], strong: list[tuple[int, int, str]]
) -> list[tuple[int, int, str]]:
    """Header name particles ("von der", "Van An", "de la") that touch a known name."""
    names = [(s, e) for s, e, k in strong if k == "NAME"]
    accepted: list[tuple[int, int, str]] = []
    changed = True
    pending = sorted(weak)
    while changed and pending:
        changed = False
        for span in list(pending):
            s, e = span
            touches = any(
                _NAME_GAP.fullmatch(text[e:ns]) or _NAME_GAP.fullmatch(text[ne:s])
                for ns, ne in names
                if ns >= e or ne <= s
            )
            if touches:
                names.append(span)
                accepted.append((s, e, "NAME"))
                pending.remove(span)
                changed = True
    return accepted


def _generic_inst(word: str) -> bool:
    return word.casefold() in GENERIC_INST_FOLDED


def _extend(text: str, s: int, e: int, kind: str) -> tuple[int, int, str]:
    """Widen a header match by what belongs to it: initials, generic institution words, the
    house number after a street."""
    if kind == "NAME":
        after = _INITIAL_AFTER.match(text, e)
        if after:
            e = after.end()
        before = _INITIAL_BEFORE.search(text[max(0, s - 8) : s])
        if before:
            s -= len(before.group(0))
        else:
            # a capitalised word right before a known surname is most likely a first name
            # ("Sven Klein" when the header knows "Klein")
            word = _WORD_BEFORE.search(text, max(0, s - 16), s)
            if word and not presidio_engine.is_not_name(word.group(1)):
                s = word.start()
    elif kind == "INST":
        while (m := _INST_WORD_AFTER.match(text, e)) and _generic_inst(m.group(1)):
            e = m.end()
        while (m := _INST_WORD_BEFORE.search(text[max(0, s - 40) : s])) and _generic_inst(
            m.group(1)
        ):
            s -= len(m.group(0))
    elif kind == "ADDR":
        m = _HOUSE_NUMBER.match(text, e)
        if m:
            e = m.end()
        # English order: the house number before the street ("14 Cnoc na Grá")
        before = _HOUSE_NUMBER_BEFORE.search(text, max(0, s - 12), s)
        if before:
            s = before.start()
    return s, e, kind
