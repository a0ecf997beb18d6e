"""The input DICOM files: walking the input folders and finding a file again by its id.

Folder and file names of PACS exports often carry patient names, so no path is written
anywhere under the work or output folder: ingest records each file as a keyed id (HMAC of its
input root and relative path), and ``deid`` finds the files again by walking the inputs and
recomputing the ids, once per run on the driver (the paths then travel only in the items'
in-memory payloads, never in a ledger).
"""

from __future__ import annotations

import os
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


def index(secret: bytes, roots: list[Path], follow_symlinks: bool = False) -> dict[str, str]:
    """Keyed file id -> path (as a string) of every file under the input folders."""
    return {
        file_id(secret, idx, rel): str(root / rel)
        for idx, root, rel in walk([Path(r) for r in roots], follow_symlinks)
    }


def resolve(
    secret: bytes, roots: list[Path], ids: list[str], follow_symlinks: bool = False
) -> list[Path]:
    """The paths of input files by id, in order; InputFileMissing when one is gone. Walks the
    inputs once per call: plan with :func:`index` once for many lookups."""
    found = index(secret, roots, follow_symlinks)
    return paths_of(found, ids)


def paths_of(found: dict[str, str], ids: list[str]) -> list[Path]:
    """The paths of ``ids`` in an :func:`index`; InputFileMissing when one is gone."""
    missing = sum(i not in found for i in ids)
    if missing:
        raise InputFileMissing(
            f"{missing} input file(s) seen by ingest are gone; rerun ingest (refrad run)"
        )
    return [Path(found[i]) for i in ids]
