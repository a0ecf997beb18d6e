"""Scaling of the whole pipeline on Ray: generated demo corpora at 1x, 2x and 4x studies.

Each size gets a fresh demo corpus (``make_demo``, generated studies only) and a fresh work
and output folder; ``refrad run`` runs the whole DAG in a subprocess on an embedded Ray
(executor ``ray``, the demo config's segmentation: precomputed label maps, classical where
none matches), exactly as a user's ``make shards`` does. The fixed startup ``T0`` is a run
of an empty corpus (Ray start, planning, the empty shards). Printed: wall time per size,
``(T4x - T0) / (T1x - T0)`` against the linear 4.0 (target <= 4.6), studies per minute, and
the load average around each run (the machine may be shared).

    .venv/bin/python benchmarks/scaling.py [--base 8] [--set execution.streaming=false]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from refrad_builder.demo import make_demo

TARGET = 4.6  # 4x the data may take at most 1.15x linear time beyond the fixed startup
REFRAD = Path(sys.executable).with_name("refrad")


@dataclass
class Timing:
    """One run of the pipeline on one corpus size."""

    studies: int
    seconds: float
    load_before: float
    load_after: float


def run_once(root: Path, studies: int, settings: list[str]) -> Timing:
    """Generate ``studies`` demo studies under ``root`` and time one whole ``refrad run``."""
    demo = root / f"demo-{studies}"
    make_demo(demo, studies=studies, seed=7, include_real=False)
    work, out = root / f"work-{studies}", root / f"out-{studies}"
    cmd = [str(REFRAD), "run", "--config", str(demo / "config.yaml")]
    cmd += ["--work", str(work), "--out", str(out), "--executor", "ray"]
    for s in settings:
        cmd += ["--set", s]
    if studies == 0:
        cmd.append("--no-validate")  # an empty corpus has no shards to validate
    for _attempt in range(3):
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
        seconds = time.perf_counter() - t0
        # on an overloaded machine Ray itself may not come up in time: try once more
        if "timed out during startup" not in proc.stdout + proc.stderr:
            break
        print(f"  {studies} studies: Ray did not start in time; running again", flush=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"refrad run failed on {studies} studies:\n{tail}")
    shutil.rmtree(demo, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    timing = Timing(studies, seconds, load_before, os.getloadavg()[0])
    print(f"  {studies} studies: {seconds:.1f} s (load {load_before:.1f})", flush=True)
    return timing


def bench_scaling(base: int = 8, settings: list[str] | None = None) -> list[Timing]:
    """Time the empty corpus, then 1x, 2x and 4x ``base`` studies."""
    with tempfile.TemporaryDirectory(prefix="refrad-scaling-") as tmp:
        return [run_once(Path(tmp), n, settings or []) for n in (0, base, 2 * base, 4 * base)]


def report(timings: list[Timing]) -> tuple[float, float]:
    """Print the table; return (ratio (T4x - T0) / (T1x - T0), studies per minute at 4x)."""
    t0, t1, _t2, t4 = timings
    print(f"{'studies':>8s} {'wall s':>8s} {'net s':>8s} {'studies/min':>12s} {'load avg':>13s}")
    for t in timings:
        net = t.seconds - t0.seconds
        rate = f"{60 * t.studies / t.seconds:12.2f}" if t.studies else f"{'-':>12s}"
        load = f"{t.load_before:5.1f}->{t.load_after:5.1f}"
        print(f"{t.studies:8d} {t.seconds:8.1f} {net:8.1f} {rate} {load:>13s}")
    ratio = (t4.seconds - t0.seconds) / max(t1.seconds - t0.seconds, 1e-9)
    flag = "ok" if ratio <= TARGET else "SLOW"
    print(
        f"fixed startup T0 = {t0.seconds:.1f} s (empty corpus); "
        f"(T{t4.studies} - T0) / (T{t1.studies} - T0) = "
        f"({t4.seconds:.1f} - {t0.seconds:.1f}) / ({t1.seconds:.1f} - {t0.seconds:.1f}) = "
        f"{ratio:.2f} against linear 4.00, target <= {TARGET:.2f}: {flag}"
    )
    net_rate = 60 * t4.studies / max(t4.seconds - t0.seconds, 1e-9)
    print(
        f"{t4.studies} studies: {60 * t4.studies / t4.seconds:.2f} studies/min wall, "
        f"{net_rate:.2f} studies/min beyond startup, on {os.cpu_count()} cores"
    )
    return ratio, 60 * t4.studies / t4.seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=8, help="studies at 1x (default 8)")
    parser.add_argument("--set", action="append", default=[], help="refrad run --set KEY=VALUE")
    args = parser.parse_args(argv)
    print(f"scaling: whole pipeline on Ray, settings {args.set or 'default'}")
    report(bench_scaling(args.base, args.set))


if __name__ == "__main__":
    main()
