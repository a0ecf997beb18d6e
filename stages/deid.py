"""deid: de-identify each ingested series into new DICOM files under ``deid/blobs``.

Nothing downstream opens an original file: volume and the exports read only what this stage
writes. Output names derive from the series pseudonym and the file's position in the
series record, so a rerun overwrites instead of duplicating.

With ``deid.mapping_table`` set, each series also writes its originals-to-pseudonyms rows to
an owner-only part file next to that table (never under the work or output folder; a table
path inside either is refused before anything runs) and ``finalize`` merges the parts.
"""

from __future__ import annotations

from pathlib import Path

from refrad_builder.deid import mapping
from refrad_builder.deid.series import SeriesIds, deidentify_series
from refrad_builder.engine.io import atomic_write_bytes
from refrad_builder.engine.records import DeidSeries, SeriesRecord
from refrad_builder.engine.stage import Drop, Resources, Stage, WorkItem
from refrad_builder.inputs import walk as inputs


class DeidStage(Stage):
    """PS3.15 Basic Profile de-identification of one series per item."""

    name = "deid"
    version = "2"
    consumes = ("ingest",)
    uses_secret = True
    resources = Resources(cpus=1.0, memory_gb=2.0)

    def _mapping_path(self) -> Path | None:
        """The checked mapping table path, or None when the option is off."""
        if self.cfg.mapping_table is None:
            return None
        cfg = self.ctx.config
        return mapping.check_location(self.cfg.mapping_table, cfg.work_dir, cfg.out_dir)

    def plan(self) -> list[WorkItem]:
        self._mapping_path()  # refuse a table inside the work/output tree before any work
        upstream = self.ctx.upstream("ingest/series")
        cfg = self.ctx.config
        # one walk of the inputs on the driver, not one per worker
        found = (
            inputs.index(self.ctx.secret, list(cfg.inputs.dicom), cfg.ingest.follow_symlinks)
            if upstream
            else {}
        )
        items = []
        for _item_id, fp, records in upstream:
            rec = SeriesRecord(**records[0])
            # paths live only in this in-memory payload; the ledger keeps the keyed ids
            sources = [found.get(i) for i in rec.files]
            items.append(
                WorkItem(
                    id=rec.series_id,
                    payload={**records[0], "sources": sources},
                    input_fingerprint=fp,
                )
            )
        return items

    def _sources(self, rec: SeriesRecord, sources: list[str | None] | None) -> list[str]:
        if sources is None:  # an item planned elsewhere: look the files up now
            cfg = self.ctx.config
            return inputs.resolve(
                self.ctx.secret, list(cfg.inputs.dicom), rec.files, cfg.ingest.follow_symlinks
            )
        found = {i: s for i, s in zip(rec.files, sources, strict=True) if s is not None}
        return inputs.paths_of(found, rec.files)

    def process(self, item: WorkItem) -> DeidSeries | Drop:
        payload = dict(item.payload)
        sources = payload.pop("sources", None)
        rec = SeriesRecord(**payload)
        series_dir = self.out_dir / "blobs" / rec.series_id
        written: list[Path] = []

        def sink(index: int, data: bytes) -> None:
            path = series_dir / f"{index:05d}.dcm"
            atomic_write_bytes(path, data)
            written.append(path)

        result = deidentify_series(
            self._sources(rec, sources),
            secret=self.ctx.secret,
            ids=SeriesIds(
                patient_id=rec.patient_id, study_id=rec.study_id, series_id=rec.series_id
            ),
            options=self.cfg,
            sink=sink,
        )
        self._remove_stale(series_dir, keep=set(written))
        if isinstance(result, Drop):
            return result
        table = self._mapping_path()
        if table is not None:
            mapping.write_part(table, rec.series_id, result.mapping)
        work = self.ctx.work
        return DeidSeries(
            series_id=rec.series_id,
            study_id=rec.study_id,
            patient_id=rec.patient_id,
            modality=rec.modality,
            series_number=rec.series_number,
            files=[p.relative_to(work).as_posix() for p in written],
            sex=result.sex,
            age_years=result.age_years,
            body_part=result.body_part,
            contrast=result.contrast,
            skipped=dict(sorted(result.skipped.items())),
        )

    def finalize(self) -> None:
        table = self._mapping_path()
        if table is not None:
            mapping.merge(table)

    @staticmethod
    def _remove_stale(series_dir: Path, keep: set[Path]) -> None:
        """Delete files a previous run wrote for this series that this run did not."""
        if not series_dir.is_dir():
            return
        for path in series_dir.glob("*.dcm"):
            if path not in keep:
                path.unlink(missing_ok=True)


STAGE = DeidStage
