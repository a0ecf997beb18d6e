from refrad_builder.reports.language import detect_language, normalize_language

DE = (
    "Befund: Die Leber ist normal groß und homogen. Keine fokalen Läsionen. Die Milz ist "
    "nicht vergrößert. Nieren beidseits ohne Harnstau."
)
EN = (
    "Findings: The liver is normal in size with no focal lesion. The spleen is not enlarged. "
    "Both kidneys are unremarkable without hydronephrosis."
)


def test_long_texts():
    assert detect_language(DE) == "de"
    assert detect_language(EN) == "en"


def test_deterministic_for_a_seed():
    text = "Pankreas und Aorta regelrecht, Lymphknoten nicht vergrößert."
    assert {detect_language(text, seed=7) for _ in range(5)} == {"de"}


def test_short_texts_use_cue_words():
    assert detect_language("Keine Fraktur.") == "de"
    assert detect_language("No fracture.") == "en"
    assert detect_language("Lunge frei.") == "de"
    assert detect_language("Lungs clear.") == "en"


def test_latin_heavy_text_is_still_de_or_en():
    lang = detect_language("Status post Cholezystektomie. Hepatomegalie. Splenomegalie.")
    assert lang in ("de", "en")


def test_no_letters_gives_default():
    assert detect_language("12/3 4,5", default="de") == "de"
    assert detect_language("") == "en"


def test_normalize_language_column_values():
    assert normalize_language("DE") == "de"
    assert normalize_language("de-DE") == "de"
    assert normalize_language("Deutsch") == "de"
    assert normalize_language("english") == "en"
    assert normalize_language("en_US") == "en"
    assert normalize_language("fr") is None
    assert normalize_language(None) is None
    assert normalize_language("  ") is None
