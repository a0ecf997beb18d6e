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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import zstandard

from refrad_builder.anatomy.labels import in_published_map, schema
from refrad_builder.engine.io import atomic_write_bytes, dumps
from refrad_builder.engine.records import SCHEMA_VERSION
from refrad_builder.imaging.png import decode_png
from refrad_builder.publish.refrad2d.dicom_files import (
    _DicomFinder,
)
from refrad_builder.publish.refrad2d.layout import (
    BOX_RULE,
    DICOM_DIR,
    ENV_FILE,
    IMAGE_DIR,
    KEYWORD_RULE,
    LABEL_MAP_FILE,
    MANIFEST_FILE,
    MASK_DIR,
    MODALITIES,
    PATH_FIELDS,
    REPORTS_FILE,
    REPORTS_SCHEMA,
    SEGMENT_DIR,
    SNIPPET_KEY_RULE,
    SPLIT_DIR,
    SPLITS,
    ZSTD_LEVEL,
    ExportItem,
)
from refrad_builder.publish.refrad2d.models import (
    Refrad2DLabelMap,
    Refrad2DManifest,
    Refrad2DSampledEntry,
    Refrad2DSegmentEntry,
)
from refrad_builder.publish.refrad2d.rows import (
    _clean,
    keywords,
    mask_boxes,
    report_row,
    report_snippets,
)
from refrad_builder.publish.shard_tables import write_parquet

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


