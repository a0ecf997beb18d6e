"""Shared check for the PHI rule tests: a PHI string must be removed whole, a clinical word in
the same text must survive."""

from __future__ import annotations

from refrad_builder.reports.scrub import scrub


def covered(text: str, lang: str) -> set[int]:
    """Character offsets the scrubber replaces."""
    out: set[int] = set()
    for s, e, _ in scrub(text, lang=lang).spans:
        out.update(range(s, e))
    return out


def check_gone_kept(text: str, lang: str, gone: str | None, kept: str) -> None:
    """Every letter and digit of ``gone`` is replaced (unless None); nothing of ``kept`` is."""
    hit = covered(text, lang)
    if gone is not None:
        start = text.index(gone)
        missed = [
            c
            for i, c in zip(range(start, start + len(gone)), text[start:], strict=False)
            if c.isalnum() and i not in hit
        ]
        assert not missed, f"{gone!r} not fully removed from {scrub(text, lang=lang).text!r}"
    k = text.index(kept)
    assert not hit & set(range(k, k + len(kept))), f"{kept!r} lost"
