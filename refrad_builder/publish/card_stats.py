"""Statistics of a shard folder (what ``stats.json`` holds).

Counts come from ``index.parquet`` and ``rejects.parquet`` (polars); what the index does not
hold (task items, box geometry, provenance) is read from the sample JSONs in the tar shards,
which are the source of truth that downstream consumers read.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from refrad_builder.engine.io import read_json
from refrad_builder.publish.shard_reading import iter_samples
from refrad_builder.publish.shard_tables import INDEX_SCHEMA, REJECT_SCHEMA
from refrad_builder.text import grounding

STATS = "stats.json"
PLOT_DIR = "plots"
TOP_CLASSES = 25
FIG_DPI = 100
# Relative box areas span ~5 decades (a rib tip to the whole body), so bins are logarithmic.
AREA_BIN_EDGES = tuple(float(10.0**e) for e in np.arange(-5.0, 0.01, 0.5))
PLOTS = {
    "samples_by_modality": "Samples by modality and split",
    "samples_by_language": "Samples by report language",
    "samples_by_split": "Samples by split",
    "samples_by_task": "Samples by task",
    "vqa_by_type": "VQA items by source and question type",
    "top_structures": "Most frequent structures (samples with a box)",
    "box_sizes": "Box area relative to the image",
    "slices_per_study": "Slices (samples) per study",
    "rejects_by_reason": "Rejects by stage and reason",
}


def _read_index(out_dir: Path) -> pl.DataFrame:
    path = out_dir / "index.parquet"
    df = pl.read_parquet(path) if path.exists() else pl.DataFrame()
    if df.height == 0:
        return pl.DataFrame(schema=INDEX_SCHEMA)
    return df


def _read_rejects(out_dir: Path) -> pl.DataFrame:
    path = out_dir / "rejects.parquet"
    df = pl.read_parquet(path) if path.exists() else pl.DataFrame()
    if df.height == 0:
        return pl.DataFrame(schema=REJECT_SCHEMA)
    return df


# --- statistics ---------------------------------------------------------------------------


def _counts(df: pl.DataFrame, column: str) -> dict[str, int]:
    if df.height == 0:
        return {}
    vc = df.select(pl.col(column).cast(pl.Utf8).fill_null("unknown")).to_series().value_counts()
    return dict(sorted(zip(vc[column].to_list(), vc["count"].to_list(), strict=True)))


def _nested_counts(df: pl.DataFrame, outer: str, inner: str) -> dict[str, dict[str, int]]:
    if df.height == 0:
        return {}
    g = (
        df.select(
            pl.col(outer).cast(pl.Utf8).fill_null("unknown"),
            pl.col(inner).cast(pl.Utf8).fill_null("unknown"),
        )
        .group_by([outer, inner])
        .len()
        .sort([outer, inner])
    )
    out: dict[str, dict[str, int]] = {}
    for o, i, n in g.iter_rows():
        out.setdefault(o, {})[i] = n
    return out


def _describe(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    q = np.percentile(values, [0, 5, 25, 50, 75, 95, 100])
    keys = ("min", "p05", "p25", "median", "p75", "p95", "max")
    out = {k: round(float(v), 6) for k, v in zip(keys, q, strict=True)}
    out["mean"] = round(float(values.mean()), 6)
    return out


def _ranked(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


class _SampleTally:
    """Counts over the sample JSONs of the shards (what the index does not hold)."""

    def __init__(self) -> None:
        self.n = 0
        self.first: dict | None = None
        self.captions = {k: Counter() for k in ("samples", "items")}
        self.grounded = {k: Counter() for k in ("samples", "items", "phrases")}
        self.vqa = {k: Counter() for k in ("source", "question_type", "language", "source_type")}
        self.vqa_samples = 0
        keys = ("stage_versions", "segmenter", "label_schema", "generator", "prompt")
        self.prov: dict[str, Counter] = {k: Counter() for k in keys}
        self.rel_areas: list[float] = []
        self.boxes_per_sample: list[int] = []

    def add(self, s: dict) -> None:
        if self.first is None:
            self.first = s.get("provenance")
        self.n += 1
        for lang, items in sorted(s.get("captions", {}).items()):
            if items:
                self.captions["samples"][lang] += 1
                self.captions["items"][lang] += len(items)
        for lang, items in sorted(s.get("grounded_captions", {}).items()):
            if items:
                self.grounded["samples"][lang] += 1
                self.grounded["items"][lang] += len(items)
                self.grounded["phrases"][lang] += sum(len(grounding.parse(t)) for t in items)
        items = s.get("vqa", [])
        self.vqa_samples += bool(items)
        for q in items:
            self.vqa["source"][q["source"]] += 1
            self.vqa["question_type"][q["question_type"]] += 1
            self.vqa["language"][q["language"]] += 1
            self.vqa["source_type"][f"{q['source']}/{q['question_type']}"] += 1
        image_area = max(1, int(s["width"]) * int(s["height"]))
        boxes = s.get("boxes", [])
        self.boxes_per_sample.append(len(boxes))
        for b in boxes:
            x0, y0, x1, y1 = b["bbox"]
            self.rel_areas.append(max(0, x1 - x0) * max(0, y1 - y0) / image_area)
        self._add_provenance(s.get("provenance", {}))

    def _add_provenance(self, p: dict) -> None:
        versions = p.get("stage_versions", {})
        self.prov["stage_versions"][", ".join(f"{k} {v}" for k, v in sorted(versions.items()))] += 1
        self.prov["segmenter"][f"{p.get('segmenter')} {p.get('segmenter_version')}"] += 1
        self.prov["label_schema"][str(p.get("label_schema"))] += 1
        self.prov["generator"][str(p.get("generator"))] += 1
        self.prov["prompt"][str(p.get("prompt") or "none (rules)")] += 1

    def result(self) -> dict[str, Any]:
        areas = np.asarray(self.rel_areas, dtype=np.float64)
        hist, _ = np.histogram(np.clip(areas, AREA_BIN_EDGES[0], 1.0), bins=AREA_BIN_EDGES)
        per_sample = np.asarray(self.boxes_per_sample, dtype=np.float64)
        cap, gr, vqa, prov = self.captions, self.grounded, self.vqa, self.prov
        return {
            "samples_in_shards": self.n,
            "captions": {
                "samples_by_language": dict(sorted(cap["samples"].items())),
                "captions_by_language": dict(sorted(cap["items"].items())),
            },
            "grounded_captions": {
                "samples_by_language": dict(sorted(gr["samples"].items())),
                "captions_by_language": dict(sorted(gr["items"].items())),
                "phrases_by_language": dict(sorted(gr["phrases"].items())),
            },
            "vqa": {
                "samples": self.vqa_samples,
                "items": int(sum(vqa["source"].values())),
                "by_source": dict(sorted(vqa["source"].items())),
                "by_question_type": dict(sorted(vqa["question_type"].items())),
                "by_language": dict(sorted(vqa["language"].items())),
                "by_source_and_type": dict(sorted(vqa["source_type"].items())),
            },
            "boxes": {
                "total": int(areas.size),
                "per_sample": _describe(per_sample),
                "relative_area": _describe(areas),
                "relative_area_histogram": [
                    {"lo": round(lo, 8), "hi": round(hi, 8), "count": int(c)}
                    for lo, hi, c in zip(AREA_BIN_EDGES[:-1], AREA_BIN_EDGES[1:], hist, strict=True)
                ],
            },
            "provenance": {
                "example": self.first,
                "stage_versions": _ranked(prov["stage_versions"]),
                "segmenters": _ranked(prov["segmenter"]),
                "label_schemas": _ranked(prov["label_schema"]),
                "generators": _ranked(prov["generator"]),
                "prompts": _ranked(prov["prompt"]),
            },
            # The raw areas feed the histogram plot only; callers pop them before writing JSON.
            "_areas": areas,
        }


def _sample_stats(out_dir: Path) -> dict[str, Any]:
    tally = _SampleTally()
    for rec in iter_samples(out_dir):
        if "json" in rec:
            tally.add(json.loads(rec["json"]))
    return tally.result()


def compute_stats(out_dir: Path) -> dict[str, Any]:
    """Statistics of a shard folder as one JSON-able dict (what ``stats.json`` holds)."""
    out_dir = Path(out_dir)
    stats = compute_with_areas(out_dir)
    stats.pop("_areas")
    return stats


def compute_with_areas(out_dir: Path) -> dict[str, Any]:
    index = _read_index(out_dir)
    rejects = _read_rejects(out_dir)
    shards_meta = read_json(out_dir / "shards.json") if (out_dir / "shards.json").exists() else {}
    shards = shards_meta.get("shards", [])
    per_sample = _sample_stats(out_dir)

    classes = Counter()
    if index.height:
        vc = index.select(pl.col("classes").explode().drop_nulls()).to_series().value_counts()
        classes.update(dict(zip(vc["classes"].to_list(), vc["count"].to_list(), strict=True)))
    per_study = (
        index.group_by("study").len()["len"].to_numpy().astype(np.float64)
        if index.height
        else np.zeros(0)
    )
    per_study_hist = Counter(int(v) for v in per_study)
    reasons = Counter()
    for stage, reason, k in (
        rejects.group_by(["stage", "reason"]).len().iter_rows() if rejects.height else []
    ):
        reasons[f"{stage}:{reason}"] = k

    return {
        "schema_version": shards_meta.get("schema_version"),
        "samples": index.height,
        "samples_in_shards": per_sample.pop("samples_in_shards"),
        "shards": len(shards),
        "bytes": int(sum(s["bytes"] for s in shards)),
        "patients": index["patient"].n_unique() if index.height else 0,
        "studies": index["study"].n_unique() if index.height else 0,
        "series": index["series"].n_unique() if index.height else 0,
        "by_split": _counts(index, "split"),
        "by_modality": _counts(index, "modality"),
        "by_language": _counts(index, "language"),
        "by_plane": _counts(index, "plane"),
        "by_split_and_modality": _nested_counts(index, "split", "modality"),
        "by_modality_and_language": _nested_counts(index, "modality", "language"),
        "samples_with_boxes": int((index["n_boxes"] > 0).sum()) if index.height else 0,
        "samples_with_grounded_captions": (
            int((index["n_grounded"] > 0).sum()) if index.height else 0
        ),
        "samples_with_vqa": int((index["n_vqa"] > 0).sum()) if index.height else 0,
        **per_sample,
        "classes": _ranked(classes),
        "slices_per_study": {
            **_describe(per_study),
            "histogram": {str(k): v for k, v in sorted(per_study_hist.items())},
        },
        "rejects": {
            "total": rejects.height,
            "by_outcome": _counts(rejects, "outcome"),
            "by_stage_and_reason": _ranked(reasons),
        },
        "shard_files": [
            {k: s[k] for k in ("name", "split", "samples", "bytes", "sha256")} for s in shards
        ],
        "plots": {name: f"{PLOT_DIR}/{name}.png" for name in PLOTS},
    }
