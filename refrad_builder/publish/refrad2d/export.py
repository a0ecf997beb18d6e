"""The RefRad2D on-disk export: the layout RadGrounder's own loaders read.

Under the export root (one folder per RadGrounder environment variable, see
``manifest.json``)::

    dicoms_anon/{id[:2]}/{id}.dcm.zst              REFRAD2D_DICOM_DIR
    refrad2d_vqa_dataset.parquet                   REFRAD2D_VQA_PARQUET
    refrad2d_segment/rsopid_2_segment_v3_{ct,mr}.json  REFRAD2D_SEGMENT_DIR
    refrad2d_segment/refrad2d_sampled_dataset_v3_{ct,mr}.json  (grounded-VQA slice index)
    refrad2d_segment/masks/{id[:2]}/{id}.npy       (segment_slice_path, absolute)
    refrad2d_segment/images/{id[:2]}/{id}.npy      (scan_slice_path, absolute; float32 HU/raw)
    splits/filtered_{ct,mr}_splits/snippet2rsopids_{split}_{ct,mr}_only.json  REFRAD2D_SPLIT_DIR
    label_map.json                                 REFRAD2D_LABEL_MAP
    radgrounder.env                                (``export REFRAD2D_...=<absolute path>``)
    manifest.json

RadGrounder's loaders ``np.load`` the mask and image paths of the JSON indexes as they are, so
those paths are absolute (the export root at export time, ``manifest.json`` ``root``); after
moving an export run ``refrad export relocate DIR`` (:func:`relocate`), which rewrites them.

Contract with RadGrounder's dataset classes (checked by ``refrad validate``): every text field
of both languages is a string (the report's text in its language, the translation made by the
text stage in the other, ``""`` only where nothing exists), never null; every language has at
least one VQA item; boxes are one union box per class present in the mask (as RefRad2D's
generator makes them; ``min_box_area_px`` can leave out smaller classes); keywords are the
grounded phrases of published classes present in the mask that occur in that language's
``CleanedSentence``; snippet keys carry their modality so CT and MR never share one.

``id`` is the sample key (the slice id). The ``.dcm.zst`` is the de-identified DICOM file of
that slice, found by InstanceNumber among its series' deid files. RadGrounder reads every
slice's image from that file, so a slice without one (a reformatted slice, no unique match)
is left out of the whole export and counted. Masks and boxes are given on the DICOM file's
own pixel grid (equal to the stored PNG's for axial head-first supine images).

Everything is deterministic: same items, same bytes (sorted keys, stable order, fixed zstd
level), and every file is written atomically; files of slices no longer exported are removed.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pydicom
import zstandard
from pydantic import BaseModel
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from refrad_builder.anatomy.labels import LabelSchema, in_published_map, schema
from refrad_builder.engine.io import atomic_write_bytes, atomic_write_via, dumps
from refrad_builder.engine.records import SCHEMA_VERSION, ReportRecord, Sample, TextRecord, VQAItem
from refrad_builder.imaging.png import decode_png
from refrad_builder.publish.refrad2d.models import (
    Refrad2DLabelMap,
    Refrad2DLanguage,
    Refrad2DManifest,
    Refrad2DReportRow,
    Refrad2DSampledEntry,
    Refrad2DSegmentEntry,
    Refrad2DVQA,
)
from refrad_builder.publish.refrad2d.orientation import GridMap, grid_map
from refrad_builder.text import grounding

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


# --- DICOM files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    path: Path
    rows: int | None
    columns: int | None
    frames: int
    orientation: tuple[float, ...] | None


def _read_header(path: Path) -> tuple[int | None, _Header] | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except (OSError, EOFError, ValueError, InvalidDicomError):
        return None

    def as_int(value: Any) -> int | None:
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    iop = ds.get("ImageOrientationPatient")
    try:
        orientation = tuple(float(v) for v in iop) if iop else None
    except (TypeError, ValueError):
        orientation = None
    return as_int(ds.get("InstanceNumber")), _Header(
        path=path,
        rows=as_int(ds.get("Rows")),
        columns=as_int(ds.get("Columns")),
        frames=as_int(ds.get("NumberOfFrames")) or 1,
        orientation=orientation,
    )


class _DicomFinder:
    """InstanceNumber -> deid file of a series, headers read once per series."""

    def __init__(self, work: Path):
        self.work = work
        self._series: dict[tuple[str, tuple[str, ...]], dict[int, list[_Header]]] = {}

    def find(self, item: ExportItem) -> tuple[_Header, GridMap] | str:
        """The slice's file and grid map, or the reason there is none."""
        if item.instance_number is None:
            return "no_instance_number"
        cache_key = (item.series_id, item.deid_files)
        by_instance = self._series.get(cache_key)
        if by_instance is None:
            by_instance = {}
            for rel in item.deid_files:
                found = _read_header(self.work / rel)
                if found is not None and found[0] is not None:
                    by_instance.setdefault(found[0], []).append(found[1])
            self._series[cache_key] = by_instance
        matches = by_instance.get(item.instance_number, [])
        if not matches:
            return "no_dicom_match"
        if len(matches) > 1:
            return "ambiguous_instance"
        header = matches[0]
        if header.frames != 1:
            return "multiframe"
        gmap = grid_map(header.orientation)
        if gmap is None:
            return "not_axial"
        s = item.sample
        if (header.rows, header.columns) != gmap.shape(s.height, s.width):
            return "shape_mismatch"
        return header, gmap


