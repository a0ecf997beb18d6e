"""Per-series streaming (engine/streaming.py): which stages stream, and that a worker's
per-series planning gives exactly the driver's items and fingerprints, so the ledger's rerun
semantics hold. The in-process tests drive the stream's steps by hand on a real demo run;
the Ray test runs the stream on a local Ray and compares it with the stage-by-stage run."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import key_check, load_config, load_secret
from refrad_builder.engine.ledger import Ledger, item_fingerprint
from refrad_builder.engine.runner import LocalExecutor, run_pipeline, stage_ref
from refrad_builder.engine.stage import StageContext, get_stage
from refrad_builder.engine.streaming import (
    CHAIN,
    SeriesContext,
    _keeps,
    _StreamStep,
    chain_of,
    run_order,
)

SECRET = "streaming-test-secret-0123456789abcdef"


def test_chain_covers_two_or_more_following_per_series_stages():
    every = ["ingest", "deid", "report", "volume", "segment", "slices", "text", "shards"]
    assert chain_of(every) == list(CHAIN)
    assert chain_of(["deid", "report", "volume"]) == ["deid", "volume"]
    assert chain_of(["slices", "text", "shards"]) == ["slices", "text"]
    assert chain_of(["segment"]) == []  # --only: stage by stage
    assert chain_of(["ingest", "deid", "report"]) == []
    assert chain_of(["deid", "text"]) == []  # not neighbours in the chain


def test_report_runs_before_the_stream_that_reads_it():
    every = ["shards", "text", "slices", "segment", "volume", "report", "deid", "ingest"]
    order = run_order(every, chain_of(every))
    assert order == ["ingest", "report", "deid", "volume", "segment", "slices", "text", "shards"]
    assert run_order(every, []) == [
        "ingest",
        "deid",
        "report",
        "volume",
        "segment",
        "slices",
        "text",
        "shards",
    ]


def test_each_step_carries_only_what_later_steps_plan_from():
    keeps = _keeps([get_stage(n) for n in CHAIN])
    assert dict(zip(CHAIN, keeps, strict=True)) == {
        "deid": ("deid", "report", "segment", "slices", "volume"),
        "volume": ("report", "segment", "slices", "volume"),
        "segment": ("report", "segment", "slices", "volume"),
        "slices": ("report", "slices"),
        "text": (),
    }


def test_series_context_answers_carried_stages_and_reads_the_rest_once(tmp_path):
    cfg = load_config(None, [f"work_dir={tmp_path}"])
    ledger = Ledger(tmp_path / "report")
    ledger.mark_ok("s1", "fp1", [{"study_id": "s1"}])
    ledger.write_manifest({"s1": "fp1"}, "1", "c")
    ctx = SeriesContext(cfg, carried={"volume": [("a", "h", [{"series_id": "a"}])]})
    assert ctx.upstream("volume") == [("a", "h", [{"series_id": "a"}])]
    first = ctx.upstream("report")
    assert [i for i, _, _ in first] == ["s1"]
    ledger.mark_ok("s2", "fp2", [{"study_id": "s2"}])
    ledger.write_manifest({"s1": "fp1", "s2": "fp2"}, "1", "c")
    assert ctx.upstream("report") is first  # once per worker, not once per series


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    """A whole demo run, stage by stage in-process: every ledger is complete."""
    root = tmp_path_factory.mktemp("stream_demo")
    make_demo(root / "demo", studies=2, seed=11, include_real=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFRAD_SECRET", SECRET)
        cfg = load_config(
            root / "demo" / "config.yaml",
            [
                f"work_dir={root / 'work'}",
                f"out_dir={root / 'out'}",
                "slices.max_slices_per_series=2",
            ],
        )
        run_pipeline(cfg, executor=LocalExecutor(), progress=lambda _line: None)
        yield cfg


def _driver_plan(cfg, name: str) -> dict[str, str]:
    stage = get_stage(name)(StageContext(cfg))
    chash = stage.config_hash()
    return {
        it.id: item_fingerprint(name, stage.version, chash, it.input_fingerprint)
        for it in stage.plan()
    }


def _stream_by_hand(cfg, forced: set[str] = frozenset()) -> list[dict]:
    """Each deid item through the chain's steps in this process, as the Ray workers do."""
    classes = [get_stage(n) for n in CHAIN]
    tag = key_check(load_secret(cfg)[0])
    steps = [
        _StreamStep(stage_ref(cls), cfg.model_dump_json(), tag, i == 0, cls.name in forced, keep)
        for i, (cls, keep) in enumerate(zip(classes, _keeps(classes), strict=True))
    ]
    fps = _driver_plan(cfg, "deid")
    head = get_stage("deid")(StageContext(cfg)).plan()
    states = []
    for it in head:
        it.fingerprint = fps[it.id]
        state = {"key": it.id, "items": [asdict(it)], "carry": {}, "ran": {}}
        for step in steps:
            state = json.loads(step({"row": [json.dumps(state)]})["row"][0])
        states.append(state)
    return states


