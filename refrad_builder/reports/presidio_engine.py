"""An offline presidio ``AnalyzerEngine`` for German and English radiology report text.

Nothing here downloads anything. The NLP engine wraps blank spaCy pipelines
(``spacy.blank("de")``/``spacy.blank("en")``: a tokenizer and stop-word lists, no model) and
reports each token's lower-case form as its lemma, so presidio's context words still work.
The e-mail and URL recognizers validate domains with ``tldextract`` on its bundled public
suffix snapshot (no suffix list URL, no cache directory), so analysis never opens a socket.

The recognizers are patterns (presidio ``PatternRecognizer`` subclasses); a pattern may mark
the PHI inside its match with named groups ``phi``/``phi2`` so that a title, label or unit
around it stays readable. Entity names are the scrubber's PHI kinds:

``NAME``   names after titles and salutations (Herr, Frau, Dr. med., Prof., Kollegin, Mr,
           Mrs, Ms, Dear, Lieber), after labels (Patient:, Überweiser:, Referring physician:,
           Dictated by, i.A., ...), before degrees (", MD", ", FRCR") and under a closing
           ("Mit freundlichen Grüßen", "Kind regards")
``DATE``   dates in German and English formats (see :func:`find_dates`) and birth years
           ("Jahrgang 1952", "born in 1952")
``PHONE``  labelled numbers (Tel., Fax, Durchwahl, Piepser, bleep, ...), German, UK, US and
           international formats, and phonenumbers' matcher near a phone word
``EMAIL``, ``URL``
``ID``     labelled patient/case/accession/insurance numbers (Pat.-Nr., Fallnr., KV-Nr.,
           Versichertennummer, MRN, Acc., NHS No., SSN, ...) and unlabelled codes that only
           identifiers look like (letters + 3 or more digits, 7+ digit numbers, ...)
``ADDR``   street addresses ("Hauptstraße 12", "Am Mühlbach 12a", "12 Baker Street"),
           postcodes with cities ("79106 Freiburg", "London NW1 6XE", "Boston, MA 02115"),
           the place of a German letter's date line ("Freiburg, den ...")
``INST``   institution names ("Klinikum Tannenberg", "St Mary's Hospital")
``AGE``    ages over 89 ("92-jährige", "93 years old", "aged 95")

:func:`analyze` returns ``(start, end, kind)`` spans; the engine is built once per process.
The recognizers live in :mod:`refrad_builder.reports.phi`, one module per kind.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from refrad_builder.reports.phi.addresses import _ADDR_RULES
from refrad_builder.reports.phi.ages import _AGE_RULES
from refrad_builder.reports.phi.base import GroupPatternRecognizer, Rule
from refrad_builder.reports.phi.dates import DateRecognizer, find_dates
from refrad_builder.reports.phi.ids import _ID_CONTEXT, _ID_RULES
from refrad_builder.reports.phi.institutions import (
    _INST_RULES_DE,
    _INST_RULES_EN,
    GENERIC_INST_FOLDED,
    GENERIC_INST_WORDS,
)
from refrad_builder.reports.phi.name_fields import FIELD_NAME_RULES
from refrad_builder.reports.phi.name_forms import NameFormRecognizer
from refrad_builder.reports.phi.names import _NAME_RULES, is_not_name
from refrad_builder.reports.phi.partial import CLINIC_RULES, PARTIAL_DATE_RULES, YEAR_ID_RULES
from refrad_builder.reports.phi.people import FirstNameRecognizer
from refrad_builder.reports.phi.phones import _PHONE_CONTEXT, _PHONE_RULES
from refrad_builder.reports.phi.rare_names import RareNameRecognizer
from refrad_builder.reports.phi.web import OfflineEmailRecognizer, UrlRecognizer, tld_extractor
from refrad_builder.reports.phi.zones import ZoneRecognizer

__all__ = [
    "GENERIC_INST_FOLDED",
    "GENERIC_INST_WORDS",
    "KINDS",
    "LANGUAGES",
    "GroupPatternRecognizer",
    "Rule",
    "analyze",
    "find_dates",
    "get_analyzer",
    "is_not_name",
    "tld_extractor",
]

LANGUAGES = ("de", "en")
SCORE_THRESHOLD = 0.5
KINDS = ("NAME", "DATE", "PHONE", "EMAIL", "URL", "ID", "ADDR", "INST", "AGE")

# --- the offline NLP engine ---------------------------------------------------------------


def _plain_lemma(lower: str) -> str:
    """A lemma for a blank pipeline's token: its last word part ("pat.-nr" -> "nr",
    "tel." -> "tel"), so whole-word context matching sees the label word."""
    parts = [p for p in re.split(r"[.\-/:]+", lower) if p]
    return parts[-1] if parts else lower


class BlankSpacyNlpEngine(SpacyNlpEngine):
    """presidio's spaCy engine over already-built blank pipelines (no model, no download).

    Blank pipelines have no lemmatizer and no NER: a token's lemma is its lower-case form
    (presidio matches context words against lemmas) and there are no entities.
    """

    def __init__(self, pipelines: dict[str, object]):
        super().__init__(models=[{"lang_code": k, "model_name": f"blank:{k}"} for k in pipelines])
        self.nlp = dict(pipelines)

    def load(self) -> None:
        """Nothing to load: the pipelines were given."""

    def get_supported_entities(self) -> list[str]:
        """No NER entities: blank pipelines have no entity recognizer."""
        return []

    def _doc_to_nlp_artifact(self, doc, language: str) -> NlpArtifacts:
        return NlpArtifacts(
            entities=[],
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lemma_ or _plain_lemma(t.lower_) for t in doc],
            nlp_engine=self,
            language=language,
            scores=[],
        )


def _recognizers(language: str) -> list[EntityRecognizer]:
    return [
        GroupPatternRecognizer("NAME", language, _NAME_RULES),
        GroupPatternRecognizer("NAME", language, FIELD_NAME_RULES, name=f"name_fields_{language}"),
        FirstNameRecognizer(language),
        NameFormRecognizer(language),
        ZoneRecognizer(language),
        RareNameRecognizer(language),
        DateRecognizer(language),
        GroupPatternRecognizer("PHONE", language, _PHONE_RULES, context=_PHONE_CONTEXT),
        PhoneRecognizer(
            supported_language=language,
            supported_entity="PHONE",
            # numbers with "+" parse in any region; national formats by the text's language
            supported_regions=("DE",) if language == "de" else ("GB", "US"),
            context=_PHONE_CONTEXT,
            name=f"phonenumbers_{language}",
        ),
        OfflineEmailRecognizer(supported_language=language, supported_entity="EMAIL"),
        UrlRecognizer(language),
        GroupPatternRecognizer("ID", language, _ID_RULES, context=_ID_CONTEXT),
        GroupPatternRecognizer("ADDR", language, _ADDR_RULES),
        GroupPatternRecognizer("INST", language, _INST_RULES_DE + _INST_RULES_EN),
        GroupPatternRecognizer("AGE", language, _AGE_RULES),
        GroupPatternRecognizer(
            "DATE", language, PARTIAL_DATE_RULES, name=f"partial_date_{language}"
        ),
        GroupPatternRecognizer("ID", language, YEAR_ID_RULES, name=f"year_id_{language}"),
        GroupPatternRecognizer("INST", language, CLINIC_RULES, name=f"clinic_{language}"),
    ]


class _QuietBelowWarning(logging.Filter):
    """Drops presidio's debug and info records: its context enhancer logs the words around
    each match ("Context list is: ..."), which are report text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _silence_presidio_text_logging() -> None:
    log = logging.getLogger("presidio-analyzer")
    if not any(isinstance(f, _QuietBelowWarning) for f in log.filters):
        log.addFilter(_QuietBelowWarning())


