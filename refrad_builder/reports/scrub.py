"""Report text de-identification: known PHI from the headers plus presidio recognizers.

Two sources find PHI, and every span either finds is replaced:

* **Known PHI from the study's own headers** arrives only as typed keyed hashes
  (``NAME:<hex>``, see :func:`refrad_builder.deid.pseudo.phi_hash` and :func:`known_phi_hashes`).
  Every word of the report, every part of a hyphenated word, every run of 2 to 4 number
  groups ("485 777 3456") and every short run of capitalised words (an institution or
  address phrase) is hashed the same way, in every case and with umlauts spelt out or not
  ("MUELLER" = "Müller"), so a name component matches in any order. A birth date matches in
  any format :func:`find_dates` reads. Name particles from the header ("von der", "Van",
  "de la") count only next to a matched name. A matched name takes an adjacent initial
  ("Groß, F.") or the capitalised word before it (a first name: "Sven Klein") with it, a
  matched institution its generic words ("Universitätsklinikum ..."), a matched street its
  house number. Header IDs shorter than 4 characters and house numbers alone are not
  matched (a StudyID "12" would blank every "12").
* **Header-independent recognizers**, run by an offline presidio engine
  (:mod:`refrad_builder.reports.presidio_engine`): names after titles, salutations and
  labels, dates, phone and fax numbers, e-mail, URLs, labelled and identifier-shaped
  numbers, street addresses, postcodes with cities, institution names, ages over 89.

Overlapping spans merge into one (the longest span's type wins); neighbouring spans of one
type separated only by blanks or a comma become one placeholder. Placeholders are typed and
German for German text (``[NAME]``, ``[ID]``, ``[DATUM]``, ``[EINRICHTUNG]``, ``[ADRESSE]``,
``[TELEFON]``, ``[EMAIL]``, ``[URL]``, ``[ALTER]``), English otherwise (``[DATE]``,
``[INSTITUTION]``, ``[ADDRESS]``, ``[PHONE]``, ``[AGE]``).

Dates (the policy): every calendar date with at least two of day, month and year is
replaced, whether it is a birth date, an exam date or the date of a prior study: all of them
are dates of the person's care (HIPAA Safe Harbor counts admission, exam and procedure dates
as PHI), and a report cannot tell reliably which date is "not about the person". A year on
its own stays readable ("Lobektomie 2019", "Fleischner 2017", "LI-RADS v2018") unless a
birth word precedes it ("Jahrgang 1952", "born in 1952"); so do times of day, intervals
("seit 3 Monaten") and ages up to 89. Dates are replaced rather than shifted: the imaging
headers carry the shifted dates, and the text keeps the placeholder ("Voruntersuchung vom
[DATUM]") so temporal rules still see a comparison.

Limitations (see :mod:`refrad_builder.reports.evaluate` for the measurement): a name that
is neither in the headers nor next to a title, label, salutation, degree or closing (a
nickname: "Bill" for a header "William") is not found; a lower-case common word that is
also the patient's name ("groß", "white") is kept; a surname that is also an eponym
("Baker", "Weber") is replaced wherever it occurs, eponym included.

Only counts by type leave this module, never a removed value.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from refrad_builder.deid.pseudo import phi_hash
from refrad_builder.reports import presidio_engine
from refrad_builder.reports.known_phi import KnownMatcher, known_phi_hashes, normalize_date_value
from refrad_builder.reports.presidio_engine import find_dates

__all__ = [
    "PLACEHOLDERS",
    "ScrubResult",
    "find_dates",
    "known_phi_hashes",
    "normalize_date_value",
    "scrub",
    "scrub_known",
]

PLACEHOLDERS = {
    "de": {
        "NAME": "[NAME]",
        "ID": "[ID]",
        "DATE": "[DATUM]",
        "BIRTH_DATE": "[DATUM]",
        "INST": "[EINRICHTUNG]",
        "ADDR": "[ADRESSE]",
        "EMAIL": "[EMAIL]",
        "URL": "[URL]",
        "PHONE": "[TELEFON]",
        "AGE": "[ALTER]",
    },
    "en": {
        "NAME": "[NAME]",
        "ID": "[ID]",
        "DATE": "[DATE]",
        "BIRTH_DATE": "[DATE]",
        "INST": "[INSTITUTION]",
        "ADDR": "[ADDRESS]",
        "EMAIL": "[EMAIL]",
        "URL": "[URL]",
        "PHONE": "[PHONE]",
        "AGE": "[AGE]",
    },
}
# When overlapping spans are equally long, the first of these names the merged span.
_MERGE_PRIORITY = (
    "EMAIL",
    "URL",
    "BIRTH_DATE",
    "DATE",
    "ID",
    "PHONE",
    "ADDR",
    "INST",
    "NAME",
    "AGE",
)


def _pattern_spans(
    text: str, lang: str, known: set[str], secret: bytes | None
) -> list[tuple[int, int, str]]:
    readings = {(s, e): cands for s, e, cands in find_dates(text, lang)}
    out = []
    for s, e, kind in presidio_engine.analyze(text, lang):
        if kind == "DATE":
            cands = readings.get((s, e), [])
            birth_year = re.fullmatch(r"\d{4}", text[s:e]) is not None
            if birth_year or (
                secret is not None and any(phi_hash(secret, "DATE", c) in known for c in cands)
            ):
                kind = "BIRTH_DATE"
        out.append((s, e, kind))
    return out


def _merge(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans become one (the longest member's kind, then _MERGE_PRIORITY);
    neighbours of one kind with only blanks or a comma between become one."""
    rank = {k: i for i, k in enumerate(_MERGE_PRIORITY)}
    clusters: list[list[tuple[int, int, str]]] = []
    for span in sorted(spans):
        if clusters and span[0] < max(e for _, e, _ in clusters[-1]):
            clusters[-1].append(span)
        else:
            clusters.append([span])
    merged: list[tuple[int, int, str]] = []
    for cluster in clusters:
        s = min(x[0] for x in cluster)
        e = max(x[1] for x in cluster)
        best = min(cluster, key=lambda x: (-(x[1] - x[0]), rank.get(x[2], len(rank))))
        kind = best[2]
        if (
            merged
            and merged[-1][2] == kind
            and re.fullmatch(r"[ \t]*,?[ \t]*", text[merged[-1][1] : s])
        ):
            merged[-1] = (merged[-1][0], e, kind)
        else:
            merged.append((s, e, kind))
    return merged


