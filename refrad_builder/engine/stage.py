"""The stage contract: one narrow, typed abstraction every pipeline stage implements.

Per item a stage returns records (ok), a :class:`Drop` (permanent, counted with a reason) or
raises (transient: the item is not marked done and is retried by the next run).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from refrad_builder.engine.config import RunConfig, key_check, load_secret
from refrad_builder.engine.records import Record

STAGE_ORDER = [
    "ingest",
    "deid",
    "report",
    "volume",
    "segment",
    "slices",
    "text",
    "shards",
]


class SecretMismatch(RuntimeError):
    """A worker's key differs from the driver's."""


@dataclass(frozen=True)
class Drop:
    """A permanent, reasoned reject of one item. ``reason`` is a short code; never PHI."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 1.0
    # Custom Ray resources per worker (node labels such as {"accel": 1}): they place workers
    # on the nodes that advertise them.
    custom: tuple[tuple[str, float], ...] = ()


@dataclass
class WorkItem:
    """One unit of work: a dot-free id, a JSON-able payload and the fingerprint of its inputs."""

    id: str
    payload: dict[str, Any]
    input_fingerprint: str
    fingerprint: str = ""


@dataclass
class StageContext:
    """What a stage may read: the config, the work dir, the secret and upstream outputs."""

    config: RunConfig
    _secret: bytes | None = field(default=None, repr=False)
    # the driver's key tag (config.key_check): a worker that reads another key fails loudly
    key_tag: str | None = None

    @property
    def work(self) -> Path:
        return Path(self.config.work_dir)

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            key, origin = load_secret(self.config)
            if self.key_tag is not None and key_check(key) != self.key_tag:
                raise SecretMismatch(
                    f"this worker read a different secret ({origin}) than the driver: start "
                    "every node with the same REFRAD_SECRET, or put the secret file at the "
                    "same absolute path on every node"
                )
            self._secret = key
        return self._secret

    def stage_dir(self, name: str) -> Path:
        return self.work / name

    def upstream(self, name: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """(item id, output hash, records) of the current, done, ok items of stage ``name``.
        Fingerprint downstream items with the output hash: it changes exactly when the
        upstream item's outputs do."""
        from refrad_builder.engine.ledger import Ledger

        return Ledger(self.stage_dir(name)).current_outputs()


class Stage:
    """Base class of every stage. Subclasses set the class attributes and implement
    :meth:`plan` and :meth:`process`; :meth:`setup` holds per-worker state."""

    name: ClassVar[str]
    version: ClassVar[str]
    consumes: ClassVar[tuple[str, ...]] = ()
    config_section: ClassVar[str | None] = None
    extra_config: ClassVar[tuple[str, ...]] = ()
    uses_secret: ClassVar[bool] = False
    resources: ClassVar[Resources] = Resources()
    actor_pool: ClassVar[bool] = False

    def __init__(self, ctx: StageContext):
        self.ctx = ctx

    @property
    def cfg(self) -> Any:
        return getattr(self.ctx.config, self.config_section or self.name)

    @cached_property
    def out_dir(self) -> Path:
        return self.ctx.stage_dir(self.name)

    def config_hash(self) -> str:
        from refrad_builder.engine.config import stable_hash

        sections = (self.config_section or self.name, *self.extra_config)
        parts = [self.ctx.config.section_hash(s) for s in sections]
        if self.uses_secret:
            parts.append(stable_hash(self.ctx.secret.hex()))
        return stable_hash(parts)

    def plan(self) -> list[WorkItem]:
        """The items this stage must have done, from upstream outputs."""
        raise NotImplementedError

    def setup(self) -> None:
        """Per-worker state (a model, a client). Called once per worker before process."""

    def process(self, item: WorkItem) -> list[Record] | Record | Drop:
        """Do one item. Write blobs atomically under ``self.out_dir``; return records."""
        raise NotImplementedError

    def process_many(self, items: list[WorkItem]) -> list[list[Record] | Record | Drop | Exception]:
        """Do a batch of items, one outcome per item in order; an exception in the list is
        that item's transient error. The default does them one by one; a stage overrides it
        to share work across items (one round of concurrent LLM requests for many slices)."""
        out: list[list[Record] | Record | Drop | Exception] = []
        for item in items:
            try:
                out.append(self.process(item))
            except Exception as exc:  # transient by contract: only this item fails
                out.append(exc)
        return out

    def worker_resources(self, cluster: dict[str, float]) -> Resources:
        """What one worker asks Ray for, given the cluster's total resources (``CPU``,
        ``GPU``, ...). The default is the class's :attr:`resources`."""
        return self.resources

    def batch_size(self) -> int:
        """Items per batch handed to one worker call."""
        return self.ctx.config.execution.batch_size

    def outputs_present(self, item: WorkItem) -> bool:
        """Whether a done item's outputs outside the work dir still exist (default: yes)."""
        return True

    def finalize(self) -> None:
        """Run-level work after all items (optional)."""


def get_stage(name: str) -> type[Stage]:
    """The Stage class of ``name`` (module ``stages.<name>``, class attribute ``STAGE``)."""
    if name not in STAGE_ORDER:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGE_ORDER)}")
    module = importlib.import_module(f"refrad_builder.stages.{name}")
    return module.STAGE
