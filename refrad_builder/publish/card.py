"""The dataset card of a shard folder: ``card.md``, ``stats.json`` and plots under ``plots/``.

The card's prose and layout live in ``templates/card.md.j2`` (Jinja2), with the YAML metadata
header that the Hugging Face Hub reads (licence, languages, task categories, size category);
this module only turns the statistics into the template's tables. Everything written is a
pure function of the folder's contents: no times, hosts or paths, sorted keys.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from refrad_builder.engine.io import atomic_write_text
from refrad_builder.publish.card_plots import write_plots
from refrad_builder.publish.card_stats import (
    PLOT_DIR,
    PLOTS,
    STATS,
    TOP_CLASSES,
    compute_with_areas,
)

CARD = "card.md"
# The Hub's size buckets (dataset card metadata `size_categories`).
_SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"))
_SIZE_BUCKETS += ((1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _plot(name: str) -> str:
    return f"![{PLOTS[name]}]({PLOT_DIR}/{name}.png)"


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of ``n`` samples."""
    return next((label for limit, label in _SIZE_BUCKETS if n < limit), "n>10M")


def metadata(stats: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML metadata header (Hugging Face dataset card fields)."""
    return {
        "license": "other",
        "language": ["de", "en"],
        "task_categories": ["image-to-text", "visual-question-answering", "object-detection"],
        "size_categories": [size_category(stats["samples"])],
        "tags": ["medical", "radiology", "ct", "mri", "grounding", "webdataset"],
        "pretty_name": "Grounded bilingual 2D CT/MR corpus",
    }


def _glance(s: dict[str, Any]) -> str:
    grounded = sum(s["grounded_captions"]["captions_by_language"].values())
    rows = [
        ["samples", s["samples"]],
        ["shards", f"{s['shards']} ({_mb(s['bytes'])})"],
        ["patients", s["patients"]],
        ["studies", s["studies"]],
        ["series", s["series"]],
        ["samples with boxes", s["samples_with_boxes"]],
        ["boxes", s["boxes"]["total"]],
        ["grounded captions", grounded],
        ["VQA items", s["vqa"]["items"]],
        ["rejected or failed items", s["rejects"]["total"]],
    ]
    return _table(["", "count"], rows)


def _splits(s: dict[str, Any]) -> str:
    mods = sorted(s["by_modality"])
    rows = [
        [sp, *[s["by_split_and_modality"].get(sp, {}).get(m, 0) for m in mods], s["by_split"][sp]]
        for sp in sorted(s["by_split"])
    ]
    rows.append(["all", *[s["by_modality"][m] for m in mods], s["samples"]])
    return _table(["split", *mods, "samples"], rows)


def _tasks(s: dict[str, Any]) -> str:
    cap, gr = s["captions"], s["grounded_captions"]
    langs = sorted(set(cap["samples_by_language"]) | set(gr["samples_by_language"]))
    rows = [
        ["captions", lg, cap["samples_by_language"].get(lg, 0)]
        + [cap["captions_by_language"].get(lg, 0), ""]
        for lg in langs
    ]
    rows += [
        ["grounded captions", lg, gr["samples_by_language"].get(lg, 0)]
        + [gr["captions_by_language"].get(lg, 0), gr["phrases_by_language"].get(lg, 0)]
        for lg in langs
    ]
    rows += [["VQA", lg, "", k, ""] for lg, k in s["vqa"]["by_language"].items()]
    return _table(["task", "language", "samples", "items", "grounded phrases"], rows)


def _boxes(s: dict[str, Any]) -> str:
    ra, bp = s["boxes"]["relative_area"], s["boxes"]["per_sample"]
    if not ra:
        return "No boxes."
    keys = ("min", "p05", "median", "p95", "max")
    rows = [
        ["box area / image area", *[f"{ra[k]:.5f}" for k in (*keys, "mean")]],
        ["boxes per sample", *[f"{bp[k]:g}" for k in keys], f"{bp['mean']:.1f}"],
    ]
    return _table(["", "min", "p05", "median", "p95", "max", "mean"], rows)


def _provenance(s: dict[str, Any]) -> str:
    pv = s["provenance"]
    rows = [
        ["stage versions", pv["stage_versions"]],
        ["segmenter", pv["segmenters"]],
        ["label schema", pv["label_schemas"]],
        ["text generator", pv["generators"]],
        ["prompt", pv["prompts"]],
    ]
    return _table(
        ["", "value (samples)"],
        [[k, "; ".join(f"`{v}` ({c})" for v, c in d.items()) or "-"] for k, d in rows],
    )


def _context(s: dict[str, Any]) -> dict[str, Any]:
    n = s["samples"]
    top = list(s["classes"].items())[:TOP_CLASSES]
    rj = s["rejects"]
    meta = yaml.safe_dump(metadata(s), sort_keys=False, allow_unicode=True).rstrip("\n")
    return {
        "s": s,
        "metadata": meta,
        "modalities": ", ".join(f"{k} {v}" for k, v in s["by_modality"].items()) or "none",
        "glance": _glance(s),
        "splits": _splits(s),
        "languages": _table(
            ["report language", "samples"], [[k, v] for k, v in s["by_language"].items()]
        ),
        "tasks": _tasks(s),
        "vqa_types": _table(
            ["VQA source / question type", "items"],
            [[k, v] for k, v in s["vqa"]["by_source_and_type"].items()],
        ),
        "top_count": len(top),
        "structures": _table(
            ["class", "samples", "share"], [[f"`{c}`", k, f"{k / max(n, 1):.0%}"] for c, k in top]
        ),
        "boxes": _boxes(s),
        "rejects": _table(
            ["stage:reason", "items"], [[k, v] for k, v in rj["by_stage_and_reason"].items()]
        )
        if rj["total"]
        else "None.",
        "provenance": _provenance(s),
        "files": _table(
            ["shard", "split", "samples", "size", "sha256"],
            [
                [f"`{f['name']}`", f["split"], f["samples"], _mb(f["bytes"]), f"`{f['sha256']}`"]
                for f in s["shard_files"]
            ],
        ),
        "plot": _plot,
    }


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("refrad_builder.publish", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown, not HTML
    )
    return env.get_template("card.md.j2")


def render_card(stats: dict[str, Any]) -> str:
    """The Markdown dataset card for ``stats`` (as computed by ``card_stats.compute_stats``)."""
    return _template().render(**_context(stats))


def write_card(out_dir: Path) -> Path:
    """Write ``card.md``, ``stats.json`` and ``plots/*.png`` into a shard folder; return the card."""
    out_dir = Path(out_dir)
    stats = compute_with_areas(out_dir)
    areas = stats.pop("_areas")
    write_plots(stats, areas, out_dir / PLOT_DIR)
    atomic_write_text(
        out_dir / STATS, json.dumps(stats, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    card = out_dir / CARD
    atomic_write_text(card, render_card(stats))
    return card
