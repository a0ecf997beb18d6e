"""Validate the RefRad2D export beside the shards (``refrad2d/``): schemas and semantics.

Every file is checked against its schema in ``schemas/``; then: every exported slice has its
zstd DICOM (decodable by pydicom) and its ``.npy`` mask, boxes lie inside the mask and equal
its class extents, snippet files point at exported slices of the right split and modality,
the label map is the current unified schema, and no text carries PHI patterns. Problem
codes start with ``export_``; locations name files and slice ids, never text.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import zstandard
from jsonschema import Draft202012Validator

from refrad_builder.anatomy.labels import schema as label_schema
from refrad_builder.publish.schema_gen import load as load_schema

EXPORT_DIR = "refrad2d"


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


def _mask_extents(mask: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    out = {}
    for cid in np.unique(mask):
        if cid == 0:
            continue
        ys, xs = np.nonzero(mask == cid)
        out[int(cid)] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return out


def validate_export(shard_dir: Path, report, scan_phi) -> None:
    """Check ``shard_dir/refrad2d`` if it exists; problems go into ``report``."""
    root = Path(shard_dir) / EXPORT_DIR
    if not (root / "manifest.json").exists():
        return
    manifest = _json(root / "manifest.json", "refrad2d_manifest", report)
    if manifest is None:
        return
    paths = manifest["paths"]
    label_map = _json(root / paths["REFRAD2D_LABEL_MAP"], "refrad2d_label_map", report)
    if label_map is not None and label_map != {c.name: c.id for c in label_schema().classes}:
        report.add("export_label_map_mismatch", paths["REFRAD2D_LABEL_MAP"])
    try:
        rows = pl.read_parquet(root / paths["REFRAD2D_VQA_PARQUET"]).to_dicts()
    except Exception:
        report.add("export_file_unreadable", paths["REFRAD2D_VQA_PARQUET"])
        return
    row_schema = Draft202012Validator(load_schema("refrad2d_report_row"))
    by_id = {}
    for i, row in enumerate(rows):
        if next(row_schema.iter_errors(row), None) is not None:
            report.add("export_schema", f"{paths['REFRAD2D_VQA_PARQUET']}[{i}]")
            continue
        by_id[row["rsopid"]] = row
        scan_phi(row, f"export:{row['rsopid']}")
    dctx = zstandard.ZstdDecompressor()
    import pydicom

    for rid in sorted(by_id):
        dcm = root / paths["REFRAD2D_DICOM_DIR"] / rid[:2] / f"{rid}.dcm.zst"
        try:
            pydicom.dcmread(io.BytesIO(dctx.decompress(dcm.read_bytes())), stop_before_pixels=True)
        except Exception:
            report.add("export_dicom", rid)
    seg_dir = root / paths["REFRAD2D_SEGMENT_DIR"]
    for seg_file in sorted(seg_dir.glob("rsopid_2_segment_*.json")):
        entries = _json(seg_file, "refrad2d_segment_index", report)
        for rid, entry in (entries or {}).items():
            if rid not in by_id:
                report.add("export_unknown_slice", f"{seg_file.name}:{rid}")
                continue
            try:
                mask = np.load(root / entry["segment_slice_path"])
            except (OSError, ValueError):
                report.add("export_mask", rid)
                continue
            extents = _mask_extents(mask) if mask.ndim == 2 else {}
            for x0, y0, x1, y1, cid in entry["bboxes"]:
                if extents.get(cid) != (x0, y0, x1, y1):
                    report.add("export_box_not_mask_extent", f"{rid}:seg{cid:03d}")
    split_dir = root / paths["REFRAD2D_SPLIT_DIR"]
    for snip_file in sorted(split_dir.rglob("snippet2rsopids_*.json")):
        snippets = _json(snip_file, "refrad2d_snippet_index", report)
        split, modality = snip_file.stem.split("_")[1], snip_file.stem.split("_")[2].upper()
        for i, (text, ids) in enumerate(sorted((snippets or {}).items())):
            scan_phi({"snippet": text}, f"export:{snip_file.name}[{i}]")
            for rid in ids:
                row = by_id.get(rid)
                if row is None or row["split"] != split or row["modality"] != modality:
                    report.add("export_snippet_slice", f"{snip_file.name}:{rid}")
