"""The Ray executor on a real local Ray: the secret never travels with tasks or actors, the
workers' output equals the in-process executor's byte for byte, and an item that kills its
worker is retried a bounded number of times, then recorded as failed while the rest finish."""

from __future__ import annotations

import os
from pathlib import Path

import cloudpickle
import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.ray_executor import RayExecutor
from refrad_builder.engine.runner import LocalExecutor, run_pipeline

pytestmark = pytest.mark.slow
SECRET = "ray-engine-test-secret-0123456789abcdef"
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    import ray

    crash_file = tmp_path_factory.mktemp("crash") / "target"
    mp = pytest.MonkeyPatch()
    mp.setenv("REFRAD_SECRET", SECRET)  # the nodes' environment: workers read it themselves
    mp.setenv("REFRAD_TEST_CRASH_FILE", str(crash_file))
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    mp.setenv("PYTHONPATH", path)  # workers import tests/crash_stage.py by name
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield crash_file
    ray.shutdown()
    mp.undo()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_demo")
    make_demo(root, studies=2, seed=5, include_real=False)
    return root


def _cfg(demo: Path, base: Path, *extra: str):
    return load_config(
        demo / "config.yaml",
        [
            f"work_dir={base / 'work'}",
            f"out_dir={base / 'out'}",
            "slices.max_slices_per_series=2",
            *extra,
        ],
    )


def _shards(out: Path) -> dict[str, bytes]:
    names = ("index.parquet", "rejects.parquet", "shards.json", "summary.json", "summary.md")
    files = sorted(out.glob("*.tar")) + [out / name for name in names]
    return {p.name: p.read_bytes() for p in files}


def test_secret_stays_off_the_wire_and_output_matches_local(ray_session, demo, tmp_path):
    import ray.data

    handed: list[object] = []
    original_map_batches = ray.data.Dataset.map_batches

    def spy(self, fn, *args, **kwargs):
        handed.append((fn, args, kwargs))
        return original_map_batches(self, fn, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(ray.data.Dataset, "map_batches", spy)
    try:
        executor = RayExecutor(_cfg(demo, tmp_path / "ray"))
        runs = run_pipeline(
            _cfg(demo, tmp_path / "ray"), executor=executor, progress=lambda _line: None
        )
    finally:
        mp.undo()
    assert all(r.status["failed"] == {} for r in runs), [r.status for r in runs]
    assert len(handed) >= 8  # every stage, shards' buckets too, ran on Ray workers
    blob = cloudpickle.dumps(handed)
    assert SECRET.encode() not in blob and SECRET.encode().hex().encode() not in blob
    kinds = {type(fn).__name__ if not isinstance(fn, type) else "actor" for fn, _, _ in handed}
    assert "actor" in kinds  # the actor pool's constructor arguments were inspected too

    with pytest.MonkeyPatch.context() as local_env:
        local_env.setenv("REFRAD_SECRET", SECRET)
        run_pipeline(
            _cfg(demo, tmp_path / "local"), executor=LocalExecutor(), progress=lambda _line: None
        )
    assert _shards(tmp_path / "ray" / "out") == _shards(tmp_path / "local" / "out")


def test_item_that_kills_its_worker_is_failed_after_bounded_retries(
    ray_session, demo, tmp_path, caplog
):
    from crash_stage import CrashingVolume

    cfg = _cfg(demo, tmp_path, "execution.max_item_retries=1")
    run_pipeline(cfg, stages=["ingest", "deid"], progress=lambda _line: None)
    series = sorted(i for i, _, _ in Ledger(tmp_path / "work" / "deid").current_outputs())
    assert len(series) == 2
    ray_session.write_text(series[0])
    try:
        runs = run_pipeline(
            cfg,
            stage_classes={"volume": CrashingVolume},
            progress=lambda _line: None,
        )
    finally:
        ray_session.unlink()
    by_stage = {r.stage: r for r in runs}
    assert by_stage["volume"].status["failed"] == {"worker_died": 1}
    assert by_stage["volume"].status["done"] == 1
    shards = by_stage["shards"].status  # the run finished everything else
    assert shards["done"] == shards["planned"] > 0
    err = Ledger(tmp_path / "work" / "volume").error(series[0])
    assert err is not None and err["error"] == "worker_died"
    # run alone once, then retried max_item_retries=1 time: two deaths, then recorded failed
    assert f"item {series[0]} failed: its worker died 2 times (worker_died)" in caplog.text


def test_item_that_kills_its_actor_is_failed_too(ray_session, demo, tmp_path):
    from crash_stage import CrashingSegment

    cfg = _cfg(demo, tmp_path, "execution.max_item_retries=0")
    run_pipeline(cfg, stages=["ingest", "deid", "volume"], progress=lambda _line: None)
    series = sorted(i for i, _, _ in Ledger(tmp_path / "work" / "volume").current_outputs())
    ray_session.write_text(series[-1])
    try:
        [run] = run_pipeline(
            cfg,
            stages=["segment"],
            stage_classes={"segment": CrashingSegment},
            progress=lambda _line: None,
        )
    finally:
        ray_session.unlink()
    assert run.status["failed"] == {"worker_died": 1} and run.status["done"] == len(series) - 1
