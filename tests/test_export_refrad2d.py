"""The RefRad2D export on a real demo pipeline run: files, pixels, boxes, masks, keywords,
splits, label map, privacy and determinism; plus the stored-grid -> DICOM-grid map."""

from __future__ import annotations

import io
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pydicom
import pytest
import zstandard

from refrad_builder.anatomy.labels import published_label_map, schema
from refrad_builder.demo import make_demo
from refrad_builder.engine.config import load_config
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import TextRecord
from refrad_builder.engine.runner import LocalExecutor, run_pipeline
from refrad_builder.imaging.boxes import union_boxes
from refrad_builder.imaging.png import decode_png
from refrad_builder.publish.refrad2d import ExportItem, export_refrad2d, items_from_upstream
from refrad_builder.publish.refrad2d.export import (
    REPORTS_FILE,
    dicom_path,
    mask_boxes,
    relocate,
    sampled_relpath,
    segment_relpath,
    snippet_key,
    snippet_relpath,
)
from refrad_builder.publish.refrad2d.models import (
    Refrad2DLabelMap,
    Refrad2DManifest,
    Refrad2DReportRow,
    Refrad2DSampledIndex,
    Refrad2DSegmentIndex,
    Refrad2DSnippetIndex,
)
from refrad_builder.publish.refrad2d.orientation import GridMap, grid_map
from refrad_builder.publish.refrad2d.rows import caption_texts, translation
from refrad_builder.reports.imagerefs import find_image_refs
from refrad_builder.reports.sections import split_sections
from refrad_builder.text import grounding

SECRET = "export-test-secret-0123456789abcdef"
# identifying header values of the shipped real CT series (see test_e2e)
REAL_CT_MARKERS = ["Petersgraben", "PETCT2", "QR_SNOWFOX", "NM20221208140055"]


def _records(work: Path, stage: str) -> list[dict]:
    return [r for _, _, recs in Ledger(work / stage).current_outputs() for r in recs]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """The demo pipeline run in-process, and the export of what its shards hold."""
    base = tmp_path_factory.mktemp("refrad2d")
    demo = base / "demo"
    make_demo(demo, studies=2, seed=0)  # CT+DE (with the real CT), MR+EN
    work, out = base / "work", base / "shards"
    cfg = load_config(
        demo / "config.yaml",
        [f"work_dir={work}", f"out_dir={out}", "execution.executor=local"],
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFRAD_SECRET", SECRET)
        run_pipeline(cfg, executor=LocalExecutor(), progress=lambda _: None)

    # the samples the shards stage kept, with the split it gave them
    split_of = dict(pl.read_parquet(out / "index.parquet").select("key", "split").iter_rows())
    texts = []
    for rec in _records(work, "text"):
        t = TextRecord(**rec)
        if t.sample.key in split_of:
            sample = t.sample.model_copy(update={"split": split_of[t.sample.key]})
            texts.append(t.model_copy(update={"sample": sample}))
    items = items_from_upstream(
        texts, _records(work, "slices"), _records(work, "deid"), _records(work, "report")
    )
    target = base / "export_a"
    counts = export_refrad2d(items, work, target)
    return {
        "base": base,
        "demo": demo,
        "work": work,
        "items": {it.sample.key: it for it in items},
        "slices": {r["slice_id"]: r for r in _records(work, "slices")},
        "target": target,
        "counts": counts,
    }


def _reports(target: Path) -> pl.DataFrame:
    return pl.read_parquet(target / REPORTS_FILE)


def test_every_demo_slice_is_exported(run):
    items, counts = run["items"], run["counts"]
    assert len(items) >= 30
    assert counts["slices"] == len(items)
    assert counts["ct"] + counts["mr"] == len(items) and counts["ct"] and counts["mr"]
    assert not [k for k in counts if k.startswith("skipped:")]
    assert counts["reoriented"] == 0
    manifest = Refrad2DManifest.model_validate_json((run["target"] / "manifest.json").read_text())
    assert manifest.counts["slices"] == len(items)
    assert sorted(_reports(run["target"])["rsopid"]) == sorted(items)


def test_dicom_files_hold_the_stored_slice(run):
    """Each .dcm.zst is a DICOM whose rescaled pixels equal the stored PNG's values."""
    target, work = run["target"], run["work"]
    checked = 0
    for key, item in run["items"].items():
        path = dicom_path(target, key)
        assert path.relative_to(target).as_posix() == f"dicoms_anon/{key[:2]}/{key}.dcm.zst"
        ds = pydicom.dcmread(io.BytesIO(zstandard.ZstdDecompressor().decompress(path.read_bytes())))
        assert int(ds.InstanceNumber) == run["slices"][key]["instance_number"]
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        s = item.sample
        real = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
            ds.get("RescaleIntercept", 0)
        )
        stored = decode_png((work / item.image_png).read_bytes()).astype(np.float64)
        value = stored * s.rescale_slope + s.rescale_intercept
        assert real.shape == value.shape == (s.height, s.width)
        if s.units == "HU":
            # stored CT clips below -1024 HU (padding outside the field of view)
            np.testing.assert_array_equal(np.maximum(real, -1024), value)
        else:
            np.testing.assert_allclose(real, value, atol=s.rescale_slope / 2 + 1e-9)
        checked += 1
    assert checked == len(run["items"])


