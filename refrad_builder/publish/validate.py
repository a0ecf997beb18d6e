"""Validate a shard folder: schemas, checksums, images, masks, boxes, tokens, splits, PHI.

Importable and runnable without Ray: ``python -m refrad_builder.publish.validate PATH``. Exit code 0
when nothing is wrong, 1 otherwise. Problem messages name sample keys, shard names, field
names and row numbers, never the offending text itself (which could be PHI): anything taken
from the data that does not look like an identifier is replaced by its position.

Each problem is reported once, where it arises: a shard that is missing or cannot be read is
not reported again as missing index rows, and the second copy of a duplicated key is not
reported again as a duplicate image or a split leak.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from jsonschema import Draft202012Validator
from PIL import Image
from pydantic import ValidationError
from scipy import ndimage

from refrad_builder.anatomy.labels import schema as label_schema
from refrad_builder.engine.records import SCHEMA_VERSION, Sample
from refrad_builder.publish.schema_gen import generate as generate_schemas
from refrad_builder.publish.schema_gen import load as load_schema
from refrad_builder.text import grounding

PHI_PATTERNS = {
    "date": re.compile(
        r"\b\d{1,2}\.\d{1,2}\.(?:19|20)\d{2}\b|\b(?:19|20)\d{2}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/(?:19|20)\d{2}\b"
    ),
    "salutation_name": re.compile(r"\b(?:Herrn?|Frau|Mr|Mrs|Ms)\.?\s+[A-ZÄÖÜ][a-zäöüß]{2,}"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b"),
    "phone": re.compile(r"(?:\bTel\.?|\bFax|\+\d{2})\s*:?\s*\(?\d[\d\s/()-]{6,}\d"),
}
_ANY_PHI = re.compile("|".join(f"(?:{p.pattern})" for p in PHI_PATTERNS.values()))
REQUIRED_MEMBERS = ("image.png", "mask.png", "json")
# What the shards stage writes: keys are 24-hex pseudonyms, shards are {split}-NNNNN.tar.
KEY_RE = re.compile(r"[0-9a-f]{16,64}")
SHARD_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,32}-\d{5}\.tar")
INDEX_FIELDS = (
    "split",
    "modality",
    "language",
    "patient",
    "study",
    "series",
    "plane",
    "width",
    "height",
    "classes",
    "n_boxes",
    "n_vqa",
    "n_grounded",
    "caption_languages",
    "image_sha256",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (bit depth, colour type 0 = grayscale) of the two PNG members.
IMAGE_PNG_FORMAT = (16, 0)
MASK_PNG_FORMAT = (8, 0)
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_LANG = re.compile(r"[a-z]{2,3}")
_EXT = re.compile(r"[a-z0-9_.]{1,16}")
MAX_SCHEMA_PROBLEMS_PER_SAMPLE = 5


@dataclass
class ValidationReport:
    """What validation found: counts and (problem code, where) pairs free of sample text."""

    samples: int = 0
    shards: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, code: str, where: str) -> None:
        """Record one problem; ``where`` names keys, shards, fields or rows, never text."""
        self.problems.append((code, where))

    @property
    def ok(self) -> bool:
        """True when there are samples and no problems."""
        return not self.problems and self.samples > 0

    @property
    def codes(self) -> set[str]:
        """The distinct problem codes."""
        return {code for code, _ in self.problems}

    def where(self, code: str) -> list[str]:
        """Every location reported for ``code``."""
        return [w for c, w in self.problems if c == code]

    def summary(self) -> str:
        """A human-readable report (at most three locations per code)."""
        lines = [f"validated {self.samples} samples in {self.shards} shards"]
        counts: dict[str, int] = defaultdict(int)
        for code, _ in self.problems:
            counts[code] += 1
        for code, n in sorted(counts.items()):
            lines.append(f"  FAIL {code}: {n} (e.g. {', '.join(self.where(code)[:3])})")
        if self.samples == 0:
            lines.append("  FAIL no samples")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        return {
            "ok": self.ok,
            "samples": self.samples,
            "shards": self.shards,
            "problems": [list(p) for p in self.problems],
        }


@lru_cache(maxsize=1)
def _model_matches_committed_schema() -> bool:
    return json.loads(generate_schemas()["sample.schema.json"]) == load_schema("sample")


class SampleSchema:
    """The committed ``sample`` schema, checked quickly.

    Pure-Python JSON Schema validation costs ~15 ms per sample (hours for a full corpus).
    When the pydantic ``Sample`` model generates exactly the committed schema, a strict
    pydantic parse (~0.2 ms) decides the common valid case; anything it rejects is judged
    by the JSON Schema itself, which also says where the problem is. Strict pydantic is never
    more lenient than the schema it generates, so a stale model can only cost time.
    """

    def __init__(self) -> None:
        self.validator = Draft202012Validator(load_schema("sample"))
        self.fast = _model_matches_committed_schema()

    def locations(self, raw: bytes, sample: Any) -> list[str]:
        """Where ``sample`` (parsed from ``raw``) violates the schema; empty when valid."""
        if self.fast:
            try:
                Sample.model_validate_json(raw, strict=True)
                return []
            except ValidationError:
                pass
        return _schema_locations(self.validator.iter_errors(sample))


def _name(value: Any) -> str:
    """A field name or path element as it may appear in a message."""
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and _NAME.fullmatch(value) else "?"


def _lang(value: str) -> str:
    return value if _LANG.fullmatch(value) else "?"


def _schema_locations(errors) -> list[str]:
    """Where each schema error is, as a path of field names (never the offending value)."""
    out: list[str] = []
    for err in sorted(errors, key=lambda e: [str(p) for p in e.path]):
        path = [_name(p) for p in err.path]
        inst = err.instance if isinstance(err.instance, dict) else {}
        if err.validator == "required":
            names = [n for n in err.validator_value if n not in inst]
        elif err.validator == "additionalProperties":
            allowed = set(err.schema.get("properties", {}))
            names = sorted(n for n in inst if n not in allowed)
        else:
            names = []
        locs = ["/".join([*path, _name(n)]) for n in names] or ["/".join(path) or "root"]
        out += [loc for loc in locs if loc not in out]
    return out


def _strings(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every string leaf of a JSON value with its path (raw; see :func:`_path`)."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield (*path, "?"), str(k)  # keys too: captions are keyed by free text
            yield from _strings(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, (*path, i))


def _path(parts: tuple) -> str:
    return "/".join(_name(p) for p in parts)


def _scan_phi(values: Iterator[tuple[tuple, str]], where: str, report: ValidationReport) -> None:
    for parts, text in values:
        plain = grounding.strip(text) if "<p " in text else text
        if not _ANY_PHI.search(plain):
            continue
        for kind, pattern in PHI_PATTERNS.items():
            if pattern.search(plain):
                report.add(f"phi_pattern_{kind}", f"{where}:{_path(parts)}")


def _png_format(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk; None when it is not a PNG."""
    if len(data) < 26 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def _decode(data: bytes) -> tuple[np.ndarray, tuple[int, int] | None] | None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            arr = np.asarray(im)
    except Exception:
        return None
    return arr, _png_format(data)


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


