"""The dataset card of a shard folder: ``card.md``, ``stats.json`` and plots under ``plots/``.

Counts come from ``index.parquet`` and ``rejects.parquet`` (polars); what the index does not
hold (task items, box geometry, provenance) is read from the sample JSONs in the tar shards,
which are the source of truth that downstream consumers read. Everything written is a pure
function of the folder's contents: no times, hosts or paths, sorted keys, and PNGs without
the matplotlib version stamp, so an unchanged run rewrites identical bytes.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from refrad_builder.engine.io import atomic_write_text, atomic_write_via, read_json
from refrad_builder.text import grounding

CARD = "card.md"
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
_INDEX_SCHEMA = {
    "key": pl.Utf8,
    "split": pl.Utf8,
    "shard": pl.Utf8,
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
}
_REJECT_SCHEMA = {
    "stage": pl.Utf8,
    "item": pl.Utf8,
    "outcome": pl.Utf8,
    "reason": pl.Utf8,
    "detail": pl.Utf8,
}


# --- reading a shard folder ---------------------------------------------------------------


def shard_paths(shard_dir: Path) -> list[Path]:
    """The tar shards of a folder, in ``shards.json`` order (sorted names without one).

    A path to one tar file is that shard alone.
    """
    shard_dir = Path(shard_dir)
    if shard_dir.is_file():
        return [shard_dir]
    index = shard_dir / "shards.json"
    if index.exists():
        return [shard_dir / s["name"] for s in read_json(index)["shards"]]
    return sorted(shard_dir.glob("*.tar"))


def iter_samples(shard_dir: Path, fields: tuple[str, ...] = ("json",)) -> Iterator[dict]:
    """Samples of the folder's shards as ``{"__key__": key, field: bytes, ...}``.

    Only the requested fields (tar member extensions such as ``json`` or ``image.png``) are
    read; members are grouped by key in shard order, as WebDataset writes them.
    """
    for path in shard_paths(shard_dir):
        with tarfile.open(path) as tar:
            current: dict[str, Any] | None = None
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                if current is None or current["__key__"] != key:
                    if current is not None:
                        yield current
                    current = {"__key__": key}
                if ext in fields:
                    current[ext] = tar.extractfile(member).read()
            if current is not None:
                yield current


def _read_index(out_dir: Path) -> pl.DataFrame:
    path = out_dir / "index.parquet"
    df = pl.read_parquet(path) if path.exists() else pl.DataFrame()
    if df.height == 0:
        return pl.DataFrame(schema=_INDEX_SCHEMA)
    return df


def _read_rejects(out_dir: Path) -> pl.DataFrame:
    path = out_dir / "rejects.parquet"
    df = pl.read_parquet(path) if path.exists() else pl.DataFrame()
    if df.height == 0:
        return pl.DataFrame(schema=_REJECT_SCHEMA)
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


def _sample_stats(out_dir: Path) -> dict[str, Any]:
    captions: dict[str, Counter] = {"samples": Counter(), "items": Counter()}
    grounded: dict[str, Counter] = {"samples": Counter(), "items": Counter(), "phrases": Counter()}
    vqa = {k: Counter() for k in ("source", "question_type", "language", "source_type")}
    vqa_samples = 0
    prov: dict[str, Counter] = {
        k: Counter() for k in ("stage_versions", "segmenter", "label_schema", "generator", "prompt")
    }
    rel_areas: list[float] = []
    boxes_per_sample: list[int] = []
    first = None
    n = 0
    for rec in iter_samples(out_dir):
        if "json" not in rec:
            continue
        s = json.loads(rec["json"])
        if first is None:
            first = s.get("provenance")
        n += 1
        for lang, items in sorted(s.get("captions", {}).items()):
            if items:
                captions["samples"][lang] += 1
                captions["items"][lang] += len(items)
        for lang, items in sorted(s.get("grounded_captions", {}).items()):
            if items:
                grounded["samples"][lang] += 1
                grounded["items"][lang] += len(items)
                grounded["phrases"][lang] += sum(len(grounding.parse(t)) for t in items)
        items = s.get("vqa", [])
        vqa_samples += bool(items)
        for q in items:
            vqa["source"][q["source"]] += 1
            vqa["question_type"][q["question_type"]] += 1
            vqa["language"][q["language"]] += 1
            vqa["source_type"][f"{q['source']}/{q['question_type']}"] += 1
        image_area = max(1, int(s["width"]) * int(s["height"]))
        boxes = s.get("boxes", [])
        boxes_per_sample.append(len(boxes))
        for b in boxes:
            x0, y0, x1, y1 = b["bbox"]
            rel_areas.append(max(0, x1 - x0) * max(0, y1 - y0) / image_area)
        p = s.get("provenance", {})
        versions = p.get("stage_versions", {})
        prov["stage_versions"][", ".join(f"{k} {v}" for k, v in sorted(versions.items()))] += 1
        prov["segmenter"][f"{p.get('segmenter')} {p.get('segmenter_version')}"] += 1
        prov["label_schema"][str(p.get("label_schema"))] += 1
        prov["generator"][str(p.get("generator"))] += 1
        prov["prompt"][str(p.get("prompt") or "none (rules)")] += 1
    areas = np.asarray(rel_areas, dtype=np.float64)
    hist, _ = np.histogram(np.clip(areas, AREA_BIN_EDGES[0], 1.0), bins=AREA_BIN_EDGES)
    per_sample = np.asarray(boxes_per_sample, dtype=np.float64)
    return {
        "samples_in_shards": n,
        "captions": {
            "samples_by_language": dict(sorted(captions["samples"].items())),
            "captions_by_language": dict(sorted(captions["items"].items())),
        },
        "grounded_captions": {
            "samples_by_language": dict(sorted(grounded["samples"].items())),
            "captions_by_language": dict(sorted(grounded["items"].items())),
            "phrases_by_language": dict(sorted(grounded["phrases"].items())),
        },
        "vqa": {
            "samples": vqa_samples,
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
            "example": first,
            "stage_versions": _ranked(prov["stage_versions"]),
            "segmenters": _ranked(prov["segmenter"]),
            "label_schemas": _ranked(prov["label_schema"]),
            "generators": _ranked(prov["generator"]),
            "prompts": _ranked(prov["prompt"]),
        },
        # The raw areas feed the histogram plot only; callers pop them before writing JSON.
        "_areas": areas,
    }


def compute_stats(out_dir: Path) -> dict[str, Any]:
    """Statistics of a shard folder as one JSON-able dict (what ``stats.json`` holds)."""
    out_dir = Path(out_dir)
    stats = _compute(out_dir)
    stats.pop("_areas")
    return stats


def _compute(out_dir: Path) -> dict[str, Any]:
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


# --- plots --------------------------------------------------------------------------------


def _figure(height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, height), dpi=FIG_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=FIG_DPI, metadata={"Software": None})

    atomic_write_via(path, write)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _hbar(path: Path, title: str, counts: dict[str, int], xlabel: str, empty: str) -> None:
    fig = _figure(max(2.4, 0.9 + 0.28 * len(counts)))
    ax = fig.add_subplot()
    if counts:
        labels = list(counts)[::-1]
        values = [counts[k] for k in labels]
        bars = ax.barh(labels, values, color="#3b6ea5")
        ax.bar_label(bars, padding=2, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.margins(x=0.12)
    else:
        _empty(ax, empty)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def _grouped(
    path: Path, title: str, nested: dict[str, dict[str, int]], ylabel: str, empty: str
) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    groups = list(nested)
    series = sorted({k for inner in nested.values() for k in inner})
    if groups and series:
        width = 0.8 / len(series)
        x = np.arange(len(groups))
        for i, name in enumerate(series):
            vals = [nested[g].get(name, 0) for g in groups]
            bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name)
            ax.bar_label(bars, padding=2, fontsize=8)
        ax.set_xticks(x, groups)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.margins(y=0.15)
    else:
        _empty(ax, empty)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def write_plots(stats: dict[str, Any], areas: np.ndarray, plot_dir: Path) -> dict[str, Path]:
    """Render the card's plots (fixed size, dpi and style) as PNGs into ``plot_dir``."""
    import matplotlib.style

    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: plot_dir / f"{name}.png" for name in PLOTS}
    none = "no samples"
    # The default style, whatever a user's matplotlibrc says, so the plots depend on data only.
    with matplotlib.style.context("default"):
        _grouped(
            paths["samples_by_modality"],
            PLOTS["samples_by_modality"],
            _transpose(stats["by_split_and_modality"]),
            "samples",
            none,
        )
        _hbar(
            paths["samples_by_language"],
            PLOTS["samples_by_language"],
            stats["by_language"],
            "samples",
            none,
        )
        _hbar(
            paths["samples_by_split"], PLOTS["samples_by_split"], stats["by_split"], "samples", none
        )
        tasks: dict[str, int] = {}
        for lang, k in stats["captions"]["samples_by_language"].items():
            tasks[f"captions ({lang})"] = k
        for lang, k in stats["grounded_captions"]["samples_by_language"].items():
            tasks[f"grounded captions ({lang})"] = k
        tasks["VQA"] = stats["vqa"]["samples"]
        tasks["boxes"] = stats["samples_with_boxes"]
        _hbar(
            paths["samples_by_task"],
            PLOTS["samples_by_task"],
            tasks if stats["samples"] else {},
            "samples",
            none,
        )
        by_source: dict[str, dict[str, int]] = {}
        for st, k in stats["vqa"]["by_source_and_type"].items():
            source, qtype = st.split("/", 1)
            by_source.setdefault(source, {})[qtype] = k
        _grouped(paths["vqa_by_type"], PLOTS["vqa_by_type"], by_source, "items", "no VQA items")
        top = dict(list(stats["classes"].items())[:TOP_CLASSES])
        _hbar(paths["top_structures"], PLOTS["top_structures"], top, "samples", "no boxes")
        _area_hist(paths["box_sizes"], areas)
        _hbar(
            paths["slices_per_study"],
            PLOTS["slices_per_study"],
            {f"{k} slices": v for k, v in stats["slices_per_study"]["histogram"].items()},
            "studies",
            none,
        )
        _hbar(
            paths["rejects_by_reason"],
            PLOTS["rejects_by_reason"],
            stats["rejects"]["by_stage_and_reason"],
            "items",
            "no rejects",
        )
    return paths


