"""The Ray executor: a stage's pending items on Ray Data, CPU stages as task pools and
GPU-capable stages as actor pools, with each worker's resources, Ray Data's own retries off,
and items that kill their worker isolated and retried a bounded number of times."""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Collection
from dataclasses import asdict
from typing import Any

from refrad_builder.engine.config import (
    RunConfig,
    key_check,
)
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.runner import (
    _process_batch,
    _run_chunk,
    _Worker,
    stage_ref,
)
from refrad_builder.engine.stage import Stage, WorkItem

log = logging.getLogger("refrad")


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

    # the runner may stream the per-series stages through it (engine/streaming.py)
    streams = True

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
        # a dataset in which nothing moves for this long stops (ExecutionTimeoutError): its
        # unfinished items then run in isolation, where a stuck task becomes a failed item
        ctx.execution_no_progress_timeout_s = cfg.execution.stall_timeout_s
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

    def map_stage(self, ds, stage: Stage, task_fn, actor_cls, args: tuple, batch_size: int):
        """``ds`` with ``stage`` appended as one ``map_batches``: an actor pool of
        ``actor_cls`` for an ``actor_pool`` stage (at most as many actors as the cluster
        holds), else tasks of ``task_fn``; each worker asks for the stage's resources."""
        from ray.data import ActorPoolStrategy, TaskPoolStrategy

        res = self.ray_resources(stage)
        common = {"batch_size": batch_size, **res}
        # Retries off (Ray Data's defaults retry a block, and restart an actor, forever): the
        # retry options go through map_batches' ray_remote_args, the only way Ray 2.60 takes
        # them (it warns they will move; nothing replaces them yet).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            if stage.actor_pool:
                return ds.map_batches(
                    actor_cls,
                    fn_constructor_args=args,
                    compute=ActorPoolStrategy(min_size=1, max_size=self._slots(res)),
                    max_restarts=0,
                    max_task_retries=0,
                    **common,
                )
            return ds.map_batches(
                task_fn,
                fn_args=args,
                compute=TaskPoolStrategy(),
                max_retries=0,
                retry_exceptions=False,
                **common,
            )

    def _dataset(self, stage: Stage, items: list[WorkItem], cfg: RunConfig):
        import ray

        slots = self._slots(self.ray_resources(stage))
        batch = max(1, stage.batch_size())
        rows = [{"item": json.dumps(asdict(it))} for it in items]
        ds = ray.data.from_items(rows, override_num_blocks=block_count(len(rows), batch, slots))
        args = self.task_args(stage, cfg)
        return self.map_stage(ds, stage, _process_batch, _Worker, args, batch)

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
            results.update(
                self.rerun_unfinished(stage, items, results, exc, cfg, tick, "a worker failed")
            )
        return list(results.values())

    def rerun_unfinished(
        self,
        stage: Stage,
        items: list[WorkItem],
        finished: Collection[str],
        exc: BaseException,
        cfg: RunConfig,
        tick: Callable[[int], None] | None,
        what: str,
    ) -> dict[str, dict[str, str]]:
        """After a dataset of ``items`` stopped with ``exc`` (a worker died, no progress):
        the items neither ``finished`` nor recorded done since run in isolation."""
        ledger = Ledger(stage.out_dir)
        rest = [
            it
            for it in items
            if it.id not in finished and not ledger.is_done(it.id, it.fingerprint)
        ]
        if tick:
            tick(len(items) - len(finished) - len(rest))
        log.warning(
            "%s: %s (%s); running the %d unfinished item(s) in isolation",
            stage.name,
            what,
            _worker_death_reason(exc),
            len(rest),
        )
        return self._isolate(stage, rest, cfg, tick)

    def _isolate(
        self,
        stage: Stage,
        items: list[WorkItem],
        cfg: RunConfig,
        tick: Callable[[int], None] | None,
    ) -> dict[str, dict[str, str]]:
        """Run ``items`` as independent tasks; split a chunk whose worker dies into single
        items; record an item that keeps killing its worker as failed, and the items of tasks
        of which none finished within ``execution.stall_timeout_s`` as failed (stalled)."""
        import ray

        res = self.ray_resources(stage)
        remote = ray.remote(_run_chunk).options(max_retries=0, retry_exceptions=False, **res)
        args = self.task_args(stage, cfg)
        size = max(1, stage.batch_size())
        queue = collections.deque(items[i : i + size] for i in range(0, len(items), size))
        deaths: collections.Counter[str] = collections.Counter()
        out = _Outcomes(stage, Ledger(stage.out_dir), tick)
        inflight: dict[Any, list[WorkItem]] = {}
        limit = self._slots(res)
        while queue or inflight:
            while queue and len(inflight) < limit:
                chunk = queue.popleft()
                rows = [json.dumps(asdict(it)) for it in chunk]
                inflight[remote.remote(rows, *args)] = chunk
            timeout = cfg.execution.stall_timeout_s
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=timeout)
            if not ready:  # none finished for that long: scheduled nowhere, or hung
                for ref, chunk in inflight.items():
                    ray.cancel(ref, force=True)
                    for it in out.unfinished(chunk):
                        out.fail(it, "stalled", f"no task finished within {timeout:.0f} s")
                inflight.clear()
                continue
            chunk = inflight.pop(ready[0])
            try:
                done = ray.get(ready[0])
            except Exception as exc:
                left = out.unfinished(chunk)
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
                    why = f"its worker died {deaths[it.id]} times ({reason})" if died else reason
                    out.fail(it, reason, why)
                continue
            for i, item_id in enumerate(done["id"]):
                out.results[item_id] = {k: done[k][i] for k in ("id", "outcome", "reason")}
            if tick:
                tick(len(done["id"]))
        return out.results

    def close(self) -> None:
        import ray

        if self._owns and ray.is_initialized():
            ray.shutdown()


class _Outcomes:
    """What isolation learnt about its items: results by id, failures recorded in the
    stage's ledger (counted, with a reason; the next run retries them)."""

    def __init__(self, stage: Stage, ledger: Ledger, tick: Callable[[int], None] | None):
        self.stage, self.ledger, self.tick = stage, ledger, tick
        self.results: dict[str, dict[str, str]] = {}

    def unfinished(self, chunk: list[WorkItem]) -> list[WorkItem]:
        """The items of a chunk whose task failed that are not recorded done; those that
        are (done before their worker died) count as ok."""
        left = [it for it in chunk if not self.ledger.is_done(it.id, it.fingerprint)]
        for it in chunk:
            if it not in left:
                self.results[it.id] = {"id": it.id, "outcome": "ok", "reason": ""}
        if self.tick and len(left) < len(chunk):
            self.tick(len(chunk) - len(left))
        return left

    def fail(self, it: WorkItem, reason: str, why: str) -> None:
        self.ledger.mark_error(it.id, it.fingerprint, reason, "")
        self.results[it.id] = {"id": it.id, "outcome": "error", "reason": reason}
        log.warning("%s: item %s failed: %s", self.stage.name, it.id, why)
        if self.tick:
            self.tick(1)
