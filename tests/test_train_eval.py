"""Evaluation metrics, the evaluate CLI on a trained checkpoint, and the GPU check's CPU smoke run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from refrad_builder.train import evaluate, metrics
from refrad_builder.train.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]


def test_grounding_match_by_class_then_iou():
    true = "a <p bbox=<loc0000><loc0000><loc0100><loc0100> id=<seg001>>x</p>"
    pred = ("<p bbox=<loc0000><loc0000><loc0100><loc0050> id=<seg001>>x</p>"
            "<p bbox=<loc0000><loc0000><loc0100><loc0100> id=<seg002>>y</p>")  # fmt: skip
    s = metrics.grounding_scores([{"pred": pred, "target": true}])
    assert s["mean_iou"] == pytest.approx(0.5) and s["recall"] == 1.0 and s["precision"] == 0.5
    assert metrics.parses(pred, "grounded") and not metrics.parses(
        "<p bbox=<loc0001> x", "grounded"
    )


def test_vqa_normalisation_and_split():
    rows = [{"pred": "Ja.", "target": "ja", "question_type": "closed"},
            {"pred": "left kidney", "target": "kidney", "question_type": "open"}]  # fmt: skip
    s = metrics.vqa_scores(rows)
    assert s["closed"]["exact_match"] == 1.0 and s["open"]["exact_match"] == 0.0
    assert s["open"]["token_f1"] == pytest.approx(2 / 3)


def test_caption_scores_pure_python():
    rows = [{"pred": "normal calibre of the aorta", "target": "normal calibre of the aorta"}]
    s = metrics.caption_scores(rows)
    assert s["bleu1"] == pytest.approx(1.0) and s["rouge_l"] == pytest.approx(1.0)
    assert s["chrf"] == pytest.approx(100.0)


@pytest.mark.slow
def test_train_then_evaluate_cli(tmp_path, small_demo_shards):
    out = tmp_path / "train"
    summary = train_main(["--config", "tiny", "--shards", str(small_demo_shards), "--out", str(out),
                          "--steps", "6", "--device", "cpu", "--no-progress",
                          "--set", "log_every=3"])  # fmt: skip
    assert summary["steps"] == 6 and (out / "ckpt.pt").exists()
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert {"tokens_per_s", "samples_per_s", "data_wait", "loss_by_task"} <= set(log[-1])
    assert "mfu" not in log[-1]  # no known peak on CPU
    assert evaluate.main([str(out / "ckpt.pt"), str(small_demo_shards), "--split", "auto",
                          "--out", str(out / "eval"), "--limit", "2"]) == 0  # fmt: skip
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["metrics"]["examples"] == len(report["rows"]) > 0
    assert {"vqa", "caption", "grounding"} <= set(report["metrics"])
    assert (out / "eval" / "report.md").read_text().startswith("| metric")
    assert list((out / "eval").glob("example-*.png"))


@pytest.mark.slow
def test_gpu_check_cpu_smoke(tmp_path, small_demo_shards):
    # the shell script the GPU machine runs, in its CPU dry-run mode
    env = {**os.environ, "DEVICE": "cpu", "STEPS": "2", "PYTHON": sys.executable,
           "SHARDS": str(small_demo_shards)}  # fmt: skip
    cmd = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--out", str(tmp_path / "gc")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(next(x for x in res.stdout.splitlines() if x.startswith("{")))
    assert result["config"] == "tiny" and result["steps"] == 2 and result["gpu"] == "none (cpu)"
    assert result["samples_per_s"] > 0 and 0 < result["paligemma_loss"] < 20