def _transpose(nested: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for outer, inner in nested.items():
        for k, v in inner.items():
            out.setdefault(k, {})[outer] = v
    return dict(sorted(out.items()))


def _area_hist(path: Path, areas: np.ndarray) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    if areas.size:
        ax.hist(np.clip(areas, AREA_BIN_EDGES[0], 1.0), bins=AREA_BIN_EDGES, color="#3b6ea5")
        ax.set_xscale("log")
        ax.set_xlabel("box area / image area (log scale)")
        ax.set_ylabel("boxes")
    else:
        _empty(ax, "no boxes")
    ax.set_title(PLOTS["box_sizes"])
    fig.tight_layout()
    _save(fig, path)


# --- the card -----------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _plot(name: str) -> str:
    return f"![{PLOTS[name]}]({PLOT_DIR}/{name}.png)"


def render_card(stats: dict[str, Any]) -> str:
    """The Markdown dataset card for ``stats`` (as computed by :func:`compute_stats`)."""
    s = stats
    n = s["samples"]
    modalities = ", ".join(f"{k} {v}" for k, v in s["by_modality"].items()) or "none"
    lines = [
        "# Dataset card: grounded bilingual 2D CT/MR corpus",
        "",
        "## What it is",
        "",
        f"{n} de-identified 2D slices from CT and MR studies ({modalities}), each paired with "
        "text from its radiology report: captions in German and English, grounded captions "
        "whose anatomy phrases carry boxes, and visual question answering (VQA) items. Boxes "
        "are one union box per anatomical class per slice, derived from a segmentation in a "
        "unified CT+MR label schema. It is meant for training and evaluating spatially "
        "grounded radiology vision-language models (RefRad2D-style).",
        "",
        "Each WebDataset sample holds `image.png` (16-bit lossless stored values; rescale "
        "slope/intercept in the JSON give HU for CT), `mask.png` (uint8 label map) and `json` "
        "(schema `sample`: modality, plane, spacing, display windows, pseudonymous "
        "patient/study/series ids, split, captions and grounded captions by language, boxes, "
        "VQA, provenance). Boxes are pixel edges `[x_min, y_min, x_max, y_max]` of the stored "
        "image; grounded phrases use the `<p bbox=<locXXXX>...> id=<segNNN>>phrase</p>` form "
        "with 512 bins, x before y. `index.parquet` has one row per sample.",
        "",
        "## At a glance",
        "",
        *_table(
            ["", "count"],
            [
                ["samples", n],
                ["shards", f"{s['shards']} ({_mb(s['bytes'])})"],
                ["patients", s["patients"]],
                ["studies", s["studies"]],
                ["series", s["series"]],
                ["samples with boxes", s["samples_with_boxes"]],
                ["boxes", s["boxes"]["total"]],
                ["grounded captions", sum(s["grounded_captions"]["captions_by_language"].values())],
                ["VQA items", s["vqa"]["items"]],
                ["rejected or failed items", s["rejects"]["total"]],
            ],
        ),
        "",
    ]
    if s["samples_in_shards"] != n:
        lines += [
            f"**Warning:** the shards hold {s['samples_in_shards']} samples but the index "
            f"lists {n}.",
            "",
        ]

    splits = sorted(s["by_split"])
    mods = sorted(s["by_modality"])
    lines += [
        "## Splits and modalities",
        "",
        "Splits are by patient: no patient is in two splits.",
        "",
    ]
    rows = [
        [sp, *[s["by_split_and_modality"].get(sp, {}).get(m, 0) for m in mods], s["by_split"][sp]]
        for sp in splits
    ]
    rows.append(["all", *[s["by_modality"][m] for m in mods], n])
    lines += [*_table(["split", *mods, "samples"], rows), ""]
    lines += [_plot("samples_by_modality"), "", _plot("samples_by_split"), ""]

    lines += [
        "## Languages",
        "",
        "The report language is the language the source report was written in; captions "
        "exist in both languages (the other one translated or generated).",
        "",
    ]
    lines += _table(["report language", "samples"], [[k, v] for k, v in s["by_language"].items()])
    lines += ["", _plot("samples_by_language"), ""]

    cap, gr = s["captions"], s["grounded_captions"]
    langs = sorted(set(cap["samples_by_language"]) | set(gr["samples_by_language"]))
    lines += ["## Tasks", ""]
    lines += _table(
        ["task", "language", "samples", "items", "grounded phrases"],
        [
            [
                "captions",
                lg,
                cap["samples_by_language"].get(lg, 0),
                cap["captions_by_language"].get(lg, 0),
                "",
            ]
            for lg in langs
        ]
        + [
            [
                "grounded captions",
                lg,
                gr["samples_by_language"].get(lg, 0),
                gr["captions_by_language"].get(lg, 0),
                gr["phrases_by_language"].get(lg, 0),
            ]
            for lg in langs
        ]
        + [["VQA", lg, "", k, ""] for lg, k in s["vqa"]["by_language"].items()],
    )
    lines += ["", _plot("samples_by_task"), ""]
    lines += _table(
        ["VQA source / question type", "items"],
        [[k, v] for k, v in s["vqa"]["by_source_and_type"].items()],
    )
    lines += ["", _plot("vqa_by_type"), ""]

    top = list(s["classes"].items())[:TOP_CLASSES]
    lines += [
        "## Structures",
        "",
        f"{len(s['classes'])} classes have at least one box; the {len(top)} most frequent "
        "(samples with a box of the class):",
        "",
    ]
    lines += _table(
        ["class", "samples", "share"], [[f"`{c}`", k, f"{k / max(n, 1):.0%}"] for c, k in top]
    )
    lines += ["", _plot("top_structures"), ""]

    ra, bp = s["boxes"]["relative_area"], s["boxes"]["per_sample"]
    lines += ["## Boxes", ""]
    if ra:
        lines += _table(
            ["", "min", "p05", "median", "p95", "max", "mean"],
            [
                [
                    "box area / image area",
                    *[f"{ra[k]:.5f}" for k in ("min", "p05", "median", "p95", "max", "mean")],
                ],
                [
                    "boxes per sample",
                    *[f"{bp[k]:g}" for k in ("min", "p05", "median", "p95", "max")],
                    f"{bp['mean']:.1f}",
                ],
            ],
        )
    else:
        lines += ["No boxes."]
    lines += ["", _plot("box_sizes"), ""]

    sps = s["slices_per_study"]
    lines += ["## Slices per study", ""]
    if n:
        lines += [
            f"{s['studies']} studies; slices per study: min {sps['min']:g}, median "
            f"{sps['median']:g}, mean {sps['mean']:.1f}, max {sps['max']:g}.",
        ]
    lines += ["", _plot("slices_per_study"), ""]

    rj = s["rejects"]
    lines += [
        "## Rejects",
        "",
        "Items that did not become samples: permanent drops with a reason (unreadable file, "
        "no pixel data, duplicate image, ...) and transient errors that a rerun retries.",
        "",
    ]
    if rj["total"]:
        lines += _table(
            ["stage:reason", "items"], [[k, v] for k, v in rj["by_stage_and_reason"].items()]
        )
    else:
        lines += ["None."]
    lines += ["", _plot("rejects_by_reason"), ""]

    pv = s["provenance"]
    lines += [
        "## How it was made",
        "",
        "DICOM headers are read once (ingest) and every series is de-identified (DICOM PS3.15 "
        "Annex E Basic Profile, keyed UID remapping, per-patient date shift) before anything "
        "else opens it; report text is de-identified (known header PHI and recognizers for "
        "German and English). Volumes are decoded and reoriented, segmented into the unified "
        "label schema, and 2D slices are chosen (report-referenced first, then organ coverage). "
        "Text items come from rules or an LLM whose answers are checked against the report "
        "and the visible anatomy. Shards are split by patient and validated (schemas, "
        "checksums, boxes, PHI patterns).",
        "",
    ]
    prov_rows = [
        ["stage versions", pv["stage_versions"]],
        ["segmenter", pv["segmenters"]],
        ["label schema", pv["label_schemas"]],
        ["text generator", pv["generators"]],
        ["prompt", pv["prompts"]],
    ]
    lines += _table(
        ["", "value (samples)"],
        [[k, "; ".join(f"`{v}` ({c})" for v, c in d.items()) or "-"] for k, d in prov_rows],
    )
    lines += ["", "## Files", ""]
    lines += _table(
        ["shard", "split", "samples", "size", "sha256"],
        [
            [f"`{f['name']}`", f["split"], f["samples"], _mb(f["bytes"]), f"`{f['sha256']}`"]
            for f in s["shard_files"]
        ],
    )
    lines += [
        "",
        "Machine-readable statistics: `stats.json`.",
        "",
        "## Privacy and limitations",
        "",
        "Identifiers are keyed pseudonyms; dates are shifted per patient; no names, dates of "
        "birth or original UIDs are kept. Automatic de-identification can miss PHI (for "
        "example text burned into pixels or unusual report phrasing); review before sharing "
        "beyond the data owner's governance. Boxes come from automatic segmentation and "
        "rule- or LLM-made text is not radiologist-verified.",
        "",
    ]
    return "\n".join(lines)


def write_card(out_dir: Path) -> Path:
    """Write ``card.md``, ``stats.json`` and ``plots/*.png`` into a shard folder; return the card."""
    out_dir = Path(out_dir)
    stats = _compute(out_dir)
    areas = stats.pop("_areas")
    write_plots(stats, areas, out_dir / PLOT_DIR)
    atomic_write_text(
        out_dir / STATS, json.dumps(stats, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    card = out_dir / CARD
    atomic_write_text(card, render_card(stats))
    return card
