"""DICOM Structured Reports as report sources: text from pydicom's real SR files, and an SR
beside a study's images that becomes its scrubbed, parsed report."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import ReportRecord
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.reports.sr import sr_text

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
OBSERVER = "Obsermann^Olga"


def test_text_of_real_structured_reports():
    text = sr_text(pydicom.dcmread(get_testdata_file("test-SR.dcm")))
    assert "A mass of" in text and "Diameter: 3 cm" in text and "was detected." in text
    # observation context (the observer and her organisation) is no report text
    basic = pydicom.dcmread(get_testdata_file("reportsi.dcm"))
    assert sr_text(basic) == "Enter text"


def _concept(meaning: str) -> Sequence:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X", "99TEST", meaning
    return Sequence([code])


def _item(value_type: str, relationship: str, meaning: str, **values) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = relationship, value_type
    item.ConceptNameCodeSequence = _concept(meaning)
    for key, value in values.items():
        setattr(item, key, value)
    return item


def write_sr(
    path: Path, like: pydicom.Dataset, findings: str, impression: str, sop_class=BASIC_TEXT_SR
) -> None:
    """An SR (Basic Text unless told) of the study of ``like`` (same patient, study and
    accession)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID"):
        setattr(ds, keyword, like.get(keyword, ""))
    ds.AccessionNumber = like.get("AccessionNumber", "")
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "SR", generate_uid(), 99
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = _concept("Radiology Report")
    ds.ContentSequence = Sequence(
        [
            _item("PNAME", "HAS OBS CONTEXT", "Recording Observer's Name", PersonName=OBSERVER),
            _item(
                "CONTAINER",
                "CONTAINS",
                "Findings",
                ContinuityOfContent="SEPARATE",
                ContentSequence=Sequence(
                    [_item("TEXT", "CONTAINS", "Finding", TextValue=findings)]
                ),
            ),
            _item(
                "CONTAINER",
                "CONTAINS",
                "Impression",
                ContinuityOfContent="SEPARATE",
                ContentSequence=Sequence(
                    [_item("TEXT", "CONTAINS", "Impression", TextValue=impression)]
                ),
            ),
        ]
    )
    ds.save_as(path, enforce_file_format=True)


def test_an_sr_beside_the_images_is_the_study_report(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRAD_SECRET", "sr-report-secret-0123456789")
    demo = tmp_path / "demo"
    make_demo(demo, studies=1, seed=2, include_real=False)
    study = demo / "dicom" / "study_001"
    like = pydicom.dcmread(sorted(study.rglob("*.dcm"))[0], stop_before_pixels=True)
    family = str(like.PatientName).split("^")[0]
    assert len(family) > 3
    write_sr(
        study / "report.dcm",
        like,
        findings=f"Hypodense lesion of 2.3 cm in the liver. Patient {family} tolerated the exam.",
        impression="Indeterminate liver lesion.",
    )
    # an addendum joins the report; an SR of no study here is a counted drop
    write_sr(study / "addendum.dcm", like, "Spleen unremarkable.", "No change.")
    # a dose report is an SR without report text: counted as before, never a report
    write_sr(study / "dose.dcm", like, "CTDIvol 12.3 mGy", "DLP 456", sop_class=DOSE_SR)
    other = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    other.save_as(demo / "dicom" / "foreign_sr.dcm")
    cfg = load_config(
        demo / "config.yaml",
        [f"work_dir={tmp_path / 'work'}", f"out_dir={tmp_path / 'out'}", "inputs.reports=[]"],
    )
    run_pipeline(cfg, stages=["ingest", "report"], executor=LocalExecutor(), progress=print)

    [(_, _, [rec])] = Ledger(cfg.work_dir / "report").current_outputs()
    report = ReportRecord.model_validate(rec)
    assert report.language == "en"
    assert set(report.sections) >= {"findings", "impression"}
    liver = [m for s in report.sentences for m in s.mentions if m.class_name == "liver"]
    assert liver and all(m.abnormal for m in liver)
    reasons = Ledger(cfg.work_dir / "ingest" / "reports").status("ingest/reports").dropped
    assert reasons == {"sr_report_without_study": 1}
    assert Ledger(cfg.work_dir / "ingest").status("ingest").dropped == {"no_pixel_data": 1}
    assert "CTDIvol" not in report.scrubbed_text
    spleen = [m for s in report.sentences for m in s.mentions if m.class_name == "spleen"]
    assert spleen and not any(m.abnormal for m in spleen)
    for name in (family, OBSERVER.split("^")[0]):
        assert name not in report.scrubbed_text
        for path in (tmp_path / "work").rglob("*"):
            if path.is_file():
                assert name.encode() not in path.read_bytes(), path


def test_a_table_row_wins_over_an_sr_which_is_counted(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRAD_SECRET", "sr-report-secret-0123456789")
    demo = tmp_path / "demo"
    make_demo(demo, studies=1, seed=2, include_real=False)
    study = demo / "dicom" / "study_001"
    like = pydicom.dcmread(sorted(study.rglob("*.dcm"))[0], stop_before_pixels=True)
    write_sr(study / "report.dcm", like, "Zebra-striped lesion of the liver.", "Zebra.")
    cfg = load_config(
        demo / "config.yaml", [f"work_dir={tmp_path / 'work'}", f"out_dir={tmp_path / 'out'}"]
    )
    run_pipeline(cfg, stages=["ingest", "report"], executor=LocalExecutor(), progress=print)
    [(_, _, [rec])] = Ledger(cfg.work_dir / "report").current_outputs()
    assert "Zebra" not in rec["scrubbed_text"] and len(rec["sentences"]) > 3
    reasons = Ledger(cfg.work_dir / "ingest" / "reports").status("ingest/reports").dropped
    assert reasons == {"duplicate_report": 1}
