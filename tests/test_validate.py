"""The validator on a real demo run, and on one broken copy of it per kind of breakage.

A module fixture runs the whole pipeline in-process on the demo data. Every other test
copies the resulting shard folder, breaks exactly one thing (keeping shards.json checksums
and index.parquet consistent through :class:`Folder` unless the breakage is about them),
and asserts that ``validate_dir`` reports exactly the expected problem codes, that the CLI
exits 1, and that no message repeats the offending text.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from refrad_builder.anatomy.labels import schema as label_schema
from refrad_builder.engine.records import Sample
from refrad_builder.imaging.png import decode_png, encode_png
from refrad_builder.publish.shardwriter import tar_bytes
from refrad_builder.publish.validate import main, validate_dir
from refrad_builder.text import grounding

Samples = list[tuple[str, dict[str, bytes]]]


@pytest.fixture(scope="module")
def good(small_demo_shards) -> Path:
    """The shared small demo run's shard folder (see conftest)."""
    return small_demo_shards


class Folder:
    """A copy of the good folder; edits rewrite tars, shards.json and index rows consistently."""

    def __init__(self, good: Path, tmp_path: Path):
        self.path = tmp_path / "shards"
        shutil.copytree(good, self.path)
        if (self.path / "refrad2d" / "manifest.json").exists():
            # the export's paths are absolute: a copied export is relocated, as documented
            from refrad_builder.publish.refrad2d.export import relocate

            relocate(self.path / "refrad2d")

    # --- shards.json and tars ---------------------------------------------------------------

    def meta(self) -> dict:
        return json.loads((self.path / "shards.json").read_text())

    def write_meta(self, meta: dict) -> None:
        (self.path / "shards.json").write_text(json.dumps(meta))
        # keep the run summary consistent with the rewritten shard index
        summary = json.loads((self.path / "summary.json").read_text())
        summary["samples"] = sum(
            e["samples"]
            for e in meta.get("shards", [])
            if isinstance(e, dict) and isinstance(e.get("samples"), int)
        )
        summary["shards"] = len(meta.get("shards", []))
        (self.path / "summary.json").write_text(json.dumps(summary))

    def names(self, split: str | None = None) -> list[str]:
        return [e["name"] for e in self.meta()["shards"] if split in (None, e["split"])]

    def read(self, name: str) -> Samples:
        out: dict[str, dict[str, bytes]] = {}
        with tarfile.open(self.path / name) as tar:
            for m in tar.getmembers():
                key, _, ext = m.name.partition(".")
                out.setdefault(key, {})[ext] = tar.extractfile(m).read()
        return list(out.items())

    def write(self, name: str, samples: Samples, checksum: bool = True) -> None:
        data = tar_bytes(samples)
        (self.path / name).write_bytes(data)
        meta = self.meta()
        for entry in meta["shards"]:
            if entry["name"] == name:
                entry["samples"] = len(samples)
                entry["bytes"] = len(data)
                if checksum:
                    entry["sha256"] = hashlib.sha256(data).hexdigest()
        self.write_meta(meta)
        self._reindex(name, samples)

    # --- index.parquet ----------------------------------------------------------------------

    def index(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / "index.parquet")

    def write_index(self, rows: list[dict], schema=None) -> None:
        df = pl.DataFrame(rows, schema=schema or self.index().schema)
        df.write_parquet(self.path / "index.parquet")

    def _reindex(self, name: str, samples: Samples) -> None:
        index = self.index()
        rows = index.to_dicts()
        old = {r["key"]: r for r in rows if r["shard"] == name}
        keep = [r for r in rows if r["shard"] != name]
        new = [_index_row(key, name, fields, old.get(key)) for key, fields in samples]
        self.write_index(keep + new, index.schema)

    # --- picking and editing one sample -----------------------------------------------------

    def find(self, pred: Callable[[dict], bool] = lambda s: True, split: str | None = None):
        """(shard, position, sample json) of the first sample that satisfies ``pred``."""
        for name in self.names(split):
            for i, (_, fields) in enumerate(self.read(name)):
                sample = json.loads(fields["json"])
                if pred(sample):
                    return name, i, sample
        raise AssertionError("no sample in the demo run fits this test")

    def edit(
        self,
        change: Callable[[dict[str, bytes], dict], None],
        pred: Callable[[dict], bool] = lambda s: True,
        split: str | None = None,
    ) -> str:
        """Apply ``change(fields, sample_json)`` to one sample, rewrite; returns its key."""
        name, i, sample = self.find(pred, split)
        samples = self.read(name)
        key, fields = samples[i]
        change(fields, sample)
        self.write(name, samples)
        return key

    def edit_json(self, change: Callable[[dict], None], pred=lambda s: True, split=None) -> str:
        def apply(fields: dict[str, bytes], sample: dict) -> None:
            change(sample)
            fields["json"] = json.dumps(sample, ensure_ascii=False).encode("utf-8")

        return self.edit(apply, pred, split)


