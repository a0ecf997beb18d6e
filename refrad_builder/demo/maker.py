"""``refrad demo make``: a folder of phantom CT/MR studies with reports, segmentations,
planted PHI and a ready run config.

Studies alternate CT/MR and German/English (0: CT de, 1: MR en, 2: CT en, 3: MR de, ...);
study 2 (the second CT) is RLE Lossless, the rest Explicit VR Little Endian. Output depends only
on the arguments: the same call writes the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from refrad_builder.demo.dicom_series import SeriesSpec, write_series
from refrad_builder.demo.identities import (
    TOWNS,
    Institution,
    NameSource,
    make_institution,
    make_visit,
    study_day,
)
from refrad_builder.demo.phantom import (
    FINDING_KINDS,
    Anatomy,
    Finding,
    Grid,
    Phantom,
    build_phantom,
    task_labels,
    task_name,
)
from refrad_builder.demo.real_ct import SEG_TASK as REAL_TASK
from refrad_builder.demo.real_ct import SERIES_FOLDER as REAL_SERIES
from refrad_builder.demo.real_ct import STUDY_FOLDER as REAL_STUDY
from refrad_builder.demo.real_ct import copy_real_ct
from refrad_builder.demo.reports import FindingText, KeyImage, write_report
from refrad_builder.engine.config import load_config

REPORT_COLUMNS = ("accession_number", "study_instance_uid", "study_folder", "language", "report")
OWN_ENTRIES = {"dicom", "segmentations", "reports.csv", "config.yaml", "planted_phi.json"}
MIN_PHI_LENGTH = 6
# (columns = rows, pixel spacing, slices, slice spacing, series number per CT/MR study pair)
GEOMETRY = {"CT": (96, 4.0, 32, 3.0, (3, 5)), "MR": (80, 4.5, 28, 3.5, (4, 7))}


@dataclass(frozen=True)
class DemoStudy:
    """One study of the demo and where its parts are."""

    study_folder: str
    series_folder: str
    modality: str
    language: str
    series_number: int | None
    task: str
    segmentation: Path
    accession_number: str | None
    study_instance_uid: str | None
    key_images: tuple[KeyImage, ...]
    real: bool = False


@dataclass(frozen=True)
class DemoManifest:
    """What ``make_demo`` wrote (absolute paths) and every PHI string it planted."""

    root: Path
    dicom_dir: Path
    reports_csv: Path
    segmentations_dir: Path
    config_path: Path
    planted_phi_path: Path
    planted_phi: tuple[str, ...]
    studies: tuple[DemoStudy, ...]


def _prepare(out_dir: Path) -> None:
    if out_dir.exists():
        foreign = {p.name for p in out_dir.iterdir()} - OWN_ENTRIES
        if foreign:
            raise FileExistsError(
                f"{out_dir} holds files the demo maker did not write; choose an empty folder"
            )
        for name in OWN_ENTRIES:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _anatomy(rng: np.random.Generator, kinds: tuple[str, str], origin_z: float) -> Anatomy:
    findings = []
    for kind in kinds:
        if kind == "liver_lesion":
            c = (-80.0 + rng.uniform(-8, 8), 10.0 + rng.uniform(-8, 8), rng.uniform(-18, 12))
            findings.append(Finding(kind, float(rng.integers(24, 39)), None, c))
        elif kind == "kidney_cyst":
            side = "left" if rng.random() < 0.5 else "right"
            sx, cz = (1.0, -28.0) if side == "left" else (-1.0, -34.0)
            c = (
                sx * (72.0 + rng.uniform(-4, 4)),
                52.0 + rng.uniform(-4, 4),
                cz + rng.uniform(-6, 6),
            )
            findings.append(Finding(kind, float(rng.integers(16, 25)), side, c))
        elif kind == "aortic_ectasia":
            findings.append(Finding(kind, float(rng.integers(30, 37))))
        else:
            findings.append(Finding(kind, 0.0))
    offset = (float(rng.uniform(-8, 8)), float(rng.uniform(-10, 10)), origin_z)
    return Anatomy(scale=float(rng.uniform(0.92, 1.04)), origin=offset, findings=tuple(findings))


def _longest_diameter_mm(mask2d: np.ndarray, spacing: float) -> float:
    """Largest distance between two pixels of ``mask2d`` (edge to edge), in mm."""
    pts = np.argwhere(mask2d).astype(float)
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=-1)).max()
    return float((d + 1.0) * spacing)


def _finding_texts(phantom: Phantom, numbers: dict[int, int], task: str) -> list[FindingText]:
    out = []
    for f in phantom.anatomy.findings:
        if f.kind == "liver_lesion":
            mask, organ, size = phantom.finding_masks[f.kind], "liver", f.size_mm
        elif f.kind == "kidney_cyst":
            mask, organ, size = phantom.finding_masks[f.kind], f"kidney_cyst_{f.side}", f.size_mm
        elif f.kind == "splenomegaly":
            mask, organ = phantom.mask("spleen"), "spleen"
            size = _longest_diameter_mm(mask[phantom.best_slice(mask)], phantom.grid.pixel_spacing)
        else:
            mask, organ, size = phantom.mask("aorta"), "aorta", f.size_mm
        k = phantom.grid.slices // 2 if f.kind == "aortic_ectasia" else phantom.best_slice(mask)
        out.append(FindingText(f.kind, size, f.side, numbers[k], task_name(organ, task) or organ))
    return out


def _nifti_bytes(labels: np.ndarray, grid: Grid) -> bytes:
    # (slices, rows, cols) -> (i, j, k) so the affine maps columns, rows, slices.
    img = nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), grid.ras_affine())
    img.set_qform(grid.ras_affine(), code=1)
    img.set_sform(grid.ras_affine(), code=1)
    img.header.set_xyzt_units("mm")
    # gzip without a file name or time stamp in its header keeps the bytes reproducible.
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def _csv_bytes(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


@dataclass(frozen=True)
class _Shared:
    """What all studies of one demo share: the study day, the hospitals, finding order."""

    day: dt.date
    institutions: dict[str, list[Institution]]
    kinds: list[str]


def _make_study(
    i: int, seed: int, rng: np.random.Generator, src: NameSource, ctx: _Shared, root: Path
) -> tuple[dict[str, str], DemoStudy, set[str]]:
    """Write study ``i`` (series and segmentation); return its report row, entry and PHI."""
    modality = "CT" if i % 2 == 0 else "MR"
    lang = "de" if i % 4 in (0, 3) else "en"
    folder = f"study_{i + 1:03d}"
    size, spacing, n_slices, dz, numbers = GEOMETRY[modality]
    series_number = numbers[(i // 2) % 2]
    spec = SeriesSpec(folder, f"series_{series_number}", modality, series_number, i == 2, seed)
    task = "total" if modality == "CT" else "total_mr"

    institution = ctx.institutions[lang][int(rng.integers(2))]
    visit = make_visit(src, lang, institution, ctx.day)
    origin_z = -float(200 + int(rng.integers(0, 600))) - 0.5
    kinds = ctx.kinds
    anatomy = _anatomy(rng, (kinds[i % 4], kinds[(i + 1) % 4]), origin_z)
    half = (size - 1) / 2.0 * spacing
    z0 = origin_z - (n_slices - 1) / 2.0 * dz
    grid = Grid(size, size, n_slices, spacing, dz, (-half, -half, z0))
    phantom = build_phantom(grid, anatomy)
    values = phantom.intensities(modality, rng)
    series_dir = root / "dicom" / folder / spec.series_folder
    inst_numbers = write_series(series_dir, spec, visit, grid, values)

    seg_path = root / "segmentations" / f"{folder}_{task}.nii.gz"
    seg_path.write_bytes(_nifti_bytes(task_labels(phantom, task), grid))

    spleen_image = inst_numbers[phantom.best_slice(phantom.mask("spleen"))]
    texts = _finding_texts(phantom, inst_numbers, task)
    report = write_report(visit, modality, series_number, texts, spleen_image, rng)
    row = {
        "accession_number": visit.accession,
        "study_instance_uid": spec.study_uid,
        "study_folder": folder,
        "language": lang,
        "report": report.text,
    }
    study = DemoStudy(
        study_folder=folder,
        series_folder=spec.series_folder,
        modality=modality,
        language=lang,
        series_number=series_number,
        task=task,
        segmentation=seg_path,
        accession_number=visit.accession,
        study_instance_uid=spec.study_uid,
        key_images=report.key_images,
    )
    return row, study, set(visit.header_phi(modality)) | set(report.phi)


def _add_real_study(dicom_dir: Path, seg_dir: Path) -> tuple[dict[str, str], DemoStudy]:
    """Copy the real CT study in; its report row and description."""
    real = copy_real_ct(dicom_dir, seg_dir)
    row = {
        "accession_number": "",
        "study_instance_uid": "",
        "study_folder": REAL_STUDY,
        "language": "de",
        "report": real.report,
    }
    study = DemoStudy(
        study_folder=REAL_STUDY,
        series_folder=REAL_SERIES,
        modality="CT",
        language="de",
        series_number=None,
        task=REAL_TASK,
        segmentation=real.segmentation,
        accession_number=None,
        study_instance_uid=None,
        key_images=real.key_images,
        real=True,
    )
    return row, study


def _write_config(root: Path, dicom_dir: Path, reports_csv: Path, seg_dir: Path) -> Path:
    """The demo's config.yaml (checked by loading it)."""
    config_path = root / "config.yaml"
    config = {
        "demo": True,
        "inputs": {"dicom": [str(dicom_dir)], "reports": [str(reports_csv)]},
        "segment": {"precomputed": [str(seg_dir)]},
        # every split gets patients of both modalities, so RadGrounder's train and
        # evaluation scripts run on the demo export as it is
        "shards": {"split_method": "balanced"},
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    load_config(config_path)
    return config_path


def make_demo(
    out_dir: Path, studies: int = 4, seed: int = 0, include_real: bool = True
) -> DemoManifest:
    """Write the demo data set to ``out_dir`` (created; a previous demo there is replaced).

    Layout: ``dicom/<study>/<series>/NNNN.dcm``, ``reports.csv``,
    ``segmentations/<study>_<task>.nii.gz`` (task: ``total`` or ``total_mr``),
    ``config.yaml`` and ``planted_phi.json`` (a sorted JSON list of every PHI string planted
    in headers and reports).
    """
    if studies < 0:
        raise ValueError("studies must be >= 0")
    root = Path(out_dir).resolve()
    _prepare(root)
    dicom_dir, seg_dir = root / "dicom", root / "segmentations"
    dicom_dir.mkdir()
    seg_dir.mkdir()
    rng = np.random.default_rng(seed)
    src = NameSource(rng)
    towns = {lang: [TOWNS[lang][i] for i in rng.permutation(len(TOWNS[lang]))] for lang in TOWNS}
    ctx = _Shared(
        day=study_day(seed),
        institutions={
            lang: [make_institution(src, lang, towns[lang][i]) for i in range(2)]
            for lang in ("de", "en")
        },
        kinds=[FINDING_KINDS[i] for i in rng.permutation(len(FINDING_KINDS))],
    )

    planted: set[str] = set()
    rows: list[dict[str, str]] = []
    made: list[DemoStudy] = []
    for i in range(studies):
        row, study, phi = _make_study(i, seed, rng, src, ctx, root)
        rows.append(row)
        made.append(study)
        planted |= phi

    if include_real:
        row, study = _add_real_study(dicom_dir, seg_dir)
        rows.append(row)
        made.append(study)

    reports_csv = root / "reports.csv"
    reports_csv.write_bytes(_csv_bytes(rows))
    config_path = _write_config(root, dicom_dir, reports_csv, seg_dir)
    phi = tuple(sorted(s for s in planted if len(s) >= MIN_PHI_LENGTH))
    planted_path = root / "planted_phi.json"
    planted_path.write_text(
        json.dumps(list(phi), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return DemoManifest(
        root=root,
        dicom_dir=dicom_dir,
        reports_csv=reports_csv,
        segmentations_dir=seg_dir,
        config_path=config_path,
        planted_phi_path=planted_path,
        planted_phi=phi,
        studies=tuple(made),
    )
