import argparse
import json
from pathlib import Path

import jsonschema

from refrad_builder.engine.records import ReportRecord
from refrad_builder.reports.analyze import (
    add_report_analyze_arguments,
    analyze,
    build_record,
    cli_report_analyze,
)
from refrad_builder.reports.scrub import known_phi_hashes

KEY = b"analyze-test-key-0123456789abcd"
SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "report_analysis.schema.json"

DE_REPORT = """Patient: Mustermann, Max, geb. 14.03.1952

Klinische Angaben: Z.n. Sturz, Schmerzen rechter Thorax.
Fragestellung: Rippenfraktur? Pneumothorax?

Befund:
Fraktur der 7. und 8. Rippe rechts (Se 3/Bi 142). Kein Pneumothorax.
Hypodense Leberläsion ca. 1,2 cm, größenkonstant zur Voruntersuchung vom 02.01.2023.
Milz, Pankreas und Nebennieren unauffällig. Nierenzyste links (Bild 88).

Beurteilung:
1. Rippenfrakturen 7 und 8 rechts.
2. Größenkonstante Leberläsion, am ehesten Zyste.

Dr. med. Schmidt
"""

EN_REPORT = """Clinical history: Fall. Patient John Smith.
Findings: Left 5th and 6th rib fractures (series 4, image 57). The lungs are clear.
No focal liver lesion. The kidneys are unremarkable.
Impression: Left rib fractures, unchanged compared to the prior study from March 3, 2021.
"""


def test_analyze_german_json_shape_and_content():
    known = known_phi_hashes(KEY, {"NAME": ["Mustermann^Max"], "DATE": ["19520314"]})
    out = analyze(DE_REPORT, known_phi=known, secret=KEY)
    assert set(out) == {
        "study_id",
        "patient_id",
        "language",
        "scrubbed_text",
        "sections",
        "sentences",
        "phi_counts",
    }
    jsonschema.validate(out, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert out["language"] == "de"
    for secret_value in ("Mustermann", "Max", "1952", "Schmidt", "2023"):
        assert secret_value not in json.dumps(out, ensure_ascii=False)
    assert out["phi_counts"]["BIRTH_DATE"] == 1
    assert set(out["sections"]) == {"other", "clinical_info", "question", "findings", "impression"}
    sentences = out["sentences"]
    for s in sentences:
        assert set(s) == {"text", "section", "mentions", "image_refs", "temporal"}
        assert s["text"] in out["scrubbed_text"] or " " in s["text"]
        for m in s["mentions"]:
            assert set(m) == {"class", "laterality", "abnormal", "span"}
            a, b = m["span"]
            assert 0 <= a < b <= len(s["text"])
    ribs = next(s for s in sentences if s["text"].startswith("Fraktur der 7."))
    assert ribs["section"] == "findings"
    assert [m["class"] for m in ribs["mentions"]] == ["rib_right_7", "rib_right_8"]
    assert all(m["abnormal"] and m["laterality"] == "right" for m in ribs["mentions"])
    assert ribs["image_refs"] == [{"series": 3, "image": 142}]
    liver = next(s for s in sentences if "Leberläsion ca." in s["text"])
    assert liver["temporal"] is True
    assert liver["mentions"][0]["class"] == "liver" and liver["mentions"][0]["abnormal"]
    cyst = next(s for s in sentences if s["text"].startswith("Nierenzyste"))
    assert cyst["image_refs"] == [{"series": -1, "image": 88}]
    normal = next(s for s in sentences if s["text"].startswith("Milz,"))
    assert {m["class"]: m["abnormal"] for m in normal["mentions"]} == {
        "spleen": False,
        "pancreas": False,
        "adrenal_gland_left": False,
        "adrenal_gland_right": False,
    }
    impression = [s["text"] for s in sentences if s["section"] == "impression"]
    assert impression[0] == "Rippenfrakturen 7 und 8 rechts."


def test_analyze_english_without_known_phi():
    out = analyze(EN_REPORT)
    assert out["language"] == "en"
    assert "March 3, 2021" not in out["scrubbed_text"]
    assert "[DATE]" in out["scrubbed_text"]
    by_text = {s["text"]: s for s in out["sentences"]}
    ribs = by_text["Left 5th and 6th rib fractures (series 4, image 57)."]
    assert [m["class"] for m in ribs["mentions"]] == ["rib_left_5", "rib_left_6"]
    assert ribs["image_refs"] == [{"series": 4, "image": 57}]
    assert by_text["No focal liver lesion."]["mentions"][0]["abnormal"] is False
    impression = [s for s in out["sentences"] if s["section"] == "impression"]
    assert impression and impression[0]["temporal"] is True


def test_forced_language():
    assert analyze("Liver normal.", lang="de")["language"] == "de"


def test_build_record_validates():
    rec = build_record("study1", "pat1", DE_REPORT, secret=KEY)
    assert isinstance(rec, ReportRecord)
    assert rec.language == "de"
    ReportRecord.model_validate_json(rec.model_dump_json(by_alias=True))


def test_cli_json(tmp_path, capsys):
    report = tmp_path / "r.txt"
    report.write_text(DE_REPORT, encoding="utf-8")
    phi = tmp_path / "phi.json"
    phi.write_text(json.dumps({"NAME": ["Mustermann^Max"], "DATE": ["19520314"]}))
    parser = argparse.ArgumentParser()
    add_report_analyze_arguments(parser)
    assert (
        cli_report_analyze(parser.parse_args([str(report), "--known-phi", str(phi), "--json"])) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["language"] == "de"
    assert out["phi_counts"]["NAME"] >= 1 and out["phi_counts"]["BIRTH_DATE"] == 1
    assert "Mustermann" not in out["scrubbed_text"]


def test_cli_text(tmp_path, capsys):
    report = tmp_path / "r.txt"
    report.write_text(EN_REPORT, encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_report_analyze_arguments(parser)
    assert cli_report_analyze(parser.parse_args([str(report), "--lang", "en", "--text"])) == 0
    text = capsys.readouterr().out
    assert "language: en" in text
    assert "rib_left_5 (left): abnormal" in text
    assert "key image: series 4, image 57" in text
