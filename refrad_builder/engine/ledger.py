"""The rerun ledger: a columnar, append-only record of item outcomes, fingerprints and the
current manifest of each stage.

Layout of a stage folder:

- ``ledger/<time>-<uuid>.parquet``: parts appended by the workers, one per processed batch
  (written to a temp file and renamed: a killed writer leaves no half part under a final
  name). Columns: id, fingerprint, outcome (ok / drop / error), reason, detail, output_hash,
  records (JSON), node (the Ray node it ran on), ts (the writer's clock, ns).
- ``manifest.parquet``: the ids and fingerprints the last plan wants, and in its metadata the
  stage version, config hash and the time of the plan.

An item is done when its latest ok or drop entry has the fingerprint the planner computes now.
An error entry never marks an item done: it counts as failed only while it is newer than the
item's latest ok or drop entry, and the next run retries it. The latest entry per id wins, so
a part merged by :meth:`Ledger.compact` and still present beside its merged copy (a crash
mid-compaction) changes nothing anyone can observe.

A done item also records an *output hash* (its fingerprint and its records): downstream
stages fingerprint their inputs with it, so a forced rerun that changes an item's output
reruns what consumes it, and one that reproduces the same output reruns nothing. Records are
read only when asked (:meth:`Ledger.current_outputs`, :meth:`Ledger.entry`); status and
planning read the small columns only.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.io import atomic_write_via
from refrad_builder.engine.ledger_json import migrate_json_ledger
from refrad_builder.engine.ledger_status import StageStatus

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("fingerprint", pa.string()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("output_hash", pa.string()),
        ("records", pa.string()),
        ("node", pa.string()),
        ("ts", pa.int64()),
    ]
)
SMALL = ["id", "fingerprint", "outcome", "reason", "detail", "output_hash", "ts"]
MANIFEST = "manifest.parquet"
PARTS = "ledger"
# parts above this size stay as they are when compacting: a large ledger is not rewritten
# by every run that adds a few items
BIG_PART_BYTES = 256 * 2**20
# rows per row group: small enough that a lookup by id (records_of) reads little
ROW_GROUP = 4096

_clock_lock = threading.Lock()
_last_ts = 0


def _now_ns() -> int:
    """A strictly increasing clock in this process (entries of one batch keep their order)."""
    global _last_ts
    with _clock_lock:
        _last_ts = max(time.time_ns(), _last_ts + 1)
        return _last_ts


def output_hash(fingerprint: str, records: list[dict[str, Any]]) -> str:
    """The content hash of a done item's outputs (what downstream fingerprints use)."""
    return stable_hash([fingerprint, records])


def batch_key(items: dict[str, str]) -> str:
    """The content key of a batch of items (id -> fingerprint), independent of their order."""
    return stable_hash(sorted(items.items()))


def item_fingerprint(stage: str, version: str, config_hash: str, input_fp: str) -> str:
    """The fingerprint an item must match to count as done."""
    return stable_hash([stage, version, config_hash, input_fp])


def _empty(columns: list[str]) -> pl.DataFrame:
    return pl.from_arrow(pa.schema([SCHEMA.field(c) for c in columns]).empty_table())


def _read_parts(paths: list[Path], columns: list[str]) -> pl.DataFrame:
    if not paths:
        return _empty(columns)
    tables = [pq.read_table(p, columns=columns, schema=SCHEMA) for p in paths]
    return pl.from_arrow(pa.concat_tables(tables))


