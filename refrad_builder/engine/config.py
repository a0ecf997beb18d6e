"""Run configuration: one pydantic model per stage, loaded from YAML with CLI overrides.

Each stage reads exactly one sub-model (plus the secret where it needs keyed hashes); the
ledger fingerprints a stage's items with the hash of that sub-model, so changing a text
setting reruns only ``text`` and what consumes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

SECRET_ENV = "REFRAD_SECRET"
SECRET_FILE_ENV = "REFRAD_SECRET_FILE"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputsConfig(_Section):
    """Where the originals are: DICOM folders (walked recursively) and report tables."""

    dicom: list[Path] = Field(default_factory=list, description="folders of DICOM files")
    reports: list[Path] = Field(
        default_factory=list, description="report tables: CSV, JSONL or Parquet"
    )
    report_text_column: str = "report"
    report_key_columns: list[str] = Field(
        default_factory=lambda: ["accession_number", "study_instance_uid", "study_folder"],
        description="columns tried in order to pair a report row with a study",
    )
    report_language_column: str = "language"


class IngestConfig(_Section):
    """Header reading and grouping."""

    follow_symlinks: bool = False
    max_file_mb: int = 2048


class DeidConfig(_Section):
    """DICOM de-identification (PS3.15 Annex E Basic Profile with options)."""

    retain_longitudinal_dates: bool = True
    date_shift_max_days: int = 365
    retain_patient_characteristics: bool = True
    retain_safe_private: bool = Field(
        default=False,
        description="Retain Safe Private option: keep the private attributes of PS3.15 Table "
        "E.3.10-1 (creator, element and VR must match; their creator elements with them); "
        "off: every private attribute is removed",
    )
    drop_burned_in: bool = True
    clean_descriptors: bool = Field(
        default=False,
        description="Clean Descriptors option: keep descriptions/comments the text scrubber "
        "finds free of PHI (off: the Basic Profile removes them)",
    )
    ocr_check: bool = Field(
        default=False,
        description="keep a burned-in-policy instance only when OCR (pytesseract + tesseract, "
        "optional) reads no text in it; without OCR such instances are dropped",
    )
    mapping_table: Path | None = Field(
        default=None,
        description="write a CSV mapping originals to pseudonyms here (owner-only, 0600); "
        "must lie outside work_dir and out_dir; off by default",
    )

    @model_validator(mode="after")
    def _no_idle_options(self) -> DeidConfig:
        """An option that would be accepted and do nothing is refused, with the reason."""
        if self.ocr_check and not self.drop_burned_in:
            raise ValueError(
                "deid.ocr_check does nothing when deid.drop_burned_in is false (every "
                "instance is kept without a check): set drop_burned_in: true or ocr_check: false"
            )
        if "date_shift_max_days" in self.model_fields_set and not self.retain_longitudinal_dates:
            raise ValueError(
                "deid.date_shift_max_days does nothing when deid.retain_longitudinal_dates is "
                "false (dates are removed, not shifted): drop one of the two settings"
            )
        if self.date_shift_max_days < 0:
            raise ValueError("deid.date_shift_max_days must be 0 (full dates) or more")
        return self


class ReportConfig(_Section):
    """Report parsing and text de-identification."""

    languages: list[str] = Field(default_factory=lambda: ["de", "en"])
    default_language: str = "en"
    langdetect_seed: int = 0
    learned_recognizer: Path | None = Field(
        default=None,
        description="a local transformers token-classification model folder whose PHI spans "
        "are unioned with the rules (the deid-learned extra; nothing is downloaded)",
    )
    learned_labels: dict[str, str] = Field(
        default_factory=dict,
        description="the model's entity labels mapped to PHI kinds (NAME, DATE, ID, PHONE, "
        "EMAIL, URL, ADDR, INST, AGE); empty: common labels (PER, DATE, LOC, ORG, ...)",
    )
    surrogates: bool = Field(
        default=False,
        description="replace PHI with realistic keyed surrogates of the same kind (dates "
        "shifted like the DICOM dates) instead of placeholders",
    )
    llm_phi: bool = Field(
        default=False,
        description="also ask the configured LLM (the llm section: url, model, flavor) for each "
        "report's PHI; its spans are unioned with the rules' (one request per report, cached); "
        "off: rules alone",
    )

    @model_validator(mode="after")
    def _check_learned(self) -> ReportConfig:
        """Fail fast: a model folder that is not there, or labels without a model."""
        if self.learned_recognizer is not None:
            path = Path(self.learned_recognizer).expanduser()
            if not (path / "config.json").is_file():
                raise ValueError(
                    f"report.learned_recognizer: no model folder with a config.json at {path} "
                    "(a local transformers token-classification model saved with "
                    "save_pretrained, tokenizer included; nothing is downloaded)"
                )
        elif self.learned_labels:
            raise ValueError("report.learned_labels does nothing without report.learned_recognizer")
        return self


class VolumeConfig(_Section):
    """Volume building."""

    min_slices: int = 1
    spacing_tolerance: float = 0.2


class SegmentConfig(_Section):
    """Segmentation backend selection."""

    backend: Literal["auto", "precomputed", "classical", "totalsegmentator"] = "auto"
    precomputed: list[Path] = Field(default_factory=list)
    geometry_tolerance_mm: float = 1.0
    totalseg_weights: Path | None = Field(
        default=None,
        description="folder holding TotalSegmentator's Dataset* weight folders (offline)",
    )
    totalseg_fast: bool = True
    totalseg_device: str = "gpu"
    totalseg_task_ct: str = "total"
    totalseg_task_mr: str = "total_mr"
    totalseg_roi_subset: list[str] | None = None
    totalseg_home: Path | None = Field(
        default=None,
        description="TOTALSEG_HOME_DIR (config.json, statistics off); "
        "default <work>/segment/totalseg_home",
    )
    gpus_per_worker: float | None = Field(
        default=None,
        description="GPUs each segment actor asks Ray for; default: 1 with the "
        "totalsegmentator backend when the cluster has GPUs, else 0",
    )
    ray_resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources each segment actor asks for, to place it on the "
        "nodes that advertise them (ray start --resources), e.g. {accel: 1}",
    )


class WindowConfig(_Section):
    """A display window (centre/width in HU)."""

    name: str
    center: float
    width: float


class SlicesConfig(_Section):
    """Slice choice, windows, masks and boxes."""

    max_slices_per_series: int = 12
    coverage_neighbors: int = 0
    min_box_area_px: int = 20
    ct_windows: list[WindowConfig] = Field(
        default_factory=lambda: [
            WindowConfig(name="lung", center=-100, width=2250),
            WindowConfig(name="soft_tissue", center=40, width=350),
            WindowConfig(name="brain", center=40, width=80),
        ]
    )
    mr_percentiles: tuple[float, float] = (0.5, 99.5)
    planes: list[Literal["axial", "coronal", "sagittal"]] = Field(
        default_factory=lambda: ["axial"],
        description="planes to sample; coronal/sagittal are reformats of the canonical volume",
    )
    reformat_max_anisotropy: float = Field(
        default=1.5,
        gt=0,
        description="reformat only volumes whose largest voxel size is at most this many "
        "times their smallest (near-isotropic)",
    )


class TextConfig(_Section):
    """Captions, grounded captions and VQA."""

    generator: Literal["rules", "llm"] = "rules"
    languages: list[str] = Field(default_factory=lambda: ["de", "en"])
    max_presence_negatives: int = 3
    max_caption_sentences: int = 3


class LLMConfig(_Section):
    """The OpenAI-compatible endpoint the LLM generator talks to."""

    url: str = "http://127.0.0.1:8000/v1"
    model: str = "local"
    flavor: Literal["vllm", "llamacpp"] = "vllm"
    api_key_env: str = "REFRAD_LLM_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 3
    concurrency: int = Field(default=8, description="requests in flight per text worker")
    batch_slices: int = Field(
        default=64, description="slices whose requests one text worker sends as one round"
    )
    on_all_rejected: Literal["drop", "rules"] = Field(
        default="drop",
        description="a slice whose model answers all fail the checks: drop it (counted), or "
        "keep its rules products (generator rules, the rejections in provenance)",
    )
    temperature: float = 0.0
    max_tokens: int = 512


class ShardsConfig(_Section):
    """WebDataset shards and splits."""

    max_samples_per_shard: int = 1000
    max_bytes_per_shard: int = 512 * 1024 * 1024
    buckets: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="hash buckets per split: each sample goes to bucket hash(split, key) mod "
        "buckets, and each bucket is written by one worker as shards {split}-BBBPP.tar "
        "(bucket BBB, part PP); only buckets whose samples changed are rewritten. Fixed, so a "
        "sample's bucket never depends on the rest of the corpus; for large corpora set it to "
        "about samples per split / max_samples_per_shard",
    )
    split_fractions: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    split_method: Literal["hash", "balanced"] = Field(
        default="hash",
        description="hash: each patient's split from a keyed hash of its pseudonym (stable as "
        "patients are added); balanced: the patients of each modality, in that hash order, "
        "dealt to the splits by their fractions with at least one patient per split where "
        "there are enough patients (small sets such as the demo; adding patients may move one)",
    )
    export_refrad2d: bool = Field(
        default=True, description="also write the RefRad2D on-disk layout under refrad2d/"
    )
    refrad2d_min_box_area_px: int = Field(
        default=0,
        ge=0,
        description="RefRad2D export: a class with fewer mask pixels in a slice gets no box "
        "(0: every class in the mask gets its box, as RefRad2D's generator does)",
    )


class ExecConfig(_Section):
    """How the DAG runs."""

    executor: Literal["ray", "local"] = "ray"
    num_cpus: int | None = None
    batch_size: int = 4
    max_item_retries: int = Field(
        default=2,
        ge=0,
        description="times an item whose worker died (crash, out of memory) is run again, alone, "
        "before it is recorded as failed (worker_died)",
    )
    streaming: bool = Field(
        default=True,
        description="on Ray, stream each series through deid -> volume -> segment -> slices -> "
        "text (the stages overlap); false: one stage after the other",
    )
    stall_timeout_s: float = Field(
        default=1800.0,
        gt=0,
        description="a Ray dataset (a stage, or the stream) in which no item moves for this "
        "many seconds stops and runs its unfinished items in isolation; there, items whose "
        "tasks have not finished after this long (none finishing meanwhile) are recorded as "
        "failed (stalled) and retried by the next run. Raise it when one item may take longer",
    )
    lock_stale_s: float = Field(
        default=120.0,
        gt=0,
        description="a run lock held from another host counts as stale when its heartbeat is "
        "older than this many seconds",
    )


class RunConfig(_Section):
    """The whole run: inputs, folders, secret and one section per stage."""

    work_dir: Path = Path("out/work")
    out_dir: Path = Path("out/shards")
    demo: bool = False
    secret_file: Path | None = None
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    deid: DeidConfig = Field(default_factory=DeidConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    volume: VolumeConfig = Field(default_factory=VolumeConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    slices: SlicesConfig = Field(default_factory=SlicesConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
    execution: ExecConfig = Field(default_factory=ExecConfig)

    def section_hash(self, name: str) -> str:
        """Stable hash of one stage's section (what the ledger fingerprints)."""
        section = getattr(self, name, None)
        payload = section.model_dump(mode="json") if section is not None else {}
        return stable_hash(payload)


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys), hex, 32 chars."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class SecretMissing(RuntimeError):
    """No key for UID/date hashing outside demo mode."""