# A learned recognizer: (model folder, ((model label, kind), ...)), or None for rules only.
Learned = tuple[str, tuple[tuple[str, str], ...]] | None


@functools.lru_cache(maxsize=4)
def get_analyzer(learned: Learned = None) -> AnalyzerEngine:
    """The process-wide analyzer for German and English (built on first use, ~2 s); with
    ``learned``, the rules plus a local transformer model
    (:class:`~refrad_builder.reports.learned.LearnedRecognizer`)."""
    import spacy

    _silence_presidio_text_logging()

    nlp = BlankSpacyNlpEngine({lang: spacy.blank(lang) for lang in LANGUAGES})
    recognizers = [r for lang in LANGUAGES for r in _recognizers(lang)]
    if learned is not None:
        from refrad_builder.reports.learned import LearnedRecognizer

        path, labels = learned
        recognizers += [LearnedRecognizer(Path(path), dict(labels), lang) for lang in LANGUAGES]
    registry = RecognizerRegistry(
        recognizers=recognizers,
        supported_languages=list(LANGUAGES),
    )
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp,
        supported_languages=list(LANGUAGES),
        default_score_threshold=SCORE_THRESHOLD,
        # substring matching would let "id" fire on "fluid" and "nr" on "Anreicherung"
        context_aware_enhancer=LemmaContextAwareEnhancer(context_matching_mode="whole_word"),
    )


def analyze(text: str, lang: str, learned: Learned = None) -> list[tuple[int, int, str]]:
    """PHI spans ``(start, end, kind)`` in ``text`` (``lang``: ``de`` or ``en``), sorted;
    spans may overlap (the scrubber merges them). ``learned`` adds a local model's spans."""
    language = lang if lang in LANGUAGES else "en"
    results = get_analyzer(learned).analyze(text=text, language=language)
    return sorted((r.start, r.end, r.entity_type) for r in results)
