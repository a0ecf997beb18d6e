"""Temporal references: sentences that compare with an earlier study, and their rewrite.

Such sentences ("größenkonstant zur Voruntersuchung", "new since the prior study") cannot be
verified from one image, so the text stage rewrites or drops them. :func:`is_temporal` flags
them; :func:`rewrite_temporal` removes the temporal phrases and clauses by rules and keeps
what one image can show ("Größenkonstante Leberzyste." -> "Leberzyste.").
"""

from __future__ import annotations

import re

_TEMPORAL = re.compile(
    r"(?<!\w)(?:"
    r"vor(?:untersuchung|befund|aufnahme|studie|bild|ct|mrt?)\w*"
    r"|vergleich\w*|verglichen"
    r"|größen(?:konstant|progredient|regredient|stabil)\w*|groessenkonstant\w*"
    r"|befundkonstant\w*|neu\s+aufgetreten\w*|neu\s+abgrenzbar\w*|neu\s+hinzugekommen\w*"
    r"|progredien\w*|regredien\w*|rückläufig\w*|ruecklaeufig\w*|unverändert\w*|unveraendert\w*"
    r"|zwischenzeitlich\w*|konstant\w*|vormals|zuvor|nicht\s+mehr\s+(?:nachweisbar|abgrenzbar"
    r"|darstellbar|sichtbar|erkennbar)|verlauf(?!s?kontroll)\w*|ansprechen|stationär\w*"
    r"|stabil\w*|neu(?:e[rnms]?)?"
    r"|prior|previous\w*|unchanged|new|newly|interval\w*|compared\s+(?:to|with)"
    r"|comparison|since\s+the\s+(?:last|prior|previous)|no\s+longer|stable|stationary"
    r"|increased\s+in\s+size|decreased\s+in\s+size|has\s+(?:increased|decreased)"
    r"|have\s+(?:increased|decreased)|resolution|resolved|resolving"
    r"|(?:partial|complete|mixed)\s+response"
    r")(?!\w)",
    re.IGNORECASE,
)

# "prior laparotomy", "previous biopsy": history, not a comparison of images
_HISTORY_AFTER = re.compile(
    r"\s+(?:\w+\s+){0,2}(?:\w*(?:ektomie|ectomy|otomy|tomie|plasty|plastik)|surgery|surgical|"
    r"biopsy|biopsies|history|radiation|radiotherapy|chemotherapy|treatment|therapy|trauma|"
    r"infection|operation|resection|episode|admission|fall|stroke|myocardial)\b",
    re.IGNORECASE,
)
# "hämodynamisch stabil", "stabile Fraktur", "stationäre Aufnahme": no change over time
_STABLE_BEFORE = re.compile(
    r"(?:hämodynamisch|haemodynamically|hemodynamically|clinically|klinisch|mechanically|"
    r"mechanisch)\s+$",
    re.IGNORECASE,
)
_STABLE_AFTER = re.compile(
    r"^\s+(?:\w+\s+)?(?:\w*fraktur|fracture|osteosynthese|fixation)", re.IGNORECASE
)
# "Dornfortsatzfraktur HWK 6, stabil": the stability of a fracture
_FRACTURE_BEFORE = re.compile(r"(?:fraktur|fracture)\w*(?:\W+\w+){0,4}\W+$", re.IGNORECASE)
_STATIONARY_AFTER = re.compile(
    r"^\s+(?:aufnahme|aufgenommen|behandlung|patient\w*|aufenthalt|therapie)", re.IGNORECASE
)


def _matches(sentence: str) -> list[re.Match[str]]:
    out = []
    for m in _TEMPORAL.finditer(sentence):
        word = m.group(0).casefold()
        after = sentence[m.end() :]
        if word in ("prior", "previous") and _HISTORY_AFTER.match(after):
            continue
        if word.startswith(("stabil", "stable")) and (
            _STABLE_BEFORE.search(sentence[: m.start()])
            or _STABLE_AFTER.match(after)
            or _FRACTURE_BEFORE.search(sentence[: m.start()])
        ):
            continue
        if word.startswith("stationär") and _STATIONARY_AFTER.match(after):
            continue
        out.append(m)
    return out


