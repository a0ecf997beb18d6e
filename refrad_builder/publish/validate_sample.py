"""Checks of one WebDataset sample: its JSON against the schema, the PNGs (format, size,
decodability), boxes against the mask, grounding tokens against the boxes, and PHI patterns in
every string. Problems are recorded in a :class:`ValidationReport`, by key and field, never
with the offending text.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator
from PIL import Image
from pydantic import ValidationError
from scipy import ndimage

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
