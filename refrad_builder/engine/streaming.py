"""Per-series streaming of the per-series stages on Ray Data.

Run stage by stage, each of deid -> volume -> segment -> slices -> text waits for the whole
previous stage (GPUs idle while CPUs decode, CPUs idle while GPUs segment). Streamed, the
first selected stage of that chain (the *head*) hands its pending items to one Ray Data
pipeline with one chained ``map_batches`` per stage: a series leaves deid and goes on to
volume while other series are still being de-identified, and Ray Data's streaming executor
bounds what waits between the operators (backpressure). Every operator asks for its stage's
``num_cpus``, ``memory`` (and ``num_gpus`` / custom resources: segment is an actor pool, as
in the stage-by-stage executor).

Each stage keeps its ledger semantics: a worker plans the stage's items for one series with
the stage's own :meth:`~refrad_builder.engine.stage.Stage.plan`, given only that series'
upstream outputs (:class:`SeriesContext`), fingerprints them as the driver would, skips
those already done, and records every outcome in the stage's ledger itself. Afterwards the
runner still plans every stage on the driver (manifest, pending check, ``finalize``): what
the stream did is done there, and anything it left (a worker died, the pipeline stopped) runs
stage by stage with the executor's bounded retries.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from refrad_builder.engine.config import RunConfig
from refrad_builder.engine.ledger import Ledger, item_fingerprint, output_hash
from refrad_builder.engine.runner import _load_stage, run_items
from refrad_builder.engine.stage import STAGE_ORDER, Stage, StageContext, WorkItem

log = logging.getLogger("refrad")

# the per-series stages, in DAG order: each plans from the same series' upstream outputs
CHAIN = ("deid", "volume", "segment", "slices", "text")

Outputs = list[tuple[str, str, list[dict[str, Any]]]]


def chain_of(selected: list[str]) -> list[str]:
    """The streamed stages of a run: the selected stages of :data:`CHAIN`, when there are at
    least two of them and they follow each other in the chain (else nothing streams)."""
    names = [n for n in CHAIN if n in selected]
    if len(names) < 2:
        return []
    lo = CHAIN.index(names[0])
    return names if list(CHAIN[lo : lo + len(names)]) == names else []


def run_order(selected: list[str], chain: list[str]) -> list[str]:
    """The selected stages in DAG order; while streaming, ``report`` (which reads only
    ingest's studies) runs before the chain, whose slices and text read its outputs."""
    order = [n for n in STAGE_ORDER if n in selected]
    if chain and "report" in order and order.index("report") > order.index(chain[0]):
        order.remove("report")
        order.insert(order.index(chain[0]), "report")
    return order


@dataclass
class SeriesContext(StageContext):
    """A worker's stage context whose :meth:`upstream` answers with one series' outputs for
    the streamed stages (``carried``), and reads the ledger once per worker for the rest
    (``report``; an upstream stage that is not streamed in this run)."""

    carried: dict[str, Outputs] = field(default_factory=dict)
    _read: dict[str, Outputs] = field(default_factory=dict, repr=False)

    def upstream(self, name: str) -> Outputs:
        if name in self.carried:
            return self.carried[name]
        if name not in self._read:
            self._read[name] = super().upstream(name)
        return self._read[name]


class _StreamStep:
    """One stage of the stream in a worker: plans, runs and records one series at a time.

    A row is the JSON state of one series: the head's items (head only), the upstream
    outputs later stages plan from (``carry``) and how many items each stage ran (``ran``).
    """

    def __init__(
        self,
        ref: str,
        config_json: str,
        key_tag: str,
        head: bool,
        forced: bool,
        keep: tuple[str, ...],
    ):
        cfg = RunConfig.model_validate_json(config_json)
        self.ctx = SeriesContext(cfg, key_tag=key_tag)
        self.stage = _load_stage(ref)(self.ctx)
        self.stage.setup()
        self.head, self.forced, self.keep = head, forced, keep
        self.config_hash = self.stage.config_hash()
        self.ledger = Ledger(self.stage.out_dir)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        return {"row": [json.dumps(self.step(json.loads(raw))) for raw in batch["row"]]}

    def _plan(self, state: dict[str, Any]) -> list[WorkItem]:
        if self.head:  # planned and fingerprinted on the driver
            return [WorkItem(**d) for d in state.pop("items")]
        self.ctx.carried = {k: [tuple(o) for o in v] for k, v in state["carry"].items()}
        items = self.stage.plan()
        for it in items:
            it.fingerprint = item_fingerprint(
                self.stage.name, self.stage.version, self.config_hash, it.input_fingerprint
            )
        return items

    def step(self, state: dict[str, Any]) -> dict[str, Any]:
        """Run this stage's items of one series; carry their outputs to the next stages."""
        items = self._plan(state)
        todo = [
            it
            for it in items
            if self.forced
            or not self.ledger.is_done(it.id, it.fingerprint)
            or not self.stage.outputs_present(it)
        ]
        size = max(1, self.stage.batch_size())
        for i in range(0, len(todo), size):
            run_items(self.stage, todo[i : i + size])
        carry = {k: v for k, v in state["carry"].items() if k in self.keep}
        if self.stage.name in self.keep:
            carry[self.stage.name] = self._outputs(items)
        name = self.stage.name
        planned = {**state.get("planned", {}), name: len(items)}
        ran = {**state["ran"], name: len(todo)}
        return {"key": state["key"], "carry": carry, "ran": ran, "planned": planned}

    def _outputs(self, items: list[WorkItem]) -> Outputs:
        """(id, output hash, records) of the items done now, as ``Ledger.current_outputs``
        gives them to the driver's planner."""
        out = []
        for it in sorted(items, key=lambda i: i.id):
            entry = self.ledger.entry(it.id)
            if entry and entry["fingerprint"] == it.fingerprint and entry["outcome"] == "ok":
                digest = entry.get("output_hash") or output_hash(it.fingerprint, entry["records"])
                out.append((it.id, digest, entry["records"]))
        return out


_STEP_CACHE: dict[tuple, _StreamStep] = {}


def _stream_batch(batch: dict[str, Any], *args: Any) -> dict[str, list[str]]:
    """A task's batch; the step (and its stage's setup) is kept for the next batch."""
    step = _STEP_CACHE.get(args)
    if step is None:
        _STEP_CACHE.clear()
        step = _STEP_CACHE[args] = _StreamStep(*args)
    return step(batch)


def _keeps(chain: list[type[Stage]]) -> list[tuple[str, ...]]:
    """Per step, the streamed outputs some later step still plans from."""
    return [
        tuple(sorted({u for later in chain[i + 1 :] for u in later.consumes}))
        for i in range(len(chain))
    ]


# How long a stream that lost a node may go without a series leaving it before it is stopped.
NODE_LOSS_GRACE_S = 60.0


class NodeLost(RuntimeError):
    """The stream lost a node and then went quiet (see :class:`_NodeWatch`)."""


class _NodeWatch:
    """Stops a stream that lost a node and then let no series out for ``grace_s``.

    Ray Data's actor pool keeps an actor that died without restarting (its node was stopped
    or drained) as a member and starts no replacement; when it was the pool's only actor, the
    series routed to the pool waited until Ray Data's no-progress timeout (the stall seen on
    the loopback cluster: 0% CPU, no pending demands). A task on a lost node fails the stream
    at once; this catches the quiet case. The check runs in the stream's scheduling loop (an
    execution callback) and raises :class:`NodeLost` there, which ends the stream; its
    unfinished items then run in isolation and every later stage runs what is left."""

    def __init__(self, grace_s: float, poll_s: float = 2.0):
        self.grace_s, self.poll_s = grace_s, poll_s
        self.last_output = self._checked = time.monotonic()
        self._died_at: float | None = None
        self._start = self._alive()

    @staticmethod
    def _alive() -> set[str]:
        import ray

        return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}

    def output(self) -> None:
        """A series left the stream."""
        self.last_output = time.monotonic()

    def check(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.poll_s:
            return
        self._checked = now
        if self._died_at is None and not self._start <= self._alive():
            self._died_at = now
        if self._died_at is not None and now - max(self.last_output, self._died_at) > self.grace_s:
            raise NodeLost(f"a node was lost and no series left for {self.grace_s:.0f} s")

    def attach(self, ds: Any) -> None:
        """Run :meth:`check` at every scheduling step of ``ds``'s execution."""
        from ray.data._internal.execution.execution_callback import ExecutionCallback

        watch = self

        class _Check(ExecutionCallback):
            def on_execution_step(self, executor: Any) -> None:
                watch.check()

        ds.context.custom_execution_callback_classes = [
            *ds.context.custom_execution_callback_classes,
            _Check,
        ]


@dataclass
class StreamHead:
    """The executor of the chain's first stage: streams its pending items through the whole
    chain on Ray Data (``inner`` is the :class:`~refrad_builder.engine.ray_executor.
    RayExecutor`). ``ran`` counts the items each stage processed in the stream."""

    inner: Any
    rest: list[type[Stage]]
    forced: set[str]
    ran: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def multi_node(self) -> bool:
        return self.inner.multi_node

    def _dataset(self, head: Stage, items: list[WorkItem], cfg: RunConfig):
        import ray

        chain = [type(head), *self.rest]
        stages = [head] + [cls(head.ctx) for cls in self.rest]
        rows = [
            {"row": json.dumps({"key": it.id, "items": [asdict(it)], "carry": {}, "ran": {}})}
            for it in items
        ]
        # one series per block: a series moves on as soon as its own step is done
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 1024))
        for i, (stage, keep) in enumerate(zip(stages, _keeps(chain), strict=True)):
            ref, config_json, key_tag = self.inner.task_args(stage, cfg)
            args = (ref, config_json, key_tag, i == 0, stage.name in self.forced, keep)
            ds = self.inner.map_stage(ds, stage, _stream_batch, _StreamStep, args, 1)
        return ds

    def run(
        self,
        stage: Stage,
        items: list[WorkItem],
        cfg: RunConfig,
        tick: Callable[[int], None] | None = None,
    ) -> list[dict[str, str]]:
        """Stream ``items`` (the head's pending items) through the chain; if the stream
        stops (a worker died, a node was lost, nothing moved for
        ``execution.stall_timeout_s``), the head's
        unfinished items run in isolation on the inner executor."""
        if not items:
            return []
        seen: set[str] = set()
        try:
            ds = self._dataset(stage, items, cfg)
            watch = _NodeWatch(NODE_LOSS_GRACE_S)
            watch.attach(ds)
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                watch.output()
                for raw in batch["row"]:
                    state = json.loads(str(raw))
                    seen.add(state["key"])
                    self.ran.update(state["ran"])
                    if tick:
                        tick(1)
        except Exception as exc:  # the later stages plan and run what it left, stage by stage
            out = self.inner.rerun_unfinished(
                stage, items, seen, exc, cfg, tick, "streaming stopped"
            )
            return list(out.values())
        return []