# --- text ----------------------------------------------------------------------------------


def _clean(text: str | None) -> str | None:
    """Whitespace collapsed to single spaces; None for nothing."""
    if text is None:
        return None
    out = " ".join(text.split())
    return out or None


def _decompose(caption: str, sentences: list[str]) -> list[str] | None:
    """``caption`` as report sentences joined by single spaces, or None."""
    candidates = sorted({s for s in sentences if s}, key=lambda s: (-len(s), s))
    dead: set[int] = set()

    def walk(pos: int) -> list[str] | None:
        if pos in dead:
            return None
        for s in candidates:
            if not caption.startswith(s, pos):
                continue
            end = pos + len(s)
            if end == len(caption):
                return [s]
            if caption.startswith(" ", end):
                rest = walk(end + 1)
                if rest is not None:
                    return [s, *rest]
        dead.add(pos)
        return None

    return walk(0) if caption else None


def report_snippets(sample: Sample, report: ReportRecord | None) -> list[str]:
    """The report sentences that make up the sample's report caption (in order), if any."""
    if report is None:
        return []
    texts = [s.text for s in report.sentences]
    for caption in sample.captions.get(report.language, []):
        parts = _decompose(caption, texts)
        if parts:
            return parts
    return []


def translation(sample: Sample, report: ReportRecord | None, snippets: list[str]) -> str:
    """The text stage's translation of the linked report text into the other language.

    Both generators put it first among the other language's captions (the rules' finding
    summary, or the model's checked translation before it), and always end that list with the
    descriptive caption of the slice; "" when the slice has no linked report text or no
    translation was made.
    """
    if report is None or not snippets:
        return ""
    other = "en" if report.language == "de" else "de"
    captions = sample.captions.get(other, [])
    return _clean(captions[0]) or "" if len(captions) >= 2 else ""


def mask_boxes(mask: np.ndarray, min_area: int = 0) -> list[tuple[int, int, int, int, int]]:
    """``[x_min, y_min, x_max, y_max, class_id]`` of every class in ``mask`` (max edges
    exclusive, one union box per class as RefRad2D's generator merges them), ascending class
    id; classes with fewer than ``min_area`` pixels get none."""
    out = []
    ids, areas = np.unique(mask, return_counts=True)
    for cid, area in zip(ids.tolist(), areas.tolist(), strict=True):
        if cid == 0 or area < min_area:
            continue
        ys, xs = np.nonzero(mask == cid)
        out.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, cid))
    return out


