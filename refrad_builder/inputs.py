"""The input DICOM files: walking the input folders and finding a file again by its id.

Folder and file names of PACS exports often carry patient names, so no path is written
anywhere under the work or output folder: ingest records each file as a keyed id (HMAC of its
input root and relative path), and ``deid`` finds the files again by walking the inputs and
recomputing the ids. The walk is cached per process and redone only when an id is missing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from refrad_builder.pseudo import keyed_hex


class InputFileMissing(FileNotFoundError):
    """A file ingest saw is gone from the inputs (the message names no path)."""


def walk(roots: list[Path], follow_symlinks: bool = False) -> list[tuple[int, Path, str]]:
    """Every file under the input folders as (root index, root, relative posix path), sorted."""
    found = []
    for root_idx, root in enumerate(roots):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"input folder #{root_idx} does not exist")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
            dirnames.sort()
            for fn in sorted(filenames):
                full = Path(dirpath) / fn
                if full.is_file():
                    found.append((root_idx, root, full.relative_to(root).as_posix()))
    return found


def file_id(secret: bytes, root_idx: int, rel: str) -> str:
    """The keyed id of an input file (dot-free, no path information)."""
    return keyed_hex(secret, "file", str(root_idx), rel, n=24)


_lock = threading.Lock()
_index: dict[tuple, dict[str, Path]] = {}


def resolve(
    secret: bytes, roots: list[Path], ids: list[str], follow_symlinks: bool = False
) -> list[Path]:
    """The paths of input files by id, in order; InputFileMissing when one is gone."""
    key = (secret, tuple(str(r) for r in roots), follow_symlinks)
    with _lock:
        index = _index.get(key)
        if index is None or any(i not in index for i in ids):
            index = {
                file_id(secret, idx, rel): root / rel
                for idx, root, rel in walk([Path(r) for r in roots], follow_symlinks)
            }
            _index.clear()  # one input tree per process at a time: keep memory bounded
            _index[key] = index
    missing = sum(i not in index for i in ids)
    if missing:
        raise InputFileMissing(
            f"{missing} input file(s) seen by ingest are gone; rerun ingest (refrad run)"
        )
    return [index[i] for i in ids]
