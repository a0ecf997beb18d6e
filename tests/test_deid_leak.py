"""PROOF: no planted identifier survives the pipeline.

Unique marker values are planted into the demo maker's studies (generated CT/MR and the
shared real Siemens CT series) and into copies of pydicom's bundled image files:

- every attribute of PS3.15 Table E.1-1 (2024b) that the default options do not keep
  (text VRs: a marker string; UI: a marker UID; DA/DT: a marker date far in the future, which
  the keyed shift moves or the table removes; sequences: an item holding a marker name and a
  marker UID), in the file meta as well;
- person names, dates, UIDs, comments and private elements three and four sequences deep
  inside sequences the table keeps (code sequences);
- private elements (text, UID, UN bytes and a private sequence with a name inside);
- overlays (60xx data, description, label, comments) and curves (50xx).

Then the whole pipeline runs in-process (ingest .. shards) with its logging, warnings, stdout
and stderr captured to a log file, and every byte under the work and output folders, the log
and the rejects table is searched for every marker: gzip members and Parquet tables are
searched decoded as well. Not kept under the default options, so not planted: the four
retained patient characteristics (sex, age, size, weight), times (TM: the longitudinal option
keeps times of day, only dates move) and numeric VRs (DS, IS, US, FL, AT...: a marker cannot
be told apart from ordinary numbers).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import re
import shutil
import stat
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from refrad_builder.deid.actions import BINARY_VRS
from refrad_builder.deid.profile import load_profile
from refrad_builder.demo.maker import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.runner import LocalExecutor, run_pipeline

SECRET = "leak-test-secret-0123456789abcdef"
TEXT_RE = re.compile(rb"LEAK\d{5}Q")
UID_RE = re.compile(rb"9\.88\.77\.1\d{5}")
DATE_RE = re.compile(rb"[3-9]\d{3}0615")
TEXT_VRS = frozenset("AE CS LO LT PN SH ST UC UT UR".split())
PYDICOM_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "JPEG2000.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "examples_overlay.dcm",
    "liver_1frame.dcm",
    "image_dfl.dcm",
)


@dataclass
class Planter:
    """Hands out unique markers and remembers them."""

    texts: set[bytes] = field(default_factory=set)
    uids: set[bytes] = field(default_factory=set)
    dates: set[bytes] = field(default_factory=set)
    where: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    _n: int = 0
    _years: int = 0

    def text(self, what: str) -> str:
        self._n += 1
        value = f"LEAK{self._n:05d}Q"
        self.texts.add(value.encode())
        self.where[what] += 1
        return value

    def uid(self, what: str) -> str:
        self._n += 1
        value = f"9.88.77.1{self._n:05d}"
        self.uids.add(value.encode())
        self.where[what] += 1
        return value

    def date(self, what: str) -> str:
        # Years 3000..9998, two apart: a shift of at most a year never turns one marker into
        # another, and no real date is that far in the future.
        year = 3000 + 2 * self._years
        self._years += 1
        assert year < 9999
        value = f"{year:04d}0615"
        self.dates.add(value.encode())
        self.where[what] += 1
        return value

    @property
    def count(self) -> int:
        return len(self.texts) + len(self.uids) + len(self.dates)


def _person_item(p: Planter, depth: int) -> Dataset:
    """An item with a marker in everything a person or a visit could be identified by."""
    item = Dataset()
    item.PatientName = p.text(f"nested_pn_depth{depth}")
    item.OperatorsName = p.text(f"nested_pn_depth{depth}")
    item.ReferringPhysicianName = p.text(f"nested_pn_depth{depth}")
    item.SecondaryReviewerName = p.text(f"nested_pn_depth{depth}")  # PN the table omits
    item.InstitutionName = p.text(f"nested_text_depth{depth}")
    item.ImageComments = p.text(f"nested_comment_depth{depth}")
    item.StudyDate = p.date(f"nested_date_depth{depth}")
    item.AcquisitionDateTime = p.date(f"nested_date_depth{depth}") + "101010"
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = p.uid(f"nested_uid_depth{depth}")
    block = item.private_block(0x0029, p.text("private_creator"), create=True)
    block.add_new(0x10, "LO", p.text(f"nested_private_depth{depth}"))
    return item


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "99LEAKTEST"
    item.CodeMeaning = meaning
    return item


def _sequence_item(p: Planter, what: str) -> Dataset:
    item = Dataset()
    item.PersonName = p.text(what)
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = p.uid(what)
    return item


def _table_markers(p: Planter, series: str) -> dict[int, tuple[str, object]]:
    """tag -> (VR, value) for every table row the default options do not keep."""
    profile = load_profile()
    out: dict[int, tuple[str, object]] = {}
    for tag, rule in sorted(profile.rules.items()):
        group = tag >> 16
        vr = pydicom.datadict.dictionary_VR(tag)
        if group == 0x0000:
            p.skipped["command_group"] += 1  # DIMSE command elements: not in files
            continue
        if rule.keyword in profile.patient_characteristics:
            p.skipped["retained_patient_characteristic"] += 1
            continue
        if vr == "TM":
            p.skipped["time_kept_by_longitudinal_option"] += 1
            continue
        if vr in TEXT_VRS:
            value: object = p.text(f"table:{vr}")
            if vr == "UR":
                value = f"https://pacs.example/{value}"
        elif vr == "UI":
            value = p.uid("table:UI")
        elif vr == "DA":
            value = p.date("table:DA")
        elif vr == "DT":
            value = p.date("table:DT") + "101010"
        elif vr == "SQ":
            value = Sequence([_sequence_item(p, "table:SQ")])
        elif vr in BINARY_VRS and " or " not in vr:
            value = p.text(f"table:{vr}").encode() + b"\x00\x00"
        else:
            p.skipped[f"numeric_vr:{vr}"] += 1
            continue
        out[tag] = (vr, value)
    return out


def _plant(ds: Dataset, p: Planter, table: dict[int, tuple[str, object]], first: bool) -> None:
    for tag, (vr, value) in table.items():
        if tag >> 16 == 0x0002:
            ds.file_meta.add_new(tag, vr, value)
        else:
            ds.add_new(tag, vr, value)
    # Per-instance UIDs (the series-level ones came with the table markers).
    ds.SOPInstanceUID = p.uid("instance_uid")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    # Depth 1..4 inside sequences the table keeps.
    level4 = Dataset()
    level4.OtherPatientNames = p.text("nested_pn_depth4")
    level4.PatientID = p.text("nested_id_depth4")
    level3 = _person_item(p, 3)
    level3.AnatomicRegionSequence = Sequence([level4])
    level2 = _code("L2", "level two")
    level2.EquivalentCodeSequence = Sequence([level3])
    level1 = _code("L1", "level one")
    level1.ConceptNameCodeSequence = Sequence([level2, _person_item(p, 2)])
    ds.ProcedureCodeSequence = Sequence([level1])
    ds.PerformedProtocolCodeSequence = Sequence([_person_item(p, 1)])
    # Private elements: text, UID, unknown bytes, a private sequence with a name inside.
    block = ds.private_block(0x0011, p.text("private_creator"), create=True)
    block.add_new(0x01, "LO", p.text("private_text"))
    block.add_new(0x02, "UI", p.uid("private_uid"))
    block.add_new(0x03, "UN", p.text("private_un").encode())
    inner = Dataset()
    inner.PatientName = p.text("private_sequence_pn")
    block.add_new(0x04, "SQ", Sequence([inner]))
    # Overlays (two planes) and a curve.
    for group in (0x6000, 0x6002):
        ds.add_new((group << 16) | 0x0010, "US", 8)
        ds.add_new((group << 16) | 0x0011, "US", 8)
        ds.add_new((group << 16) | 0x0040, "CS", "G")
        ds.add_new((group << 16) | 0x0050, "SS", [1, 1])
        ds.add_new((group << 16) | 0x0100, "US", 1)
        ds.add_new((group << 16) | 0x0102, "US", 0)
        ds.add_new((group << 16) | 0x0022, "LO", p.text("overlay_description"))
        ds.add_new((group << 16) | 0x1500, "LO", p.text("overlay_label"))
        ds.add_new((group << 16) | 0x4000, "LT", p.text("overlay_comments"))
        ds.add_new((group << 16) | 0x3000, "OW", p.text("overlay_data").encode() + b"\x00\x00")
    ds.add_new(0x50002500, "LO", p.text("curve_label"))
    ds.add_new(0x50003000, "OB", p.text("curve_data").encode() + b"\x00\x00")
    if first:
        ds.add_new(0x00204000, "LT", p.text("comment"))


def _plant_series(files: list[Path], p: Planter, series: str) -> int:
    table = _table_markers(p, series)
    planted = 0
    for i, path in enumerate(sorted(files)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            _plant(ds, p, table, first=i == 0)
            ds.save_as(path, enforce_file_format=False)
        planted += 1
    return planted


def _add_pydicom_files(dicom_root: Path) -> list[str]:
    names = []
    for name in PYDICOM_FILES:
        src = get_testdata_file(name, download=False)
        if src is None:
            continue
        dst = dicom_root / "pydicom_testdata" / Path(name).stem / "0001.dcm"
        dst.parent.mkdir(parents=True)
        shutil.copy(src, dst)
        names.append(name)
    return names


def _decoded(path: Path, data: bytes) -> list[bytes]:
    """The bytes of a file plus what compression hides (gzip members, Parquet columns)."""
    out = [data]
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(Exception):
            out.append(gzip.decompress(data))
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        out.append(json.dumps(table.to_pylist(), default=str).encode())
    if data[:4] == b"\x28\xb5\x2f\xfd":
        zstd = pytest.importorskip("zstandard")
        out.append(zstd.ZstdDecompressor().decompress(data, max_output_size=1 << 30))
    return out


def _find(blob: bytes, p: Planter) -> set[bytes]:
    hits = {m for m in TEXT_RE.findall(blob) if m in p.texts}
    hits |= {m for m in UID_RE.findall(blob) if m in p.uids}
    hits |= {m for m in DATE_RE.findall(blob) if m in p.dates}
    return hits


def _search(paths: list[Path], p: Planter) -> dict[str, set[bytes]]:
    leaks: dict[str, set[bytes]] = {}
    for path in paths:
        for blob in _decoded(path, path.read_bytes()):
            hits = _find(blob, p)
            if hits:
                leaks.setdefault(str(path), set()).update(hits)
    return leaks


def test_no_planted_marker_survives_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFRAD_SECRET", SECRET)
    demo = tmp_path / "demo"
    make_demo(demo, studies=2)
    dicom_root = demo / "dicom"
    added = _add_pydicom_files(dicom_root)
    assert len(added) >= 6

    p = Planter()
    series_dirs = sorted({f.parent for f in dicom_root.rglob("*.dcm")})
    files_planted = sum(_plant_series(list(d.glob("*.dcm")), p, d.name) for d in series_dirs)
    assert any("real_ct" in str(d) for d in series_dirs)
    originals = [f for f in dicom_root.rglob("*.dcm")]
    assert all(_find(f.read_bytes(), p) for f in originals)  # the markers really are there

    work, out = tmp_path / "work", tmp_path / "out"
    private = tmp_path / "private" / "mapping.csv"
    cfg = load_config(
        demo / "config.yaml",
        [
            f"work_dir={work}",
            f"out_dir={out}",
            "execution.executor=local",
            f"deid.mapping_table={private}",
        ],
    )
    log_path = tmp_path / "run.log"
    root_logger = logging.getLogger()
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    stream = io.StringIO()
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            runs = run_pipeline(
                cfg, executor=LocalExecutor(), progress=lambda line: stream.write(line + "\n")
            )
    finally:
        logging.captureWarnings(False)
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
        handler.close()
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(stream.getvalue())

    by_stage = {r.stage: r for r in runs}
    # The demo series, the real CT and pydicom's plain CT survive de-identification.
    assert by_stage["deid"].status["done"] >= 4, by_stage["deid"].status
    rejects = out / "rejects.parquet"
    assert rejects.exists()
    reasons = set(pq.read_table(rejects).column("reason").to_pylist())
    assert "burned_in_annotation" in reasons  # secondary captures of pydicom's set

    searched = sorted(f for f in [*work.rglob("*"), *out.rglob("*"), log_path] if f.is_file())
    leaks = _search(searched, p)
    print(
        f"\nleak test: planted {p.count} unique markers ({len(p.texts)} text, {len(p.uids)} "
        f"UID, {len(p.dates)} date) in {files_planted} files of {len(series_dirs)} series "
        f"(demo studies, real CT, pydicom {', '.join(added)}); searched {len(searched)} "
        f"files ({sum(f.stat().st_size for f in searched)} bytes) under work/, out/ and the "
        f"log; not planted: {dict(p.skipped)}; leaks: {sum(len(v) for v in leaks.values())}"
    )
    assert p.count > 5000
    assert leaks == {}

    # The optional mapping table holds originals, so it lives apart, owner-only.
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.with_name("mapping.csv.parts").stat().st_mode) == 0o700
    table_text = private.read_bytes()
    assert TEXT_RE.search(table_text) and UID_RE.search(table_text)
