"""Keyed pseudonyms: HMAC-SHA256 with the run's secret.

The same key gives the same pseudonyms, UIDs and date offsets in every run; without the key
they cannot be reversed or recomputed. Known PHI from the headers is carried between stages
only as typed keyed hashes (``NAME:<hex>``), never as text.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import unicodedata

PHI_TYPES = ("NAME", "ID", "DATE", "INST", "ADDR")
_TOKEN_STRIP = re.compile(r"[^\w]", re.UNICODE)


def keyed_hex(secret: bytes, *parts: str, n: int = 32) -> str:
    """HMAC-SHA256 over the parts (unit-separated), hex, first ``n`` characters."""
    # surrogateescape: a file name that is not valid UTF-8 (Latin-1 names from Windows shares)
    # arrives with surrogate escapes and is hashed as its original bytes; valid text is
    # unchanged.
    msg = "\x1f".join(parts).encode("utf-8", "surrogateescape")
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:n]


def pseudonym(secret: bytes, kind: str, original: str) -> str:
    """A dot-free pseudonym for a patient, study, series or file (``kind`` namespaces it)."""
    return keyed_hex(secret, "pseudonym", kind, original, n=24)


def uid_from(secret: bytes, original: str) -> str:
    """A keyed replacement UID of the form ``2.25.<128-bit integer>`` (UUID-derived UID)."""
    digest = hmac.new(secret, b"uid\x1f" + original.encode("utf-8"), hashlib.sha256).digest()
    value = int.from_bytes(digest[:16], "big")
    # Set the RFC 4122 version (4) and variant bits so the integer is a valid UUID.
    value &= ~(0xF << 76)
    value |= 0x4 << 76
    value &= ~(0x3 << 62)
    value |= 0x2 << 62
    return f"2.25.{value}"


def date_shift_days(secret: bytes, patient_key: str, max_days: int) -> int:
    """Per-patient offset in [-max_days, -1]: keyed, so intervals within a patient survive."""
    if max_days <= 0:
        return 0
    h = int(keyed_hex(secret, "dateshift", patient_key, n=16), 16)
    return -(1 + h % max_days)


@functools.lru_cache(maxsize=4096)
def shift_da(value: str, days: int) -> str:
    """Shift a DICOM DA value (YYYYMMDD); unparsable values become empty."""
    try:
        d = dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return ""
    return (d + dt.timedelta(days=days)).strftime("%Y%m%d")


def normalize_token(token: str) -> str:
    """Casefold, strip accents' combining marks consistently and non-word characters."""
    token = unicodedata.normalize("NFC", token).casefold()
    return _TOKEN_STRIP.sub("", token)


def phi_hash(secret: bytes, kind: str, value: str) -> str:
    """Typed keyed hash of one normalised PHI token: ``KIND:<hex>``."""
    if kind not in PHI_TYPES:
        raise ValueError(f"unknown PHI type {kind}")
    return f"{kind}:{keyed_hex(secret, 'phi', normalize_token(value), n=20)}"
