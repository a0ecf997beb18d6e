"""Plans the DAG and runs each stage's pending items on Ray Data (or in-process).

Stages run in DAG order. For each stage the planner computes every item's fingerprint,
writes the manifest, and hands only the items that are not done to the executor. Workers
write blobs and the item's ledger entry themselves (atomic, entry last), so a run killed at
any point resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from refrad_builder.engine.config import RunConfig, dump_config, load_secret
from refrad_builder.engine.io import atomic_write_json, atomic_write_text
from refrad_builder.engine.ledger import Ledger, StageStatus, item_fingerprint
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


def record_outcome(stage: Stage, item: WorkItem, out: object) -> dict[str, str]:
    """Record one item's outcome (records, a Drop or an exception) in the stage's ledger."""
    ledger = Ledger(stage.out_dir)
    if isinstance(out, Exception):  # transient by contract: not marked done, retried next run
        ledger.mark_error(item.id, item.fingerprint, type(out).__name__, _where(out))
        return {"id": item.id, "outcome": "error", "reason": type(out).__name__}
    if isinstance(out, Drop):
        ledger.mark_drop(item.id, item.fingerprint, out.reason, out.detail)
        return {"id": item.id, "outcome": "drop", "reason": out.reason}
    records = [out] if isinstance(out, Record) else list(out)
    ledger.mark_ok(
        item.id, item.fingerprint, [r.model_dump(mode="json", by_alias=True) for r in records]
    )
    return {"id": item.id, "outcome": "ok", "reason": ""}


def run_items(stage: Stage, items: list[WorkItem]) -> list[dict[str, str]]:
    """Process a batch of items and record each outcome."""
    try:
        outs = stage.process_many(items)
        if len(outs) != len(items):
            raise RuntimeError(f"{stage.name}: {len(outs)} outcomes for {len(items)} items")
    except Exception as exc:  # the batch as a whole failed: each item is a transient error
        outs = [exc] * len(items)
    return [record_outcome(stage, it, out) for it, out in zip(items, outs, strict=True)]


def run_item(stage: Stage, item: WorkItem) -> dict[str, str]:
    """Process one item and record its outcome in the stage's ledger."""
    [result] = run_items(stage, [item])
    return result


class _Worker:
    """A Ray Data worker: builds the stage once (setup) and processes batches of items."""

    def __init__(self, stage_name: str, config_json: str, secret: bytes):
        cfg = RunConfig.model_validate_json(config_json)
        self.stage = get_stage(stage_name)(StageContext(cfg, _secret=secret))
        self.stage.setup()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"id": [], "outcome": [], "reason": []}
        items = [WorkItem(**json.loads(raw)) for raw in batch["item"]]
        for result in run_items(self.stage, items):
            for k in out:
                out[k].append(result[k])
        return out


def _process_batch(batch: dict[str, Any], stage_name: str, config_json: str, secret: bytes):
    return _Worker(stage_name, config_json, secret)(batch)


class LocalExecutor:
    """Runs items in this process (debugging, tests)."""

    def run(self, stage: Stage, items: list[WorkItem], cfg: RunConfig) -> list[dict[str, str]]:
        if not items:
            return []
        stage.setup()
        size = max(1, stage.batch_size())
        return [
            r for i in range(0, len(items), size) for r in run_items(stage, items[i : i + size])
        ]


class RayExecutor:
    """Runs items on Ray Data: CPU stages as tasks, GPU-capable stages as actor pools."""

    def __init__(self, cfg: RunConfig):
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
            else:
                ray.init(num_cpus=cfg.execution.num_cpus, **kwargs)
            self._owns = True
        else:
            self._owns = False
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False

    def run(self, stage: Stage, items: list[WorkItem], cfg: RunConfig) -> list[dict[str, str]]:
        if not items:
            return []
        import ray
        from ray.data import ActorPoolStrategy, TaskPoolStrategy

        res = stage.resources
        rows = [{"item": json.dumps(asdict(it))} for it in items]
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 64))
        args = (stage.name, cfg.model_dump_json(), stage.ctx.secret)
        n_cpu = int(ray.available_resources().get("CPU", 1)) or 1
        common = {"batch_size": max(1, stage.batch_size()), "num_cpus": res.cpus}
        if stage.actor_pool:
            gpus = getattr(stage.cfg, "gpus_per_worker", 0.0) or res.gpus
            ds = ds.map_batches(
                _Worker,
                fn_constructor_args=args,
                compute=ActorPoolStrategy(min_size=1, max_size=max(1, n_cpu)),
                num_gpus=gpus,
                **common,
            )
        else:
            ds = ds.map_batches(
                _process_batch,
                fn_kwargs=dict(zip(("stage_name", "config_json", "secret"), args, strict=True)),
                compute=TaskPoolStrategy(),
                **common,
            )
        return list(ds.take_all())

    def close(self) -> None:
        import ray

        if self._owns and ray.is_initialized():
            ray.shutdown()


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
) -> list[StageRun]:
    """Run the selected stages (default: all) and return what each did."""
    secret, origin = load_secret(cfg)
    if cfg.demo and origin.startswith("demo"):
        progress("demo mode: using a generated secret key (never use demo mode for real data)")
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "run" / "config.yaml", dump_config(cfg))
    ctx = StageContext(cfg, _secret=secret)
    selected = list(stages) if stages is not None else list(STAGE_ORDER)
    force = set(force)
    own_executor = executor is None
    if executor is None:
        executor = RayExecutor(cfg) if cfg.execution.executor == "ray" else LocalExecutor()
    runs = []
    try:
        for name in STAGE_ORDER:
            if name not in selected:
                continue
            t0 = time.perf_counter()
            stage = get_stage(name)(ctx)
            items = stage.plan()
            chash = stage.config_hash()
            for it in items:
                it.fingerprint = item_fingerprint(name, stage.version, chash, it.input_fingerprint)
            ledger = Ledger(stage.out_dir)
            ledger.write_manifest({it.id: it.fingerprint for it in items}, stage.version, chash)
            pending = [
                it
                for it in items
                if name in force
                or not ledger.is_done(it.id, it.fingerprint)
                or not stage.outputs_present(it)
            ]
            executor.run(stage, pending, cfg)
            stage.finalize()
            status = ledger.status(name)
            runs.append(
                StageRun(name, len(items), len(pending), time.perf_counter() - t0, status.as_dict())
            )
            progress(_status_line(status, len(pending), time.perf_counter() - t0))
    finally:
        if own_executor and hasattr(executor, "close"):
            executor.close()
    atomic_write_json(work / "run" / "last_run.json", [asdict(r) for r in runs])
    return runs


def _status_line(st: StageStatus, processed: int, seconds: float) -> str:
    dropped = ", ".join(f"{k}={v}" for k, v in sorted(st.dropped.items())) or "-"
    failed = ", ".join(f"{k}={v}" for k, v in sorted(st.failed.items())) or "-"
    return (
        f"{st.stage:8s} planned {st.planned:5d}  ran {processed:5d}  done {st.done:5d}  "
        f"dropped {sum(st.dropped.values()):4d} ({dropped})  failed {sum(st.failed.values()):3d} "
        f"({failed})  pending {st.pending:4d}  {seconds:6.1f}s"
    )
