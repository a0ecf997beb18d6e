"""Per-stage counts against the current manifest (what ``refrad status`` prints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageStatus:
    """Counts of one stage against its current manifest."""

    stage: str
    planned: int = 0
    done: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "planned": self.planned,
            "done": self.done,
            "dropped": dict(sorted(self.dropped.items())),
            "failed": dict(sorted(self.failed.items())),
            "pending": self.pending,
        }
