"""Paths and atomic writes: every output is written to a temp file and renamed into place,
so a crash never leaves a half-written file under a final name. Temp files carry a fixed
prefix, so the next run (holding the run lock) can remove the ones a killed run left behind."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from refrad_builder.engine import faults

TMP_PREFIX = ".refrad-tmp-"
# temp names of earlier versions: ".<name>.<8 random chars>.tmp"
_OLD_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, rename); with
    ``durable`` the data are fsynced first, so a power loss cannot leave an empty file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if faults.should_fire(f"write:{path.name}"):  # tests only: die half-way
                fh.write(data[: len(data) // 2])
                fh.flush()
                faults.die()
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic UTF-8 text write."""
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, UTF-8): identical objects give identical bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomic canonical JSON write."""
    atomic_write_text(path, dumps(obj))


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def atomic_write_via(path: Path, writer) -> None:
    """Atomically produce ``path`` with ``writer(tmp_path)`` (for libraries that want a path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{TMP_PREFIX}{path.stem}.", suffix="".join(path.suffixes), dir=path.parent
    )
    os.close(fd)
    try:
        writer(Path(tmp))
        faults.maybe_die(f"write:{path.name}")  # tests only: die before the rename
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_temp_name(name: str) -> bool:
    """Whether a file name is an atomic write's temp file (this version's or an earlier one's)."""
    return name.startswith(TMP_PREFIX) or bool(_OLD_TMP.match(name))


def remove_stale_temp(folder: Path) -> int:
    """Remove the temp files of atomic writes a killed run left under ``folder``; returns how
    many. Only call it while holding the folder's run lock: a live writer's temp file would
    go too."""
    removed = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if is_temp_name(name):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed
