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
from collections.abc import Callable
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