def is_temporal(sentence: str) -> bool:
    """Whether a sentence refers to a prior study or to change over time."""
    return bool(_matches(sentence))


# --- rewrite ------------------------------------------------------------------------------

_DATE = r"\[(?:DATUM|DATE)[^\]]*\]"
_STUDY = r"(?:studie|study|exam\w*|untersuchung|aufnahme|ct|mrt?|mri|scan|imaging|bildgebung)"

# A clause that says the finding is gone, or denies new findings, has nothing to keep.
_DROP_CLAUSE = re.compile(
    r"(?:vollständig|komplett|völlig)\s+(?:rückläufig|regredient|resorbiert|zurückgebildet)"
    r"|nicht\s+mehr\s+(?:nachweisbar|abgrenzbar|darstellbar|sichtbar|erkennbar)"
    r"|no\s+longer|\bresolution\b|\bresolved\b|\bhas\s+resolved\b"
    r"|\b(?:kein\w*|no|ohne|without)\s+(?:\w+\s+)?(?:neu\w*|new|newly|additional\s+new)\b"
    r"|^\s*(?:zuvor|previously|vorher|prior|formerly)\b",
    re.IGNORECASE,
)

# Phrases removed from the clauses that stay, longest first where they overlap.
_REMOVE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        # comparisons with the earlier study, with or without its date
        rf"\b(?:im|in)\s+vergleich\s+(?:zu[rm]?|mit)\s+(?:de[rnm]\s+)?\w+(?:\s+vom\s+{_DATE})?",
        rf"\bverglichen\s+mit\s+(?:de[rnm]\s+)?\w+(?:\s+vom\s+{_DATE})?",
        rf"\bzu[rm]\s+vor\w+(?:\s+vom\s+{_DATE})?",
        rf"\bseit\s+(?:der\s+)?(?:vor\w+|{_DATE})",
        rf"\b(?:when\s+)?(?:compared\s+(?:to|with)|in\s+comparison\s+(?:to|with))\s+[^,;()]*?"
        rf"(?:prior|previous|last|earlier|recent)\s+{_STUDY}(?:\s+(?:dated|from|of|on)\s+{_DATE})?",
        rf"\b(?:when\s+)?(?:compared\s+(?:to|with)|in\s+comparison\s+(?:to|with))\s+"
        rf"(?:the\s+)?(?:prior|previous)?\s*{_STUDY}?(?:\s*(?:dated|from|of|on)?\s*{_DATE})?",
        rf"\bnew\s+since\s+(?:the\s+)?(?:(?:prior|previous|last)\s+{_STUDY}|{_DATE})"
        r"(?:\s+(?:is|are))?",
        rf"\bsince\s+(?:the\s+)?(?:(?:prior|previous|last)\s+{_STUDY}|{_DATE})",
        # change in size and stability, with the verb that carries it
        r"\b(?:has|have)\s+(?:been\s+)?(?:decreased|increased|grown|diminished|progressed"
        r"|regressed|enlarged)(?:\s+in\s+size)?",
        r"\b(?:is|are|was|were|remains?|remained|has\s+been|have\s+been)\s+"
        r"(?:unchanged|stable|stationary)(?:\s+in\s+size)?",
        r"\b(?:increased|decreased)\s+in\s+size",
        r"\bover\s+(?:the\s+(?:last|past)\s+)?\d+\s+(?:months?|years?|weeks?)",
        r"\b(?:partial|complete|mixed)\s+response\s+(?:of|in)\s+(?:the\s+)?",
        r"\b(?:partielles|partielle[ns]?|komplettes|vollständiges|gutes|gemischtes)?\s*"
        r"ansprechen\s+(?:de[rsnm]\s+)?",
        r"\bneu\s+(?:aufgetreten|abgrenzbar|hinzugekommen|nachweisbar)\w*(?:\s+(?:ist|sind))?",
        r"\b(?:im\s+(?:weiteren\s+)?)?verlauf(?!s?kontroll)\w*(?:\s+unter\s+\w+)?",
        r"\b(?:der|die|das)?\s*(?:vormals|zuvor|vor)\s*beschrieben\w*",
        r"\bpreviously\s+(?:noted|seen|described|demonstrated|reported|identified)",
        r"\b(?:deutlich|gering|leicht|diskret|mäßig|weiter|zunehmend|partiell|teilweise|etwas)?"
        r"\s*(?:größen|groessen|befund)?(?:konstant|progredient|regredient|stabil|stationär"
        r"|unverändert|rückläufig)\w*",
        r"\b(?:unchanged|stable|stationary|new|newly|now|interval)\b",
        r"\bneu(?:e[rnms]?)?\b",
        r"\b(?:aktuell|zuvor|vormals|nur\s+noch|zwischenzeitlich)\b",
        rf"\b(?:vom|von|am|from|dated|on|of|since|seit)\s+{_DATE}",
        _DATE,
    )
]
_COPULA_END = re.compile(r"\s+(?:ist|sind|is|are|was|were)\s*(?=[.;:!?(]|$)", re.IGNORECASE)
_DANGLING = re.compile(
    r"^(?:\s*(?:(?:und|and|sowie|or|oder)\b|[,;:]))+|(?:\s+(?:und|and|sowie|or|oder))+\s*$",
    re.IGNORECASE,
)
_MEASURE = re.compile(r"\d\s*(?:mm|cm|ml|hu)\b", re.IGNORECASE)