def test_segment_index_boxes_masks_keywords(run):
    """Boxes and keywords as RefRad2D's generator makes them: a union box for every class in
    the mask; keywords are grounded phrases of published classes present in the mask that
    occur in that language's CleanedSentence."""
    target, work, items = run["target"], run["work"], run["items"]
    sch = schema()
    published = set(published_label_map().values())
    rows = {r["rsopid"]: r for r in _reports(target).iter_rows(named=True)}
    seen = set()
    with_keywords = 0
    for modality in ("ct", "mr"):
        raw = (target / segment_relpath(modality)).read_text()
        index = Refrad2DSegmentIndex.model_validate_json(raw).root
        for key, entry in index.items():
            s = items[key].sample
            assert s.modality.lower() == modality
            seen.add(key)
            assert Path(entry.segment_slice_path).is_absolute()
            mask = np.load(entry.segment_slice_path, allow_pickle=False)
            png = decode_png((work / items[key].mask_png).read_bytes())
            assert mask.dtype == np.uint8 and mask.shape == (s.height, s.width)
            np.testing.assert_array_equal(mask, png)
            present = set(np.unique(mask).tolist()) - {0}
            # every class in the mask has its box (small ones too), and nothing else
            assert [b[4] for b in entry.bboxes] == sorted(present)
            assert [list(b) for b in entry.bboxes] == [list(b) for b in mask_boxes(mask)]
            assert {b.class_id for b in s.boxes} <= present
            for lang, kws in (("english", entry.keywords_eng), ("german", entry.keywords_de)):
                code = "en" if lang == "english" else "de"
                caption = rows[key][lang]["CleanedSentence"]
                phrases = {
                    (cid, p) for g in s.grounded_captions[code] for cid, _, p in grounding.parse(g)
                }
                assert len(kws) == len({(k, cid) for k, _, cid in kws})
                for keyword, class_name, class_id in kws:
                    assert class_id in present and class_id in published, (key, keyword)
                    assert keyword in caption, (key, keyword)
                    assert sch.by_id[class_id].name == class_name
                    assert (class_id, keyword) in phrases
                if not caption:
                    assert not kws
            with_keywords += bool(entry.keywords_eng and entry.keywords_de)
    assert seen == set(items)
    assert with_keywords >= len(items) // 2
    # keywords of a German report name German words, those of the English template English
    de_words = {
        k
        for m in ("ct", "mr")
        for e in json.loads((target / segment_relpath(m)).read_text()).values()
        for k, _, _ in e["keywords_de"]
    }
    assert "Leber" in de_words


def test_min_box_area_leaves_out_small_classes(run, tmp_path):
    items = sorted(run["items"].values(), key=lambda it: it.sample.key)[:6]
    export_refrad2d(items, run["work"], tmp_path, min_box_area_px=40)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["min_box_area_px"] == 40
    left_out = 0
    for modality in ("ct", "mr"):
        for entry in json.loads((tmp_path / segment_relpath(modality)).read_text()).values():
            mask = np.load(entry["segment_slice_path"])
            ids, areas = np.unique(mask, return_counts=True)
            big = {int(i) for i, a in zip(ids, areas, strict=True) if i and a >= 40}
            assert {b[4] for b in entry["bboxes"]} == big
            left_out += len(set(ids.tolist()) - {0} - big)
    assert left_out


