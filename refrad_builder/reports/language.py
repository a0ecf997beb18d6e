"""Report language detection restricted to German and English.

langdetect is used with only its bundled ``de`` and ``en`` profiles loaded, seeded, so the
answer is deterministic and can never be a third language. Very short texts (a heading and a
few words) carry too few n-grams for langdetect, so a small cue-word vote decides them.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

LANGUAGES = ("de", "en")

_CUES = {
    "de": frozenset(
        "der die das den dem des und mit ohne kein keine keinen nicht ist sind im am zum zur "
        "bei beidseits unauffällig regelrecht befund beurteilung links rechts nach einer eines "
        "einem kleine vergrößert zustand fragestellung anamnese technik darstellung nachweis "
        "leber niere nieren lunge milz".split()
    ),
    "en": frozenset(
        "the and with without no is are of in on at bilateral unremarkable findings impression "
        "left right normal there was were this that history indication technique evidence "
        "liver kidney kidneys lung lungs spleen".split()
    ),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_SHORT_WORDS = 8
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _factory() -> DetectorFactory:
    profiles = [(Path(PROFILES_DIRECTORY) / lang).read_text(encoding="utf-8") for lang in LANGUAGES]
    factory = DetectorFactory()
    factory.load_json_profile(profiles)
    return factory


def cue_votes(text: str) -> dict[str, int]:
    """Count German and English cue words (and umlauts/ß, which only German uses)."""
    words = [w.casefold() for w in _WORD.findall(text)]
    votes = {lang: sum(w in cues for w in words) for lang, cues in _CUES.items()}
    votes["de"] += sum(ch in "äöüß" for ch in text.casefold())
    return votes


def _cue_language(text: str) -> str | None:
    votes = cue_votes(text)
    if votes["de"] == votes["en"]:
        return None
    return "de" if votes["de"] > votes["en"] else "en"


def detect_language(text: str, seed: int = 0, default: str = "en") -> str:
    """``"de"`` or ``"en"`` for a report text.

    Short texts (fewer than 8 words) are decided by cue words when the vote is not tied; the
    rest by langdetect with only the de and en profiles, seeded with ``seed``. ``default`` is
    returned when neither gives an answer (no letters at all).
    """
    words = _WORD.findall(text)
    if not words:
        return default
    if len(words) < _SHORT_WORDS:
        by_cue = _cue_language(text)
        if by_cue is not None:
            return by_cue
    factory = _factory()
    # The factory's seed is shared state read when a detector is created.
    with _lock:
        factory.set_seed(seed)
        detector = factory.create()
    try:
        detector.append(text)
        lang = detector.detect()
    except LangDetectException:
        return _cue_language(text) or default
    return lang if lang in LANGUAGES else (_cue_language(text) or default)


def normalize_language(value: object) -> str | None:
    """Map a language column value ("de", "DE-de", "Deutsch", "english", ...) to de/en."""
    if not isinstance(value, str):
        return None
    v = value.strip().casefold().replace("_", "-")
    if not v:
        return None
    if v.split("-")[0] in ("de", "ger", "deu") or v in ("german", "deutsch"):
        return "de"
    if v.split("-")[0] in ("en", "eng") or v in ("english", "englisch"):
        return "en"
    return None
