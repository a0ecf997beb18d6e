"""ingest: walk the inputs, read headers only, group into series and studies, pair reports.

Items are files (a header read each), each fingerprinted by its own root folder, path and
change key (size, mtime): adding a folder or a report table reads only the new files, and the
grouping below passes unchanged series and studies on unchanged. ``finalize`` groups the current file headers into the
sub-ledgers ``ingest/series`` and ``ingest/studies`` that deid and report plan from, and
counts report rows that match no study in ``ingest/reports``.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

from refrad_builder.deid.pseudo import keyed_hex, pseudonym
from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.ledger import Ledger, item_fingerprint
from refrad_builder.engine.records import FileHeader, ReportRef, SeriesRecord, StudyRecord
from refrad_builder.engine.stage import Drop, Stage, WorkItem
from refrad_builder.inputs.dicom_header import HeaderError, read_header
from refrad_builder.inputs.report_table import ReportTableError, load_table
from refrad_builder.inputs.walk import change_key, file_id, input_size, walk

SUPPORTED_MODALITIES = {"CT", "MR"}


class IngestStage(Stage):
    """Header-only ingest of every file under the configured DICOM folders."""

    name = "ingest"
    version = "3"
    uses_secret = True

    def _group_config_hash(self) -> str:
        """What grouping and pairing read besides the file headers: the report columns (not
        the lists of folders and tables, so adding one leaves the others' items as they are)."""
        inputs = self.ctx.config.inputs.model_dump(mode="json")
        pairing = {k: v for k, v in inputs.items() if k not in ("dicom", "reports")}
        return stable_hash([self.config_hash(), pairing])

    def plan(self) -> list[WorkItem]:
        items = []
        roots = [Path(r) for r in self.ctx.config.inputs.dicom]
        for root_idx, root, rel in walk(roots, self.cfg.follow_symlinks):
            item_id = file_id(self.ctx.secret, root_idx, rel)
            items.append(
                WorkItem(
                    id=item_id,
                    # the path lives only in memory: the ledger keeps the keyed id
                    payload={"root": root_idx, "path": rel},
                    input_fingerprint=stable_hash(
                        [item_id, str(root), *change_key(os.path.join(root, rel))]
                    ),
                )
            )
        return items

    def batch_size(self) -> int:
        """A header read is cheap: batches of at least 256 files, so a worker writes one
        ledger part per 256 files rather than per few."""
        return max(256, super().batch_size())

    def process(self, item: WorkItem) -> FileHeader | Drop:
        root_idx = item.payload["root"]
        root = Path(self.ctx.config.inputs.dicom[root_idx])
        rel = item.payload["path"]
        if input_size(os.path.join(root, rel)) > self.cfg.max_file_mb * 1024 * 1024:
            return Drop("file_too_large")
        try:
            return read_header(self.ctx.secret, root_idx, root, rel)
        except HeaderError as exc:
            return Drop(exc.reason, exc.detail)

    # --- grouping -----------------------------------------------------------------------

    def finalize(self) -> None:
        secret = self.ctx.secret
        headers = [
            (fp, FileHeader(**recs[0])) for _, fp, recs in Ledger(self.out_dir).current_outputs()
        ]
        # structured reports are report sources, not images: paired with studies below
        srs = [(fp, h) for fp, h in headers if h.kind == "sr"]
        by_series: dict[str, list[tuple[str, FileHeader]]] = collections.defaultdict(list)
        for fp, h in headers:
            if h.kind != "sr":
                by_series[h.series_key].append((fp, h))

        series_items: dict[str, tuple[str, SeriesRecord | None, str]] = {}
        studies: dict[str, dict] = {}
        for series_key, members in sorted(by_series.items()):
            members.sort(key=lambda m: (m[1].instance_number or 0, m[1].root, m[1].file_id))
            first = members[0][1]
            series_id = pseudonym(secret, "series", series_key)
            study_id = pseudonym(secret, "study", first.study_key)
            patient_id = pseudonym(secret, "patient", first.patient_key)
            fp = stable_hash([m[0] for m in members])
            if first.modality not in SUPPORTED_MODALITIES:
                series_items[series_id] = (fp, None, "unsupported_modality")
                continue
            rec = SeriesRecord(
                series_id=series_id,
                study_id=study_id,
                patient_id=patient_id,
                modality=first.modality,
                series_number=first.series_number,
                files=[m[1].file_id for m in members],
            )
            series_items[series_id] = (fp, rec, "")
            st = studies.setdefault(
                study_id,
                {"patient_id": patient_id, "series": {}, "phi": set(), "keys": set()},
            )
            st["series"][series_id] = fp
            for _, h in members:
                st["phi"].update(h.known_phi)
                st["keys"].update(k for k in (h.accession_key, h.study_uid_key, h.folder_key) if k)

        self._write_sub("series", series_items)
        pairs, report_drops = self._pair_reports(studies)
        report_drops.update(self._pair_structured_reports(srs, studies, pairs))
        study_items: dict[str, tuple[str, StudyRecord | None, str]] = {}
        for study_id, st in sorted(studies.items()):
            ref = pairs.get(study_id)
            rec = StudyRecord(
                study_id=study_id,
                patient_id=st["patient_id"],
                series_ids=sorted(st["series"]),
                report=ref,
                known_phi=sorted(st["phi"]),
            )
            fp = stable_hash([sorted(st["series"].items()), ref.model_dump() if ref else None])
            study_items[study_id] = (fp, rec, "")
        self._write_sub("studies", study_items)
        self._write_sub("reports", report_drops)

    def _pair_structured_reports(
        self,
        srs: list[tuple[str, FileHeader]],
        studies: dict[str, dict],
        pairs: dict[str, ReportRef],
    ) -> dict[str, tuple[str, None, str]]:
        """Pair DICOM SR files with their studies (same study, or a shared accession number
        or StudyInstanceUID) where no report table row did. A study's SRs (a report and its
        addenda) together are its report; the rest are counted drops."""
        secret = self.ctx.secret
        key_to_study = {k: sid for sid, st in sorted(studies.items()) for k in st["keys"]}
        drops: dict[str, tuple[str, None, str]] = {}
        by_study: dict[str, list[FileHeader]] = collections.defaultdict(list)
        order = sorted(
            srs, key=lambda x: (x[1].series_number or 0, x[1].instance_number or 0, x[1].file_id)
        )
        for fp, h in order:
            study_id = pseudonym(secret, "study", h.study_key)
            if study_id not in studies:
                keys = (h.accession_key, h.study_uid_key)
                study_id = next((key_to_study[k] for k in keys if k in key_to_study), None)
            if study_id is None:
                drops[h.file_id] = (fp, None, "sr_report_without_study")
            elif study_id in pairs:
                drops[h.file_id] = (fp, None, "duplicate_report")  # a table row came first
            else:
                by_study[study_id].append(h)
        for study_id, headers in by_study.items():
            pairs[study_id] = ReportRef(sr_files=[h.file_id for h in headers], key_kind="sr")
            for h in headers:  # the report text may name whoever the SR's own header names
                studies[study_id]["phi"].update(h.known_phi)
        return drops

    def _pair_reports(self, studies: dict[str, dict]):
        inputs = self.ctx.config.inputs
        secret = self.ctx.secret
        key_to_study = {}
        for study_id, st in sorted(studies.items()):
            for k in st["keys"]:
                key_to_study.setdefault(k, study_id)
        pairs: dict[str, ReportRef] = {}
        drops: dict[str, tuple[str, None, str]] = {}
        for t_idx, table_path in enumerate(inputs.reports):
            row_tag = keyed_hex(secret, "report-table", str(t_idx), n=12)
            try:
                df = load_table(str(table_path))
            except (ReportTableError, FileNotFoundError):
                drops[f"table{t_idx}"] = (stable_hash([row_tag]), None, "unreadable_report_table")
                continue
            cols = [c for c in inputs.report_key_columns if c in df.columns]
            for r_idx, row in enumerate(df.iter_rows(named=True)):
                item_id = f"t{t_idx}r{r_idx}"
                matched = None
                kind = ""
                for col in cols:
                    value = (row.get(col) or "").strip()
                    if value and keyed_hex(secret, "pair", value) in key_to_study:
                        matched = key_to_study[keyed_hex(secret, "pair", value)]
                        kind = col
                        break
                if matched is None:
                    drops[item_id] = (stable_hash([row_tag, r_idx]), None, "report_without_study")
                elif matched in pairs:
                    drops[item_id] = (stable_hash([row_tag, r_idx]), None, "duplicate_report")
                else:
                    pairs[matched] = ReportRef(table=t_idx, row=r_idx, key_kind=kind)
        return pairs, drops

    def _write_sub(self, name: str, items: dict[str, tuple[str, object, str]]) -> None:
        ledger = Ledger(self.out_dir / name)
        chash = self._group_config_hash()
        manifest = {
            item_id: item_fingerprint(f"ingest/{name}", self.version, chash, input_fp)
            for item_id, (input_fp, _, _) in items.items()
        }
        done = ledger.done_ids(manifest)
        with ledger.batch():
            for item_id, (_, rec, reason) in items.items():
                fp = manifest[item_id]
                if item_id in done:
                    continue
                if rec is None:
                    ledger.mark_drop(item_id, fp, reason, "")
                else:
                    ledger.mark_ok(item_id, fp, [rec.model_dump(mode="json", by_alias=True)])
        ledger.write_manifest(manifest, self.version, chash)
        ledger.compact()


STAGE = IngestStage