def _index_row(key: str, shard: str, fields: dict[str, bytes], old: dict | None) -> dict:
    """The row the shards stage would write for this sample (old values where unknowable)."""
    row = dict(old or {})
    row.update(key=key, shard=shard)
    if "image.png" in fields:
        row["image_sha256"] = hashlib.sha256(fields["image.png"]).hexdigest()
    try:
        s = Sample.model_validate_json(fields.get("json", b""))
    except ValueError:
        return row
    row.update(
        split=s.split,
        modality=s.modality,
        language=s.language,
        patient=s.patient,
        study=s.study,
        series=s.series,
        plane=s.plane,
        width=s.width,
        height=s.height,
        classes=[b.class_name for b in s.boxes],
        n_boxes=len(s.boxes),
        n_vqa=len(s.vqa),
        n_grounded=sum(len(v) for v in s.grounded_captions.values()),
        caption_languages=sorted(k for k, v in s.captions.items() if v),
    )
    return row


def _member_ids(class_id: int) -> set[int]:
    schema = label_schema()
    cls = schema.by_id.get(class_id)
    return {schema.by_name[m].id for m in schema.members(cls.name)} if cls else {class_id}


def _free_box(sample: dict) -> int | None:
    """Position of a box that no grounded token of another (group) class depends on.

    Breaking such a box and re-tokenising its own phrases breaks only the box.
    """
    tokens = {
        class_id
        for items in sample["grounded_captions"].values()
        for text in items
        for class_id, _, _ in grounding.parse(text)
    }
    for i, b in enumerate(sample["boxes"]):
        x0, y0, x1, y1 = b["bbox"]
        groups = [c for c in tokens if c != b["class_id"] and b["class_id"] in _member_ids(c)]
        if not groups and x1 - x0 >= 3 and y1 - y0 >= 3:
            return i
    return None


def _retoken(sample: dict, box: dict) -> None:
    """Rewrite the grounded phrases of ``box``'s class to its (changed) bbox."""
    for items in sample["grounded_captions"].values():
        for i, text in enumerate(items):
            for class_id, bins, _ in grounding.parse(text):
                if class_id == box["class_id"]:
                    old = "".join(f"<loc{v:04d}>" for v in bins) + f" id=<seg{class_id:03d}>"
                    bbox = tuple(box["bbox"])
                    new = grounding.token(class_id, "", bbox, sample["width"], sample["height"])
                    text = text.replace(old, new[len("<p bbox=") : new.index(">>") + 1])
            items[i] = text


def _has_free_box(sample: dict) -> bool:
    return _free_box(sample) is not None


def _has_grounding(sample: dict) -> bool:
    return any(grounding.parse(t) for items in sample["grounded_captions"].values() for t in items)


@pytest.fixture
def folder(good, tmp_path) -> Folder:
    return Folder(good, tmp_path)


