"""What the fault tests share: the small demo they all run, the `refrad` command line as a
user runs it, and the checks of an output folder (bytes, temp files, validation).

The session fixtures built on these (in ``conftest.py``) make the demo and one undisturbed
reference run once; every fault test compares its shards folder with that reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from refrad_builder.engine.io import is_temp_name

SECRET = "fault-test-secret-0123456789abcdef"
REFRAD = [sys.executable, "-m", "refrad_builder.cli"]
# small and quick, with several shards per split (the kill during shard writing needs two)
SETTINGS = ["slices.max_slices_per_series=2", "shards.max_samples_per_shard=2"]


def env(**extra: str) -> dict[str, str]:
    """The environment of a `refrad` process of the fault tests."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "REFRAD_"))}
    out.update(REFRAD_SECRET=SECRET, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    out.update(extra)
    return out


def run_args(config: Path, work: Path, out: Path, *settings: str) -> list[str]:
    """`refrad run` arguments for a run of ``config`` into ``work`` and ``out``."""
    args = ["run", "--config", str(config), "--work", str(work), "--out", str(out)]
    for s in [*SETTINGS, *settings]:
        args += ["--set", s]
    return args


def refrad(
    args: list[str], log: Path, extra_env: dict[str, str] | None = None, **popen
) -> subprocess.CompletedProcess:
    """Run `refrad` (output appended to ``log``); returns the finished process."""
    with open(log, "ab") as fh:
        fh.write(f"\n$ refrad {' '.join(args[:1])} ({extra_env or {}})\n".encode())
        fh.flush()
        return subprocess.run(
            REFRAD + args,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env(**(extra_env or {})),
            timeout=900,
            **popen,
        )


def shard_bytes(out: Path) -> dict[str, bytes]:
    """The shards and the index: what must be byte-identical to the reference."""
    files = sorted(out.glob("*.tar")) + [out / "index.parquet"]
    return {p.name: p.read_bytes() for p in files if p.exists()}


def temp_files(*folders: Path) -> list[Path]:
    """Temp files of atomic writes anywhere under ``folders``."""
    return [p for f in folders for p in Path(f).rglob("*") if p.is_file() and is_temp_name(p.name)]


def validates(out: Path, log: Path) -> bool:
    """Whether `refrad validate` accepts the folder (as a user would check it)."""
    return refrad(["validate", str(out)], log).returncode == 0


def tail(log: Path, n: int = 4000) -> str:
    return Path(log).read_text(errors="replace")[-n:]
