"""shards: WebDataset tar shards split by patient, a Parquet index, rejects and a summary.

One item per *bucket*: a sample goes to bucket ``hash(split, key) mod shards.buckets`` of its
patient's split, and the worker of a bucket writes that bucket's complete shards
(``{split}-BBBPP.tar``: bucket BBB, part PP) and a small index/rejects table of its own. A
bucket's fingerprint is built from the text stage's output hashes of its samples (and the
duplicates it drops), so a rerun rewrites only the buckets whose samples changed; the names
depend on nothing but the bucket, so the result is the same whatever ran where and when.
``finalize`` (on the driver) reduces the bucket tables into ``shards.json``, the index, the
rejects, the summary, the card and the RefRad2D export, and removes the shards of buckets
that no longer hold samples.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.io import atomic_write_json, atomic_write_text, dumps, read_json
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import SCHEMA_VERSION, RunSummary, ShardEntry, TextRecord
from refrad_builder.engine.stage import STAGE_ORDER, Stage, WorkItem
from refrad_builder.publish.shard_tables import (
    bucket_tables,
    index_row,
    kept_splits,
    summarize,
    summary_md,
    write_bucket_tables,
    write_index,
    write_rejects,
)
from refrad_builder.publish.shardwriter import ShardStream

log = logging.getLogger("refrad")

INDEX = "shards.json"
EXPORT_DIR = "refrad2d"
# the shard number BBBPP holds a bucket (up to 1000 per split) and a part (up to 100)
MAX_PARTS = 100
FINAL_FILES = ("index.parquet", "rejects.parquet", "summary.json", "summary.md", "card.md")


def bucket_of(split: str, key: str, buckets: int) -> int:
    """The bucket of a sample: a stable hash of its split and key."""
    digest = hashlib.sha256(f"bucket|{split}|{key}".encode()).hexdigest()
    return int(digest[:12], 16) % buckets


def bucket_id(split: str, bucket: int) -> str:
    """The work item id of a bucket (dot-free)."""
    return f"{split}-{bucket:03d}"


def shard_name(split: str, bucket: int, part: int) -> str:
    """The file name of a bucket's ``part``-th shard."""
    if part >= MAX_PARTS:
        raise ValueError(
            f"a bucket needs more than {MAX_PARTS} shards: raise shards.buckets "
            "(or max_samples_per_shard / max_bytes_per_shard)"
        )
    return f"{split}-{bucket:03d}{part:02d}.tar"


def assign_split(patient: str, fractions: dict[str, float]) -> str:
    """Deterministic split of a patient pseudonym by cumulative fractions."""
    u = int(hashlib.sha256(f"split|{patient}".encode()).hexdigest()[:12], 16) / 16**12
    total = sum(fractions.values())
    acc = 0.0
    for name, frac in fractions.items():
        acc += frac / total
        if u < acc:
            return name
    return list(fractions)[-1]


def balanced_splits(patients: dict[str, str], fractions: dict[str, float]) -> dict[str, str]:
    """Patient -> split, patients grouped by modality (``patients``: patient -> modality).

    Within a modality the patients are taken in the order of the same hash
    :func:`assign_split` uses and dealt out by largest remainder of their fractions, every
    split of a non-zero fraction getting at least one patient while there are as many
    patients as such splits; with fewer patients, one each to the largest fractions.
    """
    names = list(fractions)
    total = sum(fractions.values())
    out: dict[str, str] = {}
    by_modality: dict[str, list[str]] = {}
    for patient, modality in sorted(patients.items()):
        by_modality.setdefault(modality, []).append(patient)
    for members in by_modality.values():
        members.sort(key=lambda p: hashlib.sha256(f"split|{p}".encode()).hexdigest())
        n = len(members)
        quota = [n * fractions[s] / total for s in names]
        count = [int(q) for q in quota]
        wanted = [i for i, name in enumerate(names) if fractions[name] > 0]
        if n >= len(wanted):
            for i in wanted:
                count[i] = max(1, count[i])
        else:  # fewer patients than splits: one each, largest fractions first
            count = [0] * len(names)
            for i in sorted(wanted, key=lambda i: (-fractions[names[i]], i))[:n]:
                count[i] = 1
        order = sorted(wanted, key=lambda i: (-(quota[i] - int(quota[i])), i))
        i = 0
        while sum(count) < n:
            count[order[i % len(order)]] += 1
            i += 1
        while sum(count) > n:
            j = max(wanted, key=lambda k: (count[k], -k))
            count[j] -= 1
        pos = 0
        for name, c in zip(names, count, strict=True):
            for patient in members[pos : pos + c]:
                out[patient] = name
            pos += c
    return out