@pytest.fixture
def expect(capsys):
    """``expect(folder, codes, hidden=())``: exactly ``codes``, CLI exit 1, no ``hidden`` text."""

    def check(folder: Folder, codes: str | set[str], hidden: tuple[str, ...] = ()):
        codes = {codes} if isinstance(codes, str) else codes
        report = validate_dir(folder.path)
        assert report.codes == codes, report.summary()
        capsys.readouterr()
        assert main([str(folder.path), "--json"]) == 1
        printed = capsys.readouterr()
        assert {p[0] for p in json.loads(printed.out)["problems"]} == codes
        for text in hidden:
            for out in (report.summary(), json.dumps(report.as_dict()), printed.out, printed.err):
                assert text not in out
        return report

    return check


# --- the good run ---------------------------------------------------------------------------


def test_demo_run_validates(good, capsys):
    report = validate_dir(good)
    assert report.ok, report.summary()
    assert report.samples == pl.read_parquet(good / "index.parquet").height >= 10
    meta = json.loads((good / "shards.json").read_text())
    assert report.shards == len(meta["shards"]) >= 3
    assert main([str(good)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")


def test_demo_run_has_what_the_breakage_tests_need(folder):
    splits = {e["split"] for e in folder.meta()["shards"]}
    assert len(splits) >= 2
    assert any(len(folder.names(s)) >= 2 for s in splits)
    folder.find(_has_free_box)
    folder.find(_has_grounding)
    folder.find(lambda s: s["vqa"])


def test_cli_module_exit_codes(good, folder):
    folder.edit_json(lambda s: s["captions"].pop("en"))
    cmd = [sys.executable, "-m", "refrad_builder.publish.validate"]
    kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    ok = subprocess.Popen([*cmd, str(good)], **kw)
    bad = subprocess.Popen([*cmd, str(folder.path), "--json"], **kw)
    ok_out, ok_err = ok.communicate(timeout=120)
    bad_out, _ = bad.communicate(timeout=120)
    assert ok.returncode == 0, ok_out + ok_err
    assert ok_out.rstrip().endswith("OK")
    assert bad.returncode == 1
    assert [p[0] for p in json.loads(bad_out)["problems"]] == ["language_missing"]


# --- shard files ------------------------------------------------------------------------------


def test_checksum_mismatch_alone(folder, expect):
    """Bit rot that leaves every member parseable is caught by the checksum only."""
    name = folder.names()[0]
    data = bytearray((folder.path / name).read_bytes())
    at = data.find(b"Visible structures")
    assert at > 0
    data[at] = ord("v")
    (folder.path / name).write_bytes(bytes(data))
    report = expect(folder, "checksum")
    assert report.where("checksum") == [name]


def test_corrupt_tar_header(folder, expect):
    name = folder.names()[0]
    path = folder.path / name
    with tarfile.open(path) as tar:
        offset = tar.getmembers()[4].offset
    data = bytearray(path.read_bytes())
    data[offset : offset + 100] = os.urandom(100)
    path.write_bytes(bytes(data))
    report = expect(folder, {"checksum", "tar_unreadable"})
    assert report.where("tar_unreadable") == [name]


def test_truncated_tar(folder, expect):
    path = folder.path / folder.names()[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])
    expect(folder, {"checksum", "shard_size", "tar_unreadable"})


def test_missing_shard(folder, expect):
    name = folder.names()[-1]
    (folder.path / name).unlink()
    assert expect(folder, "shard_missing").where("shard_missing") == [name]


def test_unlisted_shard(folder, expect):
    shutil.copy(folder.path / folder.names()[0], folder.path / "train-00099.tar")
    expect(folder, "shard_unlisted")


def test_shard_name_outside_the_folder(folder, expect):
    meta = folder.meta()
    original = meta["shards"][0]["name"]
    meta["shards"][0]["name"] = "../" + original
    folder.write_meta(meta)
    index = folder.index()
    rows = [
        {**r, "shard": "../" + original} if r["shard"] == original else r for r in index.to_dicts()
    ]
    folder.write_index(rows)
    expect(folder, {"shard_name", "shard_unlisted"})


def test_sample_count_mismatch(folder, expect):
    meta = folder.meta()
    meta["shards"][0]["samples"] += 1
    folder.write_meta(meta)
    expect(folder, "sample_count")


def test_missing_member(folder, expect):
    key = folder.edit(lambda fields, _s: fields.pop("mask.png"))
    assert expect(folder, "missing_member").where("missing_member") == [f"{key}:mask.png"]


def test_unexpected_member(folder, expect):
    folder.edit(lambda fields, _s: fields.update({"txt": b"free text"}))
    expect(folder, "unexpected_member")


def test_duplicate_key_across_shards(folder, expect):
    split = next(s for s in ("train", "val", "test") if len(folder.names(s)) >= 2)
    first, second = folder.names(split)[:2]
    copied = folder.read(first)[0]
    folder.write(second, folder.read(second) + [copied])
    assert expect(folder, "duplicate_key").where("duplicate_key") == [copied[0]]


def test_duplicate_image_under_another_key(folder, expect):
    name = folder.names()[0]
    samples = folder.read(name)
    key, fields = samples[0]
    sample = json.loads(fields["json"])
    new_key = "f" * 24
    sample["key"] = new_key
    folder.write(name, samples + [(new_key, {**fields, "json": json.dumps(sample).encode()})])
    expect(folder, "duplicate_image")


def test_key_that_is_not_a_pseudonym_is_not_echoed(folder, expect):
    name = folder.names()[0]
    samples = folder.read(name)
    key, fields = samples[0]
    sample = json.loads(fields["json"])
    sample["key"] = "Mustermann_Max"
    samples[0] = ("Mustermann_Max", {**fields, "json": json.dumps(sample).encode()})
    folder.write(name, samples)
    report = expect(folder, "key_format", hidden=("Mustermann",))
    assert report.where("key_format") == [f"{name}#0"]


# --- sample JSON ------------------------------------------------------------------------------


def test_json_not_json(folder, expect):
    key = folder.edit(lambda fields, _s: fields.update({"json": b'{"key": "abc", '}))
    assert expect(folder, "json_invalid").where("json_invalid") == [key]


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (lambda s: s.update(width=str(s["width"])), "width"),
        (lambda s: s.pop("modality"), "modality"),
        (lambda s: s.update(referring_physician="x"), "referring_physician"),
        (lambda s: s["boxes"][0]["bbox"].pop(), "boxes/0/bbox"),
        (lambda s: s["vqa"][0].update(question_type="essay"), "vqa/0/question_type"),
    ],
    ids=["wrong_type", "missing_field", "extra_field", "short_bbox", "bad_enum"],
)
def test_schema_violation(folder, expect, change, location):
    key = folder.edit_json(change, pred=lambda s: s["boxes"] and s["vqa"])
    assert expect(folder, "schema").where("schema") == [f"{key}:{location}"]