def test_sampled_slice_index(run):
    """The index RefRad2DDetectVQA/SegmentVQA read: every slice, its float32 image on the
    DICOM grid, its mask, and boxes of published classes only."""
    target, work, items = run["target"], run["work"], run["items"]
    published = set(published_label_map().values())
    seen = set()
    for modality in ("ct", "mr"):
        index = Refrad2DSampledIndex.model_validate_json(
            (target / sampled_relpath(modality)).read_text()
        ).root
        segments = json.loads((target / segment_relpath(modality)).read_text())
        for name, e in index.items():
            s = items[e.rsopid].sample
            seen.add(e.rsopid)
            assert name == e.rsopid == e.slice_id and e.modality == s.modality
            image = np.load(e.scan_slice_path)
            assert image.dtype == np.float32 and image.shape == (s.height, s.width)
            stored = decode_png((work / items[e.rsopid].image_png).read_bytes())
            np.testing.assert_allclose(
                image, stored * s.rescale_slope + s.rescale_intercept, rtol=1e-6
            )
            assert e.segment_slice_path == segments[name]["segment_slice_path"]
            want = [b for b in segments[name]["bboxes"] if b[4] in published]
            assert [list(b) for b in e.bboxes] == want
    assert seen == set(items)


_LANG = {"en": "english", "de": "german"}


def test_reports_parquet_rows(run):
    target, items = run["target"], run["items"]
    frame = _reports(target)
    assert frame.schema["english"] == frame.schema["german"]
    with_sentence = translated = 0
    for row in frame.iter_rows(named=True):
        rec = Refrad2DReportRow.model_validate(row)
        item = items[rec.rsopid]
        s, report = item.sample, item.report
        assert rec.slice_id == s.key and rec.split == s.split
        assert (rec.modality, rec.body_part) == (s.modality, s.body_part)
        for lang, block in (("en", rec.english), ("de", rec.german)):
            vqa = [v for v in s.vqa if v.language == lang]
            got = [(q.question, q.answer, q.question_type, q.choices) for q in block.dicom_vqa]
            want = [
                (v.question, v.answer, v.question_type, None) for v in vqa if v.source == "metadata"
            ]
            assert got == want and got
            got = [(q.question, q.answer, q.question_type) for q in block.snippet_vqa]
            assert got == [
                (v.question, v.answer, v.question_type) for v in vqa if v.source != "metadata"
            ]
            for q, v in zip(
                block.snippet_vqa, [v for v in vqa if v.source != "metadata"], strict=True
            ):
                assert q.choices == (v.choices if v.question_type == "multiple" else None)
            for name in (
                "CleanedSentence",
                "ReportFragestellungCleaned",
                "ReportKlinischeAngabenCleaned",
            ):
                assert isinstance(row[_LANG[lang]][name], str), (rec.rsopid, lang, name)
            own = report is not None and report.language == lang
            linked = report is not None and len(s.captions[report.language]) == 2
            if own and linked:
                # text_rules puts the report caption first, the template caption last
                assert block.CleanedSentence == " ".join(s.captions[lang][0].split())
                with_sentence += 1
            elif linked:
                # the other language: the text stage's translation, first of its captions
                # (none when the linked sentences name no structure the rules can summarise)
                assert block.CleanedSentence == translation(s, report, ["x"])
                if len(s.captions[lang]) >= 2:
                    assert block.CleanedSentence == " ".join(s.captions[lang][0].split())
                    translated += 1
                else:
                    assert block.CleanedSentence == ""
            else:
                assert block.CleanedSentence == ""
            if own and report.sections.get("question"):
                assert block.ReportFragestellungCleaned == " ".join(
                    report.sections["question"].split()
                )
            else:
                assert block.ReportFragestellungCleaned == ""
            if own and report.sections.get("clinical_info"):
                assert block.ReportKlinischeAngabenCleaned == " ".join(
                    report.sections["clinical_info"].split()
                )
            else:
                assert block.ReportKlinischeAngabenCleaned == ""
    assert with_sentence >= len(items) // 2
    assert translated >= with_sentence // 2


