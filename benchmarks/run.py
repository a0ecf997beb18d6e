"""Benchmarks with their baselines measured in the same run; prints ratios (ours / baseline).

- volume: building the canonical volume of the real CT series (20 JPEG 2000 slices) vs a
  plain pydicom read-and-decode of the same files.
- shards: writing deterministic WebDataset shards vs a plain ``tarfile`` write of the same
  bytes.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from refrad_builder.imaging.series_volume import read_series_canonical
from refrad_builder.shardwriter import write_shards

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT / "refrad_builder" / "demo" / "data" / "real_ct" / "dicom"


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_volume() -> tuple[float, float]:
    files = sorted(REAL_CT.iterdir())

    def plain() -> None:
        for f in files:
            pydicom.dcmread(f).pixel_array  # noqa: B018 (decode is the point)

    def ours() -> None:
        read_series_canonical(files, "CT", min_slices=1, spacing_tolerance=0.2)

    return best_of(ours), best_of(plain)


def bench_shards() -> tuple[float, float]:
    rng = np.random.default_rng(0)
    samples = [
        (
            f"{i:024x}",
            {
                "image.png": rng.bytes(60_000),
                "mask.png": rng.bytes(4_000),
                "json": rng.bytes(3_000),
            },
        )
        for i in range(400)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def ours() -> None:
            write_shards(out / "ours", "train", samples, max_samples=200, max_bytes=1 << 40)

        def plain() -> None:
            (out / "plain").mkdir(exist_ok=True)
            for part in range(2):
                with tarfile.open(out / "plain" / f"{part}.tar", "w") as tar:
                    for key, fields in samples[part * 200 : (part + 1) * 200]:
                        for ext, data in fields.items():
                            info = tarfile.TarInfo(f"{key}.{ext}")
                            info.size = len(data)
                            tar.addfile(info, io.BytesIO(data))

        return best_of(ours), best_of(plain)


def main() -> None:
    rows = [("volume build vs plain pydicom decode", *bench_volume(), 1.3)]
    rows.append(("shard write vs plain tarfile", *bench_shards(), 1 / 0.8))
    print(f"{'benchmark':42s} {'ours s':>8s} {'base s':>8s} {'ratio':>6s} {'target':>7s}")
    for name, ours, base, target in rows:
        ratio = ours / base
        flag = "ok" if ratio <= target else "SLOW"
        print(f"{name:42s} {ours:8.3f} {base:8.3f} {ratio:6.2f} {target:7.2f} {flag}")


if __name__ == "__main__":
    main()
