"""The error taxonomy every stage follows.

Per item there are three outcomes (see ``stage``): a permanent drop for a property of the
input (not DICOM, no pixel data, burned-in annotation, unsupported geometry), a transient
failure for a problem of the environment (an I/O error, memory, a missing model on a node, a
dead server) that the next run retries, and a failure for a program bug, recorded with the
exception's type and location (never its message, which may quote PHI). Code that turns
exceptions into drops asks :func:`is_environmental` first and re-raises those.
"""

from __future__ import annotations

import errno
import os


def is_environmental(exc: BaseException) -> bool:
    """True for a problem of the machine rather than of the input: the operating system failed
    a call (an ``OSError`` that carries an errno: EIO, ENOSPC, ESTALE, a vanished mount, ...)
    or memory ran out. Libraries raise ``OSError`` without an errno for malformed content;
    those stay the input's fault."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, OSError) and exc.errno is not None


def environment_message(exc: BaseException) -> str:
    """One line for a run stopped by the machine: the error code and the system's words for
    it, never the exception's message or file name (a path may quote PHI)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        what = f"{errno.errorcode.get(exc.errno, exc.errno)} ({os.strerror(exc.errno)})"
    else:
        what = type(exc).__name__
    return (
        f"the machine failed a write or read: {what}. Items finished so far are kept; "
        "fix the cause (free disk space, remount, more memory) and rerun: the run resumes"
    )
