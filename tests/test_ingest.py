"""ingest on real files: the real CT series, pydicom's bundled files, junk and DICOMDIR."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from refrad_builder.engine.config import InputsConfig, RunConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.engine.stage import StageContext, WorkItem
from refrad_builder.stages.ingest import IngestStage


def _cfg(tmp_path: Path, inputs: Path, reports: list[Path] | None = None) -> RunConfig:
    return RunConfig(
        work_dir=tmp_path / "work",
        out_dir=tmp_path / "out",
        demo=True,
        inputs=InputsConfig(dicom=[inputs], reports=reports or []),
    )


def test_real_series_groups_despite_empty_uids(tmp_path, real_ct_dir):
    (real_ct_dir / "junk").mkdir()
    (real_ct_dir / "junk" / "notes.txt").write_text("not a dicom file at all")
    truncated = (real_ct_dir / "real_ct" / "series_1").iterdir().__next__().read_bytes()[:700]
    (real_ct_dir / "junk" / "truncated.dcm").write_bytes(truncated)
    reports = tmp_path / "reports.csv"
    reports.write_text(
        "accession_number,study_instance_uid,study_folder,report\n"
        ",,real_ct,Befund: Leber unauffällig.\n"
        "ACC-NOPE,,,Orphan report\n"
    )
    cfg = _cfg(tmp_path, real_ct_dir, [reports])
    run_pipeline(cfg, stages=["ingest"], executor=LocalExecutor(), progress=lambda s: None)
    work = cfg.work_dir
    series = Ledger(work / "ingest" / "series").current_outputs()
    assert len(series) == 1
    rec = series[0][2][0]
    assert rec["modality"] == "CT" and len(rec["files"]) == 20
    studies = Ledger(work / "ingest" / "studies").current_outputs()
    assert len(studies) == 1
    study = studies[0][2][0]
    assert study["report"] == {"table": 0, "row": 0, "key_kind": "study_folder", "sr_files": []}
    assert study["series_ids"] == [rec["series_id"]]
    st = Ledger(work / "ingest").status("ingest")
    assert st.done == 20 and st.pending == 0
    assert sum(st.dropped.values()) == 2 and set(st.dropped) <= {
        "not_dicom",
        "unreadable_dicom",
        "no_pixel_data",
    }
    orphan = Ledger(work / "ingest" / "reports").status("ingest/reports")
    assert orphan.dropped == {"report_without_study": 1}


@pytest.mark.parametrize(
    "name,reason",
    [
        ("DICOMDIR", "dicomdir_index"),
        ("rtplan.dcm", "no_pixel_data"),
        ("CT_small.dcm", None),
        ("MR_small_bigendian.dcm", None),
        ("MR_small_implicit.dcm", None),
        ("no_meta.dcm", "not_dicom"),
        ("ExplVR_LitEndNoMeta.dcm", "no_pixel_data"),
        ("JPEG2000.dcm", None),
        ("MR_small_RLE.dcm", None),
        ("MR_small_jpeg_ls_lossless.dcm", None),
        ("MR_truncated.dcm", None),
    ],
)
def test_pydicom_files(tmp_path, name, reason):
    src = Path(get_testdata_file(name, download=False))
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(src, inputs / "f.dcm")
    stage = IngestStage(StageContext(_cfg(tmp_path, inputs)))
    out = stage.process(
        WorkItem(id="x", payload={"root": 0, "path": "f.dcm"}, input_fingerprint="")
    )
    if reason is None:
        assert out.has_pixels and out.modality
        # hashes only: no raw identifiers in the record
        assert "CompressedSamples" not in out.model_dump_json()
    else:
        assert out.reason == reason


def test_header_values_are_hashed_not_stored(tmp_path):
    import pydicom

    src = Path(get_testdata_file("CT_small.dcm", download=False))
    ds = pydicom.dcmread(src)
    ds.PatientName = "Zebulonova^Quirina"
    ds.PatientID = "PID-99887766"
    ds.AccessionNumber = "ACC-5544332211"
    inputs = tmp_path / "in"
    inputs.mkdir()
    ds.save_as(inputs / "f.dcm")
    stage = IngestStage(StageContext(_cfg(tmp_path, inputs)))
    out = stage.process(
        WorkItem(id="x", payload={"root": 0, "path": "f.dcm"}, input_fingerprint="")
    )
    text = out.model_dump_json()
    for marker in ("Zebulonova", "Quirina", "99887766", "5544332211"):
        assert marker not in text
    assert any(k.startswith("NAME:") for k in out.known_phi)
    assert any(k.startswith("ID:") for k in out.known_phi)


def test_names_in_folders_and_files_never_reach_work_or_out(tmp_path, monkeypatch):
    """PACS exports name folders after patients: no path is kept, so no name is either."""
    import csv
    import gzip

    import pyarrow.parquet as pq

    from refrad_builder.demo import make_demo
    from refrad_builder.engine.config import load_config

    monkeypatch.setenv("REFRAD_SECRET", "folder-name-secret-0123456789")
    demo = tmp_path / "demo"
    make_demo(demo, studies=1, seed=3, include_real=False)
    name = "Mustermann_Erika_19540807"
    study = demo / "dicom" / "study_001"
    renamed = study.with_name(f"{name}_CT")
    study.rename(renamed)
    first = sorted(renamed.rglob("*.dcm"))[0]
    first.rename(first.with_name(f"{name}_{first.name}"))
    table = demo / "reports.csv"
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    for row in rows:  # the report pairs by folder name too
        row["study_folder"] = renamed.name if row["study_folder"] == "study_001" else ""
    with table.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cfg = load_config(
        demo / "config.yaml", [f"work_dir={tmp_path / 'work'}", f"out_dir={tmp_path / 'out'}"]
    )
    run_pipeline(cfg, executor=LocalExecutor(), progress=lambda s: None)

    summary = (tmp_path / "out" / "summary.json").read_text()
    assert '"samples": 0' not in summary
    assert Ledger(cfg.work_dir / "report").status("report").done == 1
    needle = b"Mustermann"
    for path in [*(tmp_path / "work").rglob("*"), *(tmp_path / "out").rglob("*")]:
        if not path.is_file():
            continue
        assert needle not in str(path).encode()
        data = path.read_bytes()
        blobs = [data]
        if data[:2] == b"\x1f\x8b":
            blobs.append(gzip.decompress(data))
        if path.suffix == ".parquet":
            blobs.append(str(pq.read_table(path).to_pylist()).encode())
        assert not any(needle in b for b in blobs), path.relative_to(tmp_path)


def test_file_names_that_are_not_utf8_are_inputs_like_any_other(tmp_path, real_ct_dir):
    """Latin-1 names from Windows shares: the run goes on, every file is accounted, and the
    name's bytes are written nowhere."""
    import os

    latin1 = b"M\xfcller_Hans"
    series = real_ct_dir / "real_ct" / "series_1"
    renamed = os.path.join(os.fsencode(real_ct_dir / "real_ct"), latin1)
    os.rename(os.fsencode(series), renamed)
    junk = os.path.join(os.fsencode(real_ct_dir), b"notiz_" + latin1 + b".dcm")
    with open(junk, "wb") as fh:
        fh.write(b"not dicom at all " * 8)
    cfg = _cfg(tmp_path, real_ct_dir)
    run_pipeline(cfg, stages=["ingest"], executor=LocalExecutor(), progress=lambda s: None)

    status = Ledger(cfg.work_dir / "ingest").status("ingest")
    assert (status.done, status.dropped, status.failed) == (20, {"not_dicom": 1}, {})
    assert Ledger(cfg.work_dir / "ingest/series").status("ingest/series").done == 1
    for path in (tmp_path / "work").rglob("*"):
        assert latin1 not in os.fsencode(path)
        if path.is_file():
            assert latin1 not in path.read_bytes()