class ShardsStage(Stage):
    """One item per bucket of a split: its samples written as complete shards by a worker;
    ``finalize`` writes the run-level files from the buckets' tables."""

    name = "shards"
    version = "3"
    consumes = ("text",)

    @property
    def target(self) -> Path:
        return Path(self.ctx.config.out_dir)

    @property
    def tables_dir(self) -> Path:
        return self.out_dir / "buckets"

    def config_hash(self) -> str:
        # only what shapes a bucket's shards: the splits and the dedup decisions are in each
        # bucket's input fingerprint, the export settings in the final reduction's
        c = self.cfg
        return stable_hash([c.buckets, c.max_samples_per_shard, c.max_bytes_per_shard])

    # --- planning (driver) ----------------------------------------------------------------

    def plan(self) -> list[WorkItem]:
        """One item per non-empty bucket, from the text items' records and output hashes
        (never the output folder's path: the shards do not depend on where they go)."""
        text = sorted(self.ctx.upstream("text"), key=lambda t: t[2][0]["sample"]["key"])
        split_of = self._split_of([recs[0]["sample"] for _, _, recs in text])
        image_sha = self._image_hashes()
        first_of: dict[str, str] = {}
        buckets: dict[tuple[str, int], dict[str, list]] = {}
        for item_id, digest, recs in text:
            rec = recs[0]
            key = rec["sample"]["key"]
            split = split_of[rec["sample"]["patient"]]
            b = buckets.setdefault(
                (split, bucket_of(split, key, self.cfg.buckets)),
                {"samples": [], "duplicates": [], "inputs": []},
            )
            b["inputs"].append([item_id, digest])
            sha = image_sha.get(rec["sample"]["slice_id"])
            if sha is None:
                raise RuntimeError(
                    "a text sample's slice has no image hash (slices outputs from before "
                    "image hashes, or changed since): rerun from slices (--from slices)"
                )
            if sha in first_of:
                b["duplicates"].append({"key": key, "of": first_of[sha]})
            else:
                first_of[sha] = key
                b["samples"].append(rec)
        return [
            WorkItem(
                id=bucket_id(split, n),
                payload={"split": split, "bucket": n, **b},
                input_fingerprint=stable_hash([split, n, b["inputs"], b["duplicates"]]),
            )
            for (split, n), b in sorted(buckets.items())
        ]

    def _split_of(self, samples: list[dict[str, Any]]) -> dict[str, str]:
        """Patient -> split, by the configured method."""
        fractions = self.cfg.split_fractions
        if self.cfg.split_method == "balanced":
            modality_of: dict[str, str] = {}
            for s in sorted(samples, key=lambda s: (s["patient"], s["modality"])):
                modality_of.setdefault(s["patient"], s["modality"])
            return balanced_splits(modality_of, fractions)
        return {s["patient"]: assign_split(s["patient"], fractions) for s in samples}

    def _image_hashes(self) -> dict[str, str]:
        """slice id -> sha256 of its stored image, as the slices stage recorded it."""
        return {
            rec["slice_id"]: rec["image_sha256"]
            for _, _, recs in self.ctx.upstream("slices")
            for rec in recs
            if rec.get("image_sha256")
        }

    # --- one bucket (worker) --------------------------------------------------------------

    def process(self, item: WorkItem) -> list[ShardEntry]:
        """Write the bucket's shards (one sample in memory at a time), remove its parts a
        previous run wrote beyond them, and write its index and rejects tables."""
        split, bucket = item.payload["split"], item.payload["bucket"]
        work, rows = self.ctx.work, []
        with ShardStream(
            self.target,
            split,
            lambda part: shard_name(split, bucket, part),
            self.cfg.max_samples_per_shard,
            self.cfg.max_bytes_per_shard,
        ) as stream:
            for raw in item.payload["samples"]:
                rec = TextRecord(**raw)
                sample = rec.sample.model_copy(update={"split": split})
                image = (work / rec.image_png).read_bytes()
                fields = {
                    "image.png": image,
                    "mask.png": (work / rec.mask_png).read_bytes(),
                    "json": dumps(sample.model_dump(mode="json", by_alias=True)).encode("utf-8"),
                }
                shard = stream.add(sample.key, fields)
                rows.append(index_row(sample, hashlib.sha256(image).hexdigest(), shard))
            shards = stream.close()
        names = {s.name for s in shards}
        for old in self.target.glob(f"{split}-{bucket:03d}[0-9][0-9].tar"):
            if old.name not in names:
                old.unlink()
        rejects = [
            {
                "stage": self.name,
                "item": d["key"],
                "outcome": "drop",
                "reason": "duplicate_image",
                "detail": f"same pixels as {d['of']}",
            }
            for d in item.payload["duplicates"]
        ]
        write_bucket_tables(self.tables_dir, item.id, rows, rejects)
        return [
            ShardEntry(
                name=s.name, split=s.split, samples=s.samples, bytes=s.bytes, sha256=s.sha256
            )
            for s in shards
        ]

    def outputs_present(self, item: WorkItem) -> bool:
        """The done bucket's shards (by size) and tables are still there."""
        entry = Ledger(self.out_dir).entry(item.id)
        if entry is None or not all(p.is_file() for p in bucket_tables(self.tables_dir, item.id)):
            return False
        for rec in entry["records"]:
            path = self.target / rec["name"]
            if not path.is_file() or path.stat().st_size != rec["bytes"]:
                return False
        return True

    # --- the final reduction (driver) -----------------------------------------------------

    def finalize(self) -> None:
        """shards.json, index, rejects, summary, export and card from the buckets' tables;
        skipped when nothing they depend on changed and they are all there."""
        ledger = Ledger(self.out_dir)
        manifest = ledger.manifest()
        outputs = ledger.current_outputs()
        if len(outputs) != len(manifest):
            log.warning(
                "shards: %d of %d buckets are not done; shards.json and the tables are left "
                "as they were (rerun to finish)",
                len(manifest) - len(outputs),
                len(manifest),
            )
            return
        upstream_rejects = self._stage_rejects()
        fingerprint = stable_hash(
            [
                SCHEMA_VERSION,
                self.version,
                self.ctx.config.section_hash("shards"),
                sorted(manifest.items()),
                upstream_rejects,
            ]
        )
        if self._final_present(fingerprint):
            return
        shards = sorted(
            (ShardEntry(**r) for _, _, recs in outputs for r in recs), key=lambda s: s.name
        )
        self._write_final(fingerprint, shards, [i for i, _, _ in outputs], upstream_rejects)

    def _final_present(self, fingerprint: str) -> bool:
        index = self.target / INDEX
        if not index.is_file() or read_json(index).get("fingerprint") != fingerprint:
            return False
        if self.cfg.export_refrad2d and not (self.target / EXPORT_DIR / "manifest.json").exists():
            return False
        return all((self.target / name).is_file() for name in FINAL_FILES)

    def _write_final(
        self,
        fingerprint: str,
        shards: list[ShardEntry],
        bucket_ids: list[str],
        upstream_rejects: list[dict[str, str]],
    ) -> None:
        target = self.target
        target.mkdir(parents=True, exist_ok=True)
        keep = {s.name for s in shards}
        for stale in target.glob("*.tar"):  # buckets that hold no sample any more
            if stale.name not in keep:
                stale.unlink()
        for tmp in target.glob(".*.tar.*.tmp"):  # of a worker killed mid-shard (no run now)
            tmp.unlink()
        parts = [bucket_tables(self.tables_dir, i) for i in sorted(bucket_ids)]
        write_index(target, [p[0] for p in parts])
        write_rejects(target, upstream_rejects, [p[1] for p in parts])
        summary = summarize(target, len(shards), self._skipped())
        if self.cfg.export_refrad2d:
            summary["refrad2d_export"] = self._export(target)
        summary = RunSummary.model_validate(summary).model_dump(mode="json", exclude_none=True)
        atomic_write_json(target / "summary.json", summary)
        atomic_write_text(target / "summary.md", summary_md(summary))
        atomic_write_json(
            target / INDEX,
            {
                "fingerprint": fingerprint,
                "schema_version": SCHEMA_VERSION,
                "shards": [s.model_dump(mode="json") for s in shards],
            },
        )
        from refrad_builder.publish.card import write_card

        write_card(target)

    def _export(self, target: Path) -> dict[str, int]:
        """The RefRad2D on-disk layout beside the shards (RadGrounder's loaders read it)."""
        from refrad_builder.publish.refrad2d import export_refrad2d, items_from_upstream

        def flat(name: str) -> list[dict]:
            return [r for _, _, recs in self.ctx.upstream(name) for r in recs]

        split_of = dict(kept_splits(target))
        kept = []
        for _, _, recs in self.ctx.upstream("text"):
            rec = TextRecord(**recs[0])
            if rec.sample.key in split_of:
                sample = rec.sample.model_copy(update={"split": split_of[rec.sample.key]})
                kept.append(rec.model_copy(update={"sample": sample}))
        items = items_from_upstream(kept, flat("slices"), flat("deid"), flat("report"))
        return export_refrad2d(
            items,
            self.ctx.work,
            target / EXPORT_DIR,
            self.cfg.refrad2d_min_box_area_px,
            self.cfg.split_method,
            tuple(name for name, frac in self.cfg.split_fractions.items() if frac > 0),
        )

    def _stage_rejects(self) -> list[dict[str, str]]:
        """The drops and standing errors of the stages before this one, in stage order."""
        out = []
        names = []
        for name in STAGE_ORDER[: STAGE_ORDER.index("shards")]:
            names.append(name)
            if name == "ingest":
                names += ["ingest/series", "ingest/reports"]
        for name in names:
            ledger = Ledger(self.ctx.work / name)
            for entry in ledger.current_drops():
                out.append(
                    {
                        "stage": name,
                        "item": entry["id"],
                        "outcome": "drop",
                        "reason": entry["reason"],
                        "detail": entry.get("detail", ""),
                    }
                )
            for e in ledger.current_errors():
                out.append(
                    {
                        "stage": name,
                        "item": e["id"],
                        "outcome": "error",
                        "reason": e["error"],
                        "detail": e.get("where", ""),
                    }
                )
        return out

    def _skipped(self) -> dict[str, int]:
        """Files left out of series that went on, by stage:reason."""
        skipped: dict[str, int] = {}
        for stage in ("deid", "volume"):
            for _, _, recs in self.ctx.upstream(stage):
                for reason, n in recs[0].get("skipped", {}).items():
                    skipped[f"{stage}:{reason}"] = skipped.get(f"{stage}:{reason}", 0) + n
        return skipped


STAGE = ShardsStage
