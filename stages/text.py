"""text: captions, grounded captions and VQA per slice (slice x report), rules by default."""

from __future__ import annotations

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import (
    Provenance,
    ReportRecord,
    Sample,
    SliceRecord,
    TextRecord,
)
from refrad_builder.engine.stage import STAGE_ORDER, Drop, Stage, WorkItem, get_stage
from refrad_builder.text.phrases import GENERATOR
from refrad_builder.text.rules import TextProducts, make_products

PROMPT_TASKS = ("temporal", "translate", "vqa", "keywords")
# reports kept per worker (the slices of a study come in neighbouring batches)
REPORT_CACHE = 256


class TextStage(Stage):
    """One item per chosen slice; joins the slice with its study's parsed report."""

    name = "text"
    version = "3"
    consumes = ("slices", "report")

    def plan(self) -> list[WorkItem]:
        """One item per slice. A slice names its study's report by id and output hash (the
        report item's id is its study's id): the worker reads the report from the report
        stage's ledger, so a report is stored once per study, never copied per slice."""
        reports = Ledger(self.ctx.stage_dir("report")).current_hashes()
        items = []
        for _, fp, recs in self.ctx.upstream("slices"):
            series_classes = sorted({b["class_name"] for r in recs for b in r["boxes"]})
            for rec in recs:
                rep_fp = reports.get(rec["study_id"], "none")
                items.append(
                    WorkItem(
                        id=rec["slice_id"],
                        payload={
                            "slice": rec,
                            "report_id": rec["study_id"] if rep_fp != "none" else None,
                            "report_hash": rep_fp,
                            "series_classes": series_classes,
                        },
                        input_fingerprint=stable_hash([fp, rep_fp, rec["slice_id"]]),
                    )
                )
        return items

    def _reports(self, items: list[WorkItem]) -> dict[str, ReportRecord | Exception]:
        """The reports a batch names, read once per study from the report ledger; one whose
        output hash differs from the planned one is an error of its slices (retried)."""
        want = {
            it.payload["report_id"]: it.payload["report_hash"]
            for it in items
            if it.payload.get("report_id")
        }
        missing = {rid for rid in want if (rid, want[rid]) not in self._report_cache}
        if missing:
            found = Ledger(self.ctx.stage_dir("report")).records_of(missing)
            if len(self._report_cache) > REPORT_CACHE:
                self._report_cache.clear()
            for rid, (digest, records) in found.items():
                self._report_cache[(rid, digest)] = ReportRecord(**records[0])
        return {
            rid: self._report_cache.get((rid, digest))
            or RuntimeError("the study's report changed after planning")
            for rid, digest in want.items()
        }

    def config_hash(self) -> str:
        parts = [super().config_hash()]
        if self.cfg.generator == "llm":
            from refrad_builder.text.prompts import load_prompt

            parts.append(self.ctx.config.section_hash("llm"))
            parts += [load_prompt(t, lang).key for t in PROMPT_TASKS for lang in ("de", "en")]
        return stable_hash(parts)

    def setup(self) -> None:
        self.schema = schema()
        self.versions = {n: get_stage(n).version for n in STAGE_ORDER}
        self.client = None
        self._report_cache: dict[tuple[str, str], ReportRecord] = {}
        if self.cfg.generator == "llm":
            from refrad_builder.text.llm_client import LLMClient

            self.client = LLMClient(self.ctx.config.llm, self.out_dir / "llm_cache")

    def batch_size(self) -> int:
        if self.cfg.generator == "llm":
            return self.ctx.config.llm.batch_slices
        return super().batch_size()

    def _args(self, item: WorkItem, reports: dict[str, ReportRecord | Exception]) -> tuple:
        sl = SliceRecord(**item.payload["slice"])
        report = reports[item.payload["report_id"]] if item.payload["report_id"] else None
        if isinstance(report, Exception):
            raise report
        return (
            sl,
            report,
            item.payload["series_classes"],
            self.schema,
            self.cfg.max_caption_sentences,
            self.cfg.max_presence_negatives,
        )

    def process(self, item: WorkItem) -> TextRecord | Drop:
        [out] = self.process_many([item])
        if isinstance(out, Exception):
            raise out
        return out

    def process_many(self, items: list[WorkItem]) -> list[TextRecord | Drop | Exception]:
        """Rules: slice by slice. LLM: the requests of all slices of the batch go out as one
        round (bounded by ``llm.concurrency``), so the server sees many requests in flight."""
        reports = self._reports(items)
        if self.client is None:
            out: list[TextRecord | Drop | Exception] = []
            for item in items:
                try:
                    sl, report, *rest = self._args(item, reports)
                    out.append(self._record(sl, report, make_products(sl, report, *rest)))
                except Exception as exc:  # transient by contract: only this slice fails
                    out.append(exc)
            return out
        from refrad_builder.text.llm_text import LLMRejected, generate_many, prepare

        prepared: list[tuple[tuple, object]] = []
        for item in items:
            try:
                a = self._args(item, reports)
                prepared.append((a, prepare(*a)))
            except Exception as exc:  # transient by contract: only this slice fails
                prepared.append(((), exc))
        plans = [p for _, p in prepared if not isinstance(p, Exception)]
        keep_rules = self.ctx.config.llm.on_all_rejected == "rules"
        outcomes = iter(generate_many(self.client, plans, self.schema, keep_rules))
        results: list[TextRecord | Drop | Exception] = []
        for a, plan in prepared:
            outcome = plan if isinstance(plan, Exception) else next(outcomes)
            if isinstance(outcome, LLMRejected):
                results.append(Drop(outcome.reason, "model output failed the checks"))
            elif isinstance(outcome, Exception):
                results.append(outcome)
            else:
                results.append(
                    self._record(
                        a[0],
                        a[1],
                        outcome.products,
                        generator=f"llm:{self.ctx.config.llm.model}"
                        if outcome.from_model
                        else GENERATOR,
                        prompt=",".join(outcome.prompts) or None,
                        rejected=dict(sorted(outcome.rejected.items())),
                    )
                )
        return results

    def _record(
        self,
        sl: SliceRecord,
        report: ReportRecord | None,
        products: TextProducts,
        generator: str = GENERATOR,
        prompt: str | None = None,
        rejected: dict[str, int] | None = None,
    ) -> TextRecord:
        sample = Sample(
            key=sl.slice_id,
            slice_id=sl.slice_id,
            patient=sl.patient_id,
            study=sl.study_id,
            series=sl.series_id,
            modality=sl.modality,
            body_part=sl.body_part,
            plane=sl.plane,
            width=sl.width,
            height=sl.height,
            pixel_spacing=sl.pixel_spacing,
            rescale_slope=sl.rescale_slope,
            rescale_intercept=sl.rescale_intercept,
            units=sl.units,
            windows=sl.windows,
            language=report.language if report else None,
            captions=products.captions,
            grounded_captions=products.grounded,
            boxes=sl.boxes,
            vqa=products.vqa,
            image_refs=products.image_refs,
            provenance=Provenance(
                stage_versions=self.versions,
                segmenter=sl.segmenter,
                segmenter_version=sl.segmenter_version,
                label_schema=self.schema.version,
                generator=generator,
                prompt=prompt,
                llm_rejected=rejected or {},
            ),
        )
        return TextRecord(sample=sample, image_png=sl.image_png, mask_png=sl.mask_png)


STAGE = TextStage
