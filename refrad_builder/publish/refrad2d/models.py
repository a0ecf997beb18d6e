"""Shapes of the RefRad2D export files (``schemas/`` is generated from these models).

The field names of the report rows follow RadGrounder's loaders (``rsopid`` is the column
they index by; ``CleanedSentence``, ``ReportFragestellungCleaned`` and
``ReportKlinischeAngabenCleaned`` are the keys they read), so the export is consumed as is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Refrad2DVQA(_Entry):
    """One question with its answer; ``choices`` only for multiple-choice questions."""

    question: str
    answer: str
    question_type: Literal["open", "closed", "multiple"]
    choices: list[str] | None = Field(
        default=None, description="the options of a 'multiple' question, else null"
    )


class Refrad2DLanguage(_Entry):
    """What a slice has in one language (``english`` or ``german`` of a report row)."""

    dicom_vqa: list[Refrad2DVQA] = Field(description="questions about the DICOM metadata")
    snippet_vqa: list[Refrad2DVQA] = Field(
        description="questions about what the slice shows (presence) and the report (findings)"
    )
    CleanedSentence: str | None = Field(
        default=None,
        description="the report sentences linked to the slice (de-identified), or null when "
        "the report is in the other language or none is linked",
    )
    ReportFragestellungCleaned: str | None = Field(
        default=None, description="the report's question/indication section, or null"
    )
    ReportKlinischeAngabenCleaned: str | None = Field(
        default=None, description="the report's clinical-information section, or null"
    )


class Refrad2DReportRow(_Entry):
    """A row of ``refrad2d_vqa_dataset.parquet``: one exported slice."""

    rsopid: str = Field(description="the slice id (the column RadGrounder indexes by)")
    slice_id: str = Field(description="the same id under this project's name")
    split: str
    modality: str
    body_part: str | None = None
    english: Refrad2DLanguage
    german: Refrad2DLanguage


class Refrad2DSegmentEntry(_Entry):
    """One slice of ``rsopid_2_segment_v3_{ct,mr}.json``."""

    bboxes: list[tuple[int, int, int, int, int]] = Field(
        description="[x_min, y_min, x_max, y_max, class_id] in pixels; max edges exclusive"
    )
    keywords_eng: list[tuple[str, str, int]] = Field(
        description="[keyword, class_name, class_id]: English phrases grounded in the slice"
    )
    keywords_de: list[tuple[str, str, int]] = Field(
        description="[keyword, class_name, class_id]: German phrases grounded in the slice"
    )
    segment_slice_path: str = Field(
        description="the (H, W) uint8 label mask (.npy), relative to the export root"
    )


class Refrad2DSegmentIndex(RootModel[dict[str, Refrad2DSegmentEntry]]):
    """``rsopid_2_segment_v3_{ct,mr}.json``: slice id -> boxes, keywords and mask path."""


class Refrad2DSnippetIndex(RootModel[dict[str, list[str]]]):
    """``snippet2rsopids_{split}_{ct,mr}_only.json``: report sentence -> slice ids showing it."""


class Refrad2DLabelMap(RootModel[dict[str, int]]):
    """``label_map.json``: class name -> id of the unified label schema."""


class Refrad2DManifest(_Entry):
    """``manifest.json``: what the export holds and where RadGrounder's variables point."""

    schema_version: str
    label_schema: str
    zstd_level: int
    counts: dict[str, int]
    paths: dict[str, str] = Field(
        description="RadGrounder environment variable -> path relative to the export root"
    )
