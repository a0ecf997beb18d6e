"""The deid stage driven directly (no Ray): plan from ingest's series ledger, process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID

from refrad_builder.engine.config import InputsConfig, RunConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import DeidSeries, SeriesRecord
from refrad_builder.engine.stage import Drop, StageContext, WorkItem
from refrad_builder.inputs.walk import InputFileMissing, file_id
from refrad_builder.stages.deid import STAGE, DeidStage

REAL_CT = Path(__file__).resolve().parents[1] / "refrad_builder/demo/data/real_ct/dicom"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    target = tmp_path / "inputs" / "PHIMARK_patient_folder"
    target.mkdir(parents=True)
    for path in sorted(REAL_CT.iterdir())[:5]:
        shutil.copy(path, target / path.name)
    return tmp_path / "inputs"


@pytest.fixture
def stage(tmp_path: Path, root: Path) -> DeidStage:
    cfg = RunConfig(work_dir=tmp_path / "work", demo=True, inputs=InputsConfig(dicom=[root]))
    return STAGE(StageContext(cfg))


def _record(stage: DeidStage, root: Path, series_id: str = "seriesabc123") -> SeriesRecord:
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("CT.*"))
    return SeriesRecord(
        series_id=series_id,
        study_id="studyabc123",
        patient_id="patientabc123",
        modality="CT",
        series_number=None,
        files=[file_id(stage.ctx.secret, 0, f) for f in files],
    )


def _item(rec: SeriesRecord) -> WorkItem:
    return WorkItem(id=rec.series_id, payload=rec.model_dump(mode="json"), input_fingerprint="fp")


def test_stage_contract() -> None:
    assert (STAGE.name, STAGE.version, STAGE.consumes, STAGE.uses_secret) == (
        "deid",
        "2",
        ("ingest",),
        True,
    )


def test_plan_reads_ingest_series_ledger(stage: DeidStage, root: Path) -> None:
    rec = _record(stage, root)
    ledger = Ledger(stage.ctx.stage_dir("ingest/series"))
    digest = ledger.mark_ok(rec.series_id, "fp1", [rec.model_dump(mode="json")])
    ledger.mark_drop("dropped1", "fp2", "unsupported_modality", "")
    ledger.write_manifest({rec.series_id: "fp1", "dropped1": "fp2"}, "1", "h")
    items = stage.plan()
    # the upstream item's output hash, not its fingerprint
    assert [(i.id, i.input_fingerprint) for i in items] == [(rec.series_id, digest)]
    payload = dict(items[0].payload)
    # the driver walked the inputs once: each keyed id found its file again
    assert payload.pop("sources") == [str(p) for p in sorted(root.rglob("CT.*"))]
    assert SeriesRecord(**payload) == rec
    out = stage.process(items[0])
    assert isinstance(out, DeidSeries) and len(out.files) == 5


def test_a_file_gone_since_ingest_is_a_transient_error(stage: DeidStage, root: Path) -> None:
    rec = _record(stage, root)
    sorted(root.rglob("CT.*"))[1].unlink()
    with pytest.raises(InputFileMissing) as err:
        stage.process(_item(rec))
    assert str(root) not in str(err.value)


def test_process_writes_deidentified_series(stage: DeidStage, root: Path) -> None:
    rec = _record(stage, root)
    out = stage.process(_item(rec))
    assert isinstance(out, DeidSeries)
    assert out.files == [f"deid/blobs/{rec.series_id}/{i:05d}.dcm" for i in range(5)]
    assert (out.series_id, out.study_id, out.patient_id) == (
        rec.series_id,
        rec.study_id,
        rec.patient_id,
    )
    assert (out.modality, out.body_part, out.contrast) == ("CT", "PARTIALBODY", True)
    sops = set()
    for rel in out.files:
        path = stage.ctx.work / rel
        assert b"PHIMARK" not in path.read_bytes() and b"Petersgraben" not in path.read_bytes()
        ds = pydicom.dcmread(path)
        assert UID(ds.SOPInstanceUID).is_valid
        assert str(ds.PatientName) == rec.patient_id
        sops.add(ds.SOPInstanceUID)
    assert len(sops) == 5
    leftovers = [p for p in stage.out_dir.rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # no temp files from the atomic writes


def test_rerun_is_identical_and_removes_stale_files(stage: DeidStage, root: Path) -> None:
    rec = _record(stage, root)
    first = stage.process(_item(rec))
    blobs = {rel: (stage.ctx.work / rel).read_bytes() for rel in first.files}
    stale = stage.out_dir / "blobs" / rec.series_id / "00042.dcm"
    stale.write_bytes(b"old")
    second = stage.process(_item(rec))
    assert second == first
    assert {rel: (stage.ctx.work / rel).read_bytes() for rel in second.files} == blobs
    assert not stale.exists()


def test_burned_in_series_is_dropped(stage: DeidStage, root: Path) -> None:
    victim = sorted(root.rglob("CT.*"))[2]
    ds = pydicom.dcmread(victim)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(victim)
    out = stage.process(_item(_record(stage, root)))
    assert out == Drop("burned_in_annotation", "flagged; ocr_off")
    assert not list((stage.out_dir / "blobs").rglob("*.dcm"))


def test_unreadable_files_are_skipped_or_drop_the_series(stage: DeidStage, root: Path) -> None:
    files = sorted(root.rglob("CT.*"))
    files[0].write_bytes(b"\x00" * 50)
    out = stage.process(_item(_record(stage, root)))
    assert isinstance(out, DeidSeries) and len(out.files) == 4
    assert out.files[0].endswith("/00001.dcm")
    for path in files[1:]:
        path.write_bytes(b"garbage")
    assert stage.process(_item(_record(stage, root))) == Drop(
        "unreadable_dicom", "unreadable_dicom=5"
    )
