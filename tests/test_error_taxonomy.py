"""Drops are for properties of the input, never for the machine's problems: an I/O error or
exhausted memory while reading propagates (the item fails and the next run retries it),
while a file that is merely corrupt costs its images only."""

from __future__ import annotations

import errno

import pydicom
import pytest

from refrad_builder.engine.errors import is_environmental
from refrad_builder.imaging import series_headers
from refrad_builder.imaging.series_volume import read_series


@pytest.mark.parametrize(
    ("exc", "environmental"),
    [
        (OSError(errno.EIO, "Input/output error"), True),
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (FileNotFoundError(errno.ENOENT, "gone"), True),
        (MemoryError(), True),
        (OSError("pydicom: unexpected end of file"), False),  # a library's words, no errno
        (ValueError("bad value"), False),
        (EOFError(), False),
    ],
)
def test_environmental_errors(exc, environmental):
    assert is_environmental(exc) is environmental


def _flaky(monkeypatch, victim: str, exc: BaseException) -> None:
    real = pydicom.dcmread

    def read(fp, *args, **kwargs):
        if str(fp).endswith(victim):
            raise exc
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(series_headers.pydicom, "dcmread", read)


def test_io_error_fails_the_series_instead_of_leaving_a_gap(real_ct_dir, monkeypatch):
    files = sorted((real_ct_dir / "real_ct" / "series_1").iterdir())
    _flaky(monkeypatch, files[7].name, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(OSError):
        read_series(files, "CT")


def test_memory_error_fails_the_series(real_ct_dir, monkeypatch):
    files = sorted((real_ct_dir / "real_ct" / "series_1").iterdir())
    _flaky(monkeypatch, files[7].name, MemoryError())
    with pytest.raises(MemoryError):
        read_series(files, "CT")


def test_a_corrupt_file_costs_its_image_only(real_ct_dir, monkeypatch):
    """A parser error (pydicom raises many types for damaged files) is the file's fault."""
    files = sorted((real_ct_dir / "real_ct" / "series_1").iterdir())
    _flaky(monkeypatch, files[0].name, ValueError("damaged element"))
    vol = read_series(files, "CT")
    assert vol.skipped == {"unreadable": 1}
    assert vol.data.shape[2] == 19
