"""Reading a shard folder: its tar shards in ``shards.json`` order and their samples, member by
member, without WebDataset's decoding (the card, the preview and validation read this way)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from refrad_builder.engine.io import read_json


def shard_paths(shard_dir: Path) -> list[Path]:
    """The tar shards of a folder, in ``shards.json`` order (sorted names without one).

    A path to one tar file is that shard alone.
    """
    shard_dir = Path(shard_dir)
    if shard_dir.is_file():
        return [shard_dir]
    index = shard_dir / "shards.json"
    if index.exists():
        return [shard_dir / s["name"] for s in read_json(index)["shards"]]
    return sorted(shard_dir.glob("*.tar"))


def iter_samples(shard_dir: Path, fields: tuple[str, ...] = ("json",)) -> Iterator[dict]:
    """Samples of the folder's shards as ``{"__key__": key, field: bytes, ...}``.

    Only the requested fields (tar member extensions such as ``json`` or ``image.png``) are
    read; members are grouped by key in shard order, as WebDataset writes them.
    """
    for path in shard_paths(shard_dir):
        with tarfile.open(path) as tar:
            current: dict[str, Any] | None = None
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                if current is None or current["__key__"] != key:
                    if current is not None:
                        yield current
                    current = {"__key__": key}
                if ext in fields:
                    current[ext] = tar.extractfile(member).read()
            if current is not None:
                yield current
