"""The input DICOM files: walking the input folders (zip archives included) and finding a file
again by its id.

Folder and file names of PACS exports often carry patient names, so no path is written
anywhere under the work or output folder: ingest records each file as a keyed id (HMAC of its
input root and relative path), and ``deid`` finds the files again by walking the inputs and
recomputing the ids, once per run on the driver (the paths then travel only in the items'
in-memory payloads, never in a ledger).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import BinaryIO

from refrad_builder.deid.pseudo import keyed_hex

# A zip member is addressed as "<archive path>::<member name>": a regular file has no
# children, so the first "::" after an existing file ends the archive's path.
MEMBER_SEP = "::"
# A member that inflates more than this many times and to more than MIN_BOMB_BYTES is refused
# unread (a zip bomb): DICOM compresses a few times, a few-MB archive of gigabytes does not.
MAX_RATIO = 100
MIN_BOMB_BYTES = 64 * 2**20


class InputFileMissing(FileNotFoundError):
    """A file ingest saw is gone from the inputs (the message names no path)."""


class ArchiveMemberError(Exception):
    """A zip member that cannot be read (``reason``: a short code; no names in the message)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def split_member(path: str | Path) -> tuple[str, str | None]:
    """(archive file, member name) of a zip member's path; (path, None) for a plain file."""
    text = str(path)
    at = text.find(MEMBER_SEP)
    while at != -1:
        if os.path.isfile(text[:at]):
            return text[:at], text[at + len(MEMBER_SEP) :]
        at = text.find(MEMBER_SEP, at + len(MEMBER_SEP))
    return text, None


def _members(archive: Path) -> list[str] | None:
    """The file members of a zip archive, or None when it cannot be listed."""
    try:
        with zipfile.ZipFile(archive) as zf:
            return [i.filename for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def open_input(path: str | Path, max_bytes: int | None = None) -> BinaryIO:
    """A binary file object of an input file or zip member (members are read into memory,
    at most ``max_bytes``). ArchiveMemberError when a member cannot be read."""
    archive, member = split_member(path)
    if member is None:
        return open(archive, "rb")  # noqa: SIM115 (the caller closes it)
    try:
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo(member)
            if max_bytes is not None and info.file_size > max_bytes:
                raise ArchiveMemberError("file_too_large")
            if info.file_size > max(MIN_BOMB_BYTES, MAX_RATIO * info.compress_size):
                raise ArchiveMemberError("suspected_zip_bomb")
            with zf.open(info) as fh:
                data = fh.read()
    except (ArchiveMemberError, OSError):
        raise  # OSError: the archive itself is gone or unreadable, like a missing file
    except RuntimeError:  # zipfile's "File ... is encrypted, password required"
        raise ArchiveMemberError("archive_encrypted") from None
    except Exception:  # a damaged archive: bad headers, CRC, zlib data, unknown compression
        raise ArchiveMemberError("archive_member_unreadable") from None
    return io.BytesIO(data)


def input_size(path: str | Path) -> int:
    """Bytes of an input file, or the declared uncompressed size of a zip member."""
    archive, member = split_member(path)
    if member is None:
        try:
            return os.stat(archive).st_size
        except OSError:  # a link that leads nowhere: the header read says why it is no input
            return 0
    try:
        with zipfile.ZipFile(archive) as zf:
            return zf.getinfo(member).file_size
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return 0


def change_key(path: str | Path) -> tuple:
    """What changes when an input changes: size, mtime and mode (of the archive, for a
    member). The mode is in it so that fixing a file's permissions makes it an input anew; a
    link that leads nowhere is keyed by the link itself."""
    archive, member = split_member(path)
    try:
        st = os.stat(archive)
    except OSError:
        st = os.lstat(archive)
    return (st.st_size, st.st_mtime_ns, st.st_mode, member)


def walk(roots: list[Path], follow_symlinks: bool = False) -> list[tuple[int, Path, str]]:
    """Every file under the input folders as (root index, root, relative posix path), sorted;
    the files inside a ``.zip`` take its place (``archive.zip::member``)."""
    found = []
    for root_idx, root in enumerate(roots):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"input folder #{root_idx} does not exist")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
            dirnames.sort()
            # Links to folders are not followed (unless asked): they are counted as inputs
            # that ingest rejects, like links that lead nowhere, pipes and sockets.
            unfollowed = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
            for fn in sorted(filenames + (unfollowed if not follow_symlinks else [])):
                full = Path(dirpath) / fn
                rel = full.relative_to(root).as_posix()
                zipped = fn.lower().endswith(".zip") and full.is_file()
                members = _members(full) if zipped else None
                if members:  # a zip's files are inputs of their own
                    found += [(root_idx, root, f"{rel}{MEMBER_SEP}{m}") for m in sorted(members)]
                else:  # a file, or a zip that cannot be listed or is empty: ingest rejects it
                    found.append((root_idx, root, rel))
    return found


def file_id(secret: bytes, root_idx: int, rel: str) -> str:
    """The keyed id of an input file (dot-free, no path information)."""
    return keyed_hex(secret, "file", str(root_idx), rel, n=24)


def index(secret: bytes, roots: list[Path], follow_symlinks: bool = False) -> dict[str, str]:
    """Keyed file id -> path (as a string) of every file under the input folders."""
    return {
        file_id(secret, idx, rel): os.path.join(root, rel)
        for idx, root, rel in walk([Path(r) for r in roots], follow_symlinks)
    }


def resolve(
    secret: bytes, roots: list[Path], ids: list[str], follow_symlinks: bool = False
) -> list[str]:
    """The paths of input files by id, in order; InputFileMissing when one is gone. Walks the
    inputs once per call: plan with :func:`index` once for many lookups."""
    found = index(secret, roots, follow_symlinks)
    return paths_of(found, ids)


def paths_of(found: dict[str, str], ids: list[str]) -> list[str]:
    """The paths of ``ids`` in an :func:`index`; InputFileMissing when one is gone."""
    missing = sum(i not in found for i in ids)
    if missing:
        raise InputFileMissing(
            f"{missing} input file(s) seen by ingest are gone; rerun ingest (refrad run)"
        )
    return [found[i] for i in ids]