def _clauses(sentence: str) -> list[str]:
    """Split at ", " and "; " outside brackets (a decimal comma has no space after it)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(sentence):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in ",;" and sentence[i + 1 : i + 2] == " ":
            out.append(sentence[start : i + 1])
            start = i + 1
    out.append(sentence[start:])
    return out


def _tidy(text: str) -> str:
    text = _COPULA_END.sub(" ", text)
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)
    text = re.sub(r"\(\s*[,;]?\s*", "(", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:)])", r"\1", text)
    text = re.sub(r"\s+([!?])(?=\s|$)", r"\1", text)
    text = re.sub(r"([,;])(?:\s*[,;])+", r"\1", text)
    text = _DANGLING.sub("", text).strip()
    return re.sub(r"^[,;:.\s]+|[,;:\s]+$", "", text)


def _meaningful(text: str, lang: str) -> bool:
    """Whether text still says something one image can show: anatomy, a finding, a size."""
    from refrad_builder.reports.mentions import find_mentions, lexicon

    if _MEASURE.search(text) or find_mentions(text, lang):
        return True
    lex = lexicon()
    return any(lex.is_finding(w, lang) for w in re.findall(r"\w+", text))


def rewrite_temporal(sentence: str, lang: str) -> str:
    """``sentence`` without its temporal phrases and clauses, or ``""`` when nothing that one
    image can show remains (the text stage then drops the sentence). The result is never
    :func:`is_temporal`.

    Clauses that report a finding as resolved or deny new findings ("keine neuen Läsionen",
    "no longer seen") are dropped whole: without the comparison they would state the
    opposite. From the other clauses the comparison phrases, change words and dates are
    removed ("größenkonstant zur Voruntersuchung vom [DATUM]", "unchanged compared with the
    prior study", "neu aufgetreten", "new since ...").
    """
    end = sentence.rstrip()[-1:] if sentence.rstrip()[-1:] in ".!?" else ""
    kept = []
    for clause in _clauses(sentence.strip()):
        if _DROP_CLAUSE.search(clause):
            continue
        for pattern in _REMOVE:
            clause = pattern.sub(" ", clause)
        if re.search(r"\w", clause):
            kept.append(clause)
    text = _tidy(" ".join(kept))
    for _ in range(3):
        found = _matches(text)
        if not found:
            break
        for m in reversed(found):
            text = text[: m.start()] + " " + text[m.end() :]
        text = _tidy(text)
    if not text or is_temporal(text) or not _meaningful(text, lang):
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + (end or ".")
