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
    CleanedSentence: str = Field(
        description="the report sentences linked to the slice (de-identified) in the report's "
        'language, their translation in the other language, or "" when none is linked '
        "or no translation was made; never null"
    )
    ReportFragestellungCleaned: str = Field(
        description='the report\'s question/indication section, "" where there is none in '
        "this language; never null"
    )
    ReportKlinischeAngabenCleaned: str = Field(
        description='the report\'s clinical-information section, "" where there is none in '
        "this language; never null"
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
        description="absolute path of the (H, W) uint8 label mask (.npy), written at export "
        "time; `refrad export relocate` rewrites it after the export is moved"
    )


class Refrad2DSegmentIndex(RootModel[dict[str, Refrad2DSegmentEntry]]):
    """``rsopid_2_segment_v3_{ct,mr}.json``: slice id -> boxes, keywords and mask path."""


class Refrad2DSampledEntry(_Entry):
    """One slice of ``refrad2d_sampled_dataset_v3_{ct,mr}.json`` (the grounded-VQA index)."""

    rsopid: str = Field(description="the slice id (the report row and DICOM file)")
    slice_id: str = Field(description="the same id under this project's name")
    modality: str
    scan_slice_path: str = Field(
        description="absolute path of the (H, W) float32 .npy slice image (HU for CT, raw "
        "values for MR, rescale applied) on the DICOM file's pixel grid"
    )
    segment_slice_path: str = Field(description="absolute path of the slice's label mask")
    bboxes: list[tuple[int, int, int, int, int]] = Field(
        description="[x_min, y_min, x_max, y_max, class_id] in pixels of the classes of "
        "RadGrounder's published label map only; max edges exclusive"
    )


class Refrad2DSampledIndex(RootModel[dict[str, Refrad2DSampledEntry]]):
    """``refrad2d_sampled_dataset_v3_{ct,mr}.json``: slice name -> image, mask, boxes."""


class Refrad2DSnippetIndex(RootModel[dict[str, list[str]]]):
    """``snippet2rsopids_{split}_{ct,mr}_only.json``: snippet key -> slice ids showing it.

    The key is the report sentence prefixed with its modality (``[CT] ...``), so the CT and MR
    files never share a key (RadGrounder merges them as ``{**ct, **mr}``)."""


class Refrad2DLabelMap(RootModel[dict[str, int]]):
    """``label_map.json``: class name -> id of the unified label schema."""


class Refrad2DManifest(_Entry):
    """``manifest.json``: what the export holds and where RadGrounder's variables point."""

    schema_version: str
    label_schema: str
    zstd_level: int
    counts: dict[str, int]
    root: str = Field(
        description="absolute path of the export root the file paths in the indexes start "
        "with (`refrad export relocate DIR` rewrites them and this after a move)"
    )
    paths: dict[str, str] = Field(
        description="RadGrounder environment variable -> path relative to the export root"
    )
    boxes: str = Field(description="how boxes are made (one per mask class, as RefRad2D)")
    min_box_area_px: int = Field(
        ge=0, description="classes with fewer mask pixels than this get no box (0: every class)"
    )
    keywords: str = Field(description="which grounded phrases become keywords")
    snippet_keys: str = Field(description="how snippet keys are formed")
    split_method: str = Field(
        description="how patients were split (shards.split_method); 'balanced' promises every "
        "split of each modality a patient when the modality has enough patients"
    )
    splits: list[str] = Field(description="the splits patients were dealt to (non-zero fraction)")
