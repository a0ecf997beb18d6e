"""The PS3.15 Basic Profile action table: contents, resolution of combined codes, checks."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword

from refrad_builder.deid import ProfileError, load_profile
from refrad_builder.deid.profile import parse_profile, resolve_code


def _doc() -> dict:
    text = resources.files("refrad_builder.data").joinpath("deid_basic_profile.json").read_text()
    return json.loads(text)


def _action(keyword: str) -> str | None:
    return load_profile().action_for(tag_for_keyword(keyword))


def test_table_is_large_and_every_row_matches_the_dictionary() -> None:
    profile = load_profile()
    assert len(profile.rules) >= 120
    for tag, rule in profile.rules.items():
        assert tag_for_keyword(rule.keyword) == tag


def test_identifying_attributes_are_covered() -> None:
    expected = {
        "PatientName": "Z",
        "PatientID": "Z",
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
        "DeviceSerialNumber": "D",
        "ContentDate": "D",
        "ReferencedImageSequence": "U*",
        "SourceImageSequence": "U*",
        "StudyInstanceUID": "U",
        "SeriesInstanceUID": "U",
        "SOPInstanceUID": "U",
        "FrameOfReferenceUID": "U",
        "ReferencedSOPInstanceUID": "U",
        "MediaStorageSOPInstanceUID": "U",
    }
    assert {k: _action(k) for k in expected} == expected


def test_all_listed_uid_attributes_are_remapped_or_removed() -> None:
    profile = load_profile()
    for tag, rule in profile.rules.items():
        if dictionary_VR(tag) == "UI":
            assert rule.action in ("U", "X"), rule.keyword


def test_overlay_and_curve_groups_removed() -> None:
    profile = load_profile()
    for tag in (0x60003000, 0x60004000, 0x601E0010, 0x50003000, 0x50020005):
        assert profile.action_for(tag) == "X"
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
    rule = load_profile().rules[tag_for_keyword("AcquisitionDate")]
    assert (rule.code, rule.action) == ("X/Z", "X")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["attributes"].append({**d["attributes"][0]}),
        lambda d: d["attributes"][0].update(keyword="PatientName"),
        lambda d: d["attributes"][0].update(tag="(0010,00)"),
        lambda d: d["attributes"][0].update(action="W"),
        lambda d: d["patient_characteristics"].append("NoSuchKeyword"),
    ],
)
def test_malformed_tables_are_rejected(mutate) -> None:
    doc = copy.deepcopy(_doc())
    parse_profile(doc)
    mutate(doc)
    with pytest.raises(ProfileError):
        parse_profile(doc)
