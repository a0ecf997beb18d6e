"""Plans the DAG and runs each stage's pending items on Ray Data (or in-process).

Stages run in DAG order. For each stage the planner computes every item's fingerprint,
writes the manifest, and hands only the items that are not done to the executor. Workers
write blobs and the item's ledger entry themselves (atomic, entry last), so a run killed at
any point resumes where it stopped.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from refrad_builder.engine import faults
from refrad_builder.engine.config import (
    RunConfig,
    dump_config,
    key_check,
    load_secret,
    resolve_paths,
    secret_source,
)
from refrad_builder.engine.device import ray_node_id
from refrad_builder.engine.io import atomic_write_json, atomic_write_text, remove_stale_temp
from refrad_builder.engine.ledger import Ledger, StageStatus, batch_key, item_fingerprint
from refrad_builder.engine.lock import RunLock
from refrad_builder.engine.records import Record
from refrad_builder.engine.stage import STAGE_ORDER, Drop, Stage, StageContext, WorkItem, get_stage

log = logging.getLogger("refrad")

SUB_LEDGERS = {"ingest": ["ingest/series", "ingest/studies", "ingest/reports"]}


@dataclass
class StageRun:
    """What one stage did in this run."""

    stage: str
    planned: int
    processed: int
    seconds: float
    status: dict[str, Any] = field(default_factory=dict)


def select_stages(
    only: str | None = None, start: str | None = None, until: str | None = None
) -> list[str]:
    """The stages a run covers, in DAG order."""
    for name in (only, start, until):
        if name is not None and name not in STAGE_ORDER:
            raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_ORDER)}")
    if only:
        return [only]
    lo = STAGE_ORDER.index(start) if start else 0
    hi = STAGE_ORDER.index(until) if until else len(STAGE_ORDER) - 1
    return STAGE_ORDER[lo : hi + 1]


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame: locates an error without its (maybe PHI) message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def record_outcome(
    stage: Stage, item: WorkItem, out: object, ledger: Ledger | None = None
) -> dict[str, str]:
    """Record one item's outcome (records, a Drop or an exception) in the stage's ledger."""
    ledger = ledger or Ledger(stage.out_dir)
    if isinstance(out, Exception):  # transient by contract: not marked done, retried next run
        ledger.mark_error(item.id, item.fingerprint, type(out).__name__, _where(out))
        return {"id": item.id, "outcome": "error", "reason": type(out).__name__}
    if isinstance(out, Drop):
        ledger.mark_drop(item.id, item.fingerprint, out.reason, out.detail)
        return {"id": item.id, "outcome": "drop", "reason": out.reason}
    records = [out] if isinstance(out, Record) else list(out)
    node = ray_node_id()
    ledger.mark_ok(
        item.id,
        item.fingerprint,
        [r.model_dump(mode="json", by_alias=True) for r in records],
        worker={"node": node} if node else None,
    )
    return {"id": item.id, "outcome": "ok", "reason": ""}


_LEDGERS: dict[Path, Ledger] = {}


def _worker_ledger(stage: Stage) -> Ledger:
    """This process's ledger of ``stage``: it reads the plan's time once per manifest."""
    key = Path(stage.out_dir)
    if key not in _LEDGERS:
        _LEDGERS.clear()
        _LEDGERS[key] = Ledger(key)
    return _LEDGERS[key]


def run_items(stage: Stage, items: list[WorkItem]) -> list[dict[str, str]]:
    """Process a batch of items and record the outcomes as one ledger part, named after the
    batch's content. Items an earlier attempt of the same batch recorded done with the same
    fingerprint since the stage was planned (a retried Ray block) are not redone: the check
    looks up that one part, never the whole ledger (a rerun's driver passes only pending
    items already)."""
    faults.maybe_die(f"item:{stage.name}")  # tests only (see engine/faults.py)
    ledger = _worker_ledger(stage)
    wanted = {it.id: it.fingerprint for it in items}
    done = ledger.batch_done(wanted, since=ledger.planned_at())
    skipped = [
        {"id": it.id, "outcome": "skip", "reason": "already_done"} for it in items if it.id in done
    ]
    items = [it for it in items if it.id not in done]
    if not items:
        return skipped
    try:
        outs = stage.process_many(items)
        if len(outs) != len(items):
            raise RuntimeError(f"{stage.name}: {len(outs)} outcomes for {len(items)} items")
    except Exception as exc:  # the batch as a whole failed: each item is a transient error
        outs = [exc] * len(items)
    with ledger.batch(batch_key({it.id: it.fingerprint for it in items})):
        results = [
            record_outcome(stage, it, out, ledger) for it, out in zip(items, outs, strict=True)
        ]
    return skipped + results


def run_item(stage: Stage, item: WorkItem) -> dict[str, str]:
    """Process one item and record its outcome in the stage's ledger."""
    [result] = run_items(stage, [item])
    return result


