"""Validate the RefRad2D export beside the shards (``refrad2d/``): schemas and contract.

Every file is checked against its schema in ``schemas/``; then the contract with RadGrounder's
dataset classes, each violation reported by kind (problem codes start with ``export_``;
locations name files, slice ids and fields, never text):

- ``export_text_null``: a text field of a report row is null (their loaders call ``.strip()``).
- ``export_vqa_empty``: a language of a row has no VQA item (their ``load_vqa`` returns None).
- ``export_path_not_absolute`` / ``export_path_missing`` / ``export_path_outside``: a mask or
  image path of an index is relative (depends on the working directory), names no file, or
  points outside this export (moved without ``refrad export relocate``).
- ``export_label_map_mismatch``: ``label_map.json`` differs from the unified schema, or a class
  of RadGrounder's published merged label map has another id.
- ``export_unpublished_class``: a keyword (a future ``<seg>`` token) or a sampled-slice box
  names a class the published map lacks.
- ``export_snippet_key_collision``: the CT and MR snippet files of a split share a key.
- ``export_split_empty``: in an export split with ``split_method`` ``balanced`` (the demo's),
  a split of a modality has no snippet although the modality has at least as many patients
  (of that modality only) as there are splits (``hash`` splits of a small set may leave one empty by chance).
- ``export_sampled_missing``: a sampled-slice index is missing or lacks an exported slice.
- ``export_box_missing`` / ``export_box_not_mask_extent``: a mask class (at least the
  manifest's ``min_box_area_px`` pixels) has no box, or a box is not its class's extent.
- ``export_keyword_not_in_caption`` / ``export_keyword_class_absent``: a keyword does not
  occur in its language's ``CleanedSentence``, or its class is not in the mask.
- ``export_dicom``, ``export_mask``, ``export_image``, ``export_unknown_slice``,
  ``export_snippet_slice``, ``export_schema``, ``export_file_unreadable``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import zstandard
from jsonschema import Draft202012Validator

from refrad_builder.anatomy.labels import published_label_map
from refrad_builder.anatomy.labels import schema as label_schema
from refrad_builder.publish.schema_gen import load as load_schema

EXPORT_DIR = "refrad2d"
TEXT_FIELDS = ("CleanedSentence", "ReportFragestellungCleaned", "ReportKlinischeAngabenCleaned")
LANGUAGE_KEYS = {"english": "keywords_eng", "german": "keywords_de"}
SPLITS = ("train", "val", "test")


def _json(path: Path, schema_name: str, report) -> object | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report.add("export_file_unreadable", path.name)
        return None
    if next(Draft202012Validator(load_schema(schema_name)).iter_errors(data), None) is not None:
        report.add("export_schema", path.name)
        return None
    return data


def _mask_extents(mask: np.ndarray) -> dict[int, tuple[tuple[int, int, int, int], int]]:
    """class id -> (extent box, pixel count)."""
    out = {}
    ids, areas = np.unique(mask, return_counts=True)
    for cid, area in zip(ids.tolist(), areas.tolist(), strict=True):
        if cid == 0:
            continue
        ys, xs = np.nonzero(mask == cid)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        out[int(cid)] = (box, int(area))
    return out


def _path(value: str, root: Path, where: str, report) -> Path | None:
    """The file an index names, if it resolves from any working directory inside ``root``."""
    path = Path(value)
    if not path.is_absolute():
        report.add("export_path_not_absolute", where)
        return None
    if not path.is_file():
        report.add("export_path_missing", where)
        return None
    if not path.resolve().is_relative_to(root.resolve()):
        report.add("export_path_outside", where)
    return path


def _check_rows(rows: list[dict], report, scan_phi, where_file: str) -> dict[str, dict]:
    row_schema = Draft202012Validator(load_schema("refrad2d_report_row"))
    by_id = {}
    for i, row in enumerate(rows):
        bad_text = False
        for lang in LANGUAGE_KEYS:
            block = row.get(lang) or {}
            for name in TEXT_FIELDS:
                if block.get(name) is None:
                    report.add("export_text_null", f"{row.get('rsopid', i)}:{lang}.{name}")
                    bad_text = True
            if not (list(block.get("dicom_vqa") or []) + list(block.get("snippet_vqa") or [])):
                report.add("export_vqa_empty", f"{row.get('rsopid', i)}:{lang}")
        if bad_text:  # reported; the other checks read the nulls as ""
            for lang in LANGUAGE_KEYS:
                block = row.get(lang) or {}
                for name in TEXT_FIELDS:
                    block[name] = block.get(name) or ""
        if next(row_schema.iter_errors(row), None) is not None:
            report.add("export_schema", f"{where_file}[{i}]")
            continue
        by_id[row["rsopid"]] = row
        scan_phi(row, f"export:{row['rsopid']}")
    return by_id


def _check_label_map(root: Path, rel: str, report) -> None:
    label_map = _json(root / rel, "refrad2d_label_map", report)
    if label_map is None:
        return
    if label_map != {c.name: c.id for c in label_schema().classes}:
        report.add("export_label_map_mismatch", rel)
    for name, cid in published_label_map().items():
        if label_map.get(name) != cid:
            report.add("export_label_map_mismatch", f"{rel}:{name}")


def _check_segments(root, seg_dir, by_id, min_area, published, report) -> set[str]:
    seen: set[str] = set()
    for seg_file in sorted(seg_dir.glob("rsopid_2_segment_*.json")):
        entries = _json(seg_file, "refrad2d_segment_index", report)
        for rid, entry in (entries or {}).items():
            row = by_id.get(rid)
            if row is None:
                report.add("export_unknown_slice", f"{seg_file.name}:{rid}")
                continue
            seen.add(rid)
            path = _path(entry["segment_slice_path"], root, f"{rid}:segment_slice_path", report)
            if path is None:
                continue
            try:
                mask = np.load(path)
            except (OSError, ValueError):
                report.add("export_mask", rid)
                continue
            extents = _mask_extents(mask) if mask.ndim == 2 else {}
            boxed = set()
            for x0, y0, x1, y1, cid in entry["bboxes"]:
                boxed.add(cid)
                if extents.get(cid, (None,))[0] != (x0, y0, x1, y1):
                    report.add("export_box_not_mask_extent", f"{rid}:seg{cid:03d}")
            for cid, (_box, area) in sorted(extents.items()):
                if area >= min_area and cid not in boxed:
                    report.add("export_box_missing", f"{rid}:seg{cid:03d}")
            for lang, key in LANGUAGE_KEYS.items():
                caption = row[lang]["CleanedSentence"]
                for phrase, _name, cid in entry[key]:
                    if cid not in published:
                        report.add("export_unpublished_class", f"{rid}:{key}:seg{cid:03d}")
                    if phrase not in caption:
                        report.add("export_keyword_not_in_caption", f"{rid}:{key}:seg{cid:03d}")
                    if cid not in extents:
                        report.add("export_keyword_class_absent", f"{rid}:{key}:seg{cid:03d}")
    return seen


def _check_sampled(root, seg_dir, by_id, published, report) -> None:
    for modality in ("ct", "mr"):
        name = f"refrad2d_sampled_dataset_v3_{modality}.json"
        expected = {rid for rid, r in by_id.items() if r["modality"].lower() == modality}
        if not (seg_dir / name).is_file():
            report.add("export_sampled_missing", name)
            continue
        entries = _json(seg_dir / name, "refrad2d_sampled_index", report)
        if entries is None:
            continue
        listed = {e["rsopid"] for e in entries.values()}
        for rid in sorted(expected - listed):
            report.add("export_sampled_missing", f"{name}:{rid}")
        for slice_name, e in entries.items():
            if e["rsopid"] not in by_id:
                report.add("export_unknown_slice", f"{name}:{slice_name}")
                continue
            image = _path(e["scan_slice_path"], root, f"{slice_name}:scan_slice_path", report)
            _path(e["segment_slice_path"], root, f"{slice_name}:segment_slice_path", report)
            for *_box, cid in e["bboxes"]:
                if cid not in published:
                    report.add("export_unpublished_class", f"{name}:{slice_name}:seg{cid:03d}")
            if image is not None:
                try:
                    arr = np.load(image)
                    if arr.ndim != 2 or arr.dtype != np.float32:
                        report.add("export_image", slice_name)
                except (OSError, ValueError):
                    report.add("export_image", slice_name)


def _patients(shard_dir: Path) -> dict[str, set[str]]:
    """modality (ct/mr) -> patients with images of that modality only, from the shards'
    index (empty when unreadable); a patient with both modalities is not counted."""
    try:
        index = pl.read_parquet(shard_dir / "index.parquet", columns=["modality", "patient"])
    except Exception:
        return {}
    modalities: dict[str, set[str]] = {}
    for row in index.iter_rows(named=True):
        modalities.setdefault(row["patient"], set()).add(str(row["modality"]).lower())
    out: dict[str, set[str]] = {}
    for patient, mods in modalities.items():
        if len(mods) == 1:
            out.setdefault(next(iter(mods)), set()).add(patient)
    return out


def _check_snippets(shard_dir, split_dir, by_id, manifest, report, scan_phi) -> None:
    keys: dict[tuple[str, str], set[str]] = {}
    for snip_file in sorted(split_dir.rglob("snippet2rsopids_*.json")):
        snippets = _json(snip_file, "refrad2d_snippet_index", report)
        split, modality = snip_file.stem.split("_")[1], snip_file.stem.split("_")[2].upper()
        keys[(split, modality.lower())] = set(snippets or {})
        for i, (text, ids) in enumerate(sorted((snippets or {}).items())):
            scan_phi({"snippet": text}, f"export:{snip_file.name}[{i}]")
            for rid in ids:
                row = by_id.get(rid)
                if row is None or row["split"] != split or row["modality"] != modality:
                    report.add("export_snippet_slice", f"{snip_file.name}:{rid}")
    for split in SPLITS:
        if keys.get((split, "ct"), set()) & keys.get((split, "mr"), set()):
            report.add("export_snippet_key_collision", split)
    if manifest["split_method"] != "balanced":
        return
    splits = manifest["splits"]
    for modality, members in sorted(_patients(shard_dir).items()):
        if modality not in ("ct", "mr") or len(members) < len(splits):
            continue
        for split in splits:
            if not keys.get((split, modality)):
                report.add("export_split_empty", f"{split}:{modality}")


def validate_export(shard_dir: Path, report, scan_phi) -> None:
    """Check ``shard_dir/refrad2d`` if it exists; problems go into ``report``."""
    root = Path(shard_dir) / EXPORT_DIR
    if not (root / "manifest.json").exists():
        return
    manifest = _json(root / "manifest.json", "refrad2d_manifest", report)
    if manifest is None:
        return
    paths = manifest["paths"]
    _check_label_map(root, paths["REFRAD2D_LABEL_MAP"], report)
    try:
        rows = pl.read_parquet(root / paths["REFRAD2D_VQA_PARQUET"]).to_dicts()
    except Exception:
        report.add("export_file_unreadable", paths["REFRAD2D_VQA_PARQUET"])
        return
    by_id = _check_rows(rows, report, scan_phi, paths["REFRAD2D_VQA_PARQUET"])
    dctx = zstandard.ZstdDecompressor()
    import pydicom

    for rid in sorted(by_id):
        dcm = root / paths["REFRAD2D_DICOM_DIR"] / rid[:2] / f"{rid}.dcm.zst"
        try:
            pydicom.dcmread(io.BytesIO(dctx.decompress(dcm.read_bytes())), stop_before_pixels=True)
        except Exception:
            report.add("export_dicom", rid)
    published = set(published_label_map().values())
    seg_dir = root / paths["REFRAD2D_SEGMENT_DIR"]
    _check_segments(root, seg_dir, by_id, manifest["min_box_area_px"], published, report)
    _check_sampled(root, seg_dir, by_id, published, report)
    _check_snippets(
        shard_dir, root / paths["REFRAD2D_SPLIT_DIR"], by_id, manifest, report, scan_phi
    )
