import pytest

from refrad_builder.reports.temporal import is_temporal


@pytest.mark.parametrize(
    "text",
    [
        "Zum Vergleich liegt die Voruntersuchung vom [DATUM] vor.",
        "Im Vergleich zum Vorbefund größenkonstante Leberläsion.",
        "Neu aufgetretener Pleuraerguss rechts.",
        "Progrediente Lymphadenopathie.",
        "Regrediente Infiltrate im Unterlappen.",
        "Befund unverändert.",
        "Compared with the prior study, the nodule is unchanged.",
        "New since the previous examination.",
        "Interval increase of the effusion.",
        # "new" presupposes the earlier study; one image cannot show it
        "New lesion in the liver.",
    ],
)
def test_temporal(text):
    assert is_temporal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Leber unauffällig.",
        "Aortenektasie, Verlaufskontrolle empfohlen.",
        "The lungs are clear.",
    ],
)
def test_not_temporal(text):
    assert not is_temporal(text)
