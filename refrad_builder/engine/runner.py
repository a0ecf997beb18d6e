"""Plans the DAG and runs each stage's pending items on Ray Data (or in-process).

Stages run in DAG order. For each stage the planner computes every item's fingerprint,
writes the manifest, and hands only the items that are not done to the executor. Workers
write blobs and the item's ledger entry themselves (atomic, entry last), so a run killed at
any point resumes where it stopped.
"""

from __future__ import annotations

import collections
import importlib
import json
import logging
import math
import os
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from refrad_builder.engine.config import (
    RunConfig,
    dump_config,
    key_check,
    load_secret,
    resolve_paths,
    secret_source,
)
from refrad_builder.engine.device import ray_node_id
from refrad_builder.engine.io import atomic_write_json, atomic_write_text
from refrad_builder.engine.ledger import Ledger, StageStatus, item_fingerprint
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
    node = ray_node_id()
    ledger.mark_ok(
        item.id,
        item.fingerprint,
        [r.model_dump(mode="json", by_alias=True) for r in records],
        worker={"node": node} if node else None,
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


def block_count(n_items: int, batch: int, slots: int) -> int:
    """Blocks sized by items and cluster size: about four blocks per worker slot, and no
    block smaller than one batch (no fixed cap: a large stage on a large cluster gets many)."""
    per_block = max(batch, math.ceil(n_items / (4 * max(1, slots))))
    return max(1, math.ceil(n_items / per_block))


QUIET_LOGGERS = ("ray", "ray.data", "ray.data._internal.execution.streaming_executor")
# says "progress bars disabled" on every dataset of a default run: our ticker replaces them
NOTICE_LOGGERS = ("ray.data._internal.progress",)


WORKER_DEATHS = ("worker_died", "out_of_memory")


def _worker_death_reason(exc: BaseException) -> str:
    """The ledger reason for an item whose worker did not come back."""
    from ray import exceptions as rex

    if isinstance(exc, rex.OutOfMemoryError):
        return "out_of_memory"
    if isinstance(exc, rex.WorkerCrashedError | rex.ActorDiedError | rex.NodeDiedError):
        return "worker_died"
    if isinstance(exc, rex.RayTaskError) and isinstance(exc.cause, BaseException):
        return _worker_death_reason(exc.cause)
    return "worker_died" if isinstance(exc, rex.RayError) else type(exc).__name__


class RayExecutor:
    """Runs items on Ray Data: CPU stages as tasks, GPU-capable stages as actor pools.

    Ray Data retries nothing (a failed block fails the stage's dataset): the items that were
    not recorded then run again as independent Ray tasks, a chunk at a time; a chunk whose
    worker dies is split into single items, and an item whose worker dies more than
    ``execution.max_item_retries`` times is recorded as failed (``worker_died``), so one bad
    item never stops the rest.
    """

    def __init__(self, cfg: RunConfig, verbose: bool = False):
        import ray

        self.verbose = verbose
        if not verbose:
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": verbose,
                "logging_level": logging.INFO if verbose else logging.WARNING,
            }
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
            else:
                ray.init(num_cpus=cfg.execution.num_cpus, **kwargs)
            self._owns = True
        else:
            self._owns = False
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = verbose
        ctx.print_on_execution_start = verbose
        if hasattr(ctx, "enable_operator_progress_bars"):
            ctx.enable_operator_progress_bars = verbose
        ctx.max_errored_blocks = 0
        if not verbose:
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
            for name in NOTICE_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
        alive = [n for n in ray.nodes() if n.get("Alive")]
        self.multi_node = bool(os.environ.get("RAY_ADDRESS")) or len(alive) > 1
        self._max_node_memory = max(
            (n.get("Resources", {}).get("memory", 0.0) for n in alive), default=0.0
        )
        self._warned: set[str] = set()

    # --- resources ----------------------------------------------------------------------

    def ray_resources(self, stage: Stage) -> dict[str, Any]:
        """num_cpus, num_gpus and memory (bytes) of one worker of ``stage``, as Ray gets them.
        A memory request larger than any node's is lowered to the largest node's (with a
        warning): unlowered, Ray would wait forever for a node that does not exist."""
        import ray

        res = stage.worker_resources(ray.cluster_resources())
        memory = int(res.memory_gb * 2**30)
        if self._max_node_memory and memory > self._max_node_memory:
            if stage.name not in self._warned:
                self._warned.add(stage.name)
                log.warning(
                    "%s asks %.1f GB per worker; the largest node offers %.1f GB: using that",
                    stage.name,
                    res.memory_gb,
                    self._max_node_memory / 2**30,
                )
            memory = int(self._max_node_memory)
        out: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus, "memory": memory}
        if res.custom:
            out["resources"] = dict(res.custom)
        return out

    def _slots(self, res: dict[str, Any]) -> int:
        """How many workers of this size the cluster holds at once."""
        import ray

        total = ray.cluster_resources()
        slots = [int(total.get("CPU", 1) // res["num_cpus"])] if res["num_cpus"] else []
        if res["num_gpus"]:
            slots.append(int(total.get("GPU", 0) // res["num_gpus"]))
        for name, amount in res.get("resources", {}).items():
            if amount:
                slots.append(int(total.get(name, 0) // amount))
        return max(1, min(slots) if slots else int(total.get("CPU", 1)))

    def task_args(self, stage: Stage, cfg: RunConfig) -> tuple[str, str, str]:
        """What every worker of ``stage`` gets: stage reference, config JSON, key tag."""
        return (stage_ref(type(stage)), cfg.model_dump_json(), key_check(stage.ctx.secret))

    # --- running ------------------------------------------------------------------------

    def _dataset(self, stage: Stage, items: list[WorkItem], cfg: RunConfig):
        import ray
        from ray.data import ActorPoolStrategy, TaskPoolStrategy

        res = self.ray_resources(stage)
        slots = self._slots(res)
        batch = max(1, stage.batch_size())
        rows = [{"item": json.dumps(asdict(it))} for it in items]
        ds = ray.data.from_items(rows, override_num_blocks=block_count(len(rows), batch, slots))
        args = self.task_args(stage, cfg)
        common = {"batch_size": batch, **res}
        # Retries off (Ray Data's defaults retry a block, and restart an actor, forever): the
        # retry options go through map_batches' ray_remote_args, the only way Ray 2.60 takes
        # them (it warns they will move; nothing replaces them yet).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            if stage.actor_pool:
                return ds.map_batches(
                    _Worker,
                    fn_constructor_args=args,
                    compute=ActorPoolStrategy(min_size=1, max_size=slots),
                    max_restarts=0,
                    max_task_retries=0,
                    **common,
                )
            return ds.map_batches(
                _process_batch,
                fn_args=args,
                compute=TaskPoolStrategy(),
                max_retries=0,
                retry_exceptions=False,
                **common,
            )

    def run(
        self,
        stage: Stage,
        items: list[WorkItem],
        cfg: RunConfig,
        tick: Callable[[int], None] | None = None,
    ) -> list[dict[str, str]]:
        if not items:
            return []
        results: dict[str, dict[str, str]] = {}
        try:
            for batch in self._dataset(stage, items, cfg).iter_batches(
                batch_size=None, batch_format="numpy"
            ):
                for i, item_id in enumerate(batch["id"]):
                    results[str(item_id)] = {
                        k: str(batch[k][i]) for k in ("id", "outcome", "reason")
                    }
                if tick:
                    tick(len(batch["id"]))
        except Exception as exc:  # a worker died, or Ray gave up on a block: isolate
            ledger = Ledger(stage.out_dir)
            rest = [
                it
                for it in items
                if it.id not in results and not ledger.is_done(it.id, it.fingerprint)
            ]
            if tick:
                tick(len(items) - len(results) - len(rest))
            log.warning(
                "%s: a worker failed (%s); running the %d unfinished item(s) in isolation",
                stage.name,
                _worker_death_reason(exc),
                len(rest),
            )
            results.update(self._isolate(stage, rest, cfg, tick))
        return list(results.values())

    def _isolate(
        self,
        stage: Stage,
        items: list[WorkItem],
        cfg: RunConfig,
        tick: Callable[[int], None] | None,
    ) -> dict[str, dict[str, str]]:
        """Run ``items`` as independent tasks; split a chunk whose worker dies into single
        items; record an item that keeps killing its worker as failed."""
        import ray

        res = self.ray_resources(stage)
        remote = ray.remote(_run_chunk).options(max_retries=0, retry_exceptions=False, **res)
        args = self.task_args(stage, cfg)
        size = max(1, stage.batch_size())
        queue = collections.deque(items[i : i + size] for i in range(0, len(items), size))
        deaths: collections.Counter[str] = collections.Counter()
        ledger = Ledger(stage.out_dir)
        results: dict[str, dict[str, str]] = {}
        inflight: dict[Any, list[WorkItem]] = {}
        limit = self._slots(res)
        while queue or inflight:
            while queue and len(inflight) < limit:
                chunk = queue.popleft()
                rows = [json.dumps(asdict(it)) for it in chunk]
                inflight[remote.remote(rows, *args)] = chunk
            [ref], _ = ray.wait(list(inflight), num_returns=1)
            chunk = inflight.pop(ref)
            try:
                out = ray.get(ref)
            except Exception as exc:
                left = [it for it in chunk if not ledger.is_done(it.id, it.fingerprint)]
                for it in chunk:
                    if it not in left:  # done before its worker died
                        results[it.id] = {"id": it.id, "outcome": "ok", "reason": ""}
                if tick and len(left) < len(chunk):
                    tick(len(chunk) - len(left))
                reason = _worker_death_reason(exc)
                died = reason in WORKER_DEATHS
                if died and len(left) > 1:  # which item killed it? run them one by one
                    queue.extend([it] for it in left)
                    continue
                for it in left:
                    deaths[it.id] += 1
                    if died and deaths[it.id] <= cfg.execution.max_item_retries:
                        queue.append([it])
                        continue
                    # out of retries, or an error no retry mends (e.g. a worker that cannot
                    # read the secret): recorded as failed, retried by the next run
                    ledger.mark_error(it.id, it.fingerprint, reason, "")
                    results[it.id] = {"id": it.id, "outcome": "error", "reason": reason}
                    log.warning(
                        "%s: item %s failed: %s",
                        stage.name,
                        it.id,
                        f"its worker died {deaths[it.id]} times ({reason})" if died else reason,
                    )
                    if tick:
                        tick(1)
                continue
            for i, item_id in enumerate(out["id"]):
                results[item_id] = {k: out[k][i] for k in ("id", "outcome", "reason")}
            if tick:
                tick(len(out["id"]))
        return results

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
            for name in STAGE_ORDER:
                if name not in selected:
                    continue
                runs.append(
                    _run_stage(
                        name, ctx, cfg, name in force, executor, progress, ticker, stage_classes
                    )
                )
            atomic_write_json(work / "run" / "last_run.json", [asdict(r) for r in runs])
    finally:
        if own_executor and hasattr(executor, "close"):
            executor.close()
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
) -> StageRun:
    t0 = time.perf_counter()
    cls = (stage_classes or {}).get(name) or get_stage(name)
    stage = cls(ctx)
    items = stage.plan()
    chash = stage.config_hash()
    for it in items:
        it.fingerprint = item_fingerprint(name, stage.version, chash, it.input_fingerprint)
    ledger = Ledger(stage.out_dir)
    ledger.write_manifest({it.id: it.fingerprint for it in items}, stage.version, chash)
    pending = [
        it
        for it in items
        if forced or not ledger.is_done(it.id, it.fingerprint) or not stage.outputs_present(it)
    ]
    tick = ticker.start(name, len(pending)) if ticker is not None and pending else None
    try:
        executor.run(stage, pending, cfg, tick=tick)
    finally:
        if ticker is not None and pending:
            ticker.finish()
    stage.finalize()
    status = ledger.status(name)
    seconds = time.perf_counter() - t0
    progress(_status_line(status, len(pending), seconds))
    return StageRun(name, len(items), len(pending), seconds, status.as_dict())


def _status_line(st: StageStatus, processed: int, seconds: float) -> str:
    dropped = ", ".join(f"{k}={v}" for k, v in sorted(st.dropped.items())) or "-"
    failed = ", ".join(f"{k}={v}" for k, v in sorted(st.failed.items())) or "-"
    return (
        f"{st.stage:8s} planned {st.planned:5d}  ran {processed:5d}  done {st.done:5d}  "
        f"dropped {sum(st.dropped.values()):4d} ({dropped})  failed {sum(st.failed.values()):3d} "
        f"({failed})  pending {st.pending:4d}  {seconds:6.1f}s"
    )