def _check_pixels(
    shown: str, members: dict[str, bytes], sample: dict, schema, report
) -> np.ndarray | None:
    """Image and mask decode, format, size and labels; returns the mask when boxes can use it."""
    h, w = sample["height"], sample["width"]
    image = _decode(members["image.png"])
    if image is None:
        report.add("image_decode", f"{shown}:image.png")
    elif image[1] is None:
        report.add("image_format", f"{shown}:image.png")
    elif image[1] != IMAGE_PNG_FORMAT or image[0].shape != (h, w):
        report.add("image_shape_or_depth", f"{shown}:image.png")
    mask = _decode(members["mask.png"])
    if mask is None:
        report.add("image_decode", f"{shown}:mask.png")
        return None
    if mask[1] is None:
        report.add("image_format", f"{shown}:mask.png")
        return None
    if mask[1] != MASK_PNG_FORMAT or mask[0].shape != (h, w) or mask[0].dtype != np.uint8:
        report.add("mask_shape_or_depth", f"{shown}:mask.png")
        return None
    labels = set(np.flatnonzero(np.bincount(mask[0].ravel())).tolist()) - {0}
    if labels - set(schema.by_id):
        report.add("mask_unknown_class", f"{shown}:mask.png")
    return mask[0]


def _check_boxes(shown: str, sample: dict, mask: np.ndarray | None, schema, report) -> None:
    h, w = sample["height"], sample["width"]
    seen: set[int] = set()
    extents: list = []
    areas = np.zeros(1, dtype=np.int64)
    if mask is not None:
        extents = ndimage.find_objects(mask)
        areas = np.bincount(mask.ravel(), minlength=len(extents) + 1)  # labels < 256
    for b in sample["boxes"]:
        cls = schema.by_id.get(b["class_id"])
        label = cls.name if cls else f"seg{b['class_id']:03d}"
        where = f"{shown}:{label}"
        if cls is None or cls.name != b["class_name"]:
            report.add("box_class_unknown", where)
            continue
        if b["class_id"] in seen:
            report.add("box_duplicate_class", where)
            continue
        seen.add(b["class_id"])
        x0, y0, x1, y1 = b["bbox"]
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            report.add("box_outside_image", where)
            continue
        if mask is None:
            continue
        found = extents[b["class_id"] - 1] if b["class_id"] <= len(extents) else None
        if found is None:
            report.add("box_without_mask", where)
            continue
        rows, cols = found
        extent = (cols.start, rows.start, cols.stop, rows.stop)
        if extent != (x0, y0, x1, y1) or b["area"] != int(areas[b["class_id"]]):
            report.add("box_not_mask_extent", where)


