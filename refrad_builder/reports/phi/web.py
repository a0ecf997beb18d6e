"""E-mail addresses and URLs, validated on tldextract's bundled suffix list (offline)."""

from __future__ import annotations

import functools
import re

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from refrad_builder.reports.phi.base import GroupPatternRecognizer, Rule


@functools.lru_cache(maxsize=1)
def tld_extractor():
    """A ``tldextract.TLDExtract`` on the bundled suffix snapshot: no HTTP, no disk cache."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's e-mail recognizer, validating the domain on the bundled suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        """True when the address ends in a known public suffix."""
        parts = tld_extractor()(pattern_text.rsplit("@", 1)[-1])
        return bool(parts.suffix and parts.domain)


_URL_RULES = [
    Rule(
        "scheme_or_www",
        r"(?i)(?<![\w@/])(?:https?://|ftp://|www\d{0,3}\.)[^\s<>\"'()\[\]]*[^\s<>\"'()\[\].,;:!?]",
        0.85,
    ),
    Rule(
        "bare_domain",
        r"(?<![\w@./-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:de|com|org|net|at|ch|eu|info|edu|gov|uk|nl|fr|it|io|us)"
        r"(?:/[^\s<>\"'()\[\]]*[^\s<>\"'()\[\].,;:!?])?(?![\w@-])",
        0.6,
    ),
]


class UrlRecognizer(GroupPatternRecognizer):
    """URLs with a scheme or ``www.``, and bare domains with a known suffix (offline)."""

    def __init__(self, language: str):
        super().__init__("URL", language, _URL_RULES, context=["url", "website", "link", "online"])

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """URL spans whose host has a public suffix on the bundled list."""
        out = []
        for r in super().analyze(text, entities, nlp_artifacts, regex_flags):
            host = re.sub(r"(?i)^[a-z]+://", "", text[r.start : r.end]).split("/", 1)[0]
            parts = tld_extractor()(host)
            if parts.suffix and parts.domain:
                out.append(r)
        return out
