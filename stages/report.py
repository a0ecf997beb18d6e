"""The ``report`` stage: one item per study with a paired report.

Reads the report row (or the DICOM SR's text, :mod:`refrad_builder.reports.sr`) named by
ingest's :class:`~refrad_builder.engine.records.ReportRef`, detects the
language (a valid language column overrides detection), scrubs known PHI and dates, and parses
sections, sentences, key-image references and anatomy mentions into a
:class:`~refrad_builder.engine.records.ReportRecord`. Studies without a report are not planned here;
their images still flow on through the imaging stages.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pydicom
from polars.exceptions import OutOfBoundsError

from refrad_builder.deid.dataset import series_date_shift
from refrad_builder.deid.pseudo import keyed_hex
from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.records import ReportRecord, StudyRecord
from refrad_builder.engine.stage import Drop, Resources, Stage, WorkItem
from refrad_builder.inputs import walk as input_files
from refrad_builder.inputs.report_table import ReportTableError, report_row
from refrad_builder.inputs.walk import InputFileMissing, change_key, open_input
from refrad_builder.reports.analyze import build_record
from refrad_builder.reports.language import normalize_language
from refrad_builder.reports.learned import learned_spec
from refrad_builder.reports.scrub import ScrubOptions
from refrad_builder.reports.sr import sr_text


class ReportStage(Stage):
    """Parse and de-identify each study's report text."""

    name = "report"
    version = "3"
    consumes = ("ingest",)
    uses_secret = True
    resources = Resources(cpus=1.0, memory_gb=0.5)
    llm_phi = None

    def config_hash(self) -> str:
        """The report section (and secret); with ``report.llm_phi`` also the llm section and
        the PHI prompts' versions, so a new model or prompt reruns the reports."""
        parts = [super().config_hash()]
        if self.cfg.llm_phi:
            from refrad_builder.reports.llm_phi import TASK
            from refrad_builder.text.prompts import load_prompt

            parts.append(self.ctx.config.section_hash("llm"))
            parts += [load_prompt(TASK, lang).key for lang in ("de", "en")]
        return stable_hash(parts)

    def setup(self) -> None:
        """The LLM PHI pass's client, when ``report.llm_phi`` is on."""
        if self.cfg.llm_phi:
            from refrad_builder.reports.llm_phi import LLMPhiPass

            self.llm_phi = LLMPhiPass(
                self.ctx.config.llm, self.out_dir / "llm_phi_cache", self.ctx.secret
            )

    def _row(self, table: int, row: int) -> dict[str, str | None]:
        tables = self.ctx.config.inputs.reports
        if not 0 <= table < len(tables):
            raise IndexError("report table index out of range")
        try:
            return report_row(str(tables[table]), row)
        except OutOfBoundsError:
            raise IndexError("report row out of range") from None

    def _text_fingerprint(self, table: int, row: int) -> str:
        """A keyed hash of the report row's text and language, so an edited report reruns."""
        inputs = self.ctx.config.inputs
        try:
            values = self._row(table, row)
        except (ReportTableError, IndexError):
            return "unreadable"
        text = values.get(inputs.report_text_column) or ""
        lang = values.get(inputs.report_language_column) or ""
        return keyed_hex(self.ctx.secret, "report-text", text, lang)

    def plan(self) -> list[WorkItem]:
        """One item per study that ingest paired with a report row or a DICOM SR."""
        studies = [
            StudyRecord.model_validate(rec)
            for _item_id, _fp, records in self.ctx.upstream("ingest/studies")
            for rec in records
        ]
        fps = {i: fp for i, fp, _ in self.ctx.upstream("ingest/studies")}
        found = {}
        if any(s.report and s.report.sr_files for s in studies):
            cfg = self.ctx.config
            # SR files are found again by their keyed ids, as deid finds images
            found = input_files.index(
                self.ctx.secret, list(cfg.inputs.dicom), cfg.ingest.follow_symlinks
            )
        items: list[WorkItem] = []
        for study in studies:
            ref = study.report
            if ref is None:
                continue
            payload: dict[str, Any] = {
                "study_id": study.study_id,
                "patient_id": study.patient_id,
                "table": ref.table,
                "row": ref.row,
                "known_phi": list(study.known_phi),
            }
            if ref.sr_files:
                paths = [found.get(i) for i in ref.sr_files]
                payload["sr_paths"] = paths  # in memory only, like deid's sources
                text_fp = keyed_hex(
                    self.ctx.secret,
                    "report-sr",
                    *(str(change_key(p)) if p else "missing" for p in paths),
                )
            else:
                text_fp = self._text_fingerprint(ref.table, ref.row)
            parts = [fps.get(study.study_id), study.study_id, text_fp]
            if self.ctx.config.report.surrogates:
                # surrogate dates follow the DICOM date shift, which the deid section sets
                deid = self.ctx.config.deid
                parts.append([deid.retain_longitudinal_dates, deid.date_shift_max_days])
            items.append(
                WorkItem(id=study.study_id, payload=payload, input_fingerprint=stable_hash(parts))
            )
        return items

    def _sr_report(self, paths: list[str | None]) -> str | Drop:
        """The text of a study's DICOM SR files (report, then addenda), or a Drop."""
        if any(p is None for p in paths):
            raise InputFileMissing("an SR file seen by ingest is gone; rerun ingest")
        texts = []
        for path in paths:
            try:
                with open_input(path) as fh:
                    ds = pydicom.dcmread(fh)
            except OSError:
                raise  # transient: the file is unreachable now
            except Exception:
                return Drop("sr_report_unreadable")
            texts.append(sr_text(ds))
        return "\n\n".join(t for t in texts if t)

    def process(self, item: WorkItem) -> ReportRecord | Drop:
        """Parse one study's report; drops: unreadable table or row, empty text, a language
        the run is not configured for."""
        p = item.payload
        inputs = self.ctx.config.inputs
        cfg = self.ctx.config.report
        if p.get("sr_paths"):
            text = self._sr_report(p["sr_paths"])
            if isinstance(text, Drop):
                return text
            values: dict[str, str | None] = {}
        else:
            try:
                values = self._row(int(p["table"]), int(p["row"]))
            except ReportTableError:
                return Drop("report_table_unreadable")
            except IndexError:
                return Drop("report_row_missing")
            text = values.get(inputs.report_text_column)
        if not isinstance(text, str) or not text.strip():
            return Drop("empty_report")
        lang = normalize_language(values.get(inputs.report_language_column))
        if lang is not None and lang not in cfg.languages:
            return Drop("language_not_configured", detail=lang)
        record = build_record(
            study_id=p["study_id"],
            patient_id=p["patient_id"],
            text=text,
            lang=lang or "auto",
            known_phi=p.get("known_phi") or [],
            secret=self.ctx.secret,
            seed=cfg.langdetect_seed,
            default_language=cfg.default_language,
            scrub_options=self._scrub_options(p["patient_id"], text),
        )
        if record.language not in cfg.languages:
            return Drop("language_not_configured", detail=record.language)
        return record

    def _scrub_options(self, patient_id: str, text: str):
        """The optional scrubbing parts the report section turns on (rules and placeholders
        alone by default). With the LLM pass, a function of the detected language: the
        model's spans of ``text`` join the rules' (an LLMPhiError fails the item)."""
        cfg = self.ctx.config.report
        shift = None
        if cfg.surrogates:
            shift = series_date_shift(self.ctx.secret, patient_id, self.ctx.config.deid)
        options = ScrubOptions(
            learned=learned_spec(cfg.learned_recognizer, cfg.learned_labels),
            surrogates=cfg.surrogates,
            date_shift=shift,
        )
        if not cfg.llm_phi:
            return options
        if self.llm_phi is None:
            self.setup()
        llm = self.llm_phi
        return lambda lang: replace(options, extra=llm.spans(text, lang))


STAGE = ReportStage
