"""The PS3.15 Table E.1-1 data file: edition, completeness, codes, options, checks, generator."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword

from refrad_builder.deid import gen_table
from refrad_builder.deid.profile import (
    ProfileError,
    load_profile,
    parse_profile,
    resolve_code,
    table_document,
)


def _action(keyword: str) -> str | None:
    return load_profile().action_for(tag_for_keyword(keyword))


def _rule(keyword: str):
    return load_profile().rules[tag_for_keyword(keyword)]


def test_table_names_its_edition_and_sources() -> None:
    doc = table_document()
    assert doc["edition"] == "2024b" and load_profile().edition == "2024b"
    assert "Table E.1-1" in doc["table"]
    assert doc["sources"]["basic"]["commit"] and doc["sources"]["options"]["commit"]
    assert doc["row_count"] == len(doc["rows"])


def test_table_is_complete_and_every_row_matches_the_dictionary() -> None:
    doc = table_document()
    profile = load_profile()
    # 2024b: 617 single tags, 3 repeating-group rows (curve data, overlay data/comments) and
    # the private attributes row.
    assert len(doc["rows"]) == 621
    assert len(profile.rules) == 617 and len(profile.group_rules) == 3
    for tag, rule in profile.rules.items():
        assert tag_for_keyword(rule.keyword) == tag
    assert profile.private_options == {"retain_safe_private": "C"}


def test_every_action_code_of_the_table_is_present() -> None:
    codes = {r["basic"] for r in table_document()["rows"]}
    assert codes == {"D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    options = {c for r in table_document()["rows"] for c in r["options"].values()}
    assert options == {"K", "C", "X"}  # K and C live in the option columns


def test_rows_hash_matches_rows() -> None:
    doc = table_document()
    canonical = json.dumps(
        [[r["tag"], r["basic"], r["action"]] for r in doc["rows"]], separators=(",", ":")
    ).encode()
    assert hashlib.sha256(canonical).hexdigest() == doc["rows_sha256"]


def test_identifying_attributes_are_covered() -> None:
    expected = {
        "PatientName": "Z",
        "PatientID": "Z",  # Z/D in 2024b, resolved to Z (Type 2)
        "PatientBirthDate": "Z",
        "AccessionNumber": "Z",
        "StudyID": "Z",
        "ReferringPhysicianName": "Z",
        "StudyDate": "Z",
        "OtherPatientIDsSequence": "X",
        "RequestAttributesSequence": "X",
        "PatientAddress": "X",
        "InstitutionAddress": "X",
        "InstitutionName": "X",
        "InstitutionalDepartmentName": "X",
        "StationName": "X",
        "OperatorsName": "X",
        "PerformingPhysicianName": "X",
        "PhysiciansOfRecord": "X",
        "NameOfPhysiciansReadingStudy": "X",
        "ImageComments": "X",
        "StudyDescription": "X",
        "SeriesDescription": "X",
        "IssuerOfPatientID": "X",
        "PatientBirthTime": "X",
        "ReferencedPatientSequence": "X",
        "ReferencedStudySequence": "X",
        "DateOfLastCalibration": "X",
        "DeviceSerialNumber": "D",
        "ContentDate": "D",
        "PersonName": "D",
        "ReferencedImageSequence": "U*",
        "SourceImageSequence": "U*",
        "StudyInstanceUID": "U",
        "SeriesInstanceUID": "U",
        "SOPInstanceUID": "U",
        "FrameOfReferenceUID": "U",
        "ReferencedSOPInstanceUID": "U",
        "MediaStorageSOPInstanceUID": "U",
        "AcquisitionUID": "U",
    }
    assert {k: _action(k) for k in expected} == expected


def test_option_columns() -> None:
    assert _rule("StudyDate").option("retain_longitudinal_modified_dates") == "C"
    assert _rule("DateOfLastCalibration").option("retain_longitudinal_full_dates") == "K"
    assert _rule("SeriesDescription").option("clean_descriptors") == "C"
    assert _rule("PatientSex").option("retain_patient_characteristics") == "K"
    assert _rule("InstitutionName").option("retain_institution_identity") == "K"
    assert _rule("ReferencedPatientSequence").option("retain_uids") == "X"
    assert _rule("PatientName").options == {}


def test_all_listed_uid_attributes_are_remapped_or_removed() -> None:
    profile = load_profile()
    for tag, rule in profile.rules.items():
        if dictionary_VR(tag) == "UI":
            # D on a UID (Annotation Group UID) is a keyed replacement too.
            assert rule.action in ("U", "X", "D"), rule.keyword


def test_overlay_and_curve_rows_are_repeating_groups() -> None:
    profile = load_profile()
    for tag in (0x60003000, 0x60004000, 0x601E3000, 0x50003000, 0x50020005):
        assert profile.action_for(tag) == "X"
    assert profile.action_for(0x60000010) is None  # overlay rows: removed by the engine
    assert profile.action_for(0x00280010) is None  # Rows: not in the table, kept


def test_combined_codes_resolve_conservatively() -> None:
    assert resolve_code("X/Z", None) == "X"
    assert resolve_code("X/Z/D", "D") == "D"
    assert resolve_code("X/Z/U*", "U*") == "U*"
    assert resolve_code("K", None) == "K"
    with pytest.raises(ProfileError):
        resolve_code("X/Z", "D")
    with pytest.raises(ProfileError):
        resolve_code("Z/D", None)
    with pytest.raises(ProfileError):
        resolve_code("Q", None)


def test_combined_rows_record_their_standard_code() -> None:
    rule = _rule("AcquisitionDate")
    assert (rule.code, rule.action) == ("X/Z", "X")
    rule = _rule("ContentDate")
    assert (rule.code, rule.action) == ("Z/D", "D")


def _single_row_index(doc: dict) -> int:
    return next(i for i, r in enumerate(doc["rows"]) if "keyword" in r)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d, i: d["rows"].append({**d["rows"][i]}),
        lambda d, i: d["rows"][i].update(keyword="PatientName"),
        lambda d, i: d["rows"][i].update(tag="(0010,00)"),
        lambda d, i: d["rows"][i].update(basic="W"),
        lambda d, i: d["rows"][i].update(options={"clean_descriptors": "Q"}),
        lambda d, i: d.pop("edition"),
    ],
)
def test_malformed_tables_are_rejected(mutate) -> None:
    doc = copy.deepcopy(table_document())
    parse_profile(doc)
    mutate(doc, _single_row_index(doc))
    with pytest.raises(ProfileError):
        parse_profile(doc)


BASIC_SNIPPET = """
D_TAGS = [
    (0x0040, 0xA123),  # Person Name
]
Z_TAGS = [(0x0010, 0x0010)]  # Patient's Name
X_TAGS = [
    (0x0018, 0x1200),  # Date of Last Calibration
    (0x6000, 0x3000, 0xFF00, 0xFFFF),  # Overlay Data
]
X_Z_D_TAGS = [
    (0x0018, 0x1000),  # Device Serial Number
]
"""
OPTIONS_SNIPPET = [
    {"name": "Patient's Name", "tag": "(0010,0010)", "basicProfile": "Z"},
    {
        "name": "Device Serial Number",
        "tag": "(0018,1000)",
        "basicProfile": "X/Z/D",
        "rtnDevIdOpt": "K",
    },
    {"name": "Overlay Data", "tag": "(60XX,3000)", "basicProfile": "X", "cleanGraphOpt": "C"},
    {
        "name": "Private attributes",
        "tag": "(GGGG,EEEE) WHERE GGGG IS ODD",
        "basicProfile": "X",
        "rtnSafePrivOpt": "C",
    },
]


def test_generator_builds_a_loadable_table() -> None:
    doc = gen_table.build_table(BASIC_SNIPPET, OPTIONS_SNIPPET, min_rows=1)
    assert doc["edition"] == "2024b" and doc["row_count"] == 6
    rows = {r["tag"]: r for r in doc["rows"]}
    assert rows["(0018,1000)"]["action"] == "D" and "why" in rows["(0018,1000)"]
    assert rows["(0018,1000)"]["options"] == {"retain_device_identity": "K"}
    assert rows["(0018,1200)"]["options_from"] == "rule:date_vr"
    assert rows["(60xx,3000)"]["mask"] == "0xFF00FFFF"
    assert rows["(0040,A123)"]["name"] == "Person Name"
    profile = parse_profile(json.loads(gen_table.dump(doc)))
    assert profile.action_for(0x60023000) == "X"
    assert profile.private_options == {"retain_safe_private": "C"}


def test_generator_refuses_truncated_sources() -> None:
    with pytest.raises(gen_table.TableSourceError):
        gen_table.build_table(BASIC_SNIPPET, OPTIONS_SNIPPET)


def test_committed_table_is_the_generators_output_format() -> None:
    from importlib import resources

    text = resources.files("refrad_builder.data").joinpath("dicom_e1_1.json").read_text()
    assert gen_table.dump(json.loads(text)) == text
