"""The RefRad2D export's layout: file and folder names, table schemas, the rules recorded
in its manifest, and the items it is made of (one per exported slice)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel
from pydicom.tag import Tag

from refrad_builder.engine.records import ReportRecord, Sample, TextRecord

ZSTD_LEVEL = 10
DICOM_DIR = "dicoms_anon"
REPORTS_FILE = "refrad2d_vqa_dataset.parquet"
SEGMENT_DIR = "refrad2d_segment"
MASK_DIR = f"{SEGMENT_DIR}/masks"
IMAGE_DIR = f"{SEGMENT_DIR}/images"
ENV_FILE = "radgrounder.env"
PATH_FIELDS = ("segment_slice_path", "scan_slice_path")
BOX_RULE = "one union box per class present in the mask (RefRad2D extract_all_bboxes, merged)"
KEYWORD_RULE = (
    "grounded phrases of classes in RadGrounder's published label map that are present in the "
    "mask and occur in that language's CleanedSentence (RefRad2D get_matching_keywords)"
)
SNIPPET_KEY_RULE = "'[CT] ' or '[MR] ' followed by the report sentences"
SPLIT_DIR = "splits"
LABEL_MAP_FILE = "label_map.json"
MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "val", "test")
MODALITIES = {"CT": "ct", "MR": "mr"}
LANGUAGES = {"en": "english", "de": "german"}

_VQA = pl.Struct(
    {
        "question": pl.Utf8,
        "answer": pl.Utf8,
        "question_type": pl.Utf8,
        "choices": pl.List(pl.Utf8),
    }
)
_LANGUAGE = pl.Struct(
    {
        "dicom_vqa": pl.List(_VQA),
        "snippet_vqa": pl.List(_VQA),
        "CleanedSentence": pl.Utf8,
        "ReportFragestellungCleaned": pl.Utf8,
        "ReportKlinischeAngabenCleaned": pl.Utf8,
    }
)
REPORTS_SCHEMA = pl.Schema(
    {
        "rsopid": pl.Utf8,
        "slice_id": pl.Utf8,
        "split": pl.Utf8,
        "modality": pl.Utf8,
        "body_part": pl.Utf8,
        "english": _LANGUAGE,
        "german": _LANGUAGE,
    }
)
_HEADER_TAGS = [
    Tag(0x0020, 0x0013),  # InstanceNumber
    Tag(0x0020, 0x0037),  # ImageOrientationPatient
    Tag(0x0028, 0x0008),  # NumberOfFrames
    Tag(0x0028, 0x0010),  # Rows
    Tag(0x0028, 0x0011),  # Columns
]


@dataclass(frozen=True)
class ExportItem:
    """One sample to export with what the export needs from upstream stages.

    ``image_png``/``mask_png`` and ``deid_files`` are relative to the work dir; ``sample``
    must carry its split.
    """

    sample: Sample
    image_png: str
    mask_png: str
    series_id: str
    instance_number: int | None
    deid_files: tuple[str, ...]
    report: ReportRecord | None = None


def _as_dict(record: Mapping[str, Any] | BaseModel) -> Mapping[str, Any]:
    return record.model_dump(mode="json") if isinstance(record, BaseModel) else record


def items_from_upstream(
    records: Iterable[TextRecord],
    slices: Iterable[Mapping[str, Any] | BaseModel],
    deid: Iterable[Mapping[str, Any] | BaseModel],
    reports: Iterable[Mapping[str, Any] | BaseModel],
) -> list[ExportItem]:
    """Export items from the text records (samples with their split set) and the records of
    the slices, deid and report stages (dicts as the ledgers hold them, or models)."""
    instance = {}
    for rec in slices:
        d = _as_dict(rec)
        instance[d["slice_id"]] = d.get("instance_number")
    files = {}
    for rec in deid:
        d = _as_dict(rec)
        files[d["series_id"]] = tuple(d["files"])
    report_by_study = {}
    for rec in reports:
        d = _as_dict(rec)
        report_by_study[d["study_id"]] = d
    parsed: dict[str, ReportRecord] = {}
    items = []
    for rec in records:
        s = rec.sample
        report = None
        if s.study in report_by_study:
            if s.study not in parsed:
                parsed[s.study] = ReportRecord.model_validate(report_by_study[s.study])
            report = parsed[s.study]
        items.append(
            ExportItem(
                sample=s,
                image_png=rec.image_png,
                mask_png=rec.mask_png,
                series_id=s.series,
                instance_number=instance.get(s.slice_id),
                deid_files=files.get(s.series, ()),
                report=report,
            )
        )
    return items
