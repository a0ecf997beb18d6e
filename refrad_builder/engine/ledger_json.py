"""Migration of a stage folder written by the JSON ledger (one file per item) to the
columnar ledger, on first open.

The JSON ledger kept ``ledger/<id>.json`` (ok/drop entries), ``errors/<id>.json`` and
``manifest.json``. Migration writes their content as one Parquet part and
``manifest.parquet`` (atomically, each), then deletes the JSON files. A crash in between
leaves JSON files that the next open migrates again: the rows repeat with the same id and
time, which the latest-entry rule folds into one.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refrad_builder.engine.io import read_json

if TYPE_CHECKING:
    from refrad_builder.engine.ledger import Ledger


def _json_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        Path(e.path)
        for e in os.scandir(folder)
        if e.name.endswith(".json") and not e.name.startswith(".")
    )


def _row(path: Path, error: bool) -> dict[str, Any] | None:
    try:
        e = read_json(path)
    except ValueError:  # a torn file of a crashed JSON-era writer: the item is not done
        return None
    ts = path.stat().st_mtime_ns
    if error:
        return {
            "id": e["id"],
            "fingerprint": e["fingerprint"],
            "outcome": "error",
            "reason": e.get("error", "error"),
            "detail": e.get("where", ""),
            "ts": ts,
        }
    return {
        "id": e["id"],
        "fingerprint": e["fingerprint"],
        "outcome": e["outcome"],
        "reason": e.get("reason", ""),
        "detail": e.get("detail", ""),
        "output_hash": e.get("output_hash", ""),
        "records": json.dumps(e.get("records", []), sort_keys=True, ensure_ascii=False),
        "node": (e.get("worker") or {}).get("node", ""),
        "ts": ts,
    }


def migrate_json_ledger(ledger: Ledger) -> bool:
    """Migrate ``ledger``'s folder if it holds JSON-ledger files; returns whether it did."""
    from refrad_builder.engine.ledger import output_hash

    old_manifest = ledger.dir / "manifest.json"
    entries = _json_files(ledger.dir / "ledger")
    errors = _json_files(ledger.dir / "errors")
    if not (entries or errors or old_manifest.exists()):
        return False
    rows = [r for p in entries if (r := _row(p, error=False))]
    rows += [r for p in errors if (r := _row(p, error=True))]
    for r in rows:
        if r["outcome"] == "ok" and not r["output_hash"]:
            r["output_hash"] = output_hash(r["fingerprint"], json.loads(r["records"]))
    if rows:
        ledger.append(sorted(rows, key=lambda r: (r["id"], r["ts"])))
    if old_manifest.exists():
        m = read_json(old_manifest)
        ledger.write_manifest(m["items"], m.get("version", ""), m.get("config_hash", ""))
    for p in entries + errors:
        p.unlink(missing_ok=True)
    old_manifest.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # only when empty
        (ledger.dir / "errors").rmdir()
    return True