def test_schema_violation_never_echoes_a_field_name_that_is_text(folder, expect):
    folder.edit_json(lambda s: s.update({"Frau Musterfrau": "geb. 1950"}))
    report = expect(folder, "schema", hidden=("Musterfrau", "1950"))
    assert report.where("schema")[0].endswith(":?")


def test_schema_version(folder, expect):
    folder.edit_json(lambda s: s.update(schema_version="0.1.0"))
    expect(folder, "schema_version")


def test_fields_with_defaults_may_be_absent(folder):
    def drop(sample: dict) -> None:
        for name in ("schema_version", "language", "body_part"):
            sample.pop(name, None)
        for item in sample["vqa"]:
            item.pop("choices", None)

    folder.edit_json(drop)
    report = validate_dir(folder.path)
    assert report.ok, report.summary()


def test_key_mismatch(folder, expect):
    other = folder.read(folder.names()[-1])[0][0]
    key = folder.edit_json(lambda s: s.update(key=other))
    assert expect(folder, "key_mismatch").where("key_mismatch") == [key]


def test_split_mismatch(folder, expect):
    folder.edit_json(lambda s: s.update(split="val" if s["split"] != "val" else "train"))
    expect(folder, "split_mismatch")


def test_split_leak(folder, expect):
    splits = [e["split"] for e in folder.meta()["shards"]]
    a, b = sorted(set(splits))[:2]
    patient = folder.find(split=a)[2]["patient"]
    folder.edit_json(lambda s: s.update(patient=patient), split=b)
    assert expect(folder, "split_leak").where("split_leak") == [f"{a}/{b}"]


