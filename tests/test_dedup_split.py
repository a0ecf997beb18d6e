"""Exact-duplicate images across studies are dropped and counted; splits are by patient,
follow the configured fractions and are deterministic.

The duplicate is made the way it happens in practice: one study exported twice under
another patient ID with fresh UIDs, so the pixels are identical and nothing else is.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pydicom
import pytest
from pydicom.uid import generate_uid

from refrad_builder import cli
from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.publish.validate import validate_dir
from refrad_builder.stages.shards import assign_split, balanced_splits

SECRET = "dedup-split-test-secret-0123456789abcdef"
DUP_FOLDER = "study_dup"
DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def _copy_as_other_patient(demo: Path, source: str) -> None:
    """Copy study ``source`` under another PatientID with fresh UIDs, and its report row."""
    dst = demo / "dicom" / DUP_FOLDER
    shutil.copytree(demo / "dicom" / source, dst)
    study_uid = generate_uid(entropy_srcs=["dup-study"])
    accession = "DUPACC0001"
    series_uids: dict[str, str] = {}
    for path in sorted(dst.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PatientID = "DUP-PATIENT-0001"
        ds.StudyInstanceUID = study_uid
        ds.AccessionNumber = accession
        old_series = str(ds.SeriesInstanceUID)
        series_uids.setdefault(old_series, generate_uid(entropy_srcs=["dup", old_series]))
        ds.SeriesInstanceUID = series_uids[old_series]
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["dup", str(ds.SOPInstanceUID)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(path)
    assert series_uids, "the source study has no DICOM files"

    table = demo / "reports.csv"
    with table.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    original = next(r for r in rows if r["study_folder"] == source)
    rows.append(
        {
            **original,
            "accession_number": accession,
            "study_instance_uid": study_uid,
            "study_folder": DUP_FOLDER,
        }
    )
    with table.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _run(root: Path, out: str, extra: tuple[str, ...] = (), stages: list[str] | None = None):
    cfg = load_config(
        root / "demo" / "config.yaml",
        [
            f"work_dir={root / 'work'}",
            f"out_dir={root / out}",
            "execution.executor=local",
            "slices.max_slices_per_series=4",
            # the demo deals its few patients out ("balanced"); these tests are about the hash
            "shards.split_method=hash",
            *extra,
        ],
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFRAD_SECRET", SECRET)
        runs = run_pipeline(
            cfg, stages=stages, executor=LocalExecutor(), progress=lambda _line: None
        )
    return {r.stage: r.processed for r in runs}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A demo (three phantom studies) plus a copy of one study as another patient's, run once."""
    root = tmp_path_factory.mktemp("dedup")
    manifest = make_demo(root / "demo", studies=3, include_real=False)
    _copy_as_other_patient(root / "demo", manifest.studies[0].study_folder)
    _run(root, "shards")
    return root


def _index(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "index.parquet")


def _text_samples(root: Path) -> list[dict]:
    """Every sample the text stage handed to shards, with the sha256 of its image."""
    out = []
    for _, _, recs in Ledger(root / "work" / "text").current_outputs():
        rec = recs[0]
        image = (root / "work" / rec["image_png"]).read_bytes()
        out.append({**rec["sample"], "image_sha256": hashlib.sha256(image).hexdigest()})
    return out


# --- duplicates -------------------------------------------------------------------------------


def test_duplicate_images_are_dropped_and_counted(root):
    out = root / "shards"
    index = _index(out)
    rejects = pl.read_parquet(out / "rejects.parquet")
    dups = rejects.filter(pl.col("reason") == "duplicate_image")
    produced = _text_samples(root)

    by_image: dict[str, list[dict]] = defaultdict(list)
    for s in produced:
        by_image[s["image_sha256"]].append(s)
    groups = [g for g in by_image.values() if len(g) > 1]
    assert groups, "the copied study produced no duplicate slice"
    # every duplicate pair is the same slice of the two studies: two patients, same pixels
    assert all(len({s["patient"] for s in g}) == len(g) for g in groups)

    assert index["image_sha256"].n_unique() == index.height
    assert dups.height == sum(len(g) - 1 for g in groups)
    assert set(dups["stage"]) == {"shards"} and set(dups["outcome"]) == {"drop"}
    kept = set(index["key"])
    for g in groups:
        keys = {s["key"] for s in g}
        assert len(keys & kept) == 1
        assert keys - kept <= set(dups["item"])
    assert index.height + dups.height == len(produced)
    # the reject says which kept sample it duplicates, by key only
    for detail in dups["detail"]:
        assert detail.split()[-1] in kept

    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejects"]["shards:duplicate_image"] == dups.height
    assert summary["samples"] == index.height
    assert validate_dir(out).ok


def test_every_slice_of_the_copy_duplicates_the_original(root):
    """De-identification and slicing leave pixels alone: the copy's slices are the original's."""
    images: dict[str, Counter] = defaultdict(Counter)
    for s in _text_samples(root):
        images[s["patient"]][s["image_sha256"]] += 1
    assert len(images) == 4
    same = [(a, b) for a in images for b in images if a < b and images[a] == images[b]]
    assert len(same) == 1


