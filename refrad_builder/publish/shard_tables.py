"""The tables beside the shards: per-bucket index and rejects parts written by the workers,
and their reduction into ``index.parquet``, ``rejects.parquet`` and the run summary.

The reduction streams (polars lazy frames sunk to Parquet, aggregates computed by the query
engine): no step holds every sample's row, let alone an image, in Python.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from refrad_builder.engine.io import atomic_write_via
from refrad_builder.engine.records import SCHEMA_VERSION, Sample

INDEX_SCHEMA = pl.Schema(
    {
        "key": pl.Utf8,
        "split": pl.Utf8,
        "modality": pl.Utf8,
        "language": pl.Utf8,
        "patient": pl.Utf8,
        "study": pl.Utf8,
        "series": pl.Utf8,
        "plane": pl.Utf8,
        "width": pl.Int64,
        "height": pl.Int64,
        "classes": pl.List(pl.Utf8),
        "n_boxes": pl.Int64,
        "n_vqa": pl.Int64,
        "n_grounded": pl.Int64,
        "caption_languages": pl.List(pl.Utf8),
        "image_sha256": pl.Utf8,
        "shard": pl.Utf8,
    }
)
REJECT_SCHEMA = pl.Schema(
    {
        "stage": pl.Utf8,
        "item": pl.Utf8,
        "outcome": pl.Utf8,
        "reason": pl.Utf8,
        "detail": pl.Utf8,
    }
)


def write_parquet(path: Path, write) -> None:
    """Atomically write a polars frame with ``write(tmp_path)``. Polars reports a failed
    write (disk full, I/O error) as a ComputeError that quotes the OS error number; it is
    raised again as that OSError, so the run reports a machine failure, not a program bug."""

    def guarded(tmp: Path) -> None:
        try:
            write(tmp)
        except pl.exceptions.ComputeError as exc:
            code = re.search(r"os error (\d+)", str(exc))
            if code is None:
                raise
            number = int(code.group(1))
            raise OSError(number, os.strerror(number)) from None

    atomic_write_via(path, guarded)


def index_row(sample: Sample, image_sha256: str, shard: str) -> dict[str, Any]:
    """The ``index.parquet`` row of one sample written to ``shard``."""
    return {
        "key": sample.key,
        "split": sample.split,
        "modality": sample.modality,
        "language": sample.language,
        "patient": sample.patient,
        "study": sample.study,
        "series": sample.series,
        "plane": sample.plane,
        "width": sample.width,
        "height": sample.height,
        "classes": [b.class_name for b in sample.boxes],
        "n_boxes": len(sample.boxes),
        "n_vqa": len(sample.vqa),
        "n_grounded": sum(len(v) for v in sample.grounded_captions.values()),
        "caption_languages": sorted(k for k, v in sample.captions.items() if v),
        "image_sha256": image_sha256,
        "shard": shard,
    }


def bucket_tables(folder: Path, item_id: str) -> tuple[Path, Path]:
    """The index and rejects parts of one bucket item."""
    return folder / f"{item_id}.index.parquet", folder / f"{item_id}.rejects.parquet"


def write_bucket_tables(
    folder: Path, item_id: str, rows: list[dict[str, Any]], rejects: list[dict[str, Any]]
) -> None:
    """Write one bucket's index rows and rejects (atomically, fixed schemas)."""
    index_path, rejects_path = bucket_tables(folder, item_id)
    index = pl.DataFrame(rows, schema=INDEX_SCHEMA)
    reject_df = pl.DataFrame(rejects, schema=REJECT_SCHEMA)
    write_parquet(index_path, index.write_parquet)
    write_parquet(rejects_path, reject_df.write_parquet)


def _scan(paths: list[Path], schema: pl.Schema) -> pl.LazyFrame:
    if not paths:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(paths, schema=schema)


def write_index(target: Path, parts: list[Path]) -> None:
    """``index.parquet``: the buckets' rows, one per sample, sorted by key (streamed)."""
    path = target / "index.parquet"
    if not parts:  # as before buckets: a run without samples writes a table without columns
        write_parquet(path, pl.DataFrame().write_parquet)
        return
    frame = _scan(parts, INDEX_SCHEMA).sort("key")
    write_parquet(path, frame.sink_parquet)


