"""Issue 14 (blind_f round): rules for the forms the development set blind_f showed, each on
invented sentences in both languages (not taken from the eval corpora). Each case names the
PHI that must go and a clinical word in the same text that must stay."""

from __future__ import annotations

import pytest

from refrad_builder.reports.scrub import scrub


def _covered(text: str, lang: str) -> set[int]:
    covered: set[int] = set()
    for s, e, _ in scrub(text, lang=lang).spans:
        covered.update(range(s, e))
    return covered


def _check(text: str, lang: str, gone: str | None, kept: str) -> None:
    covered = _covered(text, lang)
    if gone is not None:
        start = text.index(gone)
        missed = [
            c
            for i, c in zip(range(start, start + len(gone)), text[start:], strict=False)
            if c.isalnum() and i not in covered
        ]
        assert not missed, f"{gone!r} not fully removed from {scrub(text, lang=lang).text!r}"
    k = text.index(kept)
    assert not covered & set(range(k, k + len(kept))), f"{kept!r} lost"


EPONYMS = [
    # a classification after a stage and "nach"
    (
        "Hodgkin-Lymphom, Stadium IIB nach Ann Arbor. Rücksprache mit Kerstin Vollmer.",
        "de",
        "Kerstin Vollmer",
        "Ann Arbor",
    ),
    (
        "Leptomeningeale Aussaat, M2 nach Chang, Vorstellung bei Dr. Jens Ottmann.",
        "de",
        "Jens Ottmann",
        "Chang",
    ),
    # an eponym before a grade letter
    (
        "Stanford B dissection from the left subclavian artery. Discussed with Tobias Hummel.",
        "en",
        "Tobias Hummel",
        "Stanford",
    ),
    # an eponym before a procedure or device word, possessive or not
    (
        "Status post Hartmann's procedure in 2019, rectal stump intact. Seen by Anna B. Kerr.",
        "en",
        "Kerr",
        "Hartmann",
    ),
    (
        "Imaged in an Aspen collar after the fall; no fracture. Reviewed by Helga Nordstrom.",
        "en",
        "Helga Nordstrom",
        "Aspen",
    ),
]


@pytest.mark.parametrize(("text", "lang", "gone", "kept"), EPONYMS)
def test_eponyms_in_classifications_and_procedures_stay(text, lang, gone, kept):
    _check(text, lang, gone, kept)


def test_a_grade_before_per_does_not_hide_a_name():
    _check("Bed 3 per Tobias Hummel, chest drain in situ.", "en", "Tobias Hummel", "chest drain")