def test_reports_parquet_reads_the_way_radgrounder_does(run):
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(run["target"] / REPORTS_FILE).set_index("rsopid")
    key = next(k for k, it in run["items"].items() if it.report and it.report.language == "de")
    row = df.loc[key]
    vqa = list(row["german"]["dicom_vqa"]) + list(row["german"]["snippet_vqa"])
    assert vqa and all(set(v) == {"question", "answer", "question_type", "choices"} for v in vqa)
    multiple = [v for v in vqa if v["question_type"] == "multiple"]
    assert all(len(list(v["choices"])) >= 3 for v in multiple)
    assert row["german"].get("CleanedSentence")
    assert row["modality"] in ("CT", "MR")


def test_snippets_are_report_sentences_in_the_right_split(run):
    """Snippet key = modality tag + the slice's report sentences (its CleanedSentence in the
    report's language); every slice with report text is reachable; CT and MR never share a
    key, so RadGrounder's ``{**ct, **mr}`` merge keeps every link."""
    target, items = run["target"], run["items"]
    frame = _reports(target)
    own = {}
    for r in frame.iter_rows(named=True):
        report = items[r["rsopid"]].report
        own[r["rsopid"]] = r[_LANG[report.language]]["CleanedSentence"] if report else ""
    linked: dict[str, str] = {}
    for split in ("train", "val", "test"):
        keys = {}
        for modality in ("ct", "mr"):
            path = target / snippet_relpath(modality, split)
            assert path.is_file()
            index = Refrad2DSnippetIndex.model_validate_json(path.read_text()).root
            keys[modality] = set(index)
            for key_text, ids in index.items():
                assert ids == sorted(set(ids)) and ids
                for key in ids:
                    item = items[key]
                    assert item.sample.split == split and item.sample.modality.lower() == modality
                    assert key_text == snippet_key(modality, own[key])
                    report_texts = {" ".join(t.split()) for t in caption_texts(item.report)}
                    assert any(t in own[key] for t in report_texts)
                    assert key not in linked
                    linked[key] = key_text
        assert not keys["ct"] & keys["mr"]
    for key, text in own.items():
        assert (key in linked) == bool(text)
    assert len(linked) >= 10


def test_label_map_covers_every_class(run):
    target = run["target"]
    label_map = Refrad2DLabelMap.model_validate_json((target / "label_map.json").read_text()).root
    assert label_map == {c.name: c.id for c in schema().classes}
    ids = set(label_map.values())
    for modality in ("ct", "mr"):
        for entry in json.loads((target / segment_relpath(modality)).read_text()).values():
            assert {b[4] for b in entry["bboxes"]} <= ids
            assert set(np.unique(np.load(entry["segment_slice_path"]))) - {0} <= ids
    # the ids of every class RadGrounder's published merged label map has are its ids
    published = published_label_map()
    assert len(published) == 121
    assert {n: label_map[n] for n in published} == published
    assert all(i > 121 for n, i in label_map.items() if n not in published)


def test_no_planted_phi_in_any_export_byte(run):
    planted = json.loads((run["demo"] / "planted_phi.json").read_text())
    markers = list(planted) + REAL_CT_MARKERS
    assert len(markers) >= 20
    target = run["target"]
    blobs = []
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blobs.append((path, data))
        if path.name.endswith(".zst"):
            blobs.append((path, zstandard.ZstdDecompressor().decompress(data)))
    # the Parquet is compressed: search its decoded rows too
    rows = _reports(target).to_dicts()
    blobs.append((target / REPORTS_FILE, json.dumps(rows, ensure_ascii=False).encode("utf-8")))
    leaks = [
        (path.relative_to(target).as_posix(), m)
        for path, data in blobs
        for m in markers
        for enc in {m.encode("utf-8"), m.encode("latin-1", "ignore")}
        if enc and enc in data
    ]
    assert not leaks, leaks[:10]


def _tree(root: Path) -> dict[str, bytes]:
    """Every file's bytes, the export's own absolute root written as ``<root>``."""
    own = str(root.resolve()).encode()
    return {
        p.relative_to(root).as_posix(): p.read_bytes().replace(own, b"<root>")
        for p in root.rglob("*")
        if p.is_file()
    }


def _index_paths(root: Path) -> list[str]:
    out = []
    for modality in ("ct", "mr"):
        for rel in (segment_relpath(modality), sampled_relpath(modality)):
            for entry in json.loads((root / rel).read_text()).values():
                out += [entry[f] for f in ("segment_slice_path", "scan_slice_path") if f in entry]
    return out


