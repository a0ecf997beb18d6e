"""The whole report pipeline on one text: language, scrubbing, sections, sentences, rules.

Everything after scrubbing works on the scrubbed text only, so no sentence, span or section
can carry a value the scrubber removed.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from refrad_builder.engine.records import ReportRecord, Sentence
from refrad_builder.reports.imagerefs import image_refs, refs_in_span, table_column_refs
from refrad_builder.reports.language import detect_language
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.reports.scrub import ScrubOptions, known_phi_hashes, scrub_known
from refrad_builder.reports.sections import sections_dict, split_sections
from refrad_builder.reports.sentences import split_sentences
from refrad_builder.reports.temporal import is_temporal


def parse_report(
    text: str,
    lang: str = "auto",
    known_phi: Iterable[str] | None = None,
    secret: bytes | None = None,
    *,
    seed: int = 0,
    default_language: str = "en",
    scrub_options: ScrubOptions | None = None,
) -> tuple[str, str, dict[str, str], list[Sentence], dict[str, int]]:
    """(language, scrubbed text, sections, sentences, PHI counts) of one report text.

    ``lang`` is ``"auto"`` (detected from the text) or ``"de"``/``"en"``.
    """
    if lang not in ("auto", "de", "en"):
        raise ValueError(f"lang must be auto, de or en, not {lang!r}")
    language = (
        detect_language(text, seed=seed, default=default_language) if lang == "auto" else lang
    )
    if callable(scrub_options):  # options that depend on the language (the LLM pass)
        scrub_options = scrub_options(language)
    scrubbed, counts = scrub_known(text, known_phi, secret, language, scrub_options)
    sections = split_sections(scrubbed)
    table_refs = table_column_refs(scrubbed)
    sentences: list[Sentence] = []
    for section in sections:
        raw = scrubbed[section.start : section.end]
        base = section.start + len(raw) - len(raw.lstrip())
        for span in split_sentences(section.text):
            in_table = refs_in_span(table_refs, base + span.start, base + span.end)
            sentences.append(
                Sentence(
                    text=span.text,
                    section=section.name,
                    mentions=find_mentions(span.text, language),
                    image_refs=image_refs(span.text, in_table),
                    temporal=is_temporal(span.text),
                )
            )
    return language, scrubbed, sections_dict(sections), sentences, counts


def build_record(
    study_id: str,
    patient_id: str,
    text: str,
    lang: str = "auto",
    known_phi: Iterable[str] | None = None,
    secret: bytes | None = None,
    *,
    seed: int = 0,
    default_language: str = "en",
    scrub_options: ScrubOptions | None = None,
) -> ReportRecord:
    """A :class:`ReportRecord` for one study's report text (``scrub_options``: the optional
    learned recognizer, surrogates and LLM spans; or a callable of the language giving
    them)."""
    language, scrubbed, sections, sentences, counts = parse_report(
        text,
        lang,
        known_phi,
        secret,
        seed=seed,
        default_language=default_language,
        scrub_options=scrub_options,
    )
    return ReportRecord(
        study_id=study_id,
        patient_id=patient_id,
        language=language,  # type: ignore[arg-type]
        scrubbed_text=scrubbed,
        sections=sections,
        sentences=sentences,
        phi_counts=counts,
    )


def analyze(
    text: str,
    lang: str = "auto",
    known_phi: Iterable[str] | None = None,
    secret: bytes | None = None,
    *,
    study_id: str = "",
    patient_id: str = "",
) -> dict[str, Any]:
    """The JSON object of ``refrad report analyze FILE``: a ReportRecord as JSON, so it
    validates against ``schemas/report_analysis.schema.json``.

    Keys: study_id, patient_id (empty for a loose file), language, scrubbed_text,
    sections {name: text}, sentences [{text, section, mentions [{class, laterality, abnormal,
    span}], image_refs [{series, image}], temporal}], phi_counts {type: n}.
    """
    record = build_record(study_id, patient_id, text, lang, known_phi, secret)
    return record.model_dump(mode="json", by_alias=True)


# --- CLI entry ----------------------------------------------------------------------------


def add_report_analyze_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``refrad report analyze`` (for the CLI to mount on a sub-parser)."""
    parser.add_argument("file", type=Path, help="a report text file (UTF-8)")
    parser.add_argument("--lang", choices=("auto", "de", "en"), default="auto")
    parser.add_argument(
        "--known-phi",
        type=Path,
        default=None,
        help='JSON file of raw header values by type, e.g. {"NAME": ["Mustermann^Max"], '
        '"ID": ["4711"], "DATE": ["19520314"]}; hashed with a throwaway key',
    )
    parser.add_argument("--json", action="store_true", help="print JSON (the default output)")
    parser.add_argument("--text", action="store_true", help="print a readable summary instead")


def cli_report_analyze(args: argparse.Namespace) -> int:
    """Run ``refrad report analyze``: print the analysis of one report file as JSON (or, with
    ``--text``, a readable summary); returns 0."""
    text = Path(args.file).read_text(encoding="utf-8")
    known: list[str] = []
    secret: bytes | None = None
    if getattr(args, "known_phi", None):
        values = json.loads(Path(args.known_phi).read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError("--known-phi must hold a JSON object of lists by PHI type")
        secret = secrets.token_bytes(32)
        known = known_phi_hashes(secret, {k: list(v) for k, v in values.items()})
    result = analyze(text, getattr(args, "lang", "auto") or "auto", known, secret)
    if not getattr(args, "text", False):
        json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"language: {result['language']}")
    print(f"phi removed: {result['phi_counts'] or 'none'}")
    for s in result["sentences"]:
        flags = " [temporal]" if s["temporal"] else ""
        print(f"[{s['section']}] {s['text']}{flags}")
        for m in s["mentions"]:
            side = f" ({m['laterality']})" if m["laterality"] else ""
            state = "abnormal" if m["abnormal"] else "normal"
            print(f"    {m['class']}{side}: {state}")
        for r in s["image_refs"]:
            series = "any" if r["series"] < 0 else r["series"]
            print(f"    key image: series {series}, image {r['image']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m refrad_builder.reports.analyze FILE [--json]``."""
    parser = argparse.ArgumentParser(prog="refrad report analyze")
    add_report_analyze_arguments(parser)
    return cli_report_analyze(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
