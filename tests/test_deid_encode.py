"""The fast parts of the deid write path change no byte and skip no check.

- ``encode`` frames unchanged raw elements itself: its bytes must equal
  ``pydicom.dcmwrite(..., enforce_file_format=True)`` on every file pydicom ships and on the
  real J2K CT series, as read and after de-identification;
- reading converts only the elements whose conversion can fail: the premise (text and byte
  VRs convert without error whatever their bytes, while value validation is off) is checked
  on the installed pydicom, and a malformed numeric element still makes a file unreadable;
- the per-series memo of actions gives the same files as deciding every element afresh.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from refrad_builder.deid import encode as encode_mod
from refrad_builder.deid.dataset import InstanceUids, deidentify_dataset
from refrad_builder.deid.series import SeriesIds, deidentify_series
from refrad_builder.deid.source import (
    NEVER_FAILING_VRS,
    UnreadableDicom,
    encode,
    quiet_pydicom,
    read_source,
)
from refrad_builder.engine.config import DeidConfig

SECRET = b"encode-secret-0123456789abcdef"
PYDICOM_DATA = Path(pydicom.data.__file__).parent
REAL_CT = Path(__file__).resolve().parents[1] / "refrad_builder/demo/data/real_ct/dicom"
UIDS = InstanceUids(study="2.25.1", series="2.25.2", sop="2.25.3")


def _corpus() -> list[Path]:
    files = [p for p in sorted((PYDICOM_DATA / "test_files").rglob("*")) if p.is_file()]
    files += sorted(p for p in REAL_CT.iterdir() if p.is_file())
    return [p for p in files if p.stat().st_size < 4_000_000]


def _reference(ds: Dataset) -> bytes | type:
    """What pydicom itself writes, or the type of what it raises."""
    buf = io.BytesIO()
    try:
        with quiet_pydicom():
            pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except Exception as exc:
        return type(exc)
    return buf.getvalue()


def _ours(ds: Dataset) -> bytes | type:
    try:
        return encode(ds)
    except Exception as exc:
        return type(exc)


def _deidentified(path: Path) -> Dataset:
    ds = read_source(path)
    with quiet_pydicom():
        deidentify_dataset(ds, secret=SECRET, patient_id="p", uids=UIDS, options=DeidConfig())
    return ds


@pytest.mark.parametrize("deid", [False, True], ids=["as_read", "deidentified"])
def test_encode_writes_what_pydicom_writes(deid: bool, monkeypatch) -> None:
    fast = []
    real = encode_mod._fast_syntax
    monkeypatch.setattr(
        encode_mod, "_fast_syntax", lambda ds: fast.append(real(ds) is not None) or real(ds)
    )
    compared = 0
    for path in _corpus():
        try:
            read = _deidentified if deid else read_source
            first, second = read(path), read(path)
        except UnreadableDicom:
            continue
        except Exception:
            if deid:  # files the de-identification itself refuses are not about encoding
                continue
            raise
        ours, reference = _ours(first), _reference(second)
        assert ours == reference, path.name
        compared += 1
    assert compared > 60
    # the fast path ran on a good share of them (explicit VR little endian files)
    assert sum(fast) >= 25, sum(fast)


def test_raw_elements_of_every_kind_are_framed_as_pydicom_frames_them() -> None:
    ds = read_source(sorted(REAL_CT.iterdir())[0])
    values = {
        (0x00091010, "LO"): b"odd",  # odd length, written as is
        (0x00091011, "UT"): b"x" * 70_000,  # 32-bit length field
        (0x00091012, "OB"): b"\x00\x01",
        (0x00091013, "UN"): b"\x01\x02\x03\x04",
        (0x00091014, "LT"): b"",  # empty value
        (0x00091015, "US"): b"\x01\x00\x02\x00",
    }
    for (tag, vr), value in values.items():
        ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    copy = read_source(sorted(REAL_CT.iterdir())[0])
    for (tag, vr), value in values.items():
        copy._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    assert encode(ds) == _reference(copy)


GARBAGE = [b"\xff\xfe\x00\x80", b"a\\b\\\xe9", b"12.5.x", b"\x00", b"   ", b"^^^=\x1b$B\x80"]
# as read: what Specific Character Set values become (unknown terms become the default)
CHARSETS = ["ISO_IR 999", "ISO_IR 192", "ISO 2022 IR 6\\ISO 2022 IR 87", "GB18030", "ISO_IR 13"]


@pytest.mark.parametrize("vr", sorted(NEVER_FAILING_VRS))
def test_conversion_of_never_failing_vrs_cannot_fail(vr: str) -> None:
    for term in CHARSETS:
        ds = Dataset()
        ds.SpecificCharacterSet = term.split("\\")
        for value in GARBAGE:
            raw = RawDataElement(Tag(0x00100010), vr, len(value), value, 0, False, True)
            with quiet_pydicom():
                elem = convert_raw_data_element(raw, encoding=ds._character_set, ds=ds)
            assert elem.VR == vr


def test_a_malformed_numeric_element_still_makes_the_file_unreadable(tmp_path: Path) -> None:
    src = sorted(REAL_CT.iterdir())[0]
    data = bytearray(src.read_bytes())
    ds = pydicom.dcmread(src)
    # Rows (0028,0010) US, 2 bytes: give it a length of 3 by rewriting its header
    header = b"\x28\x00\x10\x00US\x02\x00"
    at = bytes(data).index(header)
    rows = int(ds.Rows).to_bytes(2, "little")
    data[at : at + 10] = b"\x28\x00\x10\x00US\x03\x00" + rows + b"\x00"
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(bytes(data))
    with pytest.raises(UnreadableDicom):
        read_source(bad)
    read_source(src)  # the original is fine


def test_series_memo_gives_the_files_of_fresh_decisions(tmp_path: Path) -> None:
    sources = sorted(p for p in REAL_CT.iterdir() if p.is_file())[:4]
    out: dict[int, bytes] = {}
    ids = SeriesIds(patient_id="pat", study_id="stu", series_id="ser")
    result = deidentify_series(
        sources, secret=SECRET, ids=ids, options=DeidConfig(), sink=out.__setitem__
    )
    assert result.written == [0, 1, 2, 3]
    for i, path in enumerate(sources):
        alone = pydicom.dcmread(io.BytesIO(out[i]))
        ds = read_source(path)
        uids = InstanceUids(
            study=alone.StudyInstanceUID, series=alone.SeriesInstanceUID, sop=alone.SOPInstanceUID
        )
        with quiet_pydicom():
            deidentify_dataset(ds, secret=SECRET, patient_id="pat", uids=uids, options=DeidConfig())
        assert encode(ds) == out[i]
