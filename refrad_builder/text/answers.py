"""Pydantic models of the LLM answers, one per prompt task.

The prompt files declare the JSON Schema the server constrains its output to; these models
are what the code works with. A test keeps the two in step (every schema-valid answer parses).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TranslateAnswer(_Answer):
    """``translate``: the translated text."""

    translation: str = Field(min_length=1)


class TemporalAnswer(_Answer):
    """``temporal``: the sentence without references to prior examinations (may be empty)."""

    sentence: str


class KeywordMention(_Answer):
    """One anatomy mention found by the model."""

    class_name: str = Field(alias="class")
    abnormal: bool
    keyword: str


class KeywordsAnswer(_Answer):
    """``keywords``: anatomy mentions of one sentence."""

    mentions: list[KeywordMention]


class VQAAnswerItem(_Answer):
    """One question-answer pair written by the model."""

    question: str = Field(min_length=3)
    answer: str = Field(min_length=1)
    question_type: Literal["open", "closed", "multiple"]
    choices: list[str]
    structure: str


class VQAAnswer(_Answer):
    """``vqa``: up to five pairs."""

    items: list[VQAAnswerItem] = Field(max_length=5)


class PhiItem(_Answer):
    """One piece of PHI the model found in a report: its exact text and kind."""

    text: str = Field(min_length=1)
    kind: Literal["NAME", "DATE", "ID", "PHONE", "EMAIL", "URL", "ADDR", "INST", "AGE"]


class PhiAnswer(_Answer):
    """``phi``: the PHI strings of one report (the optional LLM pass of report scrubbing)."""

    phi: list[PhiItem] = Field(max_length=60)


MODELS: dict[str, type[_Answer]] = {
    "translate": TranslateAnswer,
    "temporal": TemporalAnswer,
    "keywords": KeywordsAnswer,
    "vqa": VQAAnswer,
    "phi": PhiAnswer,
}
