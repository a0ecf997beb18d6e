"""Report understanding by rules (German and English): language, sections, sentences,
key-image references, anatomy mentions with laterality and negation, temporal references,
and text de-identification. Plain Python; the ``report`` stage wraps :func:`build_record`."""

from refrad_builder.reports.analyze import analyze, build_record, cli_report_analyze, parse_report
from refrad_builder.reports.imagerefs import ANY_SERIES, image_refs
from refrad_builder.reports.language import detect_language
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.reports.scrub import known_phi_hashes, scrub_known
from refrad_builder.reports.sections import split_sections
from refrad_builder.reports.sentences import split_sentences
from refrad_builder.reports.temporal import is_temporal

__all__ = [
    "ANY_SERIES",
    "analyze",
    "build_record",
    "cli_report_analyze",
    "detect_language",
    "find_mentions",
    "image_refs",
    "is_temporal",
    "known_phi_hashes",
    "parse_report",
    "scrub_known",
    "split_sections",
    "split_sentences",
]