def test_language_missing(folder, expect):
    key = folder.edit_json(lambda s: s["captions"].pop("en"))
    assert expect(folder, "language_missing").where("language_missing") == [f"{key}:en"]


def test_languages_are_configurable(folder):
    folder.edit_json(lambda s: s["captions"].pop("en"))
    assert validate_dir(folder.path, languages=("de",)).ok
    assert main([str(folder.path), "--languages", "de"]) == 0


# --- pixels -----------------------------------------------------------------------------------


def _set_image(array_of: Callable[[np.ndarray], bytes], member: str = "image.png"):
    def change(fields: dict[str, bytes], _sample: dict) -> None:
        fields[member] = array_of(decode_png(fields[member]))

    return change


def test_image_does_not_decode(folder, expect):
    key = folder.edit(_set_image(lambda a: encode_png(a)[:200]))
    assert expect(folder, "image_decode").where("image_decode") == [f"{key}:image.png"]


def test_image_8_bit(folder, expect):
    folder.edit(_set_image(lambda a: encode_png((a >> 8).astype(np.uint8))))
    expect(folder, "image_shape_or_depth")


def test_image_wrong_size(folder, expect):
    folder.edit(_set_image(lambda a: encode_png(a[:, :-8])))
    expect(folder, "image_shape_or_depth")


def test_image_not_png(folder, expect):
    def tiff(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="TIFF")
        return buf.getvalue()

    folder.edit(_set_image(tiff))
    expect(folder, "image_format")


def test_mask_wrong_size(folder, expect):
    folder.edit(_set_image(lambda m: encode_png(np.pad(m, ((0, 4), (0, 0)))), "mask.png"))
    expect(folder, "mask_shape_or_depth")


def test_mask_16_bit(folder, expect):
    folder.edit(_set_image(lambda m: encode_png(m.astype(np.uint16)), "mask.png"))
    expect(folder, "mask_shape_or_depth")


def test_mask_label_outside_the_schema(folder, expect):
    def relabel(m: np.ndarray) -> bytes:
        m = m.copy()
        ys, xs = np.nonzero(m == 0)
        m[ys[0], xs[0]] = 250
        return encode_png(m)

    folder.edit(_set_image(relabel, "mask.png"))
    expect(folder, "mask_unknown_class")


# --- boxes ------------------------------------------------------------------------------------


def _edit_free_box(folder: Folder, change: Callable[[dict, dict], None]) -> tuple[str, str]:
    """Change one box that no grounded caption depends on; returns (key, class name)."""
    picked: dict = {}

    def apply(sample: dict) -> None:
        box = sample["boxes"][_free_box(sample)]
        picked["name"] = box["class_name"]
        change(box, sample)
        _retoken(sample, box)

    key = folder.edit_json(apply, pred=_has_free_box)
    return key, picked["name"]


def test_box_outside_image(folder, expect):
    key, name = _edit_free_box(
        folder, lambda b, s: b.update(bbox=[*b["bbox"][:2], s["width"] + 9, b["bbox"][3]])
    )
    assert expect(folder, "box_outside_image").where("box_outside_image") == [f"{key}:{name}"]


def test_box_not_mask_extent(folder, expect):
    key, name = _edit_free_box(
        folder, lambda b, _s: b.update(bbox=[*b["bbox"][:3], b["bbox"][3] - 1])
    )
    assert expect(folder, "box_not_mask_extent").where("box_not_mask_extent") == [f"{key}:{name}"]


def test_box_area_not_mask_area(folder, expect):
    _edit_free_box(folder, lambda b, _s: b.update(area=b["area"] + 1))
    expect(folder, "box_not_mask_extent")


