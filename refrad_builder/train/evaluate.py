"""Evaluation: ``python -m refrad_builder.train.evaluate CHECKPOINT SHARDS`` (``refrad eval``).

Greedy decoding over every example of a split (per language: the grounded caption with the most
boxes, the first caption, VQA items); writes ``report.json``, ``report.md`` (a table) and a few
rendered examples (image, predicted boxes red, true boxes green) as PNG.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from refrad_builder.text import grounding
from refrad_builder.train import checkpoint, data, metrics
from refrad_builder.train.train import cpu_threads


def predict(model, codec, batches, device, max_new: int, permute: bool = False) -> list[dict]:
    """Rows (key, task, lang, question_type, prompt, target, pred, ok) for every example.

    ``permute`` gives each slice the image of another slice (a control: the image path is used
    when scores then fall)."""
    batches = list(batches) if permute else batches
    if permute:
        images = {}
        for b in batches:
            images.update(zip(b["keys"], b["pixels"], strict=True))
        order = list(images)
        other = {k: images[order[(i + 1) % len(order)]] for i, k in enumerate(order)}
    rows: list[dict] = []
    model.eval()
    for b in batches:
        pixels = torch.stack([other[k] for k in b["keys"]]) if permute else b["pixels"]
        prompts = [codec.encode_prompt(ex.prompt) for ex in b["examples"]]
        outs = model.generate(pixels.to(device), prompts, max_new, codec.eos_id, codec.pad_id)
        for key, ex, ids, img in zip(b["keys"], b["examples"], outs, pixels, strict=True):
            pred = codec.decode(ids)
            rows.append({
                "key": key, "task": ex.task, "lang": ex.lang, "question_type": ex.question_type,
                "prompt": ex.prompt, "target": ex.target, "pred": pred,
                "ok": metrics.parses(pred, ex.task), "_image": img,
            })  # fmt: skip
    return rows


def score(rows: list[dict]) -> dict:
    """Metrics by task, plus the fraction of outputs that parse."""
    by_task = {t: [r for r in rows if r["task"] == t] for t in ("grounded", "caption", "vqa")}
    report: dict = {
        "examples": len(rows),
        "parse_rate": sum(r["ok"] for r in rows) / max(1, len(rows)),
    }
    if by_task["vqa"]:
        report["vqa"] = metrics.vqa_scores(by_task["vqa"])
    if by_task["caption"]:
        report["caption"] = metrics.caption_scores(by_task["caption"])
    if by_task["grounded"]:
        report["grounding"] = metrics.grounding_scores(by_task["grounded"])
        report["grounded_caption_text"] = metrics.caption_scores(by_task["grounded"])
    return report


def table(report: dict) -> str:
    """A readable Markdown table of the report."""
    lines = ["| metric | value |", "| --- | --- |"]
    lines.append(f"| examples | {report['examples']} |")
    lines.append(f"| outputs that parse | {report['parse_rate']:.1%} |")
    for name, value in report.get("vqa", {}).items():
        lines.append(f"| VQA {name} exact match (n={value['n']}) | {value['exact_match']:.3f} |")
        lines.append(f"| VQA {name} token F1 | {value['token_f1']:.3f} |")
    for section in ("caption", "grounded_caption_text"):
        for k, v in report.get(section, {}).items():
            if k != "n":
                lines.append(f"| {section} {k} | {v:.3f} |")
    for k, v in report.get("grounding", {}).items():
        lines.append(
            f"| grounding {k} | {v:.3f} |" if isinstance(v, float) else f"| grounding {k} | {v} |"
        )
    return "\n".join(lines)


def render_examples(rows: list[dict], out: Path, n: int = 4) -> list[Path]:
    """PNGs of the first ``n`` grounded examples with predicted (red) and true (green) boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    paths = []
    for i, r in enumerate([r for r in rows if r["task"] == "grounded"][:n]):
        img = (r["_image"][1].float().cpu().numpy() + 1) / 2  # soft-tissue window / MR
        size = img.shape[0] / grounding.BINS
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        for text, color in ((r["target"], "lime"), (r["pred"], "red")):
            for _cid, (x0, y0, x1, y1), _ in grounding.parse(text):
                ax.add_patch(Rectangle((x0 * size, y0 * size), (x1 - x0) * size, (y1 - y0) * size,
                                       fill=False, color=color, lw=1))  # fmt: skip
        ax.set_axis_off()
        ax.set_title(f"{r['key'][:12]} ({r['lang']})", fontsize=8)
        path = out / f"example-{i}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def _has_split(shards, split: str) -> bool:
    try:
        return bool(data.list_shards(shards, split))
    except FileNotFoundError:
        return False


def evaluate(ckpt, shards, split="test", out=None, limit=None, device="cpu", batch_size=8,
             permute=False, examples=4, data_overrides=None, threads=0) -> dict:  # fmt: skip
    """Score a checkpoint on a split; writes the report under ``out`` when given."""
    if str(device) == "cpu":
        cpu_threads(threads)
    model, codec, cfg, _ = checkpoint.load(ckpt, device)
    if split == "auto":  # the first split the shards have
        split = next(s for s in ("test", "val", "train") if _has_split(shards, s))
    dcfg = replace(cfg.data, shards=str(shards), split=split, mode="all", augment=False,
                   shuffle_buffer=0, limit=limit, **(data_overrides or {}))  # fmt: skip
    stream = data.ShardStream(data.list_shards(shards, split), dcfg, cfg.model.image_size, epochs=1)
    batches = data.loader(stream, codec, cfg.model.max_text_len, batch_size, 0)
    rows = predict(model, codec, batches, device, cfg.model.max_text_len, permute)
    report = score(rows)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        public = [{k: v for k, v in r.items() if k != "_image"} for r in rows]
        (out / "report.json").write_text(json.dumps({"metrics": report, "rows": public}, indent=1))
        (out / "report.md").write_text(table(report) + "\n")
        render_examples(rows, out, examples)
    return report


def main(argv=None) -> int:
    """``refrad eval CHECKPOINT SHARDS [--split test] [--out DIR]``."""
    p = argparse.ArgumentParser(description="Evaluate a trainer checkpoint on refrad shards.")
    p.add_argument("checkpoint")
    p.add_argument("shards")
    p.add_argument("--split", default="test", help="test, val, train or auto (first present)")
    p.add_argument("--out", help="folder for report.json, report.md and example PNGs")
    p.add_argument("--limit", type=int, help="at most this many slices")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (0: the idle cores by the load average)")  # fmt: skip
    p.add_argument("--permute-images", action="store_true",
                   help="control: give each slice another slice's image")  # fmt: skip
    a = p.parse_args(argv)
    out = a.out or str(Path(a.checkpoint).parent / f"eval-{a.split}")
    report = evaluate(a.checkpoint, a.shards, a.split, out, a.limit, a.device, a.batch_size,
                      a.permute_images, threads=a.threads)  # fmt: skip
    print(table(report))
    print(f"report: {out}/report.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