def write_rejects(target: Path, upstream: list[dict[str, Any]], parts: list[Path]) -> None:
    """``rejects.parquet``: the other stages' rejects in stage order, then the shards
    stage's own (duplicates) sorted by item."""
    own = _scan(parts, REJECT_SCHEMA).sort("item")
    frame = pl.concat([pl.LazyFrame(upstream, schema=REJECT_SCHEMA), own])
    write_parquet(target / "rejects.parquet", frame.sink_parquet)


def _counts(index: pl.LazyFrame, column: str) -> dict[str, int]:
    """Samples per value of ``column`` (a missing value counts as ``"None"``)."""
    frame = (
        index.select(pl.col(column).cast(pl.Utf8).fill_null("None"))
        .group_by(column)
        .len()
        .collect()
    )
    return dict(sorted(zip(frame[column].to_list(), frame["len"].to_list(), strict=True)))


def summarize(target: Path, shards: int, skipped: dict[str, int]) -> dict[str, Any]:
    """The run summary, from the written ``index.parquet`` and ``rejects.parquet``."""
    index_path = target / "index.parquet"
    has_rows = bool(pl.read_parquet_schema(index_path))
    index = pl.scan_parquet(index_path) if has_rows else pl.LazyFrame(schema=INDEX_SCHEMA)
    totals = index.select(
        pl.len().alias("samples"),
        pl.col("patient").n_unique().alias("patients"),
        pl.col("study").n_unique().alias("studies"),
        (pl.col("n_boxes") > 0).sum().alias("samples_with_boxes"),
        pl.col("n_grounded").sum().alias("grounded_captions"),
        pl.col("n_vqa").sum().alias("vqa_items"),
    ).collect()
    t = {k: int(v or 0) for k, v in totals.row(0, named=True).items()}
    reasons = (
        pl.scan_parquet(target / "rejects.parquet")
        .select(pl.format("{}:{}", "stage", "reason").alias("r"))
        .group_by("r")
        .len()
        .collect()
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "samples": t["samples"],
        "shards": shards,
        "by_split": _counts(index, "split"),
        "by_modality": _counts(index, "modality"),
        "by_language": _counts(index, "language"),
        "patients": t["patients"],
        "studies": t["studies"],
        "samples_with_boxes": t["samples_with_boxes"],
        "grounded_captions": t["grounded_captions"],
        "vqa_items": t["vqa_items"],
        "rejects": dict(sorted(zip(reasons["r"].to_list(), reasons["len"].to_list(), strict=True))),
        "files_left_out_of_series": dict(sorted(skipped.items())),
    }


def kept_splits(target: Path) -> Iterable[tuple[str, str]]:
    """(key, split) of every sample in ``index.parquet``, in key order, batch by batch."""
    path = target / "index.parquet"
    if not pl.read_parquet_schema(path):
        return
    for batch in pq.ParquetFile(path).iter_batches(columns=["key", "split"]):
        yield from zip(
            batch.column("key").to_pylist(), batch.column("split").to_pylist(), strict=True
        )


def summary_md(s: dict) -> str:
    """``summary.md``: the summary for people."""
    lines = [
        "# refrad_builder run summary",
        "",
        f"- samples: {s['samples']} in {s['shards']} shards "
        f"({s['patients']} patients, {s['studies']} studies)",
        f"- by split: {s['by_split']}",
        f"- by modality: {s['by_modality']}",
        f"- by report language: {s['by_language']}",
        f"- samples with boxes: {s['samples_with_boxes']}; grounded captions: "
        f"{s['grounded_captions']}; VQA items: {s['vqa_items']}",
        "",
        "## Rejects (stage:reason -> count)",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in s["rejects"].items()] or ["- none"]
    lines += ["", "## Files left out of a series that went on (stage:reason -> count)", ""]
    lines += [f"- {k}: {v}" for k, v in s["files_left_out_of_series"].items()] or ["- none"]
    return "\n".join(lines) + "\n"