# --- the scrubber -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScrubResult:
    """A scrubbed text, the replacement counts by type, and the replaced spans.

    ``spans`` are ``(start, end, kind)`` in the *original* text; they never leave the
    process that scrubbed (they locate PHI). :func:`apply_spans` rebuilds ``text`` from them.
    """

    text: str
    counts: dict[str, int]
    spans: tuple[tuple[int, int, str], ...]


def apply_spans(text: str, spans: Iterable[tuple[int, int, str]], lang: str) -> str:
    """``text`` with each non-overlapping ``(start, end, kind)`` span replaced by the kind's
    placeholder in ``lang``."""
    places = PLACEHOLDERS["de" if lang == "de" else "en"]
    out, last = [], 0
    for s, e, kind in sorted(spans):
        out.append(text[last:s])
        out.append(places[kind])
        last = e
    out.append(text[last:])
    return "".join(out)


def scrub(
    text: str,
    known_phi: Iterable[str] | None = None,
    secret: bytes | None = None,
    lang: str = "en",
) -> ScrubResult:
    """De-identify one report text (``lang``: ``de`` or ``en``).

    ``known_phi`` holds typed keyed hashes made with ``secret`` (see :func:`known_phi_hashes`);
    without them only the header-independent recognizers run. Count keys: NAME, ID, DATE,
    BIRTH_DATE (a date whose hash is a known DATE, or a year after a birth word), INST,
    ADDR, EMAIL, URL, PHONE, AGE; one count per placeholder written.
    """
    known = set(known_phi or ())
    if known and secret is None:
        raise ValueError("known PHI hashes need the secret they were made with")
    lang = "de" if lang == "de" else "en"
    spans = _pattern_spans(text, lang, known, secret)
    if known and secret is not None:
        spans += KnownMatcher(known, secret).spans(text)
    merged = _merge(text, spans)
    counts = Counter(kind for _, _, kind in merged)
    return ScrubResult(apply_spans(text, merged, lang), dict(sorted(counts.items())), tuple(merged))


def scrub_known(
    text: str, known_phi: Iterable[str] | None, secret: bytes | None, lang: str
) -> tuple[str, dict[str, int]]:
    """De-identify a report text; returns (scrubbed text, counts of replacements by type).

    The same as :func:`scrub` without the spans (the report stage and ``refrad report
    analyze`` call this).
    """
    result = scrub(text, known_phi, secret, lang)
    return result.text, result.counts