def stage_ref(cls: type[Stage]) -> str:
    """``module:qualname`` of a stage class: what workers import (never a pickled object)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _load_stage(ref: str) -> type[Stage]:
    module, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


_WORKER_CACHE: dict[tuple[str, str, str], _Worker] = {}


class _Worker:
    """A Ray worker: builds the stage once (setup) and processes batches of items. It gets the
    stage by reference, the config (which holds no secret) and the key's one-way tag; it reads
    the key itself, from its environment or the secret file."""

    def __init__(self, ref: str, config_json: str, key_tag: str):
        cfg = RunConfig.model_validate_json(config_json)
        self.stage = _load_stage(ref)(StageContext(cfg, key_tag=key_tag))
        self.stage.setup()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"id": [], "outcome": [], "reason": []}
        items = [WorkItem(**json.loads(raw)) for raw in batch["item"]]
        for result in run_items(self.stage, items):
            for k in out:
                out[k].append(result[k])
        return out


def _process_batch(batch: dict[str, Any], ref: str, config_json: str, key_tag: str):
    """A task's batch; the stage (and its setup) is kept for the next batch in this process."""
    key = (ref, config_json, key_tag)
    worker = _WORKER_CACHE.get(key)
    if worker is None:
        _WORKER_CACHE.clear()
        worker = _WORKER_CACHE[key] = _Worker(ref, config_json, key_tag)
    return worker(batch)


def _run_chunk(rows: list[str], ref: str, config_json: str, key_tag: str) -> dict[str, list[str]]:
    """One isolated chunk of items (a Ray task of its own)."""
    return _process_batch({"item": rows}, ref, config_json, key_tag)


class LocalExecutor:
    """Runs items in this process (debugging, tests): the same run_items as the Ray workers."""

    multi_node = False

    def run(
        self,
        stage: Stage,
        items: list[WorkItem],
        cfg: RunConfig,
        tick: Callable[[int], None] | None = None,
    ) -> list[dict[str, str]]:
        if not items:
            return []
        stage.setup()
        size = max(1, stage.batch_size())
        out = []
        for i in range(0, len(items), size):
            out += run_items(stage, items[i : i + size])
            if tick:
                tick(len(items[i : i + size]))
        return out


def stage_status(cfg: RunConfig) -> list[StageStatus]:
    """Per stage (and ingest's grouping ledgers): done / dropped / failed / pending."""
    work = Path(cfg.work_dir)
    out = []
    for name in STAGE_ORDER:
        out.append(Ledger(work / name).status(name))
        for sub in SUB_LEDGERS.get(name, []):
            out.append(Ledger(work / sub).status(sub))
    return out