def test_box_class_absent_from_mask(folder, expect):
    def change(fields: dict[str, bytes], sample: dict) -> None:
        class_id = sample["boxes"][_free_box(sample)]["class_id"]
        mask = decode_png(fields["mask.png"])
        mask[mask == class_id] = 0
        fields["mask.png"] = encode_png(mask)

    folder.edit(change, pred=_has_free_box)
    expect(folder, "box_without_mask")


def test_box_class_name_not_its_id(folder, expect):
    _edit_free_box(folder, lambda b, _s: b.update(class_name="kidney_banana"))
    report = expect(folder, "box_class_unknown", hidden=("banana",))
    assert len(report.problems) == 1


def test_two_boxes_for_one_class(folder, expect):
    def dup(sample: dict) -> None:
        sample["boxes"].append(dict(sample["boxes"][_free_box(sample)]))

    folder.edit_json(dup, pred=_has_free_box)
    expect(folder, "box_duplicate_class")


# --- grounded captions ------------------------------------------------------------------------


def _edit_grounded(folder: Folder, change: Callable[[str], str]) -> str:
    def apply(sample: dict) -> None:
        for items in sample["grounded_captions"].values():
            for i, text in enumerate(items):
                if grounding.parse(text):
                    items[i] = change(text)
                    return

    return folder.edit_json(apply, pred=_has_grounding)


def test_grounding_token_unparsable(folder, expect):
    _edit_grounded(folder, lambda t: t.replace("<loc", "<lok", 1))
    expect(folder, "grounding_token_unparsable")


def test_grounding_bins_do_not_match_box(folder, expect):
    def shift(text: str) -> str:
        class_id, bins, phrase = grounding.parse(text)[0]
        old = "".join(f"<loc{v:04d}>" for v in bins)
        new = "".join(f"<loc{v:04d}>" for v in (bins[0], bins[1], bins[2], (bins[3] + 40) % 512))
        return text.replace(old + f" id=<seg{class_id:03d}>", new + f" id=<seg{class_id:03d}>", 1)

    _edit_grounded(folder, shift)
    expect(folder, "grounding_box_mismatch")


# --- PHI patterns -----------------------------------------------------------------------------

PHI_CASES = [
    ("date", "Voruntersuchung vom 12.03.2021 zum Vergleich.", "12.03.2021"),
    ("salutation_name", "Befund mit Herr Mustermann besprochen.", "Mustermann"),
    ("email", "Rückfragen an max.mustermann@klinik-example.de.", "klinik-example"),
    ("phone", "Rückruf unter Tel. 0761 2701234.", "2701234"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), PHI_CASES, ids=[c[0] for c in PHI_CASES])
def test_phi_in_caption(folder, expect, kind, text, secret):
    key = folder.edit_json(lambda s: s["captions"]["de"].append(text))
    report = expect(folder, f"phi_pattern_{kind}", hidden=(secret,))
    assert report.where(f"phi_pattern_{kind}")[0].startswith(f"{key}:captions/de/")


@pytest.mark.parametrize(("kind", "text", "secret"), PHI_CASES, ids=[c[0] for c in PHI_CASES])
def test_phi_in_vqa_answer(folder, expect, kind, text, secret):
    key = folder.edit_json(lambda s: s["vqa"][0].update(answer=text), pred=lambda s: s["vqa"])
    report = expect(folder, f"phi_pattern_{kind}", hidden=(secret,))
    assert report.where(f"phi_pattern_{kind}") == [f"{key}:vqa/0/answer"]


def test_phi_in_grounded_caption_text(folder, expect):
    _edit_grounded(folder, lambda t: t + " Herr Mustermann")
    expect(folder, "phi_pattern_salutation_name", hidden=("Mustermann",))