def _check_grounding(shown: str, sample: dict, schema, report) -> None:
    for lang, items in sample["grounded_captions"].items():
        for text in items:
            tokens = grounding.parse(text)
            if not tokens or text.count("<p ") != len(tokens):
                report.add("grounding_token_unparsable", f"{shown}:{_lang(lang)}")
            for class_id, bins, _ in tokens:
                if _expected_bins(sample, class_id, schema) != bins:
                    report.add("grounding_box_mismatch", f"{shown}:{_lang(lang)}:seg{class_id:03d}")


def check_sample(
    key: str,
    members: dict[str, bytes],
    validator: SampleSchema,
    schema,
    report: ValidationReport,
    languages,
    shown: str | None = None,
) -> dict | None:
    """Every per-sample check; appends problems to ``report``.

    ``key`` is the sample's key in the tar, ``shown`` how messages name it (defaults to the
    key). Returns the sample JSON when it passed the schema (so split and index checks can
    use it), else None.
    """
    shown = shown or key
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    extra = sorted(m for m in members if m not in REQUIRED_MEMBERS)
    for ext in extra:
        report.add("unexpected_member", f"{shown}:{ext if _EXT.fullmatch(ext) else '?'}")
    if missing:
        report.add("missing_member", f"{shown}:{','.join(missing)}")
        return None
    try:
        sample = json.loads(members["json"])
    except ValueError:
        report.add("json_invalid", shown)
        return None
    locations = validator.locations(members["json"], sample)
    if locations:
        for loc in locations[:MAX_SCHEMA_PROBLEMS_PER_SAMPLE]:
            report.add("schema", f"{shown}:{loc}")
        return None
    # schema_version, split, language and body_part have defaults, so they may be absent
    if sample.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        report.add("schema_version", shown)
    if sample["key"] != key:
        report.add("key_mismatch", shown)
    mask = _check_pixels(shown, members, sample, schema, report)
    _check_boxes(shown, sample, mask, schema, report)
    _check_grounding(shown, sample, schema, report)
    for lang in languages:
        if not sample["captions"].get(lang):
            report.add("language_missing", f"{shown}:{_lang(lang)}")
    # provenance is written by code (versions such as "total@2.18"), and box class names are
    # checked against the label schema; every other string may carry report text.
    free = {k: v for k, v in sample.items() if k not in ("provenance", "boxes")}
    _scan_phi(_strings(free), shown, report)
    return sample