def test_links_pipes_and_folder_links_are_counted_rejects(tmp_path, real_ct_dir):
    """Nothing under an input folder is skipped without a word: links that lead nowhere, a
    loop of links, a named pipe and a link to a folder each become a reasoned reject."""
    import os

    junk = real_ct_dir / "junk"
    junk.mkdir()
    os.symlink(junk / "gone.dcm", junk / "dangling.dcm")
    os.symlink(junk / "loop_b", junk / "loop_a")
    os.symlink(junk / "loop_a", junk / "loop_b")
    os.mkfifo(junk / "pipe.dcm")
    os.symlink(real_ct_dir / "real_ct", junk / "folder_link")
    cfg = _cfg(tmp_path, real_ct_dir)
    run_pipeline(cfg, stages=["ingest"], executor=LocalExecutor(), progress=lambda s: None)

    status = Ledger(cfg.work_dir / "ingest").status("ingest")
    assert status.done == 20 and status.failed == {}
    assert status.dropped == {
        "broken_link": 3,
        "not_a_regular_file": 1,
        "folder_link_not_followed": 1,
    }


def test_an_io_error_is_retried_not_dropped(tmp_path, real_ct_dir, monkeypatch):
    """EIO while reading a header is the machine's fault: the item fails (transient) and the
    next run, with the disk healthy again, reads it."""
    import errno

    import pydicom

    from refrad_builder.inputs import dicom_header

    real_read = pydicom.dcmread
    victim = sorted((real_ct_dir / "real_ct" / "series_1").iterdir())[3].name

    def flaky(fp, *args, **kwargs):
        if str(getattr(fp, "name", fp)).endswith(victim):
            raise OSError(errno.EIO, "Input/output error")
        return real_read(fp, *args, **kwargs)

    monkeypatch.setattr(dicom_header.pydicom, "dcmread", flaky)
    cfg = _cfg(tmp_path, real_ct_dir)
    run_pipeline(cfg, stages=["ingest"], executor=LocalExecutor(), progress=lambda s: None)
    status = Ledger(cfg.work_dir / "ingest").status("ingest")
    assert (status.done, status.dropped, sum(status.failed.values())) == (19, {}, 1)
    assert "OSError" in next(iter(status.failed))

    monkeypatch.setattr(dicom_header.pydicom, "dcmread", real_read)
    run_pipeline(cfg, stages=["ingest"], executor=LocalExecutor(), progress=lambda s: None)
    status = Ledger(cfg.work_dir / "ingest").status("ingest")
    assert (status.done, status.dropped, status.failed) == (20, {}, {})


