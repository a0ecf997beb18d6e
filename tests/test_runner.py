"""Runner semantics on real demo inputs, in-process: errors are retried, drops are final,
--force redoes a stage, and the CLI explains itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import LocalExecutor, run_pipeline, stage_status
from refrad_builder.stages.report import ReportStage


@pytest.fixture
def demo_cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRAD_SECRET", "runner-test-secret-0123456789")
    make_demo(tmp_path / "demo", studies=2, seed=3, include_real=False)
    return load_config(
        tmp_path / "demo" / "config.yaml",
        [f"work_dir={tmp_path / 'work'}", f"out_dir={tmp_path / 'out'}"],
    )


def _run(cfg, **kw):
    return {
        r.stage: r
        for r in run_pipeline(cfg, executor=LocalExecutor(), progress=lambda s: None, **kw)
    }


def test_transient_error_is_not_done_and_is_retried(demo_cfg, monkeypatch):
    original = ReportStage.process
    calls = {"n": 0}

    def flaky(self, item):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("simulated transient failure")
        return original(self, item)

    monkeypatch.setattr(ReportStage, "process", flaky)
    _run(demo_cfg, stages=["ingest", "report"])
    st = Ledger(demo_cfg.work_dir / "report").status("report")
    assert st.failed == {"TimeoutError": 1} and st.done == 1
    ledger = Ledger(demo_cfg.work_dir / "report")
    [err] = ledger.current_errors()
    assert err["error"] == "TimeoutError" and err["where"].startswith("test_runner.py:")
    # exception messages may carry PHI: only type and place, in no column of any part
    rows = [pq.read_table(p).to_pylist() for p in ledger.part_paths()]
    assert "simulated" not in json.dumps(rows)
    runs = _run(demo_cfg, stages=["ingest", "report"])
    assert runs["report"].processed == 1 and runs["ingest"].processed == 0
    st = Ledger(demo_cfg.work_dir / "report").status("report")
    assert st.failed == {} and st.done == 2


def test_force_redoes_a_stage_and_status_counts(demo_cfg):
    _run(demo_cfg)
    runs = _run(demo_cfg, stages=["slices"], force=["slices"])
    assert runs["slices"].processed == runs["slices"].planned == 2
    status = {s.stage: s for s in stage_status(demo_cfg)}
    for name in ("ingest", "deid", "report", "volume", "segment", "slices", "text", "shards"):
        assert status[name].pending == 0 and status[name].done > 0, name
    assert status["ingest/series"].done == 2 and status["ingest/studies"].done == 2


def test_cli_explains_itself():
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "refrad_builder.cli", *args], capture_output=True, text=True
        )

    top = run("--help")
    assert top.returncode == 0
    for word in ("run", "status", "validate", "info", "demo", "report", "RAY_ADDRESS"):
        assert word in top.stdout
    for sub in (
        ["run"],
        ["status"],
        ["validate"],
        ["info"],
        ["demo", "make"],
        ["report", "analyze"],
    ):
        res = run(*sub, "--help")
        assert res.returncode == 0 and "usage: refrad" in res.stdout, sub
    assert "--only" in run("run", "--help").stdout and "--force" in run("run", "--help").stdout


def test_refuses_without_secret_outside_demo(tmp_path, monkeypatch):
    monkeypatch.delenv("REFRAD_SECRET", raising=False)
    monkeypatch.delenv("REFRAD_SECRET_FILE", raising=False)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "refrad_builder.cli",
            "run",
            "--work",
            str(tmp_path / "w"),
            "--executor",
            "local",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "secret" in res.stderr
