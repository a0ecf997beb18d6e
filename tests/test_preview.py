"""The HTML preview of a demo run, rendered in headless Chromium: the screenshot shows the
slices with their magenta boxes and the cyan grounded phrases, the task/modality filter hides
what it should, and the page holds no planted PHI and no external reference."""

from __future__ import annotations

import argparse
import html
import json
import re
from pathlib import Path

import browser
import numpy as np
import polars as pl
import pytest
from PIL import Image
from test_card import demo_shards

from refrad_builder.imaging.png import decode_png
from refrad_builder.publish.preview import (
    add_preview_arguments,
    cli_preview,
    render_page,
    render_sample,
    write_preview,
)
from refrad_builder.publish.shard_reading import iter_samples
from refrad_builder.text import grounding

MAGENTA = (255, 0, 255)
CYAN = (0, 255, 255)
ARTICLE = re.compile(r"<article\b[^>]*>")
REAL_CT_MARKERS = ["Petersgraben", "PETCT2", "QR_SNOWFOX", "NM20221208140055"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    demo, out = demo_shards(tmp_path_factory)
    page = tmp_path_factory.mktemp("preview") / "preview.html"
    write_preview(out, page)
    samples = [json.loads(r["json"]) for r in iter_samples(out)]
    return {"demo": demo, "out": out, "page": page, "html": page.read_text(), "samples": samples}


def _pixels(png: Path) -> np.ndarray:
    with Image.open(png) as img:
        return np.asarray(img.convert("RGB"))


def _count(rgb: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(rgb == np.array(colour, dtype=np.uint8), axis=-1).sum())


def _visible_articles(dom: str) -> list[str]:
    return [a for a in ARTICLE.findall(dom) if not re.search(r"\shidden(?:[\s=>])", a)]


def test_page_is_self_contained_and_complete(run):
    page = run["html"]
    index = pl.read_parquet(run["out"] / "index.parquet")
    assert len(ARTICLE.findall(page)) == len(run["samples"]) == index.height
    for s in run["samples"]:
        assert f'id="s-{s["key"]}"' in page
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "http://" not in page and "https://" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count("<script>") == 1 and "<link" not in page


def test_grounded_phrases_are_highlighted_in_place(run):
    page, samples = run["html"], run["samples"]
    phrases = sum(
        len(grounding.parse(t)) for s in samples for v in s["grounded_captions"].values() for t in v
    )
    assert phrases > 0 and page.count('<mark class="g"') == phrases
    sample = samples[0]
    caption = next(t for v in sample["grounded_captions"].values() for t in v)
    article = page.split(f'id="s-{sample["key"]}"', 1)[1].split("</article>", 1)[0]
    items = re.findall(r"<li>(.*?)</li>", article.split('data-task="grounding"', 1)[1])
    plain = [html.unescape(re.sub(r"<[^>]+>", "", li)) for li in items]
    assert grounding.strip(caption) in plain
    assert article.count('<rect class="box"') == len(sample["boxes"])


def test_no_planted_phi_in_the_page(run):
    planted = json.loads((run["demo"] / "planted_phi.json").read_text())
    assert len(planted) >= 20
    page = run["html"].lower()
    leaks = [
        m for m in planted + REAL_CT_MARKERS if m.lower() in page or html.escape(m).lower() in page
    ]
    assert not leaks, leaks[:5]


def test_screenshot_shows_slices_boxes_and_grounding(run, tmp_path):
    url = run["page"].resolve().as_uri()
    rgb = _pixels(browser.screenshot(url, tmp_path / "all.png", 1400, 2000))
    assert rgb.shape == (2000, 1400, 3)
    assert rgb.std() > 30, "screenshot looks blank"
    assert _count(rgb, MAGENTA) > 1000, "no box strokes visible"
    assert _count(rgb, CYAN) > 1000, "no grounded phrase highlights visible"
    # the slice itself: a large region of many grey levels
    grey = rgb[(rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])][:, 0]
    assert len(np.unique(grey)) > 100

    vqa = _pixels(browser.screenshot(url + "#task=vqa", tmp_path / "vqa.png", 1400, 2000))
    assert vqa.std() > 30
    assert _count(vqa, CYAN) == 0, "grounded captions still shown under the VQA filter"
    assert _count(vqa, MAGENTA) > 1000


def test_modality_filter_in_the_dom(run):
    url = run["page"].resolve().as_uri()
    mr = sum(1 for s in run["samples"] if s["modality"] == "MR")
    assert 0 < mr < len(run["samples"])
    dom = browser.dump_dom(url + "#modality=MR&task=grounding")
    visible = _visible_articles(dom)
    assert len(visible) == mr and all('data-modality="MR"' in a for a in visible)
    assert f'data-shown="{mr}"' in dom
    assert f"{mr} of {len(run['samples'])} shown" in dom
    shown_sections = re.findall(r"<section data-task=\"(\w+)\"(?![^>]*hidden)", dom)
    assert shown_sections and set(shown_sections) == {"grounding"}


def test_task_filter_hides_samples_without_the_task(run, tmp_path):
    samples = run["samples"][:3]
    stored = {r["__key__"]: r["image.png"] for r in iter_samples(run["out"], ("image.png",))}
    no_vqa = dict(samples[1], vqa=[])
    articles = [
        render_sample(s, decode_png(stored[s["key"]])) for s in (samples[0], no_vqa, samples[2])
    ]
    page = tmp_path / "three.html"
    page.write_text(render_page(articles, ["CT", "MR"], None))
    everything = _visible_articles(browser.dump_dom(page.as_uri()))
    assert len(everything) == 3
    visible = _visible_articles(browser.dump_dom(page.as_uri() + "#task=vqa"))
    assert len(visible) == 2 and not any(no_vqa["key"] in a for a in visible)


def test_limit_and_cli(run, tmp_path):
    out = write_preview(run["out"], tmp_path / "five.html", limit=5)
    text = out.read_text()
    assert len(ARTICLE.findall(text)) == 5
    assert f"5 samples of {len(run['samples'])}" in text
    parser = argparse.ArgumentParser()
    add_preview_arguments(parser)
    args = parser.parse_args([str(run["out"]), "--out", str(tmp_path / "cli.html"), "--limit", "2"])
    assert cli_preview(args) == 0
    assert len(ARTICLE.findall((tmp_path / "cli.html").read_text())) == 2
    one_shard = sorted(run["out"].glob("*.tar"))[0]
    assert write_preview(one_shard, tmp_path / "shard.html", limit=1).exists()
    assert cli_preview(parser.parse_args([str(tmp_path / "missing")])) == 2
    with pytest.raises(FileNotFoundError):
        write_preview(tmp_path, tmp_path / "empty.html")
