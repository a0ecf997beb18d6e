import json
from importlib import resources

import pytest

from refrad_builder.anatomy.labels import schema
from refrad_builder.text.checks import state_of


def test_every_class_has_a_german_name():
    german = json.loads(
        resources.files("refrad_builder.data").joinpath("anatomy_de.json").read_text("utf-8")
    )
    names = [c.name for c in schema().classes]
    assert len(names) == 123
    assert set(german) == set(names)
    for name in names:
        assert german[name].strip()
        assert "_" not in german[name], name


def test_schema_uses_german_names():
    s = schema()
    assert s.by_name["liver"].de == "Leber"
    assert s.by_name["kidney_left"].de == "linke Niere"
    assert s.by_name["vertebrae_L4"].de == "LWK 4"
    assert s.by_name["rib_left_7"].de == "7. Rippe links"
    assert s.by_name["lung_upper_lobe_left"].de == "linker Lungenoberlappen"
    assert s.display(s.by_name["spleen"].id, "de") == "Milz"


def test_every_class_has_an_english_name():
    english = json.loads(
        resources.files("refrad_builder.data").joinpath("anatomy_en.json").read_text("utf-8")
    )
    s = schema()
    assert set(english) == {c.name for c in s.classes}
    assert all(v.strip() and "_" not in v for v in english.values())
    assert s.by_name["kidney_right"].en == "right kidney"
    assert s.by_name["rib_left_7"].en == "left 7th rib"
    assert s.by_name["vertebrae_L4"].en == "L4 vertebra"


# The kidney cysts name their kidney too (and a cyst is always a finding); "body" is no organ.
_NOT_ROUND_TRIP = {"kidney_cyst_left", "kidney_cyst_right", "body"}


@pytest.mark.parametrize(
    ("lang", "abnormal", "normal"),
    [
        ("en", "There is a lesion in the {}.", "The {} is unremarkable."),
        ("de", "{} mit Läsion.", "{} unauffällig."),
    ],
)
def test_display_names_read_back_as_their_class(lang, abnormal, normal):
    """Captions and answers use the display names; the report rules (and so the checks of
    model answers) must read each one back as its class, abnormal or normal as written."""
    s = schema()
    for c in s.classes:
        if c.name in _NOT_ROUND_TRIP:
            continue
        name = s.display(c.id, lang)
        assert state_of(abnormal.format(name), lang) == {c.name: True}, name
        assert state_of(normal.format(name), lang) == {c.name: False}, name


def test_ids_equal_radgrounders_published_merged_label_map():
    """Every class of the committed copy of RadGrounder's merged label map has its published
    id (so <segNNN> means the same class as in RefRad2D); the classes it lacks come after."""
    from refrad_builder.anatomy.labels import published_label_map

    published = published_label_map()
    assert len(published) == 121 and sorted(published.values()) == list(range(1, 122))
    assert published["intervertebral_discs"] == 120 and published["vertebrae"] == 121
    s = schema()
    assert {n: s.by_name[n].id for n in published} == published
    extra = {c.name: c.id for c in s.classes if c.name not in published}
    assert extra == {"body": 122, "bone": 123}
    assert s.version.startswith("refrad-unified-r2-")