def _latest(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(latest ok/drop entry per id, latest error per id newer than that entry)."""
    rows = rows.sort("ts")
    done = rows.filter(pl.col("outcome") != "error").unique("id", keep="last")
    errors = rows.filter(pl.col("outcome") == "error").unique("id", keep="last")
    errors = (
        errors.join(done.select("id", pl.col("ts").alias("done_ts")), on="id", how="left")
        .filter(pl.col("done_ts").is_null() | (pl.col("ts") > pl.col("done_ts")))
        .drop("done_ts")
    )
    return done, errors


class Ledger:
    """The ledger of one stage folder (see the module's docstring for its layout)."""

    def __init__(self, stage_dir: Path):
        self.dir = Path(stage_dir)
        self._buffer: list[dict[str, Any]] | None = None
        # small columns of the parts read so far, by (name, inode)
        self._parts: dict[tuple[str, int], pl.DataFrame] = {}
        self._planned: tuple[tuple[int, int, int], int] | None = None
        self._entries: tuple[tuple[str, ...], dict[str, dict[str, Any]]] | None = None
        migrate_json_ledger(self)

    # --- writing -------------------------------------------------------------------------

    @property
    def parts_dir(self) -> Path:
        return self.dir / PARTS

    @contextlib.contextmanager
    def batch(self, key: str | None = None) -> Iterator[Ledger]:
        """Collect the outcomes marked inside the block into one part, written at its end
        (after every output of the batch: the entries are still written last). With
        ``key`` (see :func:`batch_key`) the part is named after the batch's content, so a
        retried batch finds its earlier outcomes with one lookup (:meth:`batch_done`)."""
        if self._buffer is not None:  # nested: the outer block writes
            yield self
            return
        self._buffer = []
        try:
            yield self
            self.append(self._buffer, key)
        finally:
            self._buffer = None

    def append(self, rows: list[dict[str, Any]], key: str | None = None) -> Path | None:
        """Write ``rows`` (dicts of :data:`SCHEMA`'s columns) as one new part, atomically."""
        if not rows:
            return None
        table = pa.Table.from_pylist(
            [{name: row.get(name, "") for name in SCHEMA.names} for row in rows], schema=SCHEMA
        )
        return self._write_part(table.sort_by("id"), _now_ns(), key)

    def _batch_path(self, key: str) -> Path:
        return self.parts_dir / f"b-{key}.parquet"

    def batch_done(self, items: dict[str, str], since: str) -> set[str]:
        """The ids of the batch ``items`` (id -> fingerprint) already done with that
        fingerprint by an earlier attempt of the same batch since the plan of time ``since``
        (:meth:`planned_at`): one file looked up, however large the ledger."""
        path = self._batch_path(batch_key(items))
        try:
            rows = _read_parts([path], SMALL)
        except FileNotFoundError:
            return set()
        rows = rows.filter(pl.col("ts") >= int(since or 0))
        done, _ = _latest(rows)
        want = pl.DataFrame({"id": list(items), "fingerprint": list(items.values())})
        return set(done.join(want, on=["id", "fingerprint"], how="semi")["id"].to_list())

    def _write_part(self, table: pa.Table, ts: int, key: str | None = None) -> Path:
        # a keyed part written again (the same batch redone) replaces the earlier one: its
        # rows are the newer outcomes of the very same items
        path = (
            self._batch_path(key)
            if key
            else self.parts_dir / f"{ts:020d}-{uuid.uuid4().hex}.parquet"
        )
        atomic_write_via(path, lambda tmp: pq.write_table(table, tmp, row_group_size=ROW_GROUP))
        return path

    def _add(self, row: dict[str, Any]) -> None:
        row["ts"] = _now_ns()
        if self._buffer is not None:
            self._buffer.append(row)
        else:
            self.append([row])

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
        out_hash = output_hash(fingerprint, records)
        self._add(
            {
                "id": item_id,
                "fingerprint": fingerprint,
                "outcome": "ok",
                "output_hash": out_hash,
                "records": json.dumps(records, sort_keys=True, ensure_ascii=False),
                "node": (worker or {}).get("node", ""),
            }
        )
        return out_hash

    def mark_drop(self, item_id: str, fingerprint: str, reason: str, detail: str) -> None:
        """Record a permanent, reasoned reject of one item."""
        self._add(
            {
                "id": item_id,
                "fingerprint": fingerprint,
                "outcome": "drop",
                "reason": reason,
                "detail": detail,
                "records": "[]",
            }
        )

    def mark_error(self, item_id: str, fingerprint: str, error_type: str, where: str) -> None:
        """Record a transient failure: the item stays not done and the next run retries it."""
        self._add(
            {
                "id": item_id,
                "fingerprint": fingerprint,
                "outcome": "error",
                "reason": error_type,
                "detail": where,
            }
        )

    def write_manifest(self, items: dict[str, str], version: str, config_hash: str) -> None:
        """The ids and fingerprints the current plan wants (replaces the previous one)."""
        table = pa.table(
            {"id": list(items), "fingerprint": list(items.values())},
            schema=pa.schema([("id", pa.string()), ("fingerprint", pa.string())]),
        )
        meta = {"version": version, "config_hash": config_hash, "planned_at": str(_now_ns())}
        table = table.replace_schema_metadata(meta)
        atomic_write_via(self.dir / MANIFEST, lambda tmp: pq.write_table(table, tmp))

    # --- reading -------------------------------------------------------------------------

    def part_paths(self) -> list[Path]:
        """The finished parts (temp files of writers still at work, or killed, are hidden)."""
        if not self.parts_dir.is_dir():
            return []
        return sorted(
            Path(e.path)
            for e in os.scandir(self.parts_dir)
            if e.name.endswith(".parquet") and not e.name.startswith(".")
        )

    def _small(self) -> pl.DataFrame:
        """The small columns of every part; a part is read once per Ledger object (parts
        are immutable, except that a redone batch replaces its keyed part: a new inode)."""
        paths = self.part_paths()
        seen: dict[str, tuple[str, int]] = {}
        for p in paths:
            try:
                seen[p.name] = (p.name, p.stat().st_ino)
            except FileNotFoundError:  # merged and removed by a compaction meanwhile
                continue
        self._parts = {k: v for k, v in self._parts.items() if k in seen.values()}
        frames = []
        for p in paths:
            key = seen.get(p.name)
            if key is None:
                continue
            if key not in self._parts:
                try:
                    self._parts[key] = _read_parts([p], SMALL)
                except FileNotFoundError:
                    continue
            frames.append(self._parts[key])
        return pl.concat(frames) if frames else _empty(SMALL)

    def _state(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        return _latest(self._small())

    def manifest_frame(self) -> pl.DataFrame:
        """The manifest as a frame (id, fingerprint); empty before the first plan."""
        path = self.dir / MANIFEST
        if not path.exists():
            return pl.DataFrame(schema={"id": pl.String, "fingerprint": pl.String})
        return pl.from_arrow(pq.read_table(path))

    def manifest(self) -> dict[str, str]:
        frame = self.manifest_frame()
        return dict(zip(frame["id"].to_list(), frame["fingerprint"].to_list(), strict=True))

    def planned_at(self) -> int:
        """The time (ns) of the current plan (0 before the first plan); read once per
        manifest file."""
        path = self.dir / MANIFEST
        try:
            stat = path.stat()
        except FileNotFoundError:
            return 0
        sig = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._planned is None or self._planned[0] != sig:
            meta = pq.read_schema(path).metadata or {}
            self._planned = (sig, int(meta.get(b"planned_at", b"0")))
        return self._planned[1]

    def done_ids(self, items: dict[str, str]) -> set[str]:
        """The ids among ``items`` (id -> fingerprint) whose latest ok/drop entry has that
        fingerprint: one columnar join, no per-item read."""
        if not items:
            return set()
        want = pl.DataFrame(
            {"id": list(items), "fingerprint": list(items.values())},
            schema={"id": pl.String, "fingerprint": pl.String},
        )
        done, _ = _latest(self._small())
        return set(done.join(want, on=["id", "fingerprint"], how="inner")["id"].to_list())

    def is_done(self, item_id: str, fingerprint: str) -> bool:
        return item_id in self.done_ids({item_id: fingerprint})

    def _with_records(self, done: pl.DataFrame) -> pl.DataFrame:
        """``done`` with its records column, read only for its rows."""
        if done.is_empty():
            return done.with_columns(pl.lit("").alias("records"), pl.lit("").alias("node"))
        full = _read_parts(self.part_paths(), ["id", "ts", "records", "node"])
        return done.join(full.unique(["id", "ts"]), on=["id", "ts"], how="left")

    def current_hashes(self) -> dict[str, str]:
        """Item id -> output hash of the current, done, ok items (no records read)."""
        rows = self._current("ok", records=False)
        return dict(zip(rows["id"].to_list(), rows["output_hash"].to_list(), strict=True))

    def records_of(self, ids: set[str]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
        """Item id -> (output hash, records) of the latest ok entries of ``ids``, read with
        the ids as a filter (parts are sorted by id: row groups of other ids are skipped)."""
        if not ids:
            return {}
        wanted = pc.field("id").isin(sorted(ids))
        columns = ["id", "outcome", "output_hash", "records", "ts"]
        tables = []
        for p in self.part_paths():
            try:
                tables.append(pq.read_table(p, columns=columns, filters=wanted, schema=SCHEMA))
            except FileNotFoundError:  # merged and removed by a compaction meanwhile
                continue
        if not tables:
            return {}
        rows = pl.from_arrow(pa.concat_tables(tables))
        latest = rows.filter(pl.col("outcome") != "error").sort("ts").unique("id", keep="last")
        return {
            r["id"]: (r["output_hash"], json.loads(r["records"]))
            for r in latest.filter(pl.col("outcome") == "ok").iter_rows(named=True)
        }

    def entry(self, item_id: str) -> dict[str, Any] | None:
        """The latest ok or drop entry of one item (with its records), or None. The first
        call reads every latest entry once; later calls answer from memory until a part is
        added or removed."""
        sig = tuple(p.name for p in self.part_paths())
        if self._entries is None or self._entries[0] != sig:
            done, _ = self._state()
            rows = self._with_records(done).iter_rows(named=True)
            self._entries = (sig, {r["id"]: r for r in rows})
        row = self._entries[1].get(item_id)
        return _entry_dict(row) if row else None

    def error(self, item_id: str) -> dict[str, Any] | None:
        """The latest error of one item still standing (newer than its latest ok/drop)."""
        _, errors = self._state()
        rows = errors.filter(pl.col("id") == item_id).to_dicts()
        if not rows:
            return None
        r = rows[0]
        return {
            "id": r["id"],
            "fingerprint": r["fingerprint"],
            "error": r["reason"],
            "where": r["detail"],
        }

    def _current(self, outcome: str, records: bool) -> pl.DataFrame:
        done, _ = self._state()
        current = done.filter(pl.col("outcome") == outcome).join(
            self.manifest_frame(), on=["id", "fingerprint"], how="semi"
        )
        current = current.sort("id")
        return self._with_records(current) if records else current

    def current_outputs(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """(item id, output hash, records) of the current, done, ok items."""
        rows = self._current("ok", records=True)
        return [
            (r["id"], r["output_hash"], json.loads(r["records"]))
            for r in rows.iter_rows(named=True)
        ]

    def current_drops(self) -> list[dict[str, Any]]:
        """The entries of the current, dropped items."""
        return [_entry_dict(r) for r in self._current("drop", records=False).to_dicts()]

    def current_errors(self) -> list[dict[str, Any]]:
        """The standing errors of current items: id, fingerprint, error, where."""
        _, errors = self._state()
        errors = errors.join(self.manifest_frame(), on=["id", "fingerprint"], how="semi")
        return [
            {
                "id": r["id"],
                "fingerprint": r["fingerprint"],
                "error": r["reason"],
                "where": r["detail"],
            }
            for r in errors.sort("id").to_dicts()
        ]

    def status(self, stage: str) -> StageStatus:
        """Done / dropped / failed / pending of the current manifest (no records read)."""
        manifest = self.manifest_frame()
        done, errors = self._state()
        done = done.join(manifest, on=["id", "fingerprint"], how="semi")
        errors = errors.join(manifest, on=["id", "fingerprint"], how="semi").join(
            done, on="id", how="anti"
        )
        drops = done.filter(pl.col("outcome") == "drop")
        st = StageStatus(stage=stage, planned=manifest.height)
        st.done = done.height - drops.height
        st.dropped = _counts(drops)
        st.failed = _counts(errors)
        st.pending = st.planned - done.height - errors.height
        return st

    # --- compaction ----------------------------------------------------------------------

    def compact(self, min_parts: int = 2) -> int:
        """Merge the small parts into one, keeping each id's latest ok/drop entry and its
        standing error; returns how many parts were merged. The merged part is written
        (atomically) before the merged parts are deleted: a crash in between leaves copies
        whose rows are identical (same id, same ts), which the latest-entry rule folds."""
        paths = [p for p in self.part_paths() if p.stat().st_size < BIG_PART_BYTES]
        if len(paths) < min_parts:
            return 0
        rows = _read_parts(paths, SCHEMA.names).unique(["id", "ts"])
        done, errors = _latest(rows)
        kept = pl.concat([done, errors]).sort("id", "ts")
        self._write_part(kept.to_arrow().cast(SCHEMA), _now_ns())
        for p in paths:
            p.unlink(missing_ok=True)
        return len(paths)


def _counts(frame: pl.DataFrame) -> dict[str, int]:
    grouped = frame.group_by("reason").len()
    return dict(zip(grouped["reason"].to_list(), grouped["len"].to_list(), strict=True))


def _entry_dict(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row as the dict callers have always read (records parsed, if present)."""
    entry: dict[str, Any] = {
        "id": row["id"],
        "fingerprint": row["fingerprint"],
        "outcome": row["outcome"],
    }
    if row["outcome"] == "ok":
        entry["output_hash"] = row["output_hash"]
    else:
        entry["reason"] = row["reason"]
        entry["detail"] = row["detail"]
    if "records" in row:
        entry["records"] = json.loads(row["records"] or "[]")
    if row.get("node"):
        entry["worker"] = {"node": row["node"]}
    return entry
