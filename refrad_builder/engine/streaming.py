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
        from ray.data import ActorPoolStrategy, TaskPoolStrategy

        chain = [type(head), *self.rest]
        stages = [head] + [cls(head.ctx) for cls in self.rest]
        rows = [
            {"row": json.dumps({"key": it.id, "items": [asdict(it)], "carry": {}, "ran": {}})}
            for it in items
        ]
        # one series per block: a series moves on as soon as its own step is done
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 1024))
        for i, (stage, keep) in enumerate(zip(stages, _keeps(chain), strict=True)):
            res = self.inner.ray_resources(stage)
            ref, config_json, key_tag = self.inner.task_args(stage, cfg)
            args = (ref, config_json, key_tag, i == 0, stage.name in self.forced, keep)
            opts = {"batch_size": 1, "max_retries": 0, **res}
            if stage.actor_pool:
                opts.pop("max_retries")
                ds = ds.map_batches(
                    _StreamStep,
                    fn_constructor_args=args,
                    compute=ActorPoolStrategy(min_size=1, max_size=self.inner._slots(res)),
                    max_restarts=0,
                    max_task_retries=0,
                    **opts,
                )
            else:
                ds = ds.map_batches(
                    _stream_batch,
                    fn_args=args,
                    compute=TaskPoolStrategy(),
                    retry_exceptions=False,
                    **opts,
                )
        return ds

    def run(
        self,
        stage: Stage,
        items: list[WorkItem],
        cfg: RunConfig,
        tick: Callable[[int], None] | None = None,
    ) -> list[dict[str, str]]:
        """Stream ``items`` (the head's pending items) through the chain; if the stream
        stops (a worker died), the head's unfinished items run on the inner executor."""
        import warnings

        if not items:
            return []
        seen: set[str] = set()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
                ds = self._dataset(stage, items, cfg)
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for raw in batch["row"]:
                    state = json.loads(str(raw))
                    seen.add(state["key"])
                    self.ran.update(state["ran"])
                    if tick:
                        tick(1)
        except Exception as exc:
            from refrad_builder.engine.ray_executor import _worker_death_reason

            ledger = Ledger(stage.out_dir)
            left = [
                it
                for it in items
                if it.id not in seen and not ledger.is_done(it.id, it.fingerprint)
            ]
            if tick:
                tick(len(items) - len(seen) - len(left))
            log.warning(
                "streaming stopped (%s); %s: running the %d unfinished item(s) stage by stage",
                _worker_death_reason(exc),
                stage.name,
                len(left),
            )
            return self.inner.run(stage, left, cfg, tick)
        return []