def test_phi_as_a_caption_language_key(folder, expect):
    key = folder.edit_json(lambda s: s["captions"].update({"Frau Musterfrau": ["ok"]}))
    report = expect(folder, "phi_pattern_salutation_name", hidden=("Musterfrau",))
    # found in the sample and in the index row's caption_languages
    where = report.where("phi_pattern_salutation_name")
    assert f"{key}:captions/?" in where
    assert any(w.startswith("index.parquet[") and "caption_languages" in w for w in where)


# --- tables -----------------------------------------------------------------------------------


def test_index_missing(folder, expect):
    (folder.path / "index.parquet").unlink()
    expect(folder, "table_missing")


def test_index_lacks_a_sample(folder, expect):
    folder.write_index(folder.index().to_dicts()[1:])
    expect(folder, "index_mismatch")


def test_index_points_to_the_wrong_shard(folder, expect):
    rows = folder.index().to_dicts()
    other = next(n for n in folder.names() if n != rows[0]["shard"])
    rows[0]["shard"] = other
    folder.write_index(rows)
    expect(folder, "index_mismatch")


def test_index_row_disagrees_with_its_sample(folder, expect):
    rows = folder.index().to_dicts()
    rows[2]["n_boxes"] += 1
    folder.write_index(rows)
    assert expect(folder, "index_mismatch").where("index_mismatch") == ["index.parquet[2]:n_boxes"]


def test_index_image_hash_disagrees(folder, expect):
    rows = folder.index().to_dicts()
    rows[0]["image_sha256"] = "0" * 64
    folder.write_index(rows)
    expect(folder, "index_mismatch")


def test_index_row_violates_schema_extra_column(folder, expect):
    index = folder.index().with_columns(pl.lit("x").alias("referring_physician"))
    index.write_parquet(folder.path / "index.parquet")
    report = expect(folder, "table_schema")
    assert report.where("table_schema") == ["index.parquet[0]:referring_physician"]


def test_index_row_violates_schema_wrong_type(folder, expect):
    index = folder.index().with_columns(pl.col("width").cast(pl.Utf8))
    index.write_parquet(folder.path / "index.parquet")
    assert expect(folder, "table_schema").where("table_schema") == ["index.parquet[0]:width"]


def test_rejects_unreadable(folder, expect):
    (folder.path / "rejects.parquet").write_bytes(b"PAR1 not really")
    assert expect(folder, "table_unreadable").where("table_unreadable") == ["rejects.parquet"]


def test_rejects_missing(folder, expect):
    (folder.path / "rejects.parquet").unlink()
    expect(folder, "table_missing")


def test_rejects_with_phi(folder, expect):
    row = {
        "stage": "ingest",
        "item": "abc",
        "outcome": "drop",
        "reason": "unreadable",
        "detail": "sent by max.mustermann@klinik-example.de",
    }
    pl.DataFrame([row]).write_parquet(folder.path / "rejects.parquet")
    report = expect(folder, "phi_pattern_email", hidden=("mustermann",))
    assert report.where("phi_pattern_email") == ["rejects.parquet[0]:detail"]


# --- shards.json ------------------------------------------------------------------------------


def test_shard_index_missing(folder, expect):
    (folder.path / "shards.json").unlink()
    expect(folder, "no_shard_index")


def test_shard_index_not_json(folder, expect):
    (folder.path / "shards.json").write_text('{"shards": [')
    expect(folder, "shard_index_unreadable")


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (lambda m: m["shards"][0].pop("sha256"), "shards/0/sha256"),
        (lambda m: m["shards"][0].update(samples="5"), "shards/0/samples"),
        (lambda m: m.update(written_by="x"), "written_by"),
    ],
    ids=["missing_field", "wrong_type", "extra_field"],
)
def test_shard_index_schema(folder, expect, change, location):
    meta = folder.meta()
    change(meta)
    folder.write_meta(meta)
    assert expect(folder, "shard_index_schema").where("shard_index_schema") == [location]


def test_shard_size_mismatch(folder, expect):
    meta = folder.meta()
    meta["shards"][0]["bytes"] += 512
    folder.write_meta(meta)
    expect(folder, "shard_size")
