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


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # image before series with only a space between
        ("Subdurales Hämatom rechts frontal (Bild 63 Serie 2).", [(2, 63)]),
        ("Dense basilar artery (image 41 series 5).", [(5, 41)]),
        # bare series/image pair in parentheses
        ("Aktive Blutung am Milzhilus (6/118).", [(6, 118)]),
        # image N of a stack of M
        ("Meniscal tear of the posterior horn (sagittal PD image 19/30).", [(-1, 19)]),
        ("Fissur der Patella (axiale PD Bild 12/24).", [(-1, 12)]),
        # a reconstruction plane before series:image
        ("Transition point (series 2, image 88 / coronal 602:51).", [(2, 88), (602, 51)]),
        # four-digit series in a table cell
        ("| 2 | VIII | 1.9 cm | 1203/57 | LR-4 |", [(1203, 57)]),
    ],
)
def test_more_reference_forms(text, want):
    assert [(r.series, r.image) for r in image_refs(text)] == want


@pytest.mark.parametrize(
    "text",
    [
        "DWI (b 50/800), T2 axial.",
        "Voraufnahme (03/2024) zum Vergleich.",
        "| 1 | Oberlappen | 07/2025 | stabil |",
        "Befund telefonisch um 14:30 übermittelt (coronal 14:30).",
        "Kontrastmittel verdünnt (1/100).",
        "Neuroforamenstenose (L5/S1) und (C5/6).",
        "Rückruf unter (0761/27012).",
    ],
)
def test_more_non_references(text):
    assert image_refs(text) == []


def test_table_image_column_refs_reach_the_row_sentence():
    from refrad_builder.reports.analyze import parse_report

    text = (
        "Befund:\n"
        "| Nr. | Lokalisation | Bild | Größe |\n"
        "| 1 | Segment VI | 57 | 12 mm |\n"
        "| 2 | Segment II | 103 | 8 mm |\n"
        "Keine weiteren Herde.\n"
    )
    _, _, _, sentences, _ = parse_report(text, "de")
    rows = {s.text.split("|")[1].strip(): s.image_refs for s in sentences if "|" in s.text}
    assert rows["1"] == [ImageRef(series=ANY_SERIES, image=57)]
    assert rows["2"] == [ImageRef(series=ANY_SERIES, image=103)]
    assert all(not s.image_refs for s in sentences if "|" not in s.text)


def test_table_pair_column_and_non_image_columns():
    from refrad_builder.reports.imagerefs import table_column_refs

    text = (
        "| Obs | Size | Se/Bi | Phase |\n"
        "| --- | --- | --- | --- |\n"
        "| 1 | 22 | 7:45 | arterial |\n"
        "Next line is prose with 12 and 44.\n"
        "| 2 | 31 | 9 |\n"
    )
    assert [(r.series, r.image) for r, _ in table_column_refs(text)] == [(7, 45)]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # a second image of the same series after "and"/"und"
        ("Two cysts in the spleen (series 3, images 27 and 64).", [(3, 27), (3, 64)]),
        ("Rundherde (Serie 6, Bild 41 und 97) stationär.", [(6, 41), (6, 97)]),
        # a size after "and" is no image
        ("Series 3, image 44 and 5 mm nodule beside it.", [(3, 44)]),
    ],
)
def test_second_image_after_and(text, want):
    assert image_refs(text) == [ImageRef(series=s, image=i) for s, i in want]


def test_space_aligned_table_with_a_series_image_column():
    from refrad_builder.reports.analyze import parse_report
    from refrad_builder.reports.imagerefs import table_column_refs

    text = (
        "Befund:\n"
        "Herd   Lokalisation        Se/Bi      Größe\n"
        "A      Segment VIII        5/71       18 mm\n"
        "B      Unterlappen links 7/203    9 mm\n"
        "Summe                               27 mm\n"
        "Keine Ergüsse, L4/5 unauffällig.\n"
        "Messung    Wert   Verhältnis\n"
        "Ratio      3/40   normal\n"
    )
    assert [(r.series, r.image) for r, _ in table_column_refs(text)] == [(5, 71), (7, 203)]
    _, _, _, sentences, _ = parse_report(text, "de")
    rows = {s.text.split()[0]: s.image_refs for s in sentences if s.image_refs}
    assert rows == {"A": [ImageRef(series=5, image=71)], "B": [ImageRef(series=7, image=203)]}
