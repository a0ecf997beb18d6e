"""``refrad preview``: one self-contained HTML page to look at the samples of a shard folder.

Per sample: the display image (CT through its soft-tissue window, MR through its percentile
window) with the boxes and class names as an SVG overlay, the captions in every language, the
grounded captions with their boxed phrases highlighted (hovering a phrase highlights its box),
and the VQA items. A plain-JS filter by task and modality reads and writes the URL fragment
(``#task=vqa&modality=MR``). Images are inline base64 PNGs and a Content-Security-Policy
forbids every other source, so the page never touches the network.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from refrad_builder.engine.io import atomic_write_text
from refrad_builder.imaging.png import decode_png
from refrad_builder.imaging.windows import stored_to_display
from refrad_builder.publish.shard_reading import iter_samples
from refrad_builder.text import grounding

TASKS = {"captions": "Captions", "grounding": "Grounded captions", "vqa": "VQA"}
BOX_COLOUR = "#ff00ff"
MARK_COLOUR = "#00ffff"
MAX_SIDE = 512
DISPLAY_PX = 460
LABEL_PX = 11
CT_DISPLAY_WINDOW = "soft_tissue"

_CSS = """
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #1b1b1b; background: #f4f4f4; }
header { position: sticky; top: 0; z-index: 2; background: #20252b; color: #fff;
  padding: 8px 16px; display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
header h1 { font-size: 16px; margin: 0 12px 0 0; }
header label { display: flex; gap: 6px; align-items: center; }
main { padding: 12px 16px; }
article { display: grid; grid-template-columns: var(--img) 1fr; gap: 16px; background: #fff;
  border: 1px solid #d6d6d6; border-radius: 6px; padding: 12px; margin-bottom: 14px; }
article h2 { font-size: 14px; margin: 0 0 6px; font-family: ui-monospace, monospace; }
.meta { color: #555; font-size: 12px; margin-bottom: 8px; }
figure { margin: 0; position: sticky; top: 52px; align-self: start; }
figure svg { width: var(--img); height: auto; display: block; background: #000; }
svg rect.box { fill: none; stroke: var(--box); stroke-width: 2px;
  vector-effect: non-scaling-stroke; shape-rendering: crispEdges; }
svg rect.box.hl { stroke: #00ff00; stroke-width: 4px; }
svg text.label { fill: #fff; stroke: #000; stroke-width: 2px; paint-order: stroke;
  vector-effect: non-scaling-stroke; font-family: sans-serif; }
body.nolabels svg text.label { display: none; }
section h3 { font-size: 13px; margin: 10px 0 4px; color: #333; text-transform: uppercase;
  letter-spacing: .04em; }
.lang { display: inline-block; min-width: 24px; font-size: 11px; font-weight: 600;
  color: #fff; background: #5a6b7d; border-radius: 3px; padding: 0 4px; margin-right: 6px;
  text-align: center; }
ul, ol { margin: 2px 0; padding-left: 20px; }
mark.g { background: var(--mark); color: #000; padding: 0 1px; border-radius: 2px; cursor: default; }
.qt { font-size: 11px; color: #666; margin-right: 4px; }
.ans { font-weight: 600; }
.choices { color: #666; font-size: 12px; }
"""

_JS = """
(function () {
  var items = Array.prototype.slice.call(document.querySelectorAll("article.sample"));
  var task = document.getElementById("f-task");
  var modality = document.getElementById("f-modality");
  var labels = document.getElementById("f-labels");
  var count = document.getElementById("count");
  function has(select, value) {
    return Array.prototype.some.call(select.options, function (o) { return o.value === value; });
  }
  function fromHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var t = params.get("task") || params.get("filter") || "all";
    var m = params.get("modality") || "all";
    task.value = has(task, t) ? t : "all";
    modality.value = has(modality, m) ? m : "all";
    labels.checked = params.get("labels") !== "0";
  }
  function toHash() {
    var parts = [];
    if (task.value !== "all") parts.push("task=" + encodeURIComponent(task.value));
    if (modality.value !== "all") parts.push("modality=" + encodeURIComponent(modality.value));
    if (!labels.checked) parts.push("labels=0");
    history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname);
  }
  function apply() {
    var t = task.value, m = modality.value, shown = 0;
    items.forEach(function (a) {
      var tasks = a.getAttribute("data-tasks").split(" ");
      var show = (t === "all" || tasks.indexOf(t) >= 0) &&
                 (m === "all" || a.getAttribute("data-modality") === m);
      a.hidden = !show;
      if (show) shown += 1;
      a.querySelectorAll("section[data-task]").forEach(function (s) {
        s.hidden = t !== "all" && s.getAttribute("data-task") !== t;
      });
    });
    document.body.classList.toggle("nolabels", !labels.checked);
    count.textContent = shown + " of " + items.length + " shown";
    document.body.setAttribute("data-shown", String(shown));
  }
  [task, modality, labels].forEach(function (el) {
    el.addEventListener("change", function () { toHash(); apply(); });
  });
  window.addEventListener("hashchange", function () { fromHash(); apply(); });
  document.addEventListener("mouseover", function (e) {
    var mark = e.target.closest && e.target.closest("mark.g");
    if (!mark) return;
    var art = mark.closest("article");
    art.querySelectorAll("rect.box").forEach(function (r) {
      r.classList.toggle("hl", r.getAttribute("data-cls") === mark.getAttribute("data-cls"));
    });
  });
  document.addEventListener("mouseout", function (e) {
    var mark = e.target.closest && e.target.closest("mark.g");
    if (!mark) return;
    mark.closest("article").querySelectorAll("rect.hl").forEach(function (r) {
      r.classList.remove("hl");
    });
  });
  fromHash();
  apply();
})();
"""

_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def display_gray(stored: np.ndarray, sample: dict[str, Any]) -> np.ndarray:
    """The uint8 (H, W) image the preview shows: CT's soft-tissue window, MR's percentile window."""
    rgb = stored_to_display(stored, sample)
    channel = 0
    if sample.get("units") == "HU":
        names = [w.get("name") for w in sample.get("windows") or []]
        if CT_DISPLAY_WINDOW in names and names.index(CT_DISPLAY_WINDOW) < rgb.shape[-1]:
            channel = names.index(CT_DISPLAY_WINDOW)
        elif not names:
            channel = 1  # the default CT windows are lung, soft tissue, brain
    return np.ascontiguousarray(rgb[..., channel])


def _png_data_uri(gray: np.ndarray) -> str:
    img = Image.fromarray(gray)
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
            Image.Resampling.LANCZOS,
        )
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(sample: dict[str, Any], gray: np.ndarray) -> str:
    w, h = int(sample["width"]), int(sample["height"])
    # Labels are about LABEL_PX screen pixels high whatever the image size (viewBox units).
    font = round(LABEL_PX * max(w, h) / DISPLAY_PX, 2)
    parts = [
        f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="slice with boxes">',
        f'<image href="{_png_data_uri(gray)}" x="0" y="0" width="{w}" height="{h}" '
        'preserveAspectRatio="none"/>',
    ]
    for b in sample.get("boxes", []):
        x0, y0, x1, y1 = (int(v) for v in b["bbox"])
        name = _esc(b["class_name"])
        parts.append(
            f'<rect class="box" data-cls="{int(b["class_id"])}" x="{x0}" y="{y0}" '
            f'width="{max(1, x1 - x0)}" height="{max(1, y1 - y0)}"><title>{name}</title></rect>'
        )
    for b in sample.get("boxes", []):
        x0, y0, _, _ = (int(v) for v in b["bbox"])
        ty = y0 - 2 if y0 - font >= 0 else y0 + font
        parts.append(
            f'<text class="label" x="{x0 + 1}" y="{ty:g}" font-size="{font:g}">'
            f"{_esc(b['class_name'])}</text>"
        )
    parts.append("</svg>")
    return "<figure>" + "".join(parts) + "</figure>"


def _grounded_html(text: str, names: dict[int, str]) -> str:
    out, pos = [], 0
    for start, end, cls, locs, phrase in grounding.finditer(text):
        out.append(_esc(text[pos:start]))
        bins = ",".join(f"{v:04d}" for v in locs)
        title = f"{names.get(cls, f'seg{cls:03d}')} (seg{cls:03d}, bins {bins})"
        out.append(f'<mark class="g" data-cls="{cls}" title="{_esc(title)}">{_esc(phrase)}</mark>')
        pos = end
    out.append(_esc(text[pos:]))
    return "".join(out)


def _by_language(title: str, task: str, texts: dict[str, list[str]], render) -> str:
    rows = []
    for lang in sorted(texts):
        items = texts[lang]
        if not items:
            continue
        lis = "".join(f"<li>{render(t)}</li>" for t in items)
        rows.append(
            f'<div lang="{_esc(lang)}"><span class="lang">{_esc(lang.upper())}</span>'
            f"<ul>{lis}</ul></div>"
        )
    if not rows:
        return ""
    return f'<section data-task="{task}"><h3>{title}</h3>{"".join(rows)}</section>'


def _vqa_html(items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    lis = []
    for q in items:
        choices = (
            f' <span class="choices">({" / ".join(_esc(c) for c in q["choices"])})</span>'
            if q.get("choices")
            else ""
        )
        lis.append(
            f'<li lang="{_esc(q["language"])}"><span class="lang">{_esc(q["language"].upper())}'
            f'</span><span class="qt">{_esc(q["source"])} · {_esc(q["question_type"])}</span>'
            f'{_esc(q["question"])} → <span class="ans">{_esc(q["answer"])}</span>{choices}</li>'
        )
    return f'<section data-task="vqa"><h3>VQA</h3><ol>{"".join(lis)}</ol></section>'


def _tasks(sample: dict[str, Any]) -> list[str]:
    tasks = []
    if any(sample.get("captions", {}).values()):
        tasks.append("captions")
    if any(sample.get("grounded_captions", {}).values()):
        tasks.append("grounding")
    if sample.get("vqa"):
        tasks.append("vqa")
    return tasks


def render_sample(sample: dict[str, Any], stored: np.ndarray) -> str:
    """One sample as an ``<article>``: image with boxes, captions, grounded captions, VQA."""
    names = {int(b["class_id"]): b["class_name"] for b in sample.get("boxes", [])}
    meta = " · ".join(
        _esc(v)
        for v in (
            sample.get("modality"),
            sample.get("plane"),
            sample.get("body_part"),
            f"split {sample.get('split') or '-'}",
            f"report {sample.get('language') or '-'}",
            f"{sample['width']}×{sample['height']}",
            f"{len(sample.get('boxes', []))} boxes",
            sample.get("provenance", {}).get("generator"),
        )
        if v
    )
    text = "".join(
        [
            _by_language("Captions", "captions", sample.get("captions", {}), _esc),
            _by_language(
                "Grounded captions",
                "grounding",
                sample.get("grounded_captions", {}),
                lambda t: _grounded_html(t, names),
            ),
            _vqa_html(sample.get("vqa", [])),
        ]
    )
    return (
        f'<article class="sample" id="s-{_esc(sample["key"])}" '
        f'data-modality="{_esc(sample.get("modality", ""))}" '
        f'data-tasks="{" ".join(_tasks(sample))}">'
        f"{_figure(sample, display_gray(stored, sample))}"
        f'<div><h2>{_esc(sample["key"])}</h2><div class="meta">{meta}</div>{text}</div>'
        "</article>"
    )


def _options(select_id: str, label: str, values: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{_esc(v)}">{_esc(t)}</option>' for v, t in values)
    return f'<label>{label} <select id="{select_id}">{opts}</select></label>'


def render_page(articles: list[str], modalities: list[str], total: int | None) -> str:
    """The whole page around rendered sample articles."""
    of = f" of {total}" if total is not None else ""
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>refrad preview: {len(articles)} samples</title>",
            f"<style>:root {{ --img: {DISPLAY_PX}px; --box: {BOX_COLOUR}; --mark: {MARK_COLOUR}; }}"
            f"{_CSS}</style></head><body>",
            f"<header><h1>refrad preview · {len(articles)} samples{of}</h1>",
            _options("f-task", "Task", [("all", "all"), *TASKS.items()]),
            _options("f-modality", "Modality", [("all", "all")] + [(m, m) for m in modalities]),
            '<label><input type="checkbox" id="f-labels" checked> box labels</label>',
            '<span id="count"></span></header><main>',
            "".join(articles),
            "</main>",
            f"<script>{_JS}</script></body></html>\n",
        ]
    )


def _total(shard_dir: Path) -> int | None:
    index = shard_dir / "index.parquet"
    if not shard_dir.is_dir() or not index.exists():
        return None
    import polars as pl

    return pl.scan_parquet(index).select(pl.len()).collect().item()


def write_preview(shard_dir: Path, out_html: Path, limit: int = 200) -> Path:
    """Write a self-contained HTML preview of the first ``limit`` samples of a shard folder.

    ``shard_dir`` is a folder of WebDataset shards (read in ``shards.json`` order) or one tar
    shard. Raises ``FileNotFoundError`` when it holds no samples.
    """
    shard_dir, out_html = Path(shard_dir), Path(out_html)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    articles, modalities = [], set()
    for rec in iter_samples(shard_dir, fields=("json", "image.png")):
        if "json" not in rec or "image.png" not in rec:
            continue
        sample = json.loads(rec["json"])
        articles.append(render_sample(sample, decode_png(rec["image.png"])))
        modalities.add(str(sample.get("modality", "")))
        if len(articles) >= limit:
            break
    if not articles:
        raise FileNotFoundError(f"no samples found in {shard_dir}")
    atomic_write_text(out_html, render_page(articles, sorted(modalities), _total(shard_dir)))
    return out_html


def add_preview_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``refrad preview``."""
    parser.add_argument("path", type=Path, help="shard folder (or one .tar shard)")
    parser.add_argument("--out", type=Path, default=Path("preview.html"), help="HTML file to write")
    parser.add_argument(
        "--limit", type=int, default=200, help="show at most this many samples (default 200)"
    )


def cli_preview(args: argparse.Namespace) -> int:
    """``refrad preview PATH --out preview.html [--limit N]``."""
    if not args.path.exists():
        print(f"refrad preview: no such shard folder or file: {args.path}", file=sys.stderr)
        return 2
    out = write_preview(args.path, args.out, args.limit)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