def read_secret_file(path: Path) -> bytes:
    """The key in ``path``: the file must be private to its owner (mode 0600 or stricter)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SecretMissing(
            f"secret file {path} not found (on a cluster it must exist on every node)"
        ) from None
    if mode & 0o077:
        raise SecretMissing(
            f"secret file {path} is readable by group or others (mode {mode & 0o777:o}); "
            f"run: chmod 600 {path}"
        )
    data = path.read_bytes().strip()
    if len(data) < 16:
        raise SecretMissing(f"secret file {path} holds fewer than 16 bytes")
    return data


def secret_source(cfg: RunConfig) -> tuple[str, Path | None]:
    """Where the key comes from: ("env", None), ("file", path) or ("demo", path)."""
    if os.environ.get(SECRET_ENV):
        return "env", None
    path = cfg.secret_file or (
        Path(os.environ[SECRET_FILE_ENV]) if os.environ.get(SECRET_FILE_ENV) else None
    )
    if path is not None:
        return "file", Path(path)
    if cfg.demo:
        return "demo", Path(cfg.work_dir) / "demo-secret.key"
    return "none", None


def load_secret(cfg: RunConfig) -> tuple[bytes, str]:
    """Return (key, where it came from). The key never appears in any output, task argument
    or object: every process (driver or worker) reads it from the environment it was started
    with or from the secret file."""
    kind, path = secret_source(cfg)
    if kind == "env":
        return os.environ[SECRET_ENV].encode(), f"env {SECRET_ENV}"
    if kind == "file":
        return read_secret_file(path), f"file {path}"
    if kind == "demo":
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return read_secret_file(path), f"demo key generated at {path}"
    raise SecretMissing(
        "no secret for UID/date keys: set REFRAD_SECRET, REFRAD_SECRET_FILE or secret_file "
        "in the config (demo mode generates one)"
    )


def key_check(key: bytes) -> str:
    """A one-way tag of the key: workers compare theirs with the driver's without the key
    itself ever travelling."""
    return hashlib.sha256(b"refrad-key-check|" + key).hexdigest()[:16]


class RelativePathOnCluster(ValueError):
    """A relative path in a run that spans several nodes (each would resolve it itself)."""


# Paths every worker reads or writes: absolute on the driver before anything is dispatched.
RUN_PATHS = ("work_dir", "out_dir", "secret_file")
SECTION_PATHS = {
    "inputs": ("dicom", "reports"),
    "segment": ("precomputed", "totalseg_weights", "totalseg_home"),
    "deid": ("mapping_table",),
}


def is_uri(path: object) -> bool:
    """``scheme://...`` (kept as given; a Path field shows it as ``scheme:/...``)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", str(path)) is not None


