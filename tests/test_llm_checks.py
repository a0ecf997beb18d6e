"""The checks of model answers against the report, on hand-written report sentences and
hand-written right and wrong answers (translations and question-answer pairs)."""

from __future__ import annotations

import pytest

from refrad_builder.engine.records import Sentence
from refrad_builder.reports.mentions import find_mentions
from refrad_builder.text.checks import Findings, check_translation, check_vqa, numbers

DE = (
    "Hypodense Läsion im rechten Leberlappen von 2,3 cm (Se 3/Bi 142). Milz unauffällig. "
    "Kein Harnstau beidseits."
)
EN_RIGHT = (
    "Hypodense lesion of 2.3 cm in the right hepatic lobe (series 3, image 142). The spleen is "
    "unremarkable. No hydronephrosis on either side."
)


def test_numbers_read_decimal_comma_and_point_alike():
    assert numbers("2,30 cm und 12 x 8 mm, Se 3/Bi 142") == {"2.3", "12", "8", "3", "142"}
    assert numbers("2.3 cm") == numbers("2,3 cm") and numbers("2.0") == numbers("2")


@pytest.mark.parametrize(
    ("translation", "reason"),
    [
        (EN_RIGHT, None),
        (EN_RIGHT.replace("2.3", "3.2"), "translation_numbers_differ"),
        (EN_RIGHT.replace(" The spleen is unremarkable.", ""), "translation_lost_structure"),
        (
            EN_RIGHT.replace("spleen is unremarkable", "spleen is enlarged"),
            "translation_abnormal_differs",
        ),
        (EN_RIGHT + " Small cyst in the left kidney.", "translation_added_finding"),
        (DE, "translation_wrong_language"),
    ],
)
def test_translation_keeps_every_finding_and_number(translation, reason):
    assert check_translation(DE, "de", translation, "en") == reason


def test_translation_en_to_de():
    src = "Small cyst in the left kidney measuring 1.2 cm. The liver is unremarkable."
    assert (
        check_translation(
            src, "en", "Kleine Zyste der linken Niere von 1,2 cm. Leber unauffällig.", "de"
        )
        is None
    )
    assert (
        check_translation(
            src, "en", "Kleine Zyste der rechten Niere von 1,2 cm. Leber unauffällig.", "de"
        )
        == "translation_lost_structure"
    )


def _facts(text: str, lang: str, visible: set[str]) -> Findings:
    linked = [
        Sentence(text=s, section="findings", mentions=find_mentions(s, lang))
        for s in text.split(". ")
    ]
    return Findings.of(linked, visible)


FACTS = _facts(
    "Hypodense lesion of 2.3 cm in the right hepatic lobe. The spleen is unremarkable. "
    "Consolidation in the right lower lobe",
    "en",
    {"liver", "spleen", "lung_lower_lobe_right", "lung_right", "stomach"},
)