def keywords(
    grounded: list[str], caption: str, present: set[int], label_schema: LabelSchema
) -> list[tuple[str, str, int]]:
    """``(phrase, class_name, class_id)`` as RefRad2D's generator keeps them: grounded phrases
    of published classes present in the mask that occur in ``caption``, shortest first, a
    phrase left out when it occurs in one already kept."""
    found: list[tuple[str, str, int]] = []
    for text in grounded:
        for class_id, _bins, phrase in grounding.parse(text):
            cls = label_schema.by_id.get(class_id)
            if (
                cls is None
                or not in_published_map(class_id)
                or class_id not in present
                or phrase not in caption
                or (phrase, cls.name, class_id) in found
            ):
                continue
            found.append((phrase, cls.name, class_id))
    found.sort(key=lambda k: len(k[0]))
    out: list[tuple[str, str, int]] = []
    for kw in found:
        if not any(kw[0] in kept[0] for kept in out):
            out.append(kw)
    return out


def _vqa(item: VQAItem) -> Refrad2DVQA:
    return Refrad2DVQA(
        question=item.question,
        answer=item.answer,
        question_type=item.question_type,
        choices=list(item.choices) if item.question_type == "multiple" else None,
    )


def report_row(item: ExportItem, snippets: list[str]) -> Refrad2DReportRow:
    """The Parquet row of one exported slice: text fields in both languages, never null."""
    s = item.sample
    report = item.report
    blocks = {}
    for lang, key in LANGUAGES.items():
        vqa = [v for v in s.vqa if v.language == lang]
        own = report is not None and report.language == lang
        sections = report.sections if own and report is not None else {}
        if own:
            sentence = _clean(" ".join(snippets)) or ""
        else:
            sentence = translation(s, report, snippets)
        blocks[key] = Refrad2DLanguage(
            dicom_vqa=[_vqa(v) for v in vqa if v.source == "metadata"],
            snippet_vqa=[_vqa(v) for v in vqa if v.source != "metadata"],
            CleanedSentence=sentence,
            ReportFragestellungCleaned=_clean(sections.get("question")) or "",
            ReportKlinischeAngabenCleaned=_clean(sections.get("clinical_info")) or "",
        )
    return Refrad2DReportRow(
        rsopid=s.key,
        slice_id=s.key,
        split=s.split,
        modality=s.modality,
        body_part=s.body_part,
        english=blocks["english"],
        german=blocks["german"],
    )


# --- files ---------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    """Atomic write, skipped when the file already holds exactly ``data``."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _json(obj: Any) -> bytes:
    return dumps(obj).encode("utf-8")


