"""Validate a shard folder: schemas, checksums, images, masks, boxes, tokens, splits, PHI.

Importable and runnable without Ray: ``python -m refrad_builder.validate PATH``. Exit code 0
when nothing is wrong, 1 otherwise. Problem messages name sample keys and fields, never the
offending text itself (which could be PHI).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from jsonschema import Draft202012Validator
from PIL import Image

from refrad_builder import grounding
from refrad_builder.anatomy import schema as label_schema
from refrad_builder.schema_gen import load as load_schema

PHI_PATTERNS = {
    "date": re.compile(
        r"\b\d{1,2}\.\d{1,2}\.(?:19|20)\d{2}\b|\b(?:19|20)\d{2}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/(?:19|20)\d{2}\b"
    ),
    "salutation_name": re.compile(r"\b(?:Herrn?|Frau|Mr|Mrs|Ms)\.?\s+[A-ZÄÖÜ][a-zäöüß]{2,}"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "phone": re.compile(r"(?:\bTel\.?|\bFax|\+\d{2})\s*:?\s*\(?\d[\d\s/()-]{6,}\d"),
}
REQUIRED_MEMBERS = ("image.png", "mask.png", "json")


@dataclass
class ValidationReport:
    """What validation found."""

    samples: int = 0
    shards: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, code: str, where: str) -> None:
        self.problems.append((code, where))

    @property
    def ok(self) -> bool:
        return not self.problems and self.samples > 0

    def summary(self) -> str:
        lines = [f"validated {self.samples} samples in {self.shards} shards"]
        counts: dict[str, int] = defaultdict(int)
        for code, _ in self.problems:
            counts[code] += 1
        for code, n in sorted(counts.items()):
            examples = [w for c, w in self.problems if c == code][:3]
            lines.append(f"  FAIL {code}: {n} (e.g. {', '.join(examples)})")
        if self.samples == 0:
            lines.append("  FAIL no samples")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def _texts(sample: dict) -> list[tuple[str, str]]:
    out = []
    for lang, items in sample.get("captions", {}).items():
        out += [(f"captions.{lang}", t) for t in items]
    for lang, items in sample.get("grounded_captions", {}).items():
        out += [(f"grounded_captions.{lang}", t) for t in items]
    for i, q in enumerate(sample.get("vqa", [])):
        out += [(f"vqa[{i}].question", q["question"]), (f"vqa[{i}].answer", q["answer"])]
        out += [(f"vqa[{i}].choices", c) for c in q.get("choices", [])]
    return out


def _expected_bins(sample: dict, class_id: int, schema) -> tuple[int, ...] | None:
    boxes = {b["class_id"]: b["bbox"] for b in sample["boxes"]}
    if class_id in boxes:
        bbox = boxes[class_id]
    else:
        cls = schema.by_id.get(class_id)
        if cls is None:
            return None
        members = [schema.by_name[m].id for m in schema.members(cls.name)]
        parts = [boxes[m] for m in members if m in boxes]
        if not parts:
            return None
        bbox = (
            min(p[0] for p in parts),
            min(p[1] for p in parts),
            max(p[2] for p in parts),
            max(p[3] for p in parts),
        )
    return grounding.quantize(tuple(bbox), sample["width"], sample["height"])


def check_sample(key: str, members: dict[str, bytes], validator, schema, report, languages):
    """Every per-sample check; appends problems to ``report``."""
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    if missing:
        report.add("missing_member", f"{key}:{','.join(missing)}")
        return None
    try:
        sample = json.loads(members["json"])
    except ValueError:
        report.add("json_invalid", key)
        return None
    errors = sorted(validator.iter_errors(sample), key=lambda e: list(e.path))
    if errors:
        report.add("schema", f"{key}:{'/'.join(map(str, errors[0].path)) or 'root'}")
        return None
    if sample["key"] != key:
        report.add("key_mismatch", key)
    try:
        img = np.array(Image.open(io.BytesIO(members["image.png"])))
        mask = np.array(Image.open(io.BytesIO(members["mask.png"])))
    except Exception:
        report.add("image_decode", key)
        return sample
    h, w = sample["height"], sample["width"]
    if img.shape != (h, w) or img.dtype not in (np.uint16, np.int32):
        report.add("image_shape_or_depth", key)
    if mask.shape != (h, w) or mask.dtype != np.uint8:
        report.add("mask_shape_or_depth", key)
        return sample
    for b in sample["boxes"]:
        x0, y0, x1, y1 = b["bbox"]
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            report.add("box_outside_image", f"{key}:{b['class_name']}")
            continue
        ys, xs = np.nonzero(mask == b["class_id"])
        if len(xs) == 0:
            report.add("box_without_mask", f"{key}:{b['class_name']}")
            continue
        extent = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        if extent != (x0, y0, x1, y1) or b["area"] != len(xs):
            report.add("box_not_mask_extent", f"{key}:{b['class_name']}")
    for lang, items in sample["grounded_captions"].items():
        for text in items:
            tokens = grounding.parse(text)
            if not tokens or text.count("<p ") != len(tokens):
                report.add("grounding_token_unparsable", f"{key}:{lang}")
            for class_id, bins, _ in tokens:
                if _expected_bins(sample, class_id, schema) != bins:
                    report.add("grounding_box_mismatch", f"{key}:{lang}:seg{class_id:03d}")
    for lang in languages:
        if not sample["captions"].get(lang):
            report.add("language_missing", f"{key}:{lang}")
    for where, text in _texts(sample):
        plain = grounding.strip(text)
        for kind, pattern in PHI_PATTERNS.items():
            if pattern.search(plain):
                report.add(f"phi_pattern_{kind}", f"{key}:{where}")
    return sample


def validate_dir(path: Path, languages: tuple[str, ...] = ("de", "en")) -> ValidationReport:
    """Validate one shard folder written by the shards stage."""
    path = Path(path)
    report = ValidationReport()
    index_file = path / "shards.json"
    if not index_file.exists():
        report.add("no_shard_index", str(index_file.name))
        return report
    shard_index = json.loads(index_file.read_text())
    for err in Draft202012Validator(load_schema("shard_index")).iter_errors(shard_index):
        report.add("shard_index_schema", "/".join(map(str, err.path)) or "root")
        return report
    validator = Draft202012Validator(load_schema("sample"))
    schema = label_schema()
    patients_by_split: dict[str, set[str]] = defaultdict(set)
    keys_seen: dict[str, str] = {}
    for entry in shard_index["shards"]:
        shard = path / entry["name"]
        report.shards += 1
        if not shard.exists():
            report.add("shard_missing", entry["name"])
            continue
        data = shard.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            report.add("checksum", entry["name"])
        grouped: dict[str, dict[str, bytes]] = defaultdict(dict)
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for m in tar.getmembers():
                    key, _, ext = m.name.partition(".")
                    grouped[key][ext] = tar.extractfile(m).read()
        except tarfile.TarError:
            report.add("tar_unreadable", entry["name"])
            continue
        if len(grouped) != entry["samples"]:
            report.add("sample_count", entry["name"])
        for key, members in grouped.items():
            if key in keys_seen:
                report.add("duplicate_key", key)
            keys_seen[key] = entry["name"]
            sample = check_sample(key, members, validator, schema, report, languages)
            report.samples += 1
            if sample:
                if sample["split"] != entry["split"]:
                    report.add("split_mismatch", key)
                patients_by_split[sample["split"]].add(sample["patient"])
    splits = list(patients_by_split)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            if patients_by_split[a] & patients_by_split[b]:
                report.add("split_leak", f"{a}/{b}")
    _check_tables(path, keys_seen, report)
    return report


def _check_tables(path: Path, keys_seen: dict[str, str], report: ValidationReport) -> None:
    for name, schema_name in (("index.parquet", "index_row"), ("rejects.parquet", "reject_row")):
        table = path / name
        if not table.exists():
            report.add("table_missing", name)
            continue
        try:
            rows = pl.read_parquet(table).to_dicts()
        except Exception:
            report.add("table_unreadable", name)
            continue
        validator = Draft202012Validator(load_schema(schema_name))
        for i, row in enumerate(rows):
            if next(validator.iter_errors(row), None) is not None:
                report.add("table_schema", f"{name}[{i}]")
                break
        if name == "index.parquet":
            index_keys = {r["key"]: r["shard"] for r in rows}
            if index_keys != keys_seen:
                report.add("index_mismatch", name)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``refrad validate`` calls this too)."""
    parser = argparse.ArgumentParser(
        prog="refrad validate",
        description="Check a shard folder against schemas/ and semantically; exit 1 on failure.",
    )
    parser.add_argument("path", type=Path, help="folder with shards.json, *.tar, index.parquet")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = validate_dir(args.path)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "samples": report.samples,
                    "shards": report.shards,
                    "problems": report.problems,
                },
                indent=2,
            )
        )
    else:
        print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
