import pytest

from refrad_builder.engine.records import ImageRef
from refrad_builder.reports.imagerefs import ANY_SERIES, image_refs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hypodense Läsion (Se 3/Bi 142).", [(3, 142)]),
        ("Siehe Serie 2, Bild 211.", [(2, 211)]),
        ("Rundherd Se 601/Bi 88 im Oberlappen.", [(601, 88)]),
        ("Fraktur (Se. 3, Bi. 45).", [(3, 45)]),
        ("Nodule on series 4, image 57.", [(4, 57)]),
        ("See image 142 of series 2.", [(2, 142)]),
        ("Lesion S3/I45.", [(3, 45)]),
        ("Befund in Bild 267.", [(ANY_SERIES, 267)]),
        ("Bild 45 der Serie 3.", [(3, 45)]),
        ("SE: 5 IM: 33", [(5, 33)]),
        ("Serie 5 Bild 12 bis 18", [(5, 12), (5, 18)]),
        ("Se 3/Bi 142 und Se 4/Bi 17", [(3, 142), (4, 17)]),
    ],
)
def test_reference_forms(text, expected):
    assert image_refs(text) == [ImageRef(series=s, image=i) for s, i in expected]


@pytest.mark.parametrize(
    "text",
    [
        "Bildgebung 3 Tage alt.",
        "Spondylarthrose L4/5 und L5/S1.",
        "Läsion 3,2 x 2,1 cm.",
        "in 2 images",
    ],
)
def test_no_false_references(text):
    assert image_refs(text) == []


def test_duplicates_collapse():
    assert image_refs("Se 3/Bi 142. Vgl. Se 3/Bi 142.") == [ImageRef(series=3, image=142)]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Nodule (image 12 (series 7))", [(7, 12)]),
        ("Bild 274 (Serie 4)", [(4, 274)]),
        ("lesion (4:112)", [(4, 112)]),
        ("Ser/Img 6/33", [(6, 33)]),
        ("L4/5 at 14:32 (14:32), Tel 0761/27012, ratio (1:2)", []),
    ],
)
def test_issue14_reference_forms(text, want):
    assert [(r.series, r.image) for r in image_refs(text)] == want
