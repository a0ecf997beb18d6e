"""The pieces the fault tests rely on, quickly: the test-only kill hook fires once per point
(in a real child process, which dies by SIGKILL), an interrupted atomic write leaves only a
temp file that the next run's sweep removes, a zip bomb is refused unread, and a machine
error is told in one line without its path."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from refrad_builder.engine import faults
from refrad_builder.engine.errors import environment_message
from refrad_builder.engine.io import is_temp_name, remove_stale_temp
from refrad_builder.inputs.walk import ArchiveMemberError, open_input

WRITE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from refrad_builder.engine.io import atomic_write_bytes\n"
    "atomic_write_bytes(Path(sys.argv[1]), b'x' * 100_000)\n"
)


def _write_in_child(target: Path, marks: Path, point: str) -> int:
    env = {**os.environ, faults.ENV: point, faults.DIR_ENV: str(marks)}
    return subprocess.run([sys.executable, "-c", WRITE, str(target)], env=env).returncode


def test_kill_during_a_write_leaves_only_a_temp_file_once(tmp_path):
    marks, target = tmp_path / "m", tmp_path / "out" / "a.tar"
    marks.mkdir()
    assert _write_in_child(target, marks, "write:*.tar") == -9
    assert not target.exists()
    [left] = list(target.parent.iterdir())
    assert is_temp_name(left.name) and 0 < left.stat().st_size < 100_000  # half written
    assert faults.fired("write:*.tar", marks)
    # the marker is there: the same point does not fire again
    assert _write_in_child(target, marks, "write:*.tar") == 0
    assert target.read_bytes() == b"x" * 100_000
    # an unrelated point never fires
    assert _write_in_child(tmp_path / "b.json", marks, "write:*.parquet") == 0


def test_nth_arrival_and_unset_hook(monkeypatch, tmp_path):
    monkeypatch.delenv(faults.ENV, raising=False)
    assert not faults.should_fire("item:text")
    monkeypatch.setenv(faults.ENV, "item:deid@3;item:text")
    monkeypatch.setenv(faults.DIR_ENV, str(tmp_path))
    assert [faults.should_fire("item:deid") for _ in range(4)] == [False, False, True, False]
    assert faults.should_fire("item:text") and not faults.should_fire("item:text")
    assert not faults.should_fire("item:volume")


def test_sweep_removes_only_temp_files(tmp_path):
    keep = [tmp_path / "ledger" / "abc.json", tmp_path / "train-00000.tar", tmp_path / ".lock"]
    temp = [
        tmp_path / "ledger" / ".refrad-tmp-abc.json.k2j3h4g5.tmp",
        tmp_path / ".refrad-tmp-index.q8w7e6r5.parquet",
        tmp_path / "blobs" / ".x.nii.gz.ab12cd34.tmp",  # an earlier version's name
    ]
    for p in keep + temp:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"1")
    assert remove_stale_temp(tmp_path) == 3
    assert all(p.exists() for p in keep) and not any(p.exists() for p in temp)


def test_zip_bomb_member_is_refused_unread(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("big.dcm", "w", force_zip64=True) as fh:
            for _ in range(80):
                fh.write(bytes(2**20))
        zf.writestr("small.dcm", b"DICM" * 10)
    with pytest.raises(ArchiveMemberError) as err:
        open_input(f"{archive}::big.dcm")
    assert err.value.reason == "suspected_zip_bomb"
    assert open_input(f"{archive}::small.dcm").read() == b"DICM" * 10


def test_machine_error_message_names_no_path():
    exc = OSError(errno.ENOSPC, "No space left on device", "/data/Mueller_Hans/0001.dcm")
    text = environment_message(exc)
    assert "ENOSPC" in text and "rerun" in text and "Mueller" not in text