def test_status_names_failures_with_a_hint_and_exits_non_zero(
    tmp_path, real_ct_dir, monkeypatch, capsys
):
    import errno

    import pydicom

    from refrad_builder.cli import main
    from refrad_builder.engine.config import dump_config
    from refrad_builder.inputs import dicom_header

    real_read = pydicom.dcmread
    victim = sorted((real_ct_dir / "real_ct" / "series_1").iterdir())[0].name

    def flaky(fp, *args, **kwargs):
        if str(getattr(fp, "name", fp)).endswith(victim):
            raise OSError(errno.EIO, "Input/output error")
        return real_read(fp, *args, **kwargs)

    monkeypatch.setattr(dicom_header.pydicom, "dcmread", flaky)
    cfg = _cfg(tmp_path, real_ct_dir)
    config = tmp_path / "run.yaml"
    config.write_text(dump_config(cfg))
    run_pipeline(cfg, stages=["ingest"], executor=LocalExecutor(), progress=lambda s: None)
    assert main(["status", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "failed OSError: 1 - an I/O error on the storage" in out
    assert "1 item(s) failed (ingest 1); they are not lost" in out

    monkeypatch.setattr(dicom_header.pydicom, "dcmread", real_read)
    run_pipeline(cfg, stages=["ingest"], executor=LocalExecutor(), progress=lambda s: None)
    assert main(["status", "--config", str(config)]) == 0
    assert "failed" not in capsys.readouterr().out.split("\n", 1)[1]