def _remove_stale(root: Path, pattern: str, keep: set[Path]) -> int:
    removed = 0
    for path in sorted(root.glob(pattern)):
        if path.is_file() and path not in keep:
            path.unlink()
            removed += 1
    for folder in sorted(root.glob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed


def dicom_path(target: Path, key: str) -> Path:
    """Where the export keeps the compressed DICOM file of slice ``key``."""
    return target / DICOM_DIR / key[:2] / f"{key}.dcm.zst"


def mask_relpath(key: str) -> str:
    """The root-relative path of slice ``key``'s label mask."""
    return f"{MASK_DIR}/{key[:2]}/{key}.npy"


def image_relpath(key: str) -> str:
    """The root-relative path of slice ``key``'s float32 image (the grounded-VQA classes')."""
    return f"{IMAGE_DIR}/{key[:2]}/{key}.npy"


def sampled_relpath(modality: str) -> str:
    """The root-relative path of a modality's (``ct``/``mr``) sampled-slice index."""
    return f"{SEGMENT_DIR}/refrad2d_sampled_dataset_v3_{modality}.json"


def snippet_key(modality: str, text: str) -> str:
    """The snippet key of report text ``text`` in the ``ct``/``mr`` files (unique per modality)."""
    return f"[{modality.upper()}] {text}"


def _env(root: Path) -> bytes:
    lines = [
        "# RadGrounder's data variables for this export (source it: . radgrounder.env)",
        *(f"export {var}={root / rel}" for var, rel in RADGROUNDER_PATHS.items()),
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def snippet_relpath(modality: str, split: str) -> str:
    """The root-relative path of a modality's (``ct``/``mr``) snippet index of ``split``."""
    return f"{SPLIT_DIR}/filtered_{modality}_splits/snippet2rsopids_{split}_{modality}_only.json"


def segment_relpath(modality: str) -> str:
    """The root-relative path of a modality's (``ct``/``mr``) box/keyword/mask index."""
    return f"{SEGMENT_DIR}/rsopid_2_segment_v3_{modality}.json"


RADGROUNDER_PATHS = {
    "REFRAD2D_DICOM_DIR": DICOM_DIR,
    "REFRAD2D_VQA_PARQUET": REPORTS_FILE,
    "REFRAD2D_SEGMENT_DIR": SEGMENT_DIR,
    "REFRAD2D_SPLIT_DIR": SPLIT_DIR,
    "REFRAD2D_LABEL_MAP": LABEL_MAP_FILE,
}


def export_refrad2d(
    items: list[ExportItem],
    work: Path,
    target: Path,
    min_box_area_px: int = 0,
    split_method: str = "hash",
    splits: tuple[str, ...] = SPLITS,
) -> dict[str, int]:
    """Write the RefRad2D layout for ``items`` under ``target`` and return counts.

    Counts: ``slices`` exported (each with its ``.dcm.zst``, mask, image and rows),
    ``ct``/``mr``, ``reoriented`` (DICOM grid differs from the stored one), ``snippets`` and
    ``snippet_links``, ``skipped:<reason>`` for slices left out, ``stale_removed``.
    """
    work, target = Path(work), Path(target).resolve()
    label_schema = schema()
    counts: Counter[str] = Counter()
    keys = [it.sample.key for it in items]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate sample keys in the export items")
    if any(not it.sample.split for it in items):
        raise ValueError("every sample must carry its split before export")

    finder = _DicomFinder(work)
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
    rows: list[dict[str, Any]] = []
    segments: dict[str, dict[str, Any]] = {m: {} for m in MODALITIES.values()}
    sampled: dict[str, dict[str, Any]] = {m: {} for m in MODALITIES.values()}
    snippets: dict[tuple[str, str], dict[str, set[str]]] = {
        (m, split): {} for m in MODALITIES.values() for split in SPLITS
    }
    written: set[Path] = set()

    for item in sorted(items, key=lambda it: it.sample.key):
        s = item.sample
        modality = MODALITIES.get(s.modality)
        if modality is None:
            counts["skipped:modality"] += 1
            continue
        found = finder.find(item)
        if isinstance(found, str):
            counts[f"skipped:{found}"] += 1
            continue
        header, gmap = found
        mask = decode_png((work / item.mask_png).read_bytes())
        if mask.dtype != np.uint8 or mask.shape != (s.height, s.width):
            counts["skipped:bad_mask"] += 1
            continue
        stored = decode_png((work / item.image_png).read_bytes())
        if stored.shape != (s.height, s.width):
            counts["skipped:bad_image"] += 1
            continue
        image = stored.astype(np.float32) * np.float32(s.rescale_slope) + np.float32(
            s.rescale_intercept
        )

        dcm = dicom_path(target, s.key)
        _write(dcm, compressor.compress(header.path.read_bytes()))
        dicom_mask = gmap.array(mask)
        npy = target / mask_relpath(s.key)
        _write(npy, _npy(dicom_mask))
        img = target / image_relpath(s.key)
        _write(img, _npy(gmap.array(image)))
        written |= {dcm, npy, img}

        parts = [p for p in (_clean(t) for t in report_snippets(s, item.report)) if p]
        row = report_row(item, parts)
        rows.append(row.model_dump(mode="json"))
        boxes = mask_boxes(dicom_mask, min_box_area_px)
        present = {int(c) for c in np.unique(dicom_mask) if c}
        segments[modality][s.key] = Refrad2DSegmentEntry(
            bboxes=boxes,
            keywords_eng=keywords(
                s.grounded_captions.get("en", []),
                row.english.CleanedSentence,
                present,
                label_schema,
            ),
            keywords_de=keywords(
                s.grounded_captions.get("de", []),
                row.german.CleanedSentence,
                present,
                label_schema,
            ),
            segment_slice_path=str(npy),
        ).model_dump(mode="json")
        sampled[modality][s.key] = Refrad2DSampledEntry(
            rsopid=s.key,
            slice_id=s.key,
            modality=s.modality,
            scan_slice_path=str(img),
            segment_slice_path=str(npy),
            bboxes=[b for b in boxes if in_published_map(b[4])],
        ).model_dump(mode="json")
        index = snippets.setdefault((modality, s.split), {})
        if parts:
            index.setdefault(snippet_key(modality, " ".join(parts)), set()).add(s.key)
        counts["slices"] += 1
        counts[modality] += 1
        counts["reoriented"] += 0 if gmap.identity else 1

    frame = (
        pl.DataFrame(rows, schema=REPORTS_SCHEMA) if rows else pl.DataFrame(schema=REPORTS_SCHEMA)
    )
    atomic_write_via(
        target / REPORTS_FILE,
        lambda p: frame.write_parquet(p, compression="zstd", compression_level=ZSTD_LEVEL),
    )
    for modality, entries in segments.items():
        _write(target / segment_relpath(modality), _json(entries))
        _write(target / sampled_relpath(modality), _json(sampled[modality]))
    for (modality, split), index in sorted(snippets.items()):
        out = {text: sorted(ids) for text, ids in index.items()}
        _write(target / snippet_relpath(modality, split), _json(out))
        counts["snippets"] += len(out)
        counts["snippet_links"] += sum(len(ids) for ids in out.values())
    label_map = Refrad2DLabelMap({c.name: c.id for c in label_schema.classes})
    _write(target / LABEL_MAP_FILE, _json(label_map.model_dump(mode="json")))

    counts["stale_removed"] = _remove_stale(target / DICOM_DIR, "*/*.dcm.zst", written)
    counts["stale_removed"] += _remove_stale(target / MASK_DIR, "*/*.npy", written)
    counts["stale_removed"] += _remove_stale(target / IMAGE_DIR, "*/*.npy", written)
    keep_splits = {target / snippet_relpath(m, split) for m, split in snippets}
    counts["stale_removed"] += sum(
        _remove_stale(target / SPLIT_DIR / f"filtered_{m}_splits", "*.json", keep_splits)
        for m in MODALITIES.values()
    )
    result = dict(sorted(counts.items()))
    manifest = Refrad2DManifest(
        schema_version=SCHEMA_VERSION,
        label_schema=label_schema.version,
        zstd_level=ZSTD_LEVEL,
        counts={k: v for k, v in result.items() if k != "stale_removed"},
        root=str(target),
        paths=dict(RADGROUNDER_PATHS),
        boxes=BOX_RULE,
        min_box_area_px=min_box_area_px,
        keywords=KEYWORD_RULE,
        snippet_keys=SNIPPET_KEY_RULE,
        split_method=split_method,
        splits=list(splits),
    )
    _write(target / ENV_FILE, _env(target))
    _write(target / MANIFEST_FILE, _json(manifest.model_dump(mode="json")))
    return result


def relocate(root: Path) -> int:
    """Point the absolute paths of an export that was moved or copied to ``root`` at ``root``.

    Rewrites ``segment_slice_path``/``scan_slice_path`` of the segment and sampled-slice
    indexes, ``radgrounder.env`` and the manifest's ``root``; returns the number of paths
    changed. Paths that do not start with the recorded root are left as they are.
    """
    root = Path(root).resolve()
    manifest_path = root / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    old = manifest["root"].rstrip("/") + "/"
    changed = 0
    for pattern in ("rsopid_2_segment_v3_*.json", "refrad2d_sampled_dataset_v3_*.json"):
        for path in sorted((root / SEGMENT_DIR).glob(pattern)):
            data = json.loads(path.read_text(encoding="utf-8"))
            for entry in data.values():
                for field in PATH_FIELDS:
                    value = entry.get(field)
                    if isinstance(value, str) and value.startswith(old):
                        new = str(root / value[len(old) :])
                        changed += new != value
                        entry[field] = new
            _write(path, _json(data))
    manifest["root"] = str(root)
    _write(root / ENV_FILE, _env(root))
    _write(manifest_path, _json(manifest))
    return changed