def _sum(states: list[dict], field: str) -> dict[str, int]:
    return {n: sum(s[field][n] for s in states) for n in CHAIN}


@pytest.mark.slow
def test_workers_plan_each_series_as_the_driver_does(done_run, monkeypatch):
    monkeypatch.setenv("REFRAD_SECRET", SECRET)
    cfg = done_run
    states = _stream_by_hand(cfg)
    planned = {n: len(_driver_plan(cfg, n)) for n in CHAIN}
    assert planned["text"] == 4 and planned["volume"] == 2
    assert _sum(states, "planned") == planned
    # the same fingerprints as the driver's: every item is found done, nothing reruns
    assert _sum(states, "ran") == dict.fromkeys(CHAIN, 0)


@pytest.mark.slow
def test_forced_or_lost_items_rerun_and_unchanged_outputs_stop_there(done_run, monkeypatch):
    monkeypatch.setenv("REFRAD_SECRET", SECRET)
    cfg = done_run
    work = Path(cfg.work_dir)
    texts = Ledger(work / "text").current_outputs()
    assert len(texts) == 4
    # a forced segment reproduces the same labels: slices and text see the same output hash
    states = _stream_by_hand(cfg, forced={"segment"})
    assert _sum(states, "ran") == {**dict.fromkeys(CHAIN, 0), "segment": 2}
    # a lost slice PNG makes its series' slices rerun (outputs_present), text stays done
    png = next((work / "slices").rglob("*.png"))
    os.unlink(png)
    states = _stream_by_hand(cfg)
    assert _sum(states, "ran") == {**dict.fromkeys(CHAIN, 0), "slices": 1}
    assert png.is_file()
    assert Ledger(work / "text").current_outputs() == texts


TESTS = Path(__file__).resolve().parent
ACCEL = "refrad_test_accel"


@pytest.fixture(scope="module")
def ray_env(tmp_path_factory):
    import ray

    crash_file = tmp_path_factory.mktemp("crash") / "target"
    mp = pytest.MonkeyPatch()
    mp.setenv("REFRAD_SECRET", SECRET)
    mp.setenv("REFRAD_TEST_CRASH_FILE", str(crash_file))
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    mp.setenv("PYTHONPATH", path)  # workers import tests/crash_stage.py by name
    # one unit of ACCEL: a segment pool asking for it holds exactly one actor
    ray.init(num_cpus=2, resources={ACCEL: 1}, include_dashboard=False, log_to_driver=False)
    yield crash_file
    ray.shutdown()
    mp.undo()


def _ray_cfg(demo: Path, base: Path, *extra: str):
    return load_config(
        demo / "config.yaml",
        [
            f"work_dir={base / 'work'}",
            f"out_dir={base / 'out'}",
            "slices.max_slices_per_series=2",
            "execution.streaming=true",
            *extra,
        ],
    )


def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in [*sorted(out.glob("*.tar")), out / "index.parquet"]}


