"""Placeholders and span handling of the report scrubber: merging overlapping spans,
writing placeholders, and the scrubber's optional settings (:class:`ScrubOptions`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from refrad_builder.reports.presidio_engine import Learned

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


@dataclass(frozen=True)
class ScrubOptions:
    """The optional parts of scrubbing; the defaults are rules and placeholders only.

    ``learned``: a local transformer model's spans unioned with the rules
    (:mod:`refrad_builder.reports.learned`); ``extra``: spans found elsewhere (the optional
    LLM pass), unioned the same way; ``surrogates``: replace each span with a realistic
    surrogate of its kind instead of a placeholder
    (:mod:`refrad_builder.reports.surrogates`), dates shifted by ``date_shift`` days (the
    patient's DICOM shift; None: dates become placeholders).
    """

    learned: Learned = None
    extra: tuple[tuple[int, int, str], ...] = ()
    surrogates: bool = False
    date_shift: int | None = None


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
