"""Config loading/overrides/secret handling, the ledger, the schema files."""

from __future__ import annotations

import stat

import pytest

from refrad_builder.engine.config import SecretMissing, load_config, load_secret
from refrad_builder.engine.ledger import Ledger, item_fingerprint, output_hash
from refrad_builder.engine.runner import select_stages
from refrad_builder.engine.stage import get_stage
from refrad_builder.publish.schema_gen import generate


def test_yaml_and_overrides(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("work_dir: w\nslices:\n  max_slices_per_series: 5\n")
    cfg = load_config(cfg_file, ["slices.min_box_area_px=7", "text.languages=[en]"])
    assert cfg.slices.max_slices_per_series == 5 and cfg.slices.min_box_area_px == 7
    assert cfg.text.languages == ["en"]
    with pytest.raises(ValueError):
        load_config(cfg_file, ["slices.no_such_option=1"])


def test_section_hash_isolates_stages():
    a = load_config(None, [])
    b = load_config(None, ["text.max_presence_negatives=1"])
    assert a.section_hash("text") != b.section_hash("text")
    for other in ("ingest", "deid", "volume", "segment", "slices", "shards"):
        assert a.section_hash(other) == b.section_hash(other)


def test_secret_required_outside_demo(tmp_path, monkeypatch):
    monkeypatch.delenv("REFRAD_SECRET", raising=False)
    monkeypatch.delenv("REFRAD_SECRET_FILE", raising=False)
    with pytest.raises(SecretMissing):
        load_secret(load_config(None, [f"work_dir={tmp_path}"]))
    key, origin = load_secret(load_config(None, [f"work_dir={tmp_path}", "demo=true"]))
    assert len(key) >= 32 and origin.startswith("demo")
    assert load_secret(load_config(None, [f"work_dir={tmp_path}", "demo=true"]))[0] == key
    assert stat.S_IMODE((tmp_path / "demo-secret.key").stat().st_mode) == 0o600
    secret_file = tmp_path / "k"
    secret_file.write_text("x" * 40)
    secret_file.chmod(0o644)
    with pytest.raises(SecretMissing, match="chmod 600"):  # group/world-readable: refused
        load_secret(load_config(None, [f"secret_file={secret_file}"]))
    secret_file.chmod(0o600)
    assert load_secret(load_config(None, [f"secret_file={secret_file}"]))[0] == b"x" * 40
    monkeypatch.setenv("REFRAD_SECRET", "y" * 40)
    assert load_secret(load_config(None, []))[0] == b"y" * 40


def test_ledger_outcomes(tmp_path):
    led = Ledger(tmp_path / "s")
    fp = item_fingerprint("s", "1", "c", "in")
    led.write_manifest({"a": fp, "b": fp, "c": fp, "d": fp}, "1", "c")
    led.mark_ok("a", fp, [{"x": 1}])
    led.mark_drop("b", fp, "bad_input", "")
    led.mark_error("c", fp, "TimeoutError", "llm.py:10")
    st = led.status("s")
    assert (st.done, st.dropped, st.failed, st.pending) == (
        1,
        {"bad_input": 1},
        {"TimeoutError": 1},
        1,
    )
    # done items carry the hash of their outputs, which downstream fingerprints use
    assert led.current_outputs() == [("a", output_hash(fp, [{"x": 1}]), [{"x": 1}])]
    assert output_hash(fp, [{"x": 2}]) != output_hash(fp, [{"x": 1}])
    assert led.is_done("a", fp) and not led.is_done("a", "other") and not led.is_done("c", fp)
    led.mark_ok("c", fp, [])
    assert led.status("s").failed == {}


def test_stage_selection():
    assert select_stages(only="segment") == ["segment"]
    assert select_stages(start="slices") == ["slices", "text", "shards"]
    assert select_stages(until="deid") == ["ingest", "deid"]
    with pytest.raises(ValueError):
        select_stages(only="nope")
    for name in select_stages():
        assert get_stage(name).name == name


def test_committed_schemas_are_fresh():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "schemas"
    for fname, text in generate().items():
        assert (root / fname).read_text() == text, f"{fname} is stale: run `make schemas`"
