import csv

from refrad_builder.deid.pseudo import phi_hash
from refrad_builder.engine.config import InputsConfig, RunConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import ReportRecord, ReportRef, StudyRecord
from refrad_builder.engine.stage import Drop, StageContext, WorkItem
from refrad_builder.stages.report import ReportStage

REPORTS = [
    {
        "accession_number": "A1",
        "report": "Befund: Herr Mustermann. Fraktur der 7. Rippe rechts (Se 3/Bi 142). "
        "Kein Pneumothorax.\nBeurteilung: Rippenfraktur rechts.",
        "language": "",
    },
    {"accession_number": "A2", "report": "Findings: The lungs are clear.", "language": "en"},
    {"accession_number": "A3", "report": "   ", "language": ""},
    {"accession_number": "A4", "report": "Findings: Liver normal.", "language": "de"},
]


def make_ctx(tmp_path, rows=REPORTS, **report_cfg):
    table = tmp_path / "reports.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["accession_number", "report", "language"])
        w.writeheader()
        w.writerows(rows)
    cfg = RunConfig(work_dir=tmp_path / "work", demo=True, inputs=InputsConfig(reports=[table]))
    if report_cfg:
        cfg = cfg.model_copy(update={"report": cfg.report.model_copy(update=report_cfg)})
    return StageContext(cfg)


def item(ctx, row, known=()):
    return WorkItem(
        id=f"study{row}",
        payload={
            "study_id": f"study{row}",
            "patient_id": "pat1",
            "table": 0,
            "row": row,
            "known_phi": list(known),
        },
        input_fingerprint="fp",
    )


def test_process_german_report(tmp_path):
    ctx = make_ctx(tmp_path)
    stage = ReportStage(ctx)
    known = [phi_hash(ctx.secret, "NAME", "Mustermann")]
    rec = stage.process(item(ctx, 0, known))
    assert isinstance(rec, ReportRecord)
    assert rec.study_id == "study0" and rec.patient_id == "pat1"
    assert rec.language == "de"
    assert "Mustermann" not in rec.model_dump_json()
    assert rec.phi_counts == {"NAME": 1}
    assert set(rec.sections) == {"findings", "impression"}
    rib = next(s for s in rec.sentences if "Rippe" in s.text and s.section == "findings")
    assert [(m.class_name, m.laterality, m.abnormal) for m in rib.mentions] == [
        ("rib_right_7", "right", True)
    ]
    assert [(r.series, r.image) for r in rib.image_refs] == [(3, 142)]


def test_language_column_overrides_detection(tmp_path):
    ctx = make_ctx(tmp_path)
    stage = ReportStage(ctx)
    assert stage.process(item(ctx, 1)).language == "en"
    assert stage.process(item(ctx, 3)).language == "de"  # the column wins over the text


def test_drops(tmp_path):
    ctx = make_ctx(tmp_path, languages=["de"])
    stage = ReportStage(ctx)
    assert stage.process(item(ctx, 2)) == Drop("empty_report")
    dropped = stage.process(item(ctx, 1))
    assert isinstance(dropped, Drop) and dropped.reason == "language_not_configured"
    assert stage.process(item(ctx, 99)) == Drop("report_row_missing")


def write_ingest(ctx, studies):
    ledger = Ledger(ctx.stage_dir("ingest/studies"))
    items = {}
    for s in studies:
        ledger.mark_ok(s.study_id, f"fp-{s.study_id}", [s.model_dump(mode="json")])
        items[s.study_id] = f"fp-{s.study_id}"
    ledger.write_manifest(items, "1", "cfg")


def test_plan_skips_studies_without_report_and_tracks_text(tmp_path):
    ctx = make_ctx(tmp_path)
    write_ingest(
        ctx,
        [
            StudyRecord(
                study_id="s1",
                patient_id="p1",
                series_ids=["x"],
                report=ReportRef(table=0, row=0, key_kind="accession_number"),
            ),
            StudyRecord(study_id="s2", patient_id="p2", series_ids=["y"]),
        ],
    )
    stage = ReportStage(ctx)
    items = stage.plan()
    assert [i.id for i in items] == ["s1"]
    assert items[0].payload["row"] == 0
    first = items[0].input_fingerprint
    assert stage.plan()[0].input_fingerprint == first
    edited = [dict(REPORTS[0], report="Befund: Leber unauffällig.")] + REPORTS[1:]
    ctx2 = make_ctx(tmp_path, rows=edited)
    assert ReportStage(ctx2).plan()[0].input_fingerprint != first
