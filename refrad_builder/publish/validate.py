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
import sys
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from jsonschema import Draft202012Validator

from refrad_builder.anatomy.labels import schema as label_schema
from refrad_builder.engine.records import SCHEMA_VERSION
from refrad_builder.publish.schema_gen import load as load_schema
from refrad_builder.publish.validate_sample import (
    INDEX_FIELDS,
    KEY_RE,
    SHARD_NAME_RE,
    SampleSchema,
    ValidationReport,
    _index_fields,
    _name,
    _scan_phi,
    _schema_locations,
    _strings,
    check_sample,
)


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
