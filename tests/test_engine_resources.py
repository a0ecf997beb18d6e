"""Resources a stage asks Ray for, block sizing, and the progress line."""

from __future__ import annotations

import io

from refrad_builder.engine.config import load_config
from refrad_builder.engine.progress import Ticker
from refrad_builder.engine.ray_executor import block_count
from refrad_builder.engine.stage import StageContext, get_stage


def _segment(*overrides: str):
    return get_stage("segment")(StageContext(load_config(None, list(overrides))))


def test_segment_gpus_default_to_one_with_totalsegmentator_on_a_gpu_cluster():
    ts = _segment("segment.backend=totalsegmentator")
    assert ts.worker_resources({"CPU": 16, "GPU": 2}).gpus == 1
    assert ts.worker_resources({"CPU": 16}).gpus == 0
    assert _segment("segment.backend=classical").worker_resources({"GPU": 2}).gpus == 0
    explicit = _segment("segment.backend=totalsegmentator", "segment.gpus_per_worker=0.5")
    res = explicit.worker_resources({"GPU": 2})
    assert res.gpus == 0.5 and res.memory_gb == 4.0 and res.cpus == 1.0


def test_blocks_sized_by_items_and_cluster():
    assert block_count(1, 4, 2) == 1
    assert block_count(10, 4, 2) == 3  # never a block smaller than one batch
    assert block_count(1000, 4, 2) == 8  # four per worker slot
    assert block_count(100_000, 4, 64) == 256  # no cap at 64
    assert block_count(100_000, 4, 1024) == 4000


def test_progress_lines_when_not_a_terminal():
    out = io.StringIO()
    ticker = Ticker(out, interval_s=0.0, tty=False)
    tick = ticker.start("volume", 4)
    tick(1)
    tick(3)
    ticker.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("volume        0/4")
    assert "4/4" in lines[-1] and "100.0%" in lines[-1] and "items/s" in lines[-1]
    assert "\r" not in out.getvalue()


def test_progress_rewrites_one_line_on_a_terminal():
    out = io.StringIO()
    ticker = Ticker(out, tty=True)
    tick = ticker.start("text", 2)
    tick(2)
    ticker.finish()
    assert "\n" not in out.getvalue() and "\r" in out.getvalue()
