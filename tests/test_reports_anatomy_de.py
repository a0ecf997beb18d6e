import json
from importlib import resources

from refrad_builder.anatomy import schema


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