def test_paths_resolve_from_another_working_directory(run, tmp_path, monkeypatch):
    target = run["target"]
    paths = _index_paths(target)
    assert len(paths) >= 3 * len(run["items"])
    monkeypatch.chdir(tmp_path)
    for path in paths:
        assert Path(path).is_absolute() and Path(path).is_relative_to(target.resolve())
        assert np.load(path).ndim == 2
    env = (target / "radgrounder.env").read_text()
    assert f"export REFRAD2D_SEGMENT_DIR={target.resolve() / 'refrad2d_segment'}" in env


def test_relocate_after_a_move(run, tmp_path, monkeypatch):
    moved = tmp_path / "moved"
    shutil.copytree(run["target"], moved)
    assert relocate(moved) == len(_index_paths(moved))
    monkeypatch.chdir("/")
    for path in _index_paths(moved):
        assert Path(path).is_relative_to(moved.resolve()) and Path(path).is_file()
    assert json.loads((moved / "manifest.json").read_text())["root"] == str(moved.resolve())
    assert _tree(moved) == _tree(run["target"])
    assert relocate(moved) == 0


def test_export_is_deterministic_and_drops_stale_files(run):
    items, work, base = list(run["items"].values()), run["work"], run["base"]
    first = _tree(run["target"])
    other = base / "export_b"
    assert export_refrad2d(list(reversed(items)), work, other) == run["counts"]
    assert _tree(other) == first
    assert export_refrad2d(items, work, other)["stale_removed"] == 0
    assert _tree(other) == first

    keep = sorted(items, key=lambda it: it.sample.key)[5:]
    gone = sorted(items, key=lambda it: it.sample.key)[:5]
    counts = export_refrad2d(keep, work, other)
    assert counts["slices"] == len(keep) and counts["stale_removed"] >= 10
    fresh = base / "export_c"
    export_refrad2d(keep, work, fresh)
    assert _tree(other) == _tree(fresh)
    for it in gone:
        assert not dicom_path(other, it.sample.key).exists()


def test_slices_without_a_dicom_file_are_counted_and_left_out(run, tmp_path):
    items = sorted(run["items"].values(), key=lambda it: it.sample.key)
    reformatted = ExportItem(**{**items[0].__dict__, "instance_number": None})
    unmatched = ExportItem(**{**items[1].__dict__, "instance_number": 99999})
    no_files = ExportItem(**{**items[2].__dict__, "deid_files": ()})
    counts = export_refrad2d([reformatted, unmatched, no_files, *items[3:]], run["work"], tmp_path)
    assert counts["skipped:no_instance_number"] == 1
    assert counts["skipped:no_dicom_match"] == 2
    assert counts["slices"] == len(items) - 3
    left_out = {it.sample.key for it in items[:3]}
    assert not left_out & set(_reports(tmp_path)["rsopid"])
    for modality in ("ct", "mr"):
        assert not left_out & set(json.loads((tmp_path / segment_relpath(modality)).read_text()))
    with pytest.raises(ValueError, match="split"):
        bare = items[3].sample.model_copy(update={"split": ""})
        export_refrad2d(
            [ExportItem(**{**items[3].__dict__, "sample": bare})], run["work"], tmp_path
        )


def test_flipped_acquisition_gets_masks_and_boxes_on_the_dicom_grid(run, tmp_path):
    """A feet-first-like image (rows and columns flipped): the .npy and boxes follow the
    DICOM pixel grid, so the mask still lies on the same anatomy of the DICOM image."""
    src_work = run["work"]
    item = next(it for it in run["items"].values() if it.sample.modality == "CT")
    s = item.sample
    work = tmp_path / "work"
    for rel in (item.image_png, item.mask_png):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src_work / rel, work / rel)
    files = []
    for rel in item.deid_files:
        ds = pydicom.dcmread(src_work / rel)
        if int(ds.InstanceNumber) == item.instance_number:
            if ds.file_meta.TransferSyntaxUID.is_compressed:
                ds.decompress()
            ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1, ::-1]).tobytes()
            ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]
        out = work / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out)
        files.append(rel)
    flipped = ExportItem(**{**item.__dict__, "deid_files": tuple(files)})
    counts = export_refrad2d([flipped], work, tmp_path / "out")
    assert counts["slices"] == 1 and counts["reoriented"] == 1

    out = tmp_path / "out"
    ds = pydicom.dcmread(
        io.BytesIO(zstandard.ZstdDecompressor().decompress(dicom_path(out, s.key).read_bytes()))
    )
    entry = json.loads((out / segment_relpath("ct")).read_text())[s.key]
    mask = np.load(entry["segment_slice_path"])
    png_mask = decode_png((work / item.mask_png).read_bytes())
    np.testing.assert_array_equal(mask, png_mask[::-1, ::-1])
    # image and mask are flipped alike: each mask pixel still lies on the same anatomy
    hu = np.maximum(
        ds.pixel_array.astype(np.int64) * int(ds.RescaleSlope) + int(ds.RescaleIntercept), -1024
    )
    stored = decode_png((work / item.image_png).read_bytes()).astype(np.int64) - 1024
    np.testing.assert_array_equal(hu, stored[::-1, ::-1])
    boxes = union_boxes(mask, schema(), 1)
    want = {b.class_id: list(b.bbox) for b in boxes}
    for x0, y0, x1, y1, cid in entry["bboxes"]:
        assert [x0, y0, x1, y1] == want[cid]


