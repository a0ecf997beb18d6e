"""Hide in plain sight (``report.surrogates: true``): each PHI span becomes a realistic
surrogate of its kind instead of a placeholder.

Every choice is a keyed hash of (kind, original) with the run's secret: the same name gets
the same surrogate throughout a corpus, and without the key the surrogate says nothing about
the original. Names come from gender-guesser's first names (common in Germany or Britain)
and the surname list in ``data/surrogates.yaml``; institutions, streets and cities from the
same file; dates are shifted by the patient's DICOM date shift
(:func:`refrad_builder.deid.pseudo.date_shift_days`) and keep their format; identifiers,
phone numbers and ages keep their shape with keyed digits and letters. A surrogate never
equals its original (a collision takes the next choice). Dates that cannot be read, or
every date when the DICOM dates are not retained, become the placeholder.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from importlib import resources

import yaml

from refrad_builder.deid.pseudo import keyed_hex
from refrad_builder.reports.scrub import PLACEHOLDERS

_DMY = re.compile(r"^(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})$")
_YMD = re.compile(r"^(\d{4})([-./]?)(\d{2})\2(\d{2})$")


@functools.lru_cache(maxsize=1)
def _lists() -> dict:
    text = resources.files("refrad_builder.data").joinpath("surrogates.yaml").read_text("utf-8")
    return yaml.safe_load(text)


@functools.lru_cache(maxsize=1)
def first_names() -> tuple[str, ...]:
    """First names common in Germany or Great Britain from gender-guesser's dictionary."""
    import gender_guesser.detector as gd

    det = gd.Detector()
    cols = [det.COUNTRIES.index("germany"), det.COUNTRIES.index("great_britain")]
    out = set()
    for name, by_gender in det.names.items():
        if not (name.isalpha() and name[:1].isupper() and 3 <= len(name) <= 9):
            continue
        if any(max(v[c] for c in cols) >= "6" for v in by_gender.values()):
            out.add(name)
    return tuple(sorted(out))


def _pick(secret: bytes, kind: str, original: str, choices, salt: int = 0) -> str:
    h = int(keyed_hex(secret, "surrogate", kind, original.casefold(), str(salt), n=12), 16)
    return choices[h % len(choices)]


def _differs(secret: bytes, kind: str, original: str, make) -> str:
    for salt in range(8):
        value = make(salt)
        if value.casefold() != original.casefold() and original.casefold() not in (
            value.casefold()
        ):
            return value
    return make(99)


def _name(secret: bytes, original: str) -> str:
    words = [w for w in re.split(r"[\s,]+", original) if w]
    surnames = _lists()["surnames"]

    def make(salt: int) -> str:
        last = _pick(secret, "NAME", original, surnames, salt)
        if len(words) < 2:
            return last
        first = _pick(secret, "FIRST", original, first_names(), salt)
        return f"{last}, {first}" if "," in original else f"{first} {last}"

    return _differs(secret, "NAME", original, make)


def _shape(secret: bytes, kind: str, original: str) -> str:
    """Keyed digits for digits, keyed letters for letters (case kept), the rest as is."""

    def make(salt: int) -> str:
        h = keyed_hex(secret, "surrogate-shape", kind, original, str(salt), n=64)
        out = []
        for i, ch in enumerate(original):
            v = int(h[i % len(h)], 16) + i
            if ch.isdigit():
                out.append(str(v % 10))
            elif ch.isalpha() and ch.isascii():
                letter = chr(ord("a") + v % 26)
                out.append(letter.upper() if ch.isupper() else letter)
            else:
                out.append(ch)
        return "".join(out)

    return _differs(secret, kind, original, make)


def _date(original: str, shift: int | None) -> str | None:
    if shift is None or shift == 0:
        return None
    text = original.strip()
    m = _DMY.match(text)
    if m:
        day, sep, month, year = m.groups()
        yy = int(year)
        if len(year) == 2:
            yy += 2000 if yy < 50 else 1900
        try:
            d = dt.date(yy, int(month), int(day)) + dt.timedelta(days=shift)
        except ValueError:
            return None
        y_out = f"{d.year:04d}" if len(year) == 4 else f"{d.year % 100:02d}"
        return f"{d.day:0{len(day)}d}{sep}{d.month:0{len(month)}d}{sep}{y_out}"
    m = _YMD.match(text)
    if m:
        year, sep, month, day = m.groups()
        try:
            d = dt.date(int(year), int(month), int(day)) + dt.timedelta(days=shift)
        except ValueError:
            return None
        return f"{d.year:04d}{sep}{d.month:02d}{sep}{d.day:02d}"
    return None


def surrogate(secret: bytes, kind: str, original: str, lang: str, date_shift: int | None) -> str:
    """The surrogate of one PHI span (the placeholder where none can be made)."""
    lang = "de" if lang == "de" else "en"
    lists = _lists()
    if kind == "NAME":
        return _name(secret, original)
    if kind in ("DATE", "BIRTH_DATE"):
        return _date(original, date_shift) or PLACEHOLDERS[lang][kind]
    if kind == "INST":
        return _differs(
            secret,
            kind,
            original,
            lambda salt: _pick(secret, kind, original, lists["institutions"][lang], salt),
        )
    if kind == "ADDR":
        if any(ch.isdigit() for ch in original) and re.search(r"\d{4,5}", original):
            return _differs(
                secret,
                kind,
                original,
                lambda salt: _pick(secret, "CITY", original, lists["cities"][lang], salt),
            )
        number = str(1 + int(keyed_hex(secret, "surrogate", "house", original, n=4), 16) % 98)
        street = _pick(secret, kind, original, lists["streets"][lang])
        return f"{street} {number}" if lang == "de" else f"{number} {street}"
    if kind == "EMAIL":
        return f"{keyed_hex(secret, 'surrogate', kind, original, n=8)}@example.org"
    if kind == "URL":
        return f"https://example.org/{keyed_hex(secret, 'surrogate', kind, original, n=8)}"
    # ID, PHONE, AGE and anything else: the same shape
    return _shape(secret, kind, original)


def apply_surrogates(
    text: str,
    spans,
    lang: str,
    secret: bytes,
    date_shift: int | None,
) -> str:
    """``text`` with each non-overlapping ``(start, end, kind)`` span replaced by its
    surrogate."""
    out, last = [], 0
    for s, e, kind in sorted(spans):
        out.append(text[last:s])
        out.append(surrogate(secret, kind, text[s:e], lang, date_shift))
        last = e
    out.append(text[last:])
    return "".join(out)
