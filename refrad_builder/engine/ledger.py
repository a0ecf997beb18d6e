"""The rerun ledger: per-item done markers written last, fingerprints, the current manifest.

An item is done when ``ledger/<id>.json`` exists and its fingerprint equals the one the
planner computes now (input fingerprint + stage version + config hash). Errors are kept in
``errors/<id>.json`` and do not mark the item done, so the next run retries it.

A done item also records an *output hash* (its fingerprint and its records): downstream
stages fingerprint their inputs with it, so a forced rerun that changes an item's output
reruns what consumes it, and one that reproduces the same output reruns nothing.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.io import atomic_write_json, read_json


def output_hash(fingerprint: str, records: list[dict[str, Any]]) -> str:
    """The content hash of a done item's outputs (what downstream fingerprints use)."""
    return stable_hash([fingerprint, records])


def item_fingerprint(stage: str, version: str, config_hash: str, input_fp: str) -> str:
    """The fingerprint an item must match to count as done."""
    return stable_hash([stage, version, config_hash, input_fp])


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


class Ledger:
    """The ledger of one stage folder."""

    def __init__(self, stage_dir: Path):
        self.dir = Path(stage_dir)

    def _entry_path(self, item_id: str) -> Path:
        return self.dir / "ledger" / f"{item_id}.json"

    def _error_path(self, item_id: str) -> Path:
        return self.dir / "errors" / f"{item_id}.json"

    def entry(self, item_id: str) -> dict[str, Any] | None:
        path = self._entry_path(item_id)
        if not path.exists():
            return None
        try:
            return read_json(path)
        except ValueError:
            return None

    def is_done(self, item_id: str, fingerprint: str) -> bool:
        entry = self.entry(item_id)
        return entry is not None and entry.get("fingerprint") == fingerprint

    def mark_ok(
        self,
        item_id: str,
        fingerprint: str,
        records: list[dict[str, Any]],
        worker: dict[str, str] | None = None,
    ) -> str:
        """Record a done item; returns its output hash. ``worker`` says where it ran (the
        Ray node); it is kept beside the records, outside the output hash, so where an item
        ran never changes what depends on it."""
        self._error_path(item_id).unlink(missing_ok=True)
        out_hash = output_hash(fingerprint, records)
        entry = {
            "id": item_id,
            "fingerprint": fingerprint,
            "outcome": "ok",
            "output_hash": out_hash,
            "records": records,
        }
        if worker:
            entry["worker"] = worker
        atomic_write_json(self._entry_path(item_id), entry)
        return out_hash

    def mark_drop(self, item_id: str, fingerprint: str, reason: str, detail: str) -> None:
        self._error_path(item_id).unlink(missing_ok=True)
        atomic_write_json(
            self._entry_path(item_id),
            {
                "id": item_id,
                "fingerprint": fingerprint,
                "outcome": "drop",
                "reason": reason,
                "detail": detail,
                "records": [],
            },
        )

    def mark_error(self, item_id: str, fingerprint: str, error_type: str, where: str) -> None:
        atomic_write_json(
            self._error_path(item_id),
            {"id": item_id, "fingerprint": fingerprint, "error": error_type, "where": where},
        )

    def write_manifest(self, items: dict[str, str], version: str, config_hash: str) -> None:
        atomic_write_json(
            self.dir / "manifest.json",
            {"items": items, "version": version, "config_hash": config_hash},
        )

    def manifest(self) -> dict[str, str]:
        path = self.dir / "manifest.json"
        return read_json(path)["items"] if path.exists() else {}

    def current_outputs(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """(item id, output hash, records) of the current, done, ok items."""
        out = []
        for item_id, fp in sorted(self.manifest().items()):
            entry = self.entry(item_id)
            if entry and entry["fingerprint"] == fp and entry["outcome"] == "ok":
                digest = entry.get("output_hash") or output_hash(fp, entry["records"])
                out.append((item_id, digest, entry["records"]))
        return out

    def current_drops(self) -> list[dict[str, Any]]:
        out = []
        for item_id, fp in sorted(self.manifest().items()):
            entry = self.entry(item_id)
            if entry and entry["fingerprint"] == fp and entry["outcome"] == "drop":
                out.append(entry)
        return out

    def status(self, stage: str) -> StageStatus:
        st = StageStatus(stage=stage)
        manifest = self.manifest()
        st.planned = len(manifest)
        dropped: collections.Counter[str] = collections.Counter()
        failed: collections.Counter[str] = collections.Counter()
        for item_id, fp in manifest.items():
            entry = self.entry(item_id)
            if entry and entry["fingerprint"] == fp:
                if entry["outcome"] == "ok":
                    st.done += 1
                else:
                    dropped[entry["reason"]] += 1
                continue
            err_path = self._error_path(item_id)
            if err_path.exists():
                err = read_json(err_path)
                if err.get("fingerprint") == fp:
                    failed[err.get("error", "error")] += 1
                    continue
            st.pending += 1
        st.dropped = dict(dropped)
        st.failed = dict(failed)
        return st