@pytest.mark.parametrize(
    "transpose,s_row,s_col", list(itertools.product([False, True], [1, -1], [1, -1]))
)
def test_grid_map_follows_patient_coordinates(transpose, s_row, s_col):
    """Every axis-aligned axial IOP: the mapped array samples the stored image at the
    patient position of each DICOM pixel; mapped boxes equal the boxes of the mapped mask."""
    h, w = 5, 7
    stored = np.arange(h * w, dtype=np.uint8).reshape(h, w)  # stored[y(P), x(L)]
    x, y = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    row_dir, col_dir = (s_row * y, s_col * x) if transpose else (s_row * x, s_col * y)
    gmap = grid_map([*row_dir, *col_dir])
    assert gmap is not None and gmap.identity == (not transpose and s_row == s_col == 1)
    rows, cols = gmap.shape(h, w)
    mapped = gmap.array(stored)
    assert mapped.shape == (rows, cols)
    positions = np.array([[j * row_dir + i * col_dir for j in range(cols)] for i in range(rows)])
    positions -= positions.reshape(-1, 3).min(axis=0)
    for i, j in itertools.product(range(rows), range(cols)):
        px, py, _ = positions[i, j].astype(int)
        assert mapped[i, j] == stored[py, px]

    mask = np.zeros((h, w), dtype=np.uint8)
    mask[1:3, 2:6] = 5
    mask[4, 0] = 2
    before = {b.class_id: b.bbox for b in union_boxes(mask, schema(), 1)}
    after = {b.class_id: b.bbox for b in union_boxes(gmap.array(mask), schema(), 1)}
    assert {c: gmap.box(bb, h, w) for c, bb in before.items()} == after


def test_grid_map_refuses_non_axial_planes():
    assert grid_map([0, 1, 0, 0, 0, -1]) is None  # sagittal
    assert grid_map([1, 0, 0, 0, 0, -1]) is None  # coronal
    assert grid_map(None) is None
    assert grid_map([0.98, 0.2, 0, -0.2, 0.98, 0]) == GridMap()  # slightly rotated axial


def test_captions_name_no_key_image_and_no_heading(run):
    """The demo reports point at key images ("(Bild 270)", "(series 4, image 57)") and have
    headings; no caption, grounded caption or VQA text of the demo samples keeps either, the
    references stay in the sample's ``image_refs``, and the export still finds every slice's
    report sentences (its CleanedSentence) through the same caption form."""
    items = run["items"]
    with_refs = 0
    for item in items.values():
        s = item.sample
        texts = [t for lang in s.captions for t in s.captions[lang]]
        texts += [grounding.strip(t) for g in s.grounded_captions.values() for t in g]
        texts += [f"{v.question} {v.answer}" for v in s.vqa]
        for text in texts:
            assert not find_image_refs(text), (s.key, text)
            head = split_sections(text)
            assert not head or head[0].start == 0 and head[0].name == "findings", (s.key, text)
        if s.image_refs:
            with_refs += 1
            refs = {(r.series, r.image) for r in s.image_refs}
            raw = {(r.series, r.image) for x in item.report.sentences for r in x.image_refs}
            assert refs <= raw
    # the real CT's report names its key images, so some slices were linked by reference
    assert with_refs >= 1
    report_refs = [
        r for it in items.values() if it.report for x in it.report.sentences for r in x.image_refs
    ]
    assert report_refs, "the demo reports carry key-image references"
