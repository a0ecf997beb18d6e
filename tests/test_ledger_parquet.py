"""The columnar ledger: atomic parts, latest-entry rule, compaction, JSON migration, and a
rerun with nothing to do that reads no file per item."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pyarrow.parquet as pq
import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine import io as engine_io
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger, item_fingerprint, output_hash
from refrad_builder.engine.records import ImageRef, Record
from refrad_builder.engine.runner import LocalExecutor, run_items, run_pipeline
from refrad_builder.engine.stage import STAGE_ORDER, Drop, Stage, StageContext, WorkItem
from refrad_builder.stages.text import TextStage

WRITER = """
import sys
from refrad_builder.engine.ledger import Ledger
led = Ledger(sys.argv[1])
blob = "x" * 4000
n = 0
while True:
    with led.batch():
        for i in range(2000):
            led.mark_ok(f"p{n}-{i}", "fp", [{"blob": blob, "i": i}])
    n += 1
"""


def _observable(led: Ledger, ids: list[str]) -> dict:
    return {
        "entries": {i: led.entry(i) for i in ids},
        "errors": {i: led.error(i) for i in ids},
        "outputs": led.current_outputs(),
        "drops": led.current_drops(),
        "status": led.status("s").as_dict(),
    }


def test_sigkilled_writer_leaves_no_half_part(tmp_path):
    stage = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(stage)])
    parts = stage / "ledger"
    deadline = time.time() + 120
    while time.time() < deadline and len(Ledger(stage).part_paths()) < 2:
        time.sleep(0.01)
    time.sleep(0.15)  # the writer is somewhere in its next part
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    visible = Ledger(stage).part_paths()
    assert len(visible) >= 2
    hidden = [p for p in os.listdir(parts) if p.startswith(".")]
    for p in visible:  # every visible part is whole: its footer reads and all rows are there
        assert pq.read_metadata(p).num_rows == 2000
    led = Ledger(stage)
    assert led.status("s").planned == 0
    assert len(led.done_ids({f"p0-{i}": "fp" for i in range(2000)})) == 2000
    # the killed write left at most its temp file, which no reader sees
    assert len(hidden) <= 1


def test_latest_entry_wins_and_errors_never_mark_done(tmp_path):
    led = Ledger(tmp_path / "s")
    fp, fp2 = "fp1", "fp2"
    led.write_manifest({"a": fp2, "b": fp}, "1", "c")
    led.mark_ok("a", fp, [{"v": 1}])
    led.mark_error("a", fp2, "OSError", "x.py:1")  # newer fingerprint failed: old ok stays
    assert led.entry("a")["fingerprint"] == fp and not led.is_done("a", fp2)
    assert led.status("s").failed == {"OSError": 1}
    led.mark_ok("a", fp2, [{"v": 2}])
    assert led.error("a") is None and led.is_done("a", fp2)
    led.mark_drop("b", fp, "bad_input", "")
    led.mark_ok("b", fp, [{"v": 3}])
    st = led.status("s")
    assert (st.done, st.dropped, st.failed, st.pending) == (2, {}, {}, 0)
    assert led.current_outputs() == [
        ("a", output_hash(fp2, [{"v": 2}]), [{"v": 2}]),
        ("b", output_hash(fp, [{"v": 3}]), [{"v": 3}]),
    ]


def test_compaction_keeps_every_entry_and_a_crash_in_it_changes_nothing(tmp_path):
    led = Ledger(tmp_path / "s")
    ids = [f"i{n:03d}" for n in range(120)]
    led.write_manifest({i: "fp" for i in ids}, "1", "c")
    for n, i in enumerate(ids):  # one part each, of every kind
        if n % 3 == 0:
            led.mark_ok(i, "fp", [{"n": n}], worker={"node": "abc"})
        elif n % 3 == 1:
            led.mark_drop(i, "fp", "bad_input", f"d{n}")
        else:
            led.mark_error(i, "fp", "TimeoutError", "x.py:1")
    led.mark_ok(ids[2], "fp", [{"n": "late"}])  # an error then an ok: the ok stands
    before = _observable(Ledger(led.dir), ids)
    old_parts = led.part_paths()
    # a crash after the merged part is in place, before the merged parts are deleted
    copies = {p: p.read_bytes() for p in old_parts}
    assert Ledger(led.dir).compact() == len(old_parts)
    for p, data in copies.items():
        p.write_bytes(data)
    assert _observable(Ledger(led.dir), ids) == before
    # the next compaction folds the copies: one part, every entry still there
    assert Ledger(led.dir).compact() == len(old_parts) + 1
    fresh = Ledger(led.dir)
    assert len(fresh.part_paths()) == 1
    assert _observable(fresh, ids) == before
    assert pq.read_metadata(fresh.part_paths()[0]).num_rows == len(ids)
    assert before["entries"][ids[0]]["worker"] == {"node": "abc"}
    assert before["status"]["failed"] == {"TimeoutError": 39}


def test_json_ledger_is_migrated_on_first_open(tmp_path):
    stage = tmp_path / "s"
    fp = item_fingerprint("s", "1", "c", "in")
    engine_io.atomic_write_json(
        stage / "ledger" / "a.json",
        {"id": "a", "fingerprint": fp, "outcome": "ok", "output_hash": "h", "records": [{"x": 1}]},
    )
    engine_io.atomic_write_json(
        stage / "ledger" / "b.json",
        {
            "id": "b",
            "fingerprint": fp,
            "outcome": "drop",
            "reason": "r",
            "detail": "",
            "records": [],
        },
    )
    engine_io.atomic_write_json(
        stage / "errors" / "c.json",
        {"id": "c", "fingerprint": fp, "error": "OSError", "where": "y.py:2"},
    )
    engine_io.atomic_write_json(
        stage / "manifest.json",
        {"items": {"a": fp, "b": fp, "c": fp, "d": fp}, "version": "1", "config_hash": "c"},
    )
    led = Ledger(stage)
    st = led.status("s")
    assert (st.done, st.dropped, st.failed, st.pending) == (1, {"r": 1}, {"OSError": 1}, 1)
    assert led.current_outputs() == [("a", "h", [{"x": 1}])]
    assert not list(stage.rglob("*.json"))


@pytest.fixture
def demo_cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRAD_SECRET", "ledger-test-secret-0123456789")
    make_demo(tmp_path / "demo", studies=2, seed=5, include_real=False)
    return load_config(
        tmp_path / "demo" / "config.yaml",
        [f"work_dir={tmp_path / 'work'}", f"out_dir={tmp_path / 'out'}"],
    )


def test_noop_rerun_reads_no_file_per_item(demo_cfg, monkeypatch):
    stages = ["ingest", "deid", "report", "volume"]
    first = run_pipeline(demo_cfg, stages=stages, executor=LocalExecutor(), progress=lambda s: 0)
    assert all(r.processed == r.planned > 0 for r in first)
    work = Path(demo_cfg.work_dir)
    ledger_dirs = [p for p in work.rglob("ledger") if p.is_dir()]
    assert {len(os.listdir(p)) for p in ledger_dirs} == {1}  # compacted: one part each
    assert not [p for d in ledger_dirs for p in d.iterdir() if p.suffix == ".json"]
    opened: list[str] = []
    read_table = pq.read_table

    def counting(source, *a, **kw):
        opened.append(str(source))
        return read_table(source, *a, **kw)

    monkeypatch.setattr(pq, "read_table", counting)
    read_json = engine_io.read_json
    monkeypatch.setattr(engine_io, "read_json", lambda p: opened.append(str(p)) or read_json(p))
    again = run_pipeline(demo_cfg, stages=stages, executor=LocalExecutor(), progress=lambda s: 0)
    assert [r.processed for r in again] == [0] * len(stages)
    assert [r.status for r in again] == [r.status for r in first]
    items = sum(r.planned for r in first)
    ledger_reads = [p for p in opened if "/ledger/" in p or p.endswith("manifest.parquet")]
    assert not [p for p in opened if p.endswith(".json") and str(work) in p]
    # a handful of reads per ledger folder, however many items it holds
    assert 0 < len(ledger_reads) < items
    assert len(ledger_reads) <= 12 * len(ledger_dirs), json.dumps(ledger_reads)


class _Counting(Stage):
    """A stage that records what it processed (the engine's run_items runs it for real)."""

    name = "counting"
    version = "1"
    seen: ClassVar[list[str]] = []

    def process(self, item: WorkItem) -> list[Record] | Drop:
        self.seen.append(item.id)
        if item.payload.get("drop"):
            return Drop("bad_input")
        return [ImageRef(series=1, image=int(item.id[1:]))]


def test_retried_batch_redoes_nothing_done_since_the_plan(tmp_path):
    cfg = load_config(None, [f"work_dir={tmp_path / 'work'}", f"out_dir={tmp_path / 'out'}"])
    stage = _Counting(StageContext(cfg))
    items = [
        WorkItem(id=f"i{n}", payload={"drop": n == 2}, input_fingerprint="x") for n in range(4)
    ]
    for it in items:
        it.fingerprint = item_fingerprint("counting", "1", "c", it.input_fingerprint)
    led = Ledger(stage.out_dir)
    led.write_manifest({it.id: it.fingerprint for it in items}, "1", "c")
    assert [r["outcome"] for r in run_items(stage, items)] == ["ok", "ok", "drop", "ok"]
    assert _Counting.seen == ["i0", "i1", "i2", "i3"]
    # the same block again (a Ray retry): nothing redone, nothing recorded twice
    again = run_items(stage, items)
    assert [r["outcome"] for r in again] == ["skip"] * 4 and len(_Counting.seen) == 4
    # a new plan (a forced rerun) redoes everything: the check looks only since the plan
    led.write_manifest({it.id: it.fingerprint for it in items}, "1", "c")
    run_items(stage, items)
    assert _Counting.seen[4:] == ["i0", "i1", "i2", "i3"]
    st = Ledger(stage.out_dir).status("counting")
    assert (st.done, st.dropped, st.pending) == (3, {"bad_input": 1}, 0)


def test_text_items_name_their_report_and_workers_load_it(demo_cfg):
    runs = run_pipeline(
        demo_cfg, stages=STAGE_ORDER[:-1], executor=LocalExecutor(), progress=lambda s: 0
    )
    assert runs[-1].stage == "text" and runs[-1].status["done"] == runs[-1].planned > 0
    ctx = StageContext(demo_cfg)
    reports = {rec["study_id"]: rec for _, _, [rec] in ctx.upstream("report")}
    items = TextStage(ctx).plan()
    for it in items:  # the report is named, never copied into the slice's item
        assert set(it.payload) == {"slice", "report_id", "report_hash", "series_classes"}
        assert it.payload["report_id"] == it.payload["slice"]["study_id"] in reports
        assert reports[it.payload["report_id"]]["scrubbed_text"] not in json.dumps(it.payload)
    # the worker read each slice's report: the sample has its study's report language
    for _, _, [rec] in ctx.upstream("text"):
        assert rec["sample"]["language"] == reports[rec["sample"]["study"]]["language"]
