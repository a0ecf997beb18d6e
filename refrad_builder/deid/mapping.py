"""The optional mapping table from original identifiers to pseudonyms (``deid.mapping_table``).

Off by default. When on, it is the one place where originals are written: a CSV at a path the
user chose, outside the work and output folders (refused otherwise), readable by its owner
only (0600; its part folder 0700). Workers write one part file per series (idempotent on
rerun); the stage's ``finalize`` merges the parts into the CSV.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

COLUMNS = ("kind", "original", "pseudonym")
FILE_MODE = 0o600
DIR_MODE = 0o700


class MappingLocationError(ValueError):
    """The mapping table would land inside the work or output folder."""


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def check_location(path: Path, work_dir: Path, out_dir: Path) -> Path:
    """The resolved mapping path; raise :class:`MappingLocationError` when it is not separate."""
    path = Path(path).expanduser()
    for what, folder in (("work_dir", work_dir), ("out_dir", out_dir)):
        target = parts_dir(path)
        if _inside(path, Path(folder)) or _inside(target, Path(folder)):
            raise MappingLocationError(
                f"deid.mapping_table must be outside {what} ({folder}): the table maps "
                "originals to pseudonyms and must never enter the output tree"
            )
    return path.resolve()


def parts_dir(path: Path) -> Path:
    """The owner-only folder of per-series part files next to the table."""
    path = Path(path)
    return path.with_name(path.name + ".parts")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600 (never readable by others)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _csv_bytes(rows: Iterable[tuple[str, str, str]], header: bool) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_part(path: Path, series_id: str, rows: Iterable[tuple[str, str, str]]) -> Path:
    """Write one series' mapping rows to its part file (0600, folder 0700)."""
    folder = parts_dir(path)
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(folder, DIR_MODE)
    part = folder / f"{series_id}.csv"
    _write_private(part, _csv_bytes(sorted(set(rows)), header=False))
    return part


def merge(path: Path) -> int:
    """Merge every part file into the table (sorted, deduplicated); return the row count."""
    folder = parts_dir(path)
    rows: set[tuple[str, str, str]] = set()
    if folder.is_dir():
        for part in sorted(folder.glob("*.csv")):
            with open(part, newline="", encoding="utf-8") as fh:
                rows.update(tuple(r) for r in csv.reader(fh) if len(r) == len(COLUMNS))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _write_private(Path(path), _csv_bytes(sorted(rows), header=True))
    return len(rows)
