"""Deterministic WebDataset tar shards: fixed mtime/owner/mode, sorted members, stable order.

Two runs over the same samples give byte-identical shards, so a crashed and resumed run is
indistinguishable from an uninterrupted one. Shards are streamed to a temporary file beside
their final name and renamed into place when complete: a writer holds one sample at a time.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from refrad_builder.engine import faults
from refrad_builder.engine.io import TMP_PREFIX

FIXED_MTIME = 0
# tar overhead of one member (its header block) and of a sample (padding, rounded up)
_MEMBER_OVERHEAD = 512


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


def _add_sample(tar: tarfile.TarFile, key: str, fields: dict[str, bytes]) -> None:
    if "." in key:
        raise ValueError("WebDataset keys must not contain dots")
    for ext in sorted(fields):
        tar.addfile(*_member(f"{key}.{ext}", fields[ext]))


def tar_bytes(samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    """A tar of (key, {extension: bytes}) samples; members sorted within each sample."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, fields in samples:
            _add_sample(tar, key, fields)
    return buf.getvalue()


class _HashingFile:
    """A write-only file that hashes and counts what passes through it (what tarfile needs
    of a file: write and tell)."""

    def __init__(self, fh):
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def tell(self) -> int:
        return self.size


class _OpenShard:
    """One shard being written to a temporary file in its final folder."""

    def __init__(self, path: Path):
        self.path = path
        fd, tmp = tempfile.mkstemp(
            prefix=f"{TMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent
        )
        self.tmp = Path(tmp)
        self.fh = os.fdopen(fd, "wb")
        self.out = _HashingFile(self.fh)
        self.tar = tarfile.open(fileobj=self.out, mode="w", format=tarfile.USTAR_FORMAT)
        self.keys: list[str] = []
        self.size = 0

    def add(self, key: str, fields: dict[str, bytes], size: int) -> None:
        _add_sample(self.tar, key, fields)
        self.keys.append(key)
        self.size += size

    def close(self) -> tuple[int, str]:
        """Finish the tar, make it durable and rename it into place: (bytes, sha256)."""
        self.tar.close()
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        faults.maybe_die(f"write:{self.path.name}")  # tests only: die before the rename
        os.replace(self.tmp, self.path)
        return self.out.size, self.out.sha.hexdigest()

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


class ShardStream:
    """Writes samples, in the order given, as consecutive shards of one series of names.

    ``name(part)`` gives the file name of the ``part``-th shard (0, 1, ...). A shard is
    closed when the next sample would exceed ``max_samples`` or ``max_bytes``. Use as a
    context manager: an exception removes the unfinished shard's temporary file.
    """

    def __init__(
        self,
        out_dir: Path,
        split: str,
        name: Callable[[int], str],
        max_samples: int,
        max_bytes: int,
    ):
        self.out_dir, self.split, self.name = Path(out_dir), split, name
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.shards: list[ShardInfo] = []
        self._open: _OpenShard | None = None

    def add(self, key: str, fields: dict[str, bytes]) -> str:
        """Add one sample; returns the name of the shard it went into."""
        size = sum(len(v) for v in fields.values()) + _MEMBER_OVERHEAD * (len(fields) + 1)
        cur = self._open
        if cur is not None and (
            len(cur.keys) >= self.max_samples or cur.size + size > self.max_bytes
        ):
            self._flush()
        if self._open is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._open = _OpenShard(self.out_dir / self.name(len(self.shards)))
        self._open.add(key, fields, size)
        return self._open.path.name

    def _flush(self) -> None:
        cur, self._open = self._open, None
        if cur is None:
            return
        size, sha = cur.close()
        self.shards.append(
            ShardInfo(cur.path.name, self.split, len(cur.keys), size, sha, list(cur.keys))
        )

    def close(self) -> list[ShardInfo]:
        """Finish the last shard; the shards written, in order."""
        self._flush()
        return self.shards

    def __enter__(self) -> ShardStream:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._open is not None:
            self._open.abort()
            self._open = None


def write_shards(
    out_dir: Path,
    split: str,
    samples: Iterable[tuple[str, dict[str, bytes]]],
    max_samples: int,
    max_bytes: int,
) -> list[ShardInfo]:
    """Write ``samples`` (already in their final order) as ``{split}-NNNNN.tar`` shards."""
    with ShardStream(
        out_dir, split, lambda part: f"{split}-{part:05d}.tar", max_samples, max_bytes
    ) as stream:
        for key, fields in samples:
            stream.add(key, fields)
        return stream.close()
