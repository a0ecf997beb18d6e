"""The text stage's LLM path against a REAL local llama.cpp server (``make test-llm``).

The model is the base Gemma 3 270M GGUF from PyPI: it tests the plumbing (structured output,
parsing, checks, cache, accounting, recovery), not quality. Skipped unless the ``llm-local``
extra is installed.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="needs the llm-local extra (make test-llm installs it)")

from llm_stub import CountingProxy  # noqa: E402

from refrad_builder.demo import make_demo  # noqa: E402
from refrad_builder.engine.config import load_config  # noqa: E402
from refrad_builder.engine.ledger import Ledger  # noqa: E402
from refrad_builder.engine.runner import LocalExecutor, run_pipeline  # noqa: E402
from refrad_builder.text.serve import start_llamacpp  # noqa: E402

pytestmark = pytest.mark.llm


def _config(tmp_path, url):
    make_demo(tmp_path / "demo", studies=1, seed=5, include_real=False)
    return load_config(
        tmp_path / "demo" / "config.yaml",
        [
            f"work_dir={tmp_path / 'work'}",
            f"out_dir={tmp_path / 'out'}",
            "text.generator=llm",
            "slices.max_slices_per_series=2",
            f"llm.url={url}",
            "llm.flavor=llamacpp",
            "llm.model=gemma3-270m",
            "llm.max_retries=0",
            "llm.max_tokens=384",
            "llm.concurrency=1",
            "llm.timeout_s=300",
        ],
    )


def _accounting(cfg) -> tuple[int, int, int, int]:
    st = Ledger(cfg.work_dir / "text").status("text")
    return st.planned, st.done, sum(st.dropped.values()), sum(st.failed.values())


def test_real_server_accounting_cache_and_recovery(tmp_path, monkeypatch):
    monkeypatch.setenv("REFRAD_SECRET", "llm-local-secret-0123456789")
    log = tmp_path / "server.log"
    server = {}
    server["proc"], url = start_llamacpp(n_ctx=2048, log=log, timeout_s=180)
    try:
        with CountingProxy(url) as proxy:
            cfg = _config(tmp_path, proxy.url)

            def kill_on_third(n: int) -> None:
                if n == 3:  # the server dies mid-run
                    server["proc"].kill()
                    server["proc"].wait()

            proxy.on_request = kill_on_third
            run_pipeline(cfg, executor=LocalExecutor(), progress=lambda s: None)
            planned, done, dropped, failed = _accounting(cfg)
            assert planned > 0 and failed > 0, "killing the server left no failed item"
            assert done + dropped + failed == planned
            sent_while_dead = proxy.count
            # a new server: the next run completes exactly the failed items
            proxy.on_request = None
            server["proc"], proxy.target = start_llamacpp(n_ctx=2048, log=log, timeout_s=180)
            run_pipeline(cfg, executor=LocalExecutor(), progress=lambda s: None)
            planned, done, dropped, failed = _accounting(cfg)
            assert done + dropped + failed == planned
            assert failed == 0, "items still failing after the server came back"
            assert proxy.count > sent_while_dead
            reasons = Ledger(cfg.work_dir / "text").status("text").dropped
            print(
                f"LLM accounting: requested {planned}, accepted {done}, dropped {dropped} "
                f"{reasons}, failed {failed}; chat requests sent {proxy.count}"
            )
            # an unchanged rerun of the text stage answers from the cache: zero requests
            before = proxy.count
            run_pipeline(
                cfg,
                stages=["text"],
                force=["text"],
                executor=LocalExecutor(),
                progress=lambda s: None,
            )
            assert proxy.count == before
            assert _accounting(cfg)[3] == 0
    finally:
        server["proc"].kill()


def _words(text: str) -> set[str]:
    """The words of a scrubbed text, placeholders left out."""
    import re

    return set(re.findall(r"\w+", re.sub(r"\[[A-Z]+\]", " ", text)))


def test_real_server_llm_phi_pass_end_to_end(tmp_path, monkeypatch):
    """report.llm_phi through the report stage against the real server on the demo's reports:
    every report ends done (the model's spans joined the rules') or failed (an answer that was
    no valid JSON of the schema, retried next run), the union keeps no word the rules alone
    remove, and a forced rerun asks the server again only for the failed reports."""
    import time

    from refrad_builder.engine.records import ReportRecord

    monkeypatch.setenv("REFRAD_SECRET", "llm-local-secret-0123456789")
    log = tmp_path / "server.log"
    proc, url = start_llamacpp(n_ctx=2048, log=log, timeout_s=180)
    quiet = {"executor": LocalExecutor(), "progress": lambda s: None}
    try:
        with CountingProxy(url) as proxy:
            make_demo(tmp_path / "demo", studies=3, seed=7, include_real=False)
            demo = tmp_path / "demo" / "config.yaml"
            overrides = [
                f"work_dir={tmp_path / 'work'}",
                f"out_dir={tmp_path / 'out'}",
                f"llm.url={proxy.url}",
                "llm.flavor=llamacpp",
                "llm.model=gemma3-270m",
                "llm.max_retries=0",
                "llm.max_tokens=384",
                "llm.timeout_s=300",
            ]
            rules_only = load_config(demo, [*overrides, f"work_dir={tmp_path / 'rules'}"])
            run_pipeline(rules_only, stages=["ingest", "report"], **quiet)
            cfg = load_config(demo, [*overrides, "report.llm_phi=true"])
            run_pipeline(cfg, stages=["ingest"], **quiet)
            t0 = time.perf_counter()
            run_pipeline(cfg, stages=["report"], **quiet)
            elapsed = time.perf_counter() - t0
            st = Ledger(cfg.work_dir / "report").status("report")
            failed = sum(st.failed.values())
            assert st.planned == 3 and st.done + failed == st.planned
            assert st.done > 0, "no report got a valid answer from the real server"
            assert proxy.count == st.planned
            alone = {
                i: recs for i, _, recs in Ledger(tmp_path / "rules" / "report").current_outputs()
            }
            answered = Ledger(cfg.work_dir / "report").current_outputs()
            assert len(answered) == st.done
            for item_id, _, records in answered:
                with_llm = ReportRecord(**records[0])
                rules = ReportRecord(**alone[item_id][0])
                assert _words(with_llm.scrubbed_text) <= _words(rules.scrubbed_text)
            sent = proxy.count
            run_pipeline(cfg, stages=["report"], force=["report"], **quiet)
            assert proxy.count == sent + failed  # the answered reports come from the cache
            print(
                f"LLM PHI pass: {st.done}/{st.planned} reports answered validly, "
                f"{elapsed / st.planned:.1f} s per report (wall, shared 2 cores), "
                f"{sent} requests"
            )
    finally:
        proc.kill()
