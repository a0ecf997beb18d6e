"""The dataset card's plots: fixed size, dpi and style, PNGs without the matplotlib version
stamp, so an unchanged run rewrites identical bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from refrad_builder.engine.io import atomic_write_via
from refrad_builder.publish.card_stats import AREA_BIN_EDGES, FIG_DPI, PLOTS, TOP_CLASSES


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