def _index_fields(sample: dict, image: bytes) -> dict[str, Any]:
    """What the index row of ``sample`` must say (mirrors the shards stage)."""
    return {
        "split": sample.get("split", ""),
        "modality": sample["modality"],
        "language": sample.get("language"),
        "patient": sample["patient"],
        "study": sample["study"],
        "series": sample["series"],
        "plane": sample["plane"],
        "width": sample["width"],
        "height": sample["height"],
        "classes": [b["class_name"] for b in sample["boxes"]],
        "n_boxes": len(sample["boxes"]),
        "n_vqa": len(sample["vqa"]),
        "n_grounded": sum(len(v) for v in sample["grounded_captions"].values()),
        "caption_languages": sorted(k for k, v in sample["captions"].items() if v),
        "image_sha256": hashlib.sha256(image).hexdigest(),
    }


def _read_tar(data: bytes) -> list[tuple[str, bytes | None]] | None:
    """(member name, bytes or None for a non-file) in order; None when the tar is damaged.

    ``tarfile`` silently stops at the first corrupt header after the first one, so the
    bytes after the last member must be the all-zero end-of-archive blocks.
    """
    out: list[tuple[str, bytes | None]] = []
    end = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for m in tar:
                fh = tar.extractfile(m) if m.isfile() else None
                out.append((m.name, fh.read() if fh else None))
                end = m.offset_data + -(-m.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    except Exception:
        return None
    if any(data[end:]):
        return None
    return out


def _load_shard_index(path: Path, report: ValidationReport) -> dict | None:
    index_file = path / "shards.json"
    if not index_file.exists():
        report.add("no_shard_index", index_file.name)
        return None
    try:
        shard_index = json.loads(index_file.read_bytes())
    except ValueError:
        report.add("shard_index_unreadable", index_file.name)
        return None
    locations = _schema_locations(
        Draft202012Validator(load_schema("shard_index")).iter_errors(shard_index)
    )
    if locations:
        report.add("shard_index_schema", locations[0])
        return None
    if shard_index["schema_version"] != SCHEMA_VERSION:
        report.add("schema_version", index_file.name)
    return shard_index


@dataclass
class _Seen:
    """What the shards held, for the cross-sample and table checks."""

    occurrences: list[tuple[str, str]] = field(default_factory=list)
    first_shard: dict[str, str] = field(default_factory=dict)
    image_owner: dict[str, str] = field(default_factory=dict)
    index_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    patients_by_split: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    listed: set[str] = field(default_factory=set)
    unusable: set[str] = field(default_factory=set)


def _group(name: str, members, report) -> dict[str, dict[str, bytes]]:
    grouped: dict[str, dict[str, bytes]] = defaultdict(dict)
    for i, (member, data) in enumerate(members):
        if data is None:
            report.add("unexpected_member", f"{name}#{i}")
            continue
        key, _, ext = member.partition(".")
        if ext in grouped[key]:
            report.add("duplicate_member", f"{name}#{i}")
        grouped[key][ext] = data
    return {k: v for k, v in grouped.items() if v}


def _check_shard(path: Path, entry: dict, ctx: dict, seen: _Seen, report) -> None:
    name = entry["name"]
    file = path / name
    if not file.is_file():
        report.add("shard_missing", name)
        seen.unusable.add(name)
        return
    data = file.read_bytes()
    if len(data) != entry["bytes"]:
        report.add("shard_size", name)
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        report.add("checksum", name)
    members = _read_tar(data)
    if members is None:
        report.add("tar_unreadable", name)
        seen.unusable.add(name)
        return
    grouped = _group(name, members, report)
    if len(grouped) != entry["samples"]:
        report.add("sample_count", name)
    for n, (key, fields) in enumerate(grouped.items()):
        shown = key if KEY_RE.fullmatch(key) else f"{name}#{n}"
        if shown != key:
            report.add("key_format", shown)
        report.samples += 1
        seen.occurrences.append((key, name))
        duplicate = key in seen.first_shard
        if duplicate:
            report.add("duplicate_key", shown)
        else:
            seen.first_shard[key] = name
        try:
            sample = check_sample(key, fields, shown=shown, report=report, **ctx)
        except Exception as exc:  # never crash on, or echo, hostile input
            report.add("check_failed", f"{shown}:{type(exc).__name__}")
            continue
        if duplicate:
            continue
        if "image.png" in fields:
            digest = hashlib.sha256(fields["image.png"]).hexdigest()
            if digest in seen.image_owner:
                report.add("duplicate_image", shown)
            else:
                seen.image_owner[digest] = key
        if sample is None:
            continue
        if sample.get("split", "") != entry["split"]:
            report.add("split_mismatch", shown)
        seen.patients_by_split[entry["split"]].add(sample["patient"])
        seen.index_fields[key] = _index_fields(sample, fields["image.png"])


def validate_dir(path: Path, languages: tuple[str, ...] = ("de", "en")) -> ValidationReport:
    """Validate one shard folder written by the shards stage.

    ``languages``: every sample must have captions in each of them.
    """
    path = Path(path)
    report = ValidationReport()
    shard_index = _load_shard_index(path, report)
    if shard_index is None:
        return report
    ctx = {
        "validator": SampleSchema(),
        "schema": label_schema(),
        "languages": languages,
    }
    seen = _Seen()
    for i, entry in enumerate(shard_index["shards"]):
        if not SHARD_NAME_RE.fullmatch(entry["name"]):
            report.add("shard_name", f"shards[{i}]")
            seen.unusable.add(entry["name"])
            continue
        if entry["name"] in seen.listed:
            report.add("shard_duplicate", entry["name"])
            continue
        seen.listed.add(entry["name"])
        report.shards += 1
        _check_shard(path, entry, ctx, seen, report)
    for tar in sorted(path.glob("*.tar")):
        if tar.name not in seen.listed:
            report.add("shard_unlisted", tar.name if SHARD_NAME_RE.fullmatch(tar.name) else "?")
    splits = sorted(seen.patients_by_split)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            if seen.patients_by_split[a] & seen.patients_by_split[b]:
                report.add("split_leak", f"{_name(a)}/{_name(b)}")
    _check_tables(path, seen, report)
    _check_summary(path, shard_index, report)
    from refrad_builder.publish.refrad2d.validate import validate_export

    validate_export(path, report, lambda obj, where: _scan_phi(_strings(obj), where, report))
    return report


def _check_summary(path: Path, shard_index: dict, report: ValidationReport) -> None:
    """summary.json (the run manifest): its schema, and its counts agree with shards.json
    (what was read from the shards is checked against shards.json already)."""
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report.add("summary_unreadable", "summary.json")
        return
    if _schema_locations(Draft202012Validator(load_schema("run_summary")).iter_errors(summary)):
        report.add("summary_schema", "summary.json")
        return
    if summary["samples"] != sum(e["samples"] for e in shard_index["shards"]):
        report.add("summary_mismatch", "summary.json:samples")
    if summary["shards"] != len(shard_index["shards"]):
        report.add("summary_mismatch", "summary.json:shards")


def _check_tables(path: Path, seen: _Seen, report: ValidationReport) -> None:
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
        valid = True
        for i, row in enumerate(rows):
            locations = _schema_locations(validator.iter_errors(row))
            if locations:
                report.add("table_schema", f"{name}[{i}]:{locations[0]}")
                valid = False
                break
        for i, row in enumerate(rows):
            _scan_phi(_strings(row), f"{name}[{i}]", report)
        if name == "index.parquet" and valid:
            _compare_index(name, rows, seen, report)


def _compare_index(name: str, rows: list[dict], seen: _Seen, report: ValidationReport) -> None:
    """The index must list exactly the samples of the readable shards, with their facts."""
    listed = sorted((r["key"], r["shard"]) for r in rows if r["shard"] not in seen.unusable)
    if listed != sorted(seen.occurrences):
        report.add("index_mismatch", name)
    for i, row in enumerate(rows):
        expected = seen.index_fields.get(row["key"])
        if expected is None:
            continue
        for f in INDEX_FIELDS:
            if row[f] != expected[f]:
                report.add("index_mismatch", f"{name}[{i}]:{f}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``refrad validate`` calls this too)."""
    parser = argparse.ArgumentParser(
        prog="refrad validate",
        description="Check a shard folder against schemas/ and semantically; exit 1 on failure.",
    )
    parser.add_argument("path", type=Path, help="folder with shards.json, *.tar, index.parquet")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--languages",
        default="de,en",
        help="comma-separated caption languages every sample must have (default: de,en)",
    )
    args = parser.parse_args(argv)
    languages = tuple(x.strip() for x in args.languages.split(",") if x.strip())
    report = validate_dir(args.path, languages=languages)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
