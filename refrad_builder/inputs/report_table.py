"""Report tables (CSV, JSONL or Parquet) read with polars; one row per report."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import polars as pl


class ReportTableError(ValueError):
    """A report table that cannot be read (the message names the file, never its content)."""


def load_table(path: str) -> pl.DataFrame:
    """Read a report table; every column as string, nulls kept (cached per file version)."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        raise ReportTableError(f"report table {Path(path).name} does not exist") from None
    return _load(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: str, size: int, mtime_ns: int) -> pl.DataFrame:
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            df = pl.read_csv(p, infer_schema=False)
        elif suffix in (".jsonl", ".ndjson"):
            df = pl.read_ndjson(p)
        elif suffix == ".parquet":
            df = pl.read_parquet(p)
        else:
            raise ReportTableError(f"report table {p.name}: unknown format {suffix!r}")
    except ReportTableError:
        raise
    except Exception as exc:  # polars raises many types; the message may quote content
        raise ReportTableError(
            f"report table {p.name} could not be read ({type(exc).__name__})"
        ) from None
    return df.with_columns(pl.all().cast(pl.Utf8))


def report_row(path: str, row: int) -> dict[str, str | None]:
    """One row of a report table as a dict."""
    return load_table(str(path)).row(row, named=True)
