"""Deterministic WebDataset tar shards: fixed mtime/owner/mode, sorted members, stable order.

Two runs over the same samples give byte-identical shards, so a crashed and resumed run is
indistinguishable from an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from refrad_builder.engine.io import atomic_write_bytes

FIXED_MTIME = 0


@dataclass
class ShardInfo:
    """One written shard."""

    name: str
    split: str
    samples: int
    bytes: int
    sha256: str
    keys: list[str] = field(default_factory=list)


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


def tar_bytes(samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    """A tar of (key, {extension: bytes}) samples; members sorted within each sample."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, fields in samples:
            if "." in key:
                raise ValueError("WebDataset keys must not contain dots")
            for ext in sorted(fields):
                tar.addfile(*_member(f"{key}.{ext}", fields[ext]))
    return buf.getvalue()


def write_shards(
    out_dir: Path,
    split: str,
    samples: list[tuple[str, dict[str, bytes]]],
    max_samples: int,
    max_bytes: int,
) -> list[ShardInfo]:
    """Write ``samples`` (already in their final order) as ``{split}-NNNNN.tar`` shards."""
    shards: list[ShardInfo] = []
    batch: list[tuple[str, dict[str, bytes]]] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        if not batch:
            return
        name = f"{split}-{len(shards):05d}.tar"
        data = tar_bytes(batch)
        atomic_write_bytes(out_dir / name, data)
        shards.append(
            ShardInfo(
                name=name,
                split=split,
                samples=len(batch),
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                keys=[k for k, _ in batch],
            )
        )
        batch, size = [], 0

    for key, fields in samples:
        sample_size = sum(len(v) for v in fields.values()) + 512 * (len(fields) + 1)
        if batch and (len(batch) >= max_samples or size + sample_size > max_bytes):
            flush()
        batch.append((key, fields))
        size += sample_size
    flush()
    return shards