def resolve_paths(cfg: RunConfig, multi_node: bool = False) -> RunConfig:
    """The config with every folder/file path absolute (URIs kept). On a multi-node run a
    relative path is refused: each node would resolve it against its own working directory."""

    def fix(value: Any, name: str) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [fix(v, name) for v in value]
        if is_uri(value) or Path(value).is_absolute():
            return value
        if multi_node:
            raise RelativePathOnCluster(
                f"{name}={value} is a relative path, and this run spans several Ray nodes: "
                "each node would resolve it against its own working directory. Give an "
                "absolute path (or URI) on storage every node reaches."
            )
        return Path(os.path.abspath(os.path.expanduser(str(value))))

    update: dict[str, Any] = {n: fix(getattr(cfg, n), n) for n in RUN_PATHS}
    for section, names in SECTION_PATHS.items():
        sec = getattr(cfg, section)
        update[section] = sec.model_copy(
            update={n: fix(getattr(sec, n), f"{section}.{n}") for n in names}
        )
    return cfg.model_copy(update=update)


def _coerce(value: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML scalars/lists)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key.path=value")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _coerce(value)
    return data


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a RunConfig from YAML (optional) and ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
    apply_overrides(data, overrides or [])
    return RunConfig.model_validate(data)


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (written into the run folder)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