def run_pipeline(
    cfg: RunConfig,
    stages: Iterable[str] | None = None,
    force: Iterable[str] = (),
    executor: Any | None = None,
    progress: Callable[[str], None] = print,
    ticker: Any | None = None,
    verbose: bool = False,
    stage_classes: dict[str, type[Stage]] | None = None,
) -> list[StageRun]:
    """Run the selected stages (default: all) and return what each did.

    ``ticker`` (a :class:`~refrad_builder.engine.progress.Ticker`) shows live per-stage
    progress; ``stage_classes`` replaces the class of a stage by name (tests, plug-ins)."""
    selected = list(stages) if stages is not None else list(STAGE_ORDER)
    force = set(force)
    own_executor = executor is None
    if executor is None:
        if cfg.execution.executor == "ray":
            # refuse relative paths on a cluster before connecting to it
            resolve_paths(cfg, multi_node=bool(os.environ.get("RAY_ADDRESS")))
            from refrad_builder.engine.ray_executor import RayExecutor

            executor = RayExecutor(cfg, verbose=verbose)
        else:
            executor = LocalExecutor()
    runs: list[StageRun] = []
    try:
        # Absolute on the driver before anything is dispatched; refused when relative on a
        # cluster (each node would resolve it against its own working directory).
        cfg = resolve_paths(cfg, multi_node=getattr(executor, "multi_node", False))
        work = Path(cfg.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        with RunLock(work, stale_s=cfg.execution.lock_stale_s):
            # a killed run's half-written temp files: safe to remove while holding the lock
            removed = sum(remove_stale_temp(Path(d)) for d in (work, cfg.out_dir))
            if removed:
                progress(f"removed {removed} temp file(s) left by an interrupted run")
            secret, origin = load_secret(cfg)
            if cfg.demo and origin.startswith("demo"):
                progress(
                    "demo mode: using a generated secret key (never use demo mode for real data)"
                )
            kind, path = secret_source(cfg)
            if kind == "file":  # workers read the same file: its path, never the key, travels
                cfg = cfg.model_copy(update={"secret_file": path})
            atomic_write_text(work / "run" / "config.yaml", dump_config(cfg))
            ctx = StageContext(cfg, _secret=secret, key_tag=key_check(secret))
            runs += _run_selected(
                selected, ctx, cfg, force, executor, progress, ticker, stage_classes
            )
            atomic_write_json(work / "run" / "last_run.json", [asdict(r) for r in runs])
    finally:
        if own_executor and hasattr(executor, "close"):
            executor.close()
    return runs


def _run_selected(
    selected: list[str],
    ctx: StageContext,
    cfg: RunConfig,
    force: set[str],
    executor: Any,
    progress: Callable[[str], None],
    ticker: Any | None,
    stage_classes: dict[str, type[Stage]] | None,
) -> list[StageRun]:
    """Run the selected stages in order. On an executor that streams, the first selected
    per-series stage streams its pending items through the selected per-series stages
    (engine/streaming.py); every stage is then still planned and finalized here, and runs
    what the stream left."""
    from refrad_builder.engine import streaming

    streams = getattr(executor, "streams", False) and cfg.execution.streaming
    chain = streaming.chain_of(selected) if streams else []
    head = None
    runs = []
    for name in streaming.run_order(selected, chain):
        run_with = executor
        if chain and name == chain[0]:
            rest = [_stage_class(n, stage_classes) for n in chain[1:]]
            run_with = head = streaming.StreamHead(executor, rest, force)
        streamed = head.ran[name] if head is not None and name != chain[0] else 0
        runs.append(
            _run_stage(
                name, ctx, cfg, name in force, run_with, progress, ticker, stage_classes, streamed
            )
        )
    return runs


def _run_stage(
    name: str,
    ctx: StageContext,
    cfg: RunConfig,
    forced: bool,
    executor: Any,
    progress: Callable[[str], None],
    ticker: Any | None,
    stage_classes: dict[str, type[Stage]] | None,
    streamed: int = 0,
) -> StageRun:
    """Plan one stage, run its pending items, finalize. ``streamed``: items of this stage
    that the stream already ran in this run (counted as processed)."""
    t0 = time.perf_counter()
    cls = _stage_class(name, stage_classes)
    stage = cls(ctx)
    items = stage.plan()
    chash = stage.config_hash()
    for it in items:
        it.fingerprint = item_fingerprint(name, stage.version, chash, it.input_fingerprint)
    ledger = Ledger(stage.out_dir)
    wanted = {it.id: it.fingerprint for it in items}
    ledger.write_manifest(wanted, stage.version, chash)
    done = set() if forced else ledger.done_ids(wanted)  # one columnar join
    pending = [it for it in items if it.id not in done or not stage.outputs_present(it)]
    tick = ticker.start(name, len(pending)) if ticker is not None and pending else None
    try:
        executor.run(stage, pending, cfg, tick=tick)
    finally:
        if ticker is not None and pending:
            ticker.finish()
    stage.finalize()
    ledger.compact()
    status = ledger.status(name)
    seconds = time.perf_counter() - t0
    progress(_status_line(status, len(pending) + streamed, seconds))
    return StageRun(name, len(items), len(pending) + streamed, seconds, status.as_dict())


def _stage_class(name: str, stage_classes: dict[str, type[Stage]] | None) -> type[Stage]:
    return (stage_classes or {}).get(name) or get_stage(name)


def _status_line(st: StageStatus, processed: int, seconds: float) -> str:
    dropped = ", ".join(f"{k}={v}" for k, v in sorted(st.dropped.items())) or "-"
    failed = ", ".join(f"{k}={v}" for k, v in sorted(st.failed.items())) or "-"
    return (
        f"{st.stage:8s} planned {st.planned:5d}  ran {processed:5d}  done {st.done:5d}  "
        f"dropped {sum(st.dropped.values()):4d} ({dropped})  failed {sum(st.failed.values()):3d} "
        f"({failed})  pending {st.pending:4d}  {seconds:6.1f}s"
    )
