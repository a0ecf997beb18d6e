"""Records that flow between stages. ``schemas/`` is generated from these models.

Identifiers are keyed hashes (pseudonyms) or hashes of pseudonyms: no record downstream of
ingest carries an original UID, name, date or path component of a study.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0.0"


class Record(BaseModel):
    """Base of every record: unknown fields are an error, not silently kept."""

    model_config = ConfigDict(extra="forbid")


# --- ingest -------------------------------------------------------------------------------


class FileHeader(Record):
    """One readable DICOM file as ingest saw it (header only; identifiers hashed)."""

    file_id: str = Field(description="keyed id of the file (no path is kept anywhere)")
    root: int = Field(description="index into inputs.dicom")
    size: int
    patient_key: str
    study_key: str
    series_key: str
    accession_key: str | None = None
    study_uid_key: str | None = None
    folder_key: str
    modality: str
    series_number: int | None = None
    instance_number: int | None = None
    sop_class_uid: str | None = None
    transfer_syntax_uid: str | None = None
    has_pixels: bool
    kind: Literal["image", "sr"] = Field(
        default="image", description="an image, or a structured report (a report source)"
    )
    known_phi: list[str] = Field(
        default_factory=list, description="keyed hashes of PHI tokens from the header"
    )


class SeriesRecord(Record):
    """A series to de-identify: its files and the pseudonyms it will carry."""

    series_id: str
    study_id: str
    patient_id: str
    modality: str
    series_number: int | None = None
    files: list[str] = Field(description="keyed ids of the input files, in instance order")


class ReportRef(Record):
    """Where a study's report lives: a report table row, or a DICOM SR file (no text here)."""

    table: int | None = Field(default=None, description="index into inputs.reports")
    row: int | None = None
    sr_files: list[str] = Field(
        default_factory=list, description="keyed ids of the study's DICOM SR files, in order"
    )
    key_kind: str


class StudyRecord(Record):
    """A study: its series and, if paired, its report."""

    study_id: str
    patient_id: str
    series_ids: list[str]
    report: ReportRef | None = None
    known_phi: list[str] = Field(default_factory=list)


# --- deid ---------------------------------------------------------------------------------


class DeidSeries(Record):
    """A de-identified series on disk (paths relative to the work dir)."""

    series_id: str
    study_id: str
    patient_id: str
    modality: str
    series_number: int | None = None
    files: list[str]
    sex: str | None = None
    age_years: int | None = None
    body_part: str | None = None
    contrast: bool | None = None
    skipped: dict[str, int] = Field(
        default_factory=dict, description="files of the series left out, by reason"
    )


# --- report -------------------------------------------------------------------------------


class Mention(Record):
    """An anatomy mention mapped to a unified class."""

    class_name: str = Field(alias="class")
    laterality: Literal["left", "right", "bilateral"] | None = None
    abnormal: bool
    span: tuple[int, int]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ImageRef(Record):
    """A key-image reference in a report ("Se 3/Bi 142")."""

    series: int
    image: int


class Sentence(Record):
    """One scrubbed report sentence with what the rules found in it."""

    text: str
    section: str
    mentions: list[Mention] = Field(default_factory=list)
    image_refs: list[ImageRef] = Field(default_factory=list)
    temporal: bool = False


class ReportRecord(Record):
    """A de-identified, parsed report."""

    study_id: str
    patient_id: str
    language: Literal["de", "en"]
    scrubbed_text: str
    sections: dict[str, str]
    sentences: list[Sentence]
    phi_counts: dict[str, int] = Field(default_factory=dict)


# --- imaging ------------------------------------------------------------------------------


class VolumeRecord(Record):
    """A volume in the canonical orientation (voxel axes L, P, S) as NIfTI."""

    series_id: str
    study_id: str
    patient_id: str
    modality: str
    series_number: int | None = None
    nifti: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: list[list[float]] = Field(description="voxel -> RAS mm (NIfTI convention)")
    instance_numbers: list[int | None] = Field(description="per slice k")
    units: Literal["HU", "raw"]
    sex: str | None = None
    age_years: int | None = None
    body_part: str | None = None
    contrast: bool | None = None
    skipped: dict[str, int] = Field(
        default_factory=dict, description="images left out of the volume, by reason"
    )


class SegmentRecord(Record):
    """A label volume on the volume's grid, in the unified label schema."""

    series_id: str
    labels_nifti: str
    segmenter: str
    segmenter_version: str
    schema_version: str
    classes: list[int]
    device: str = Field(
        default="cpu", description="where the labels were computed: cpu or cuda:<gpu id>"
    )