@pytest.mark.slow
def test_stream_on_ray_then_a_forced_segment_rerun_changes_nothing(ray_env, done_run, tmp_path):
    import ray.data

    from refrad_builder.engine import streaming

    demo = Path(done_run.work_dir).parent / "demo"
    handed: list[object] = []
    original = ray.data.Dataset.map_batches

    def spy(self, fn, *args, **kwargs):
        handed.append(fn)
        return original(self, fn, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray.data.Dataset, "map_batches", spy)
        runs = {r.stage: r for r in run_pipeline(_ray_cfg(demo, tmp_path), progress=print)}
    assert handed.count(streaming._stream_batch) == 4 and streaming._StreamStep in handed
    for name in CHAIN:
        assert runs[name].processed == runs[name].planned > 0, name
        assert runs[name].status["pending"] == 0 and runs[name].status["failed"] == {}, name
    out = tmp_path / "out"
    # the same shards as the stage-by-stage in-process run of the same inputs and key
    assert _shards(out) == _shards(Path(done_run.out_dir))

    runs = {
        r.stage: r
        for r in run_pipeline(
            _ray_cfg(demo, tmp_path),
            stages=["segment", "slices", "text", "shards"],
            force=["segment"],
            progress=print,
        )
    }
    assert runs["segment"].processed == 2
    assert runs["slices"].processed == runs["text"].processed == 0
    assert _shards(out) == _shards(Path(done_run.out_dir))


@pytest.mark.slow
def test_item_that_kills_its_worker_mid_stream_is_failed_and_the_rest_finish(
    ray_env, done_run, tmp_path, caplog
):
    from crash_stage import CrashingVolume

    demo = Path(done_run.work_dir).parent / "demo"
    series = sorted(i for i, _, _ in Ledger(Path(done_run.work_dir) / "deid").current_outputs())
    ray_env.write_text(series[0])
    try:
        runs = {
            r.stage: r
            for r in run_pipeline(
                _ray_cfg(demo, tmp_path, "execution.max_item_retries=0"),
                stage_classes={"volume": CrashingVolume},
                progress=print,
            )
        }
    finally:
        ray_env.unlink()
    assert "streaming stopped (worker_died)" in caplog.text
    assert runs["volume"].status["failed"] == {"worker_died": 1}
    assert runs["deid"].status["done"] == 2 and runs["text"].status["done"] == 2
    shards = runs["shards"].status  # the run finished everything else
    assert shards["done"] == shards["planned"] > 0


@pytest.mark.slow
def test_segment_actor_that_dies_before_its_first_series_is_replaced(
    ray_env, done_run, tmp_path, caplog
):
    """The pool's only segment actor dies (SIGKILL) before a series reaches it: Ray Data
    starts another and the stream finishes without falling back (a stall would end after
    120 s, through the fallback, which the log would say)."""
    from crash_stage import IdleDyingSegment

    demo = Path(done_run.work_dir).parent / "demo"
    # one segment actor
    cfg = _ray_cfg(
        demo, tmp_path, f"segment.ray_resources.{ACCEL}=1", "execution.stall_timeout_s=120"
    )
    runs = {
        r.stage: r
        for r in run_pipeline(cfg, stage_classes={"segment": IdleDyingSegment}, progress=print)
    }
    assert ray_env.with_name("idle-death").exists()  # the actor did die
    assert "streaming stopped" not in caplog.text
    for name in CHAIN:
        assert runs[name].processed == runs[name].planned > 0, name
        assert runs[name].status["done"] == runs[name].planned, name
    assert _shards(tmp_path / "out") == _shards(Path(done_run.out_dir))


def test_node_watch_stops_a_quiet_stream_only_after_a_node_loss(monkeypatch):
    """Ray Data keeps a pool actor that died with its node and starts no replacement (the
    stream stalls): a lost node, then no series out for the grace time, stops the stream."""
    from refrad_builder.engine.streaming import NodeLost, _NodeWatch

    nodes = {"head", "spare"}
    monkeypatch.setattr(_NodeWatch, "_alive", staticmethod(lambda: set(nodes)))
    watch = _NodeWatch(grace_s=0.3, poll_s=0.0)
    time.sleep(0.4)
    watch.check()  # quiet, but every node is alive: a slow item, not a stall
    nodes.discard("spare")
    watch.check()  # the loss is seen: the grace time starts now
    time.sleep(0.2)
    watch.output()  # a series left: still moving
    time.sleep(0.2)
    watch.check()
    time.sleep(0.2)
    with pytest.raises(NodeLost):
        watch.check()