# --- splits -----------------------------------------------------------------------------------


def _patient_splits(index: pl.DataFrame) -> dict[str, str]:
    pairs = index.select("patient", "split").unique()
    assert pairs["patient"].n_unique() == pairs.height, "a patient is in two splits"
    return dict(zip(pairs["patient"], pairs["split"], strict=True))


def test_splits_are_disjoint_by_patient_and_follow_the_default_fractions(root):
    index = _index(root / "shards")
    splits = _patient_splits(index)
    assert splits == {p: assign_split(p, DEFAULT_FRACTIONS) for p in splits}
    meta = json.loads((root / "shards" / "shards.json").read_text())
    for e in meta["shards"]:
        assert set(index.filter(pl.col("shard") == e["name"])["split"]) == {e["split"]}


SPLIT_OVERRIDE = "shards.split_fractions={train: 0.5, val: 0.25, test: 0.25}"


def test_configured_fractions_are_used_and_only_shards_reruns(root):
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    ran = _run(root, "shards_b", (SPLIT_OVERRIDE,))
    # a new output folder: every bucket is written there
    assert ran["shards"] == len(Ledger(root / "work" / "shards").manifest()) > 1
    assert all(n == 0 for stage, n in ran.items() if stage != "shards")
    index = _index(root / "shards_b")
    splits = _patient_splits(index)
    assert splits == {p: assign_split(p, fractions) for p in splits}
    assert set(index["key"]) == set(_index(root / "shards")["key"])


def test_split_assignment_is_deterministic_across_runs(root):
    a, b = root / "shards_b", root / "shards_d"
    if not a.exists():  # run alone
        _run(root, a.name, (SPLIT_OVERRIDE,), ["shards"])
    _run(root, b.name, (SPLIT_OVERRIDE,), ["shards"])
    assert _index(a).sort("key").equals(_index(b).sort("key"))
    tars = sorted(p.name for p in a.glob("*.tar"))
    assert tars == sorted(p.name for p in b.glob("*.tar"))
    assert all((a / t).read_bytes() == (b / t).read_bytes() for t in tars)


def test_split_fractions_via_cli_set(root, monkeypatch, capsys):
    monkeypatch.setenv("REFRAD_SECRET", SECRET)
    out = root / "shards_cli"
    argv = [
        "run",
        "--config",
        str(root / "demo" / "config.yaml"),
        "--work",
        str(root / "work"),
        "--out",
        str(out),
        "--executor",
        "local",
        "--only",
        "shards",
        "--set",
        "slices.max_slices_per_series=4",
        "--set",
        "shards.split_method=hash",
        "--set",
        "shards.split_fractions={train: 0.0, test: 1.0}",
    ]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")
    assert set(_index(out)["split"]) == {"test"}


def test_assign_split_proportions_and_stability():
    fractions = {"train": 0.7, "val": 0.2, "test": 0.1}
    patients = [hashlib.sha256(f"p{i}".encode()).hexdigest()[:24] for i in range(20000)]
    first = [assign_split(p, fractions) for p in patients]
    assert first == [assign_split(p, dict(fractions)) for p in patients]
    counts = Counter(first)
    for name, frac in fractions.items():
        assert abs(counts[name] / len(patients) - frac) < 0.015
    # unnormalised fractions mean the same thing
    assert first == [assign_split(p, {"train": 7, "val": 2, "test": 1}) for p in patients]
    # a zero fraction gets nobody
    assert "val" not in {assign_split(p, {"train": 1, "val": 0}) for p in patients}


def test_balanced_splits_fill_every_split_per_modality():
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    patients = {f"p{i}": "CT" if i % 2 else "MR" for i in range(8)}
    splits = balanced_splits(patients, fractions)
    assert splits == balanced_splits(dict(reversed(patients.items())), fractions)
    for modality in ("CT", "MR"):
        got = Counter(splits[p] for p, m in patients.items() if m == modality)
        assert got == {"train": 2, "val": 1, "test": 1}
    # in hash order, like assign_split's
    ct = sorted((p for p, m in patients.items() if m == "CT"), key=_split_hash)
    assert [splits[p] for p in ct] == ["train", "train", "val", "test"]
    # too few patients for every split: one each, largest fractions first; zero gets nobody
    assert set(balanced_splits({"a": "CT", "b": "CT"}, fractions).values()) == {"train", "val"}
    many = {f"q{i}": "CT" for i in range(30)}
    assert "val" not in set(balanced_splits(many, {"train": 1, "val": 0, "test": 1}).values())
    got = Counter(balanced_splits(many, fractions).values())
    assert got == {"train": 24, "val": 3, "test": 3}


def _split_hash(patient: str) -> str:
    return hashlib.sha256(f"split|{patient}".encode()).hexdigest()