class Window(Record):
    """A display window."""

    name: str
    center: float
    width: float


class Box(Record):
    """One union box per class per slice: pixel edges, x_max/y_max exclusive."""

    class_id: int
    class_name: str
    bbox: tuple[int, int, int, int]
    area: int


class SliceRecord(Record):
    """A chosen 2D slice with its stored image, label mask and boxes."""

    slice_id: str
    series_id: str
    study_id: str
    patient_id: str
    modality: str
    plane: Literal["axial", "coronal", "sagittal"]
    index: int
    series_number: int | None = None
    instance_number: int | None = None
    image_png: str
    mask_png: str
    image_sha256: str | None = Field(
        default=None,
        description="sha256 of the stored image PNG (the shards stage finds duplicates by it)",
    )
    width: int
    height: int
    pixel_spacing: tuple[float, float]
    rescale_slope: float
    rescale_intercept: float
    units: Literal["HU", "raw"]
    windows: list[Window]
    boxes: list[Box]
    reasons: list[str]
    segmenter: str
    segmenter_version: str
    sex: str | None = None
    age_years: int | None = None
    body_part: str | None = None
    contrast: bool | None = None


# --- text and samples ---------------------------------------------------------------------


class VQAItem(Record):
    """A question with its answer."""

    question: str
    answer: str
    question_type: Literal["open", "closed", "multiple"]
    choices: list[str] = Field(default_factory=list)
    language: Literal["de", "en"]
    source: Literal["findings", "metadata", "presence"]


class Provenance(Record):
    """How a sample was made."""

    stage_versions: dict[str, str]
    segmenter: str
    segmenter_version: str
    label_schema: str
    generator: str
    prompt: str | None = None
    llm_rejected: dict[str, int] = Field(
        default_factory=dict, description="model outputs left out by the checks, by reason"
    )


class Sample(Record):
    """The JSON of one WebDataset sample (schema ``sample``)."""

    schema_version: str = SCHEMA_VERSION
    key: str
    slice_id: str
    patient: str
    study: str
    series: str
    split: str = ""
    modality: str
    body_part: str | None = None
    plane: str
    width: int
    height: int
    pixel_spacing: tuple[float, float]
    rescale_slope: float
    rescale_intercept: float
    units: str
    windows: list[Window]
    language: str | None = None
    captions: dict[str, list[str]]
    grounded_captions: dict[str, list[str]]
    boxes: list[Box]
    vqa: list[VQAItem]
    image_refs: list[ImageRef] = Field(
        default_factory=list,
        description="key-image references of the report sentences behind the captions; the "
        "caption text no longer names them (the model cannot see image numbers)",
    )
    provenance: Provenance


class Reject(Record):
    """A row of ``rejects.parquet``: a counted, reasoned reject or a failed item (never PHI)."""

    stage: str
    item: str
    outcome: Literal["drop", "error"] = "drop"
    reason: str
    detail: str = ""


class IndexRow(Record):
    """A row of ``index.parquet``: one sample."""

    key: str
    split: str
    shard: str
    modality: str
    language: str | None = None
    patient: str
    study: str
    series: str
    plane: str
    width: int
    height: int
    classes: list[str]
    n_boxes: int
    n_vqa: int
    n_grounded: int
    caption_languages: list[str]
    image_sha256: str


class ShardEntry(Record):
    """One shard in ``shards.json``."""

    name: str
    split: str
    samples: int
    bytes: int
    sha256: str


class ShardIndex(Record):
    """``shards.json``: the shards of a run with checksums."""

    fingerprint: str
    schema_version: str
    shards: list[ShardEntry]


class TextRecord(Record):
    """What the text stage hands to shards: the sample JSON and its blobs (work-relative)."""

    sample: Sample
    image_png: str
    mask_png: str


class RunSummary(Record):
    """``summary.json``: the run manifest written with every set of shards."""

    schema_version: str
    samples: int
    shards: int
    by_split: dict[str, int]
    by_modality: dict[str, int]
    by_language: dict[str, int]
    patients: int
    studies: int
    samples_with_boxes: int
    grounded_captions: int
    vqa_items: int
    rejects: dict[str, int] = Field(description="stage:reason -> count")
    files_left_out_of_series: dict[str, int] = Field(description="stage:reason -> count")
    refrad2d_export: dict[str, int] | None = None
