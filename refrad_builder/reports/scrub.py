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
from refrad_builder.reports.spans import PLACEHOLDERS, ScrubOptions, _merge, apply_spans

__all__ = [
    "PLACEHOLDERS",
    "ScrubOptions",
    "ScrubResult",
    "find_dates",
    "known_phi_hashes",
    "normalize_date_value",
    "scrub",
    "scrub_known",
]


def _pattern_spans(
    text: str,
    lang: str,
    known: set[str],
    secret: bytes | None,
    learned: presidio_engine.Learned = None,
) -> list[tuple[int, int, str]]:
    readings = {(s, e): cands for s, e, cands in find_dates(text, lang)}
    out = []
    for s, e, kind in presidio_engine.analyze(text, lang, learned):
        if kind == "DATE":
            cands = readings.get((s, e), [])
            birth_year = re.fullmatch(r"\d{4}", text[s:e]) is not None
            if birth_year or (
                secret is not None and any(phi_hash(secret, "DATE", c) in known for c in cands)
            ):
                kind = "BIRTH_DATE"
        out.append((s, e, kind))
    return out


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


def scrub(
    text: str,
    known_phi: Iterable[str] | None = None,
    secret: bytes | None = None,
    lang: str = "en",
    options: ScrubOptions | None = None,
) -> ScrubResult:
    """De-identify one report text (``lang``: ``de`` or ``en``).

    ``known_phi`` holds typed keyed hashes made with ``secret`` (see :func:`known_phi_hashes`);
    without them only the header-independent recognizers run. Count keys: NAME, ID, DATE,
    BIRTH_DATE (a date whose hash is a known DATE, or a year after a birth word), INST,
    ADDR, EMAIL, URL, PHONE, AGE; one count per placeholder written.
    """
    options = options or ScrubOptions()
    known = set(known_phi or ())
    if known and secret is None:
        raise ValueError("known PHI hashes need the secret they were made with")
    if options.surrogates and secret is None:
        raise ValueError("surrogates are keyed: they need the run's secret")
    lang = "de" if lang == "de" else "en"
    spans = _pattern_spans(text, lang, known, secret, options.learned)
    if known and secret is not None:
        spans += KnownMatcher(known, secret).spans(text)
    spans += [(s, e, k) for s, e, k in options.extra if 0 <= s < e <= len(text)]
    merged = _merge(text, spans)
    counts = Counter(kind for _, _, kind in merged)
    if options.surrogates and secret is not None:
        from refrad_builder.reports.surrogates import apply_surrogates

        out = apply_surrogates(text, merged, lang, secret, options.date_shift)
    else:
        out = apply_spans(text, merged, lang)
    return ScrubResult(out, dict(sorted(counts.items())), tuple(merged))


def scrub_known(
    text: str,
    known_phi: Iterable[str] | None,
    secret: bytes | None,
    lang: str,
    options: ScrubOptions | None = None,
) -> tuple[str, dict[str, int]]:
    """De-identify a report text; returns (scrubbed text, counts of replacements by type).

    The same as :func:`scrub` without the spans (the report stage and ``refrad report
    analyze`` call this).
    """
    result = scrub(text, known_phi, secret, lang, options)
    return result.text, result.counts
