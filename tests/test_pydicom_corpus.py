"""Every file pydicom ships (``pydicom.data``: test files, character-set files, palettes)
through ingest -> deid -> volume in-process: each ends in a series that makes a volume or as
a reject with a reason, and nothing fails.

The run is repeated with ``deid.drop_burned_in`` off, so the MR_small family (DERIVED\\
SECONDARY images, which the default policy drops whole) reaches the volume stage: its big
endian, implicit VR, RLE, JPEG 2000 and JPEG-LS variants must decode to the very same values.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.pixels import apply_modality_lut

from refrad_builder.deid.pseudo import pseudonym
from refrad_builder.engine.config import DeidConfig, InputsConfig, RunConfig
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import DeidSeries, FileHeader, SeriesRecord, VolumeRecord
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.engine.stage import StageContext
from refrad_builder.imaging.series_volume import VolumeError, read_series
from refrad_builder.stages.ingest import IngestStage

SECRET = "pydicom-corpus-secret-0123456789"
DATA = Path(pydicom.data.__file__).parent
FOLDERS = ("test_files", "charset_files", "palettes")
STAGES = ["ingest", "deid", "volume"]


def _all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _outcomes(cfg: RunConfig) -> dict[str, dict]:
    """Per input file: the last stage it reached, ``volume`` or ``reject``, and the reason.

    A file's reject is the first drop on its way: ingest (per file), the series grouping,
    deid (the series, or the file as one of its skipped ones), volume (the series, or the
    file as an image the assembly left out, resolved with the same assembly function).
    """
    work = Path(cfg.work_dir)
    secret = SECRET.encode()
    ingest = IngestStage(StageContext(cfg, _secret=secret))
    ledgers = {
        s: Ledger(work / s) for s in ("ingest", "ingest/series", "ingest/reports", "deid", "volume")
    }
    out: dict[str, dict] = {}
    by_series: dict[str, list[str]] = {}
    rel_by_id: dict[str, str] = {}
    for item in ingest.plan():
        rel = item.payload["path"]
        rel_by_id[item.id] = rel
        entry = ledgers["ingest"].entry(item.id)
        assert entry is not None, f"{rel}: ingest did not finish"
        if entry["outcome"] == "drop":
            out[rel] = {"stage": "ingest", "outcome": "reject", "reason": entry["reason"]}
            continue
        header = FileHeader.model_validate(entry["records"][0])
        if header.kind == "sr":  # a report source: used by its study, or a counted drop
            report = ledgers["ingest/reports"].entry(item.id)
            out[rel] = (
                {"stage": "reports", "outcome": "reject", "reason": report["reason"]}
                if report is not None
                else {"stage": "reports", "outcome": "report", "reason": ""}
            )
            continue
        series_id = pseudonym(secret, "series", header.series_key)
        by_series.setdefault(series_id, []).append(rel)

    for series_id, members in by_series.items():
        entry = ledgers["ingest/series"].entry(series_id)
        if entry["outcome"] == "drop":
            for rel in members:
                out[rel] = {"stage": "series", "outcome": "reject", "reason": entry["reason"]}
            continue
        rec = SeriesRecord.model_validate(entry["records"][0])
        order = [rel_by_id[file_id] for file_id in rec.files]
        deid = ledgers["deid"].entry(series_id)
        if deid["outcome"] == "drop":
            for rel in order:
                out[rel] = {"stage": "deid", "outcome": "reject", "reason": deid["reason"]}
            continue
        dseries = DeidSeries.model_validate(deid["records"][0])
        written = {int(Path(f).stem): f for f in dseries.files}
        for index, rel in enumerate(order):
            if index not in written:
                reasons = sorted(dseries.skipped)
                reason = reasons[0] if len(reasons) == 1 else "deid_skipped"
                out[rel] = {"stage": "deid", "outcome": "reject", "reason": reason}
        vol = ledgers["volume"].entry(series_id)
        if vol["outcome"] == "drop":
            for index in written:
                out[order[index]] = {
                    "stage": "volume",
                    "outcome": "reject",
                    "reason": vol["reason"],
                }
            continue
        record = VolumeRecord.model_validate(vol["records"][0])
        again = read_series([work / f for f in dseries.files], record.modality)
        assert {k: v for k, v in record.skipped.items() if ":" not in k} == again.skipped
        by_file = {str(work / f): index for index, f in written.items()}
        for path, reason in again.file_reasons.items():
            rel = order[by_file[path]]
            out[rel] = {"stage": "volume", "outcome": "reject", "reason": reason}
        for index in written:
            out.setdefault(
                order[index],
                {
                    "stage": "volume",
                    "outcome": "volume",
                    "reason": "",
                    "shape": record.shape,
                    "nifti": record.nifti,
                    "deid_file": written[index],
                },
            )
    return out


def _table(outcomes: dict[str, dict]) -> str:
    lines = [f"{'file':58s} {'stage':7s} {'outcome':8s} reason / volume shape"]
    for rel, o in sorted(outcomes.items()):
        what = o["reason"] if o["outcome"] == "reject" else "x".join(map(str, o["shape"]))
        lines.append(f"{rel:58s} {o['stage']:7s} {o['outcome']:8s} {what}")
    counts = Counter(
        (o["stage"], o["reason"]) for o in outcomes.values() if o["outcome"] == "reject"
    )
    lines.append("")
    lines.append("rejects by stage and reason:")
    for (stage, reason), n in sorted(counts.items()):
        lines.append(f"  {stage:7s} {reason:28s} {n:4d}")
    n_volume = sum(o["outcome"] == "volume" for o in outcomes.values())
    lines.append(f"  files in a volume: {n_volume}; rejected: {sum(counts.values())}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("pydicom_corpus")
    inputs = base / "inputs"
    for folder in FOLDERS:
        shutil.copytree(DATA / folder, inputs / folder)
    old = os.environ.get("REFRAD_SECRET")
    os.environ["REFRAD_SECRET"] = SECRET
    try:
        cfg = RunConfig(
            work_dir=base / "work",
            out_dir=base / "out",
            inputs=InputsConfig(dicom=[inputs]),
        )
        runs = run_pipeline(cfg, stages=STAGES, executor=LocalExecutor(), progress=lambda s: None)
        default = _outcomes(cfg)
        keep_cfg = cfg.model_copy(update={"deid": DeidConfig(drop_burned_in=False)})
        keep_runs = run_pipeline(
            keep_cfg, stages=STAGES, executor=LocalExecutor(), progress=lambda s: None
        )
        keep = _outcomes(keep_cfg)
    finally:
        if old is None:
            os.environ.pop("REFRAD_SECRET", None)
        else:
            os.environ["REFRAD_SECRET"] = old
    return {
        "inputs": inputs,
        "work": base / "work",
        "default": default,
        "keep": keep,
        "runs": runs + keep_runs,
    }


def test_every_file_ends_in_a_volume_or_a_reason(corpus):
    print("\n" + _table(corpus["default"]))
    files = _all_files(corpus["inputs"])
    assert len(files) > 200
    for name in ("default", "keep"):
        outcomes = corpus[name]
        assert sorted(outcomes) == files
        for rel, o in outcomes.items():
            assert o["outcome"] in ("volume", "reject"), rel
            assert o["outcome"] == "volume" or o["reason"], rel
    for run in corpus["runs"]:
        assert run.status["failed"] == {} and run.status["pending"] == 0, run.stage
    n_volume = sum(o["outcome"] == "volume" for o in corpus["default"].values())
    assert n_volume >= 15


def test_known_files_end_as_expected(corpus):
    o = corpus["default"]

    def check(rel: str, stage: str, reason: str) -> None:
        assert (o[rel]["stage"], o[rel]["reason"]) == (stage, reason), rel

    for rel, out in o.items():
        if "/DICOMDIR" in rel:
            assert (out["stage"], out["reason"]) == ("ingest", "dicomdir_index"), rel
    check("test_files/zipMR.gz", "ingest", "archive_file")
    check("test_files/README.txt", "ingest", "not_dicom")
    check("test_files/rtplan.dcm", "ingest", "no_pixel_data")
    # structured reports are report sources; these belong to no study of the corpus
    check("test_files/reportsi.dcm", "reports", "sr_report_without_study")
    check("test_files/test-SR.dcm", "reports", "sr_report_without_study")
    check("test_files/ExplVR_BigEndNoMeta.dcm", "ingest", "no_pixel_data")  # no file meta
    check("test_files/waveform_ecg.dcm", "ingest", "no_pixel_data")
    check("test_files/rtdose.dcm", "series", "unsupported_modality")
    check("test_files/liver_1frame.dcm", "series", "unsupported_modality")  # SEG
    check("test_files/JPEG2000.dcm", "series", "unsupported_modality")  # NM
    check("test_files/SC_rgb_jpeg_gdcm.dcm", "series", "unsupported_modality")
    check("test_files/MR_small.dcm", "deid", "burned_in_annotation")
    # A CT study of the DICOMDIR set: two scout images alone, and an axial series whose
    # first image lies 200 mm away from the other three (a gap: the longest run is kept).
    check("test_files/dicomdirtests/98892001/CT2N/6293", "volume", "localizer_only")
    check("test_files/dicomdirtests/77654033/CT2/17106", "volume", "gap")
    for n in ("17136", "17166", "17196"):
        assert o[f"test_files/dicomdirtests/77654033/CT2/{n}"]["shape"] == (16, 16, 3)
    # An MR localizer series with three orthogonal planes: one plane kept.
    mr2 = [o[f"test_files/dicomdirtests/98892003/MR2/{n}"] for n in ("4950", "4981", "5011")]
    assert sorted(x["outcome"] for x in mr2) == ["reject", "reject", "volume"]
    assert {x["reason"] for x in mr2 if x["outcome"] == "reject"} == {"other_orientation"}


@pytest.mark.parametrize("name", ["CT_small.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm"])
def test_ct_volumes_hold_the_decoded_hounsfield_values(corpus, name):
    out = corpus["default"][f"test_files/{name}"]
    assert out["outcome"] == "volume" and out["shape"][2] == 1
    original = pydicom.dcmread(DATA / "test_files" / name)
    expected = apply_modality_lut(original.pixel_array, original)
    data = np.asarray(nib.load(corpus["work"] / out["nifti"]).dataobj)
    # Axial (or near-axial) single slices: canonical (L, P, S) means columns along i and
    # rows along j, whatever the in-plane flips the file had.
    iop = [float(v) for v in original.ImageOrientationPatient]
    image = data[:, :, 0].T
    if iop[0] < 0:
        image = image[:, ::-1]
    if iop[4] < 0:
        image = image[::-1, :]
    np.testing.assert_array_equal(image, expected)


def test_transfer_syntax_variants_decode_identically(corpus):
    """Big endian, implicit VR, RLE, JPEG 2000 and JPEG-LS copies of MR_small (after
    ingest and deid) build the same volume; the truncated copy is a clear reject."""
    keep = corpus["keep"]
    work = corpus["work"]
    family = {
        rel: o for rel, o in keep.items() if Path(rel).name.startswith(("MR_small", "MR_trunc"))
    }
    assert len(family) == 9
    used = [o for o in family.values() if o["outcome"] == "volume"]
    assert len(used) == 1 and used[0]["shape"] == (64, 64, 1)
    assert {o["reason"] for o in family.values() if o["outcome"] == "reject"} == {
        "duplicate_position"
    }
    reference = read_series([work / used[0]["deid_file"]], "MR").data
    names = {
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_padded.dcm",
        "MR_small.dcm",
    }
    deid_dir = work / Path(used[0]["deid_file"]).parent
    decoded = {}
    for path in sorted(deid_dir.glob("*.dcm")):
        ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        try:
            decoded[path.name] = (ts, read_series([path], "MR").data)
        except VolumeError as exc:
            decoded[path.name] = (ts, exc.reason)
    volumes = [v for _, v in decoded.values() if isinstance(v, np.ndarray)]
    assert len(volumes) == len(names)
    for v in volumes:
        np.testing.assert_array_equal(v, reference)
    assert sorted(v for _, v in decoded.values() if isinstance(v, str)) == ["undecodable_pixels"]
    syntaxes = {str(ts) for ts, _ in decoded.values()}
    assert {
        "1.2.840.10008.1.2",  # implicit VR little endian
        "1.2.840.10008.1.2.2",  # explicit VR big endian
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    } <= syntaxes