@dataclass
class _Tables:
    """What the export gathers slice by slice before writing its index files."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {m: {} for m in MODALITIES.values()}
    )
    sampled: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {m: {} for m in MODALITIES.values()}
    )
    snippets: dict[tuple[str, str], dict[str, set[str]]] = field(
        default_factory=lambda: {(m, s): {} for m in MODALITIES.values() for s in SPLITS}
    )
    written: set[Path] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)


@dataclass
class _Exporter:
    """Writes one slice's files and adds its rows to the tables."""

    work: Path
    target: Path
    min_box_area_px: int
    tables: _Tables = field(default_factory=_Tables)

    def __post_init__(self) -> None:
        self.label_schema = schema()
        self.finder = _DicomFinder(self.work)
        self.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)

    def _arrays(self, item: ExportItem) -> tuple[np.ndarray, np.ndarray] | str:
        """The slice's label mask and float32 image, or why they cannot be used."""
        s = item.sample
        mask = decode_png((self.work / item.mask_png).read_bytes())
        if mask.dtype != np.uint8 or mask.shape != (s.height, s.width):
            return "bad_mask"
        stored = decode_png((self.work / item.image_png).read_bytes())
        if stored.shape != (s.height, s.width):
            return "bad_image"
        slope, intercept = np.float32(s.rescale_slope), np.float32(s.rescale_intercept)
        return mask, stored.astype(np.float32) * slope + intercept

    def add(self, item: ExportItem) -> None:
        """Export one slice, or count why it is left out."""
        s, counts = item.sample, self.tables.counts
        modality = MODALITIES.get(s.modality)
        found = self.finder.find(item) if modality is not None else "modality"
        arrays = self._arrays(item) if not isinstance(found, str) else found
        if isinstance(arrays, str):
            counts[f"skipped:{arrays}"] += 1
            return
        header, gmap = found
        mask, image = arrays
        dcm = dicom_path(self.target, s.key)
        _write(dcm, self.compressor.compress(header.path.read_bytes()))
        dicom_mask = gmap.array(mask)
        npy = self.target / mask_relpath(s.key)
        _write(npy, _npy(dicom_mask))
        img = self.target / image_relpath(s.key)
        _write(img, _npy(gmap.array(image)))
        self.tables.written |= {dcm, npy, img}
        self._add_rows(item, modality, dicom_mask, npy, img)
        counts["slices"] += 1
        counts[modality] += 1
        counts["reoriented"] += 0 if gmap.identity else 1

    def _add_rows(
        self, item: ExportItem, modality: str, dicom_mask: np.ndarray, npy: Path, img: Path
    ) -> None:
        s, t = item.sample, self.tables
        parts = [p for p in (_clean(x) for x in report_snippets(s, item.report)) if p]
        row = report_row(item, parts)
        t.rows.append(row.model_dump(mode="json"))
        boxes = mask_boxes(dicom_mask, self.min_box_area_px)
        present = {int(c) for c in np.unique(dicom_mask) if c}

        def words(lang: str, sentence: str) -> list:
            caps = s.grounded_captions.get(lang, [])
            return keywords(caps, sentence, present, self.label_schema)

        t.segments[modality][s.key] = Refrad2DSegmentEntry(
            bboxes=boxes,
            keywords_eng=words("en", row.english.CleanedSentence),
            keywords_de=words("de", row.german.CleanedSentence),
            segment_slice_path=str(npy),
        ).model_dump(mode="json")
        t.sampled[modality][s.key] = Refrad2DSampledEntry(
            rsopid=s.key,
            slice_id=s.key,
            modality=s.modality,
            scan_slice_path=str(img),
            segment_slice_path=str(npy),
            bboxes=[b for b in boxes if in_published_map(b[4])],
        ).model_dump(mode="json")
        index = t.snippets.setdefault((modality, s.split), {})
        if parts:
            index.setdefault(snippet_key(modality, " ".join(parts)), set()).add(s.key)

    def write_indexes(self) -> None:
        """The reports Parquet, the segment/sampled/snippet indexes and the label map."""
        t, target = self.tables, self.target
        frame = pl.DataFrame(t.rows or None, schema=REPORTS_SCHEMA)
        write_parquet(
            target / REPORTS_FILE,
            lambda p: frame.write_parquet(p, compression="zstd", compression_level=ZSTD_LEVEL),
        )
        for modality, entries in t.segments.items():
            _write(target / segment_relpath(modality), _json(entries))
            _write(target / sampled_relpath(modality), _json(t.sampled[modality]))
        for (modality, split), index in sorted(t.snippets.items()):
            out = {text: sorted(ids) for text, ids in index.items()}
            _write(target / snippet_relpath(modality, split), _json(out))
            t.counts["snippets"] += len(out)
            t.counts["snippet_links"] += sum(len(ids) for ids in out.values())
        label_map = Refrad2DLabelMap({c.name: c.id for c in self.label_schema.classes})
        _write(target / LABEL_MAP_FILE, _json(label_map.model_dump(mode="json")))

    def remove_stale(self) -> int:
        """Remove the files of slices and splits this export no longer holds."""
        target, written = self.target, self.tables.written
        removed = _remove_stale(target / DICOM_DIR, "*/*.dcm.zst", written)
        removed += _remove_stale(target / MASK_DIR, "*/*.npy", written)
        removed += _remove_stale(target / IMAGE_DIR, "*/*.npy", written)
        keep_splits = {target / snippet_relpath(m, split) for m, split in self.tables.snippets}
        removed += sum(
            _remove_stale(target / SPLIT_DIR / f"filtered_{m}_splits", "*.json", keep_splits)
            for m in MODALITIES.values()
        )
        return removed


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
    keys = [it.sample.key for it in items]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate sample keys in the export items")
    if any(not it.sample.split for it in items):
        raise ValueError("every sample must carry its split before export")
    target = Path(target).resolve()
    exporter = _Exporter(Path(work), target, min_box_area_px)
    for item in sorted(items, key=lambda it: it.sample.key):
        exporter.add(item)
    exporter.write_indexes()
    counts = exporter.tables.counts
    counts["stale_removed"] = exporter.remove_stale()
    result = dict(sorted(counts.items()))
    manifest = Refrad2DManifest(
        schema_version=SCHEMA_VERSION,
        label_schema=exporter.label_schema.version,
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
                for name in PATH_FIELDS:
                    value = entry.get(name)
                    if isinstance(value, str) and value.startswith(old):
                        new = str(root / value[len(old) :])
                        changed += new != value
                        entry[name] = new
            _write(path, _json(data))
    manifest["root"] = str(root)
    _write(root / ENV_FILE, _env(root))
    _write(manifest_path, _json(manifest))
    return changed