def _item(q, a, structure="liver", kind="closed", choices=()):
    return {
        "question": q,
        "answer": a,
        "question_type": kind,
        "choices": list(choices),
        "structure": structure,
    }


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (_item("Is there a lesion in the liver?", "Yes"), None),
        (_item("Is there a lesion in the liver?", "No"), "vqa_answer_contradicts_findings"),
        (_item("Is the spleen unremarkable?", "Yes", "spleen"), None),
        (_item("Is the spleen unremarkable?", "No", "spleen"), "vqa_answer_contradicts_findings"),
        (_item("Is there no lesion in the liver?", "No"), None),
        (_item("Is the liver abnormal?", "Yes"), None),
        # no statement about a state in the question: nothing to contradict
        (_item("Is the liver shown in this image?", "Yes"), None),
        (
            _item("Is there a lesion in the stomach?", "No", "stomach"),
            "vqa_structure_not_visible_or_not_in_findings",
        ),
        (_item("Is there a lesion in the kidney?", "Yes"), "vqa_anatomy_not_in_findings"),
        # the lung names the lobe the findings mention (one family)
        (_item("Is the right lung abnormal?", "Yes", "lung_lower_lobe_right"), None),
        (_item("How large is the liver lesion?", "2.3 cm", kind="open"), None),
        (
            _item("How large is the liver lesion?", "4.1 cm", kind="open"),
            "vqa_numbers_not_in_findings",
        ),
        (
            _item("On which side is the liver lesion?", "left", kind="open"),
            "vqa_side_not_in_findings",
        ),
        (_item("On which side is the liver lesion?", "right", kind="open"), None),
        (_item("Is there a lesion in the liver?", "Maybe"), "vqa_closed_answer_not_yes_no"),
        (
            _item(
                "Which organ has a lesion?",
                "liver",
                kind="multiple",
                choices=["spleen", "stomach", "liver"],
            ),
            None,
        ),
        (
            _item(
                "Which organ has a lesion?",
                "kidney",
                kind="multiple",
                choices=["spleen", "stomach", "liver"],
            ),
            "vqa_multiple_choice_inconsistent",
        ),
    ],
)
def test_vqa_answers_are_checked_against_the_findings(item, reason):
    assert check_vqa(item, "en", FACTS) == reason


def test_german_questions_about_an_english_report():
    ok = _item("Zeigt die Leber eine Läsion?", "Ja")
    assert check_vqa(ok, "de", FACTS) is None
    assert check_vqa({**ok, "answer": "Nein"}, "de", FACTS) == "vqa_answer_contradicts_findings"
    size = _item("Wie groß ist die Läsion der Leber?", "2,3 cm", kind="open")
    assert check_vqa(size, "de", FACTS) is None
    english = _item("Is there a lesion in the liver of this patient?", "Ja")
    assert check_vqa(english, "de", FACTS) == "vqa_wrong_language"


def test_numbers_written_next_to_their_unit_are_checked():
    src = "Hypodense Läsion der Leber, 23mm, und Zyste 2,3x1,5cm."
    assert (
        check_translation(
            src, "de", "Hypodense lesion of the liver, 23 mm, and cyst 2.3 x 1.5 cm.", "en"
        )
        is None
    )
    assert (
        check_translation(
            src, "de", "Hypodense lesion of the liver, 32mm, and cyst 2.3 x 1.5 cm.", "en"
        )
        == "translation_numbers_differ"
    )
    big = _item("Is the liver lesion 20mm in size?", "Yes")
    assert check_vqa(big, "en", FACTS) == "vqa_numbers_not_in_findings"


def test_a_closed_question_without_a_finding_asks_about_a_visible_structure():
    assert check_vqa(_item("Is the liver visible in this image?", "Yes"), "en", FACTS) is None
    no = _item("Is the liver visible in this image?", "No")
    assert check_vqa(no, "en", FACTS) == "vqa_answer_contradicts_findings"


def test_model_keywords_are_placed_on_whole_words_of_the_sentence():
    """Spans come from the sentence itself ("ß" would shift a casefolded search) and only
    whole words count ("Arm" is no mention inside "Darm")."""
    from refrad_builder.anatomy.labels import schema
    from refrad_builder.text.llm_text import _keyword_mentions

    text = "Größenprogrediente Raumforderung im Lobus caudatus, Darm unauffällig."
    s = Sentence(text=text, section="findings", mentions=find_mentions(text, "de"))
    rejected = []
    answer = {
        "mentions": [
            {"class": "liver", "abnormal": True, "keyword": "lobus Caudatus"},
            {"class": "humerus_left", "abnormal": False, "keyword": "Arm"},
        ]
    }
    visible = {"liver": None, "humerus_left": None}
    found = _keyword_mentions(answer, s, "de", visible, schema(), rejected.append)
    assert [(m.class_name, text[m.span[0] : m.span[1]]) for m in found] == [
        ("liver", "Lobus caudatus")
    ]
    assert rejected == ["keywords_not_in_sentence"]
