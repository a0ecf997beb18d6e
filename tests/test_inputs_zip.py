"""Zip archives as inputs: their files are ingested like a folder's, damaged ones are counted
rejects, and no archive or member name reaches the work folder."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from refrad_builder.engine.config import InputsConfig, RunConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.inputs.walk import MEMBER_SEP, split_member, walk

STAGES = ["ingest", "deid", "volume"]
NAME = "Mustermann_Erika"


def _run(tmp_path: Path, inputs: Path, name: str) -> RunConfig:
    cfg = RunConfig(
        work_dir=tmp_path / name / "work",
        out_dir=tmp_path / name / "out",
        inputs=InputsConfig(dicom=[inputs]),
    )
    run_pipeline(cfg, stages=STAGES, executor=LocalExecutor(), progress=lambda s: None)
    return cfg


def _volumes(cfg: RunConfig) -> list[np.ndarray]:
    out = []
    for _, _, recs in Ledger(cfg.work_dir / "volume").current_outputs():
        image = sitk.ReadImage(str(cfg.work_dir / recs[0]["nifti"]))
        out.append(sitk.GetArrayFromImage(image))
    return out


def _zip_inputs(real_ct_dir: Path, dest: Path) -> Path:
    """The real CT series inside a zip named after a patient, plus damaged archives."""
    dest.mkdir(parents=True)
    series = sorted((real_ct_dir / "real_ct" / "series_1").iterdir())
    with zipfile.ZipFile(dest / f"{NAME}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i, path in enumerate(series):
            zf.write(path, f"{NAME}/CT/{i:04d}.dcm")
        zf.writestr(f"{NAME}/inner.zip", _zip_bytes(dest / "inner.tmp"))
        zf.writestr(f"{NAME}/locked.dcm", series[0].read_bytes())
    _mark_encrypted(dest / f"{NAME}.zip", f"{NAME}/locked.dcm")
    (dest / "damaged.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    with zipfile.ZipFile(dest / "empty.zip", "w"):
        pass
    return dest


def _mark_encrypted(archive: Path, member: str) -> None:
    """Set the "encrypted" flag of one member in its local and central headers (zipfile
    writes no encrypted members; it refuses to read one without a password)."""
    data = bytearray(archive.read_bytes())
    name = member.encode()
    for signature, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = data.find(signature)
        while at != -1:
            if data[at + name_at : at + name_at + len(name)] == name:
                data[at + flags_at] |= 0x1
            at = data.find(signature, at + 4)
    archive.write_bytes(bytes(data))


def _zip_bytes(tmp: Path) -> bytes:
    with zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr("a.dcm", b"not dicom")
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def test_member_paths_split_at_the_archive(tmp_path):
    archive = tmp_path / "a::b.zip"
    archive.write_bytes(b"")
    assert split_member(f"{archive}{MEMBER_SEP}x/y::z.dcm") == (str(archive), "x/y::z.dcm")
    assert split_member(tmp_path / "plain.dcm") == (str(tmp_path / "plain.dcm"), None)


def test_a_zipped_series_gives_the_same_volume_and_damaged_archives_are_counted(
    tmp_path, real_ct_dir, monkeypatch
):
    monkeypatch.setenv("REFRAD_SECRET", "zip-input-secret-0123456789")
    zipped = _zip_inputs(real_ct_dir, tmp_path / "zipped")
    listed = [rel for _, _, rel in walk([zipped])]
    assert f"{NAME}.zip{MEMBER_SEP}{NAME}/CT/0000.dcm" in listed
    assert "damaged.zip" in listed and "empty.zip" in listed  # kept, to be rejected

    plain = _run(tmp_path, real_ct_dir, "plain")
    from_zip = _run(tmp_path, zipped, "zip")
    [a], [b] = _volumes(plain), _volumes(from_zip)
    assert a.shape == b.shape and np.array_equal(a, b)

    st = Ledger(from_zip.work_dir / "ingest").status("ingest")
    assert st.done == 20 and st.failed == {}
    # damaged.zip, empty.zip and the nested inner.zip: archive_file; the locked member
    assert st.dropped == {"archive_file": 3, "archive_encrypted": 1}
    for path in from_zip.work_dir.rglob("*"):
        assert NAME not in str(path)
        if path.is_file():
            assert NAME.encode() not in path.read_bytes(), path.relative_to(tmp_path)


def test_an_archive_gone_before_deid_is_a_transient_error(tmp_path, real_ct_dir, monkeypatch):
    monkeypatch.setenv("REFRAD_SECRET", "zip-input-secret-0123456789")
    zipped = _zip_inputs(real_ct_dir, tmp_path / "zipped")
    cfg = RunConfig(
        work_dir=tmp_path / "work", out_dir=tmp_path / "out", inputs=InputsConfig(dicom=[zipped])
    )
    run_pipeline(cfg, stages=["ingest"], executor=LocalExecutor(), progress=lambda s: None)
    shutil.move(zipped / f"{NAME}.zip", tmp_path / "elsewhere.zip")
    run_pipeline(cfg, stages=["deid"], executor=LocalExecutor(), progress=lambda s: None)
    assert Ledger(cfg.work_dir / "deid").status("deid").failed == {"InputFileMissing": 1}
