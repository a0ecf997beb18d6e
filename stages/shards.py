"""shards: WebDataset tar shards split by patient, a Parquet index, rejects and a summary."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from refrad_builder.engine.config import stable_hash
from refrad_builder.engine.io import (
    atomic_write_json,
    atomic_write_text,
    atomic_write_via,
    dumps,
    read_json,
)
from refrad_builder.engine.ledger import Ledger
from refrad_builder.engine.records import SCHEMA_VERSION, RunSummary, TextRecord
from refrad_builder.engine.stage import STAGE_ORDER, Stage, WorkItem
from refrad_builder.publish.shardwriter import write_shards

INDEX = "shards.json"
EXPORT_DIR = "refrad2d"


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
    """One item for the whole run: everything the text stage produced, written as shards."""

    name = "shards"
    version = "2"
    consumes = ("text",)

    @property
    def target(self) -> Path:
        return Path(self.ctx.config.out_dir)

    def plan(self) -> list[WorkItem]:
        # the text items' output hashes; never the output folder's path (the shards must not
        # depend on where they are written: a moved or differently named out_dir is
        # rewritten because outputs_present finds no shards.json there)
        inputs = [(item_id, digest) for item_id, digest, _ in self.ctx.upstream("text")]
        return [WorkItem(id="all", payload={}, input_fingerprint=stable_hash(inputs))]

    def outputs_present(self, item: WorkItem) -> bool:
        index = self.target / INDEX
        if not index.exists():
            return False
        meta = read_json(index)
        export_ok = (
            not self.cfg.export_refrad2d or (self.target / EXPORT_DIR / "manifest.json").exists()
        )
        return (
            export_ok
            and meta.get("fingerprint") == item.fingerprint
            and all((self.target / s["name"]).exists() for s in meta["shards"])
        )

    def process(self, item: WorkItem):
        work = self.ctx.work
        records = [TextRecord(**recs[0]) for _, _, recs in self.ctx.upstream("text")]
        seen: dict[str, str] = {}
        rows, rejects, kept = [], [], []
        by_split: dict[str, list[tuple[str, dict[str, bytes]]]] = {}
        fractions = self.cfg.split_fractions
        if self.cfg.split_method == "balanced":
            modality_of: dict[str, str] = {}
            for rec in sorted(records, key=lambda r: (r.sample.patient, r.sample.modality)):
                modality_of.setdefault(rec.sample.patient, rec.sample.modality)
            split_of = balanced_splits(modality_of, fractions)
        else:
            split_of = {
                r.sample.patient: assign_split(r.sample.patient, fractions) for r in records
            }
        for rec in sorted(records, key=lambda r: r.sample.key):
            image = (work / rec.image_png).read_bytes()
            mask = (work / rec.mask_png).read_bytes()
            digest = hashlib.sha256(image).hexdigest()
            if digest in seen:
                rejects.append(
                    {
                        "stage": "shards",
                        "item": rec.sample.key,
                        "outcome": "drop",
                        "reason": "duplicate_image",
                        "detail": f"same pixels as {seen[digest]}",
                    }
                )
                continue
            seen[digest] = rec.sample.key
            sample = rec.sample.model_copy(update={"split": split_of[rec.sample.patient]})
            fields = {
                "image.png": image,
                "mask.png": mask,
                "json": dumps(sample.model_dump(mode="json", by_alias=True)).encode("utf-8"),
            }
            by_split.setdefault(sample.split, []).append((sample.key, fields))
            kept.append(rec.model_copy(update={"sample": sample}))
            rows.append(
                {
                    "key": sample.key,
                    "split": sample.split,
                    "modality": sample.modality,
                    "language": sample.language,
                    "patient": sample.patient,
                    "study": sample.study,
                    "series": sample.series,
                    "plane": sample.plane,
                    "width": sample.width,
                    "height": sample.height,
                    "classes": [b.class_name for b in sample.boxes],
                    "n_boxes": len(sample.boxes),
                    "n_vqa": len(sample.vqa),
                    "n_grounded": sum(len(v) for v in sample.grounded_captions.values()),
                    "caption_languages": sorted(k for k, v in sample.captions.items() if v),
                    "image_sha256": digest,
                }
            )

        target = self.target
        target.mkdir(parents=True, exist_ok=True)
        shards = []
        for split in sorted(by_split):
            shards += write_shards(
                target,
                split,
                by_split[split],
                self.cfg.max_samples_per_shard,
                self.cfg.max_bytes_per_shard,
            )
        shard_of = {k: s.name for s in shards for k in s.keys}
        for row in rows:
            row["shard"] = shard_of[row["key"]]
        keep = {s.name for s in shards}
        for stale in target.glob("*.tar"):
            if stale.name not in keep:
                stale.unlink()

        index = (
            pl.DataFrame(rows, schema_overrides={"classes": pl.List(pl.Utf8)})
            if rows
            else pl.DataFrame()
        )
        atomic_write_via(target / "index.parquet", lambda p: index.write_parquet(p))
        rejects = self._stage_rejects() + rejects
        reject_df = pl.DataFrame(
            rejects,
            schema={
                "stage": pl.Utf8,
                "item": pl.Utf8,
                "outcome": pl.Utf8,
                "reason": pl.Utf8,
                "detail": pl.Utf8,
            },
        )
        atomic_write_via(target / "rejects.parquet", lambda p: reject_df.write_parquet(p))
        summary = self._summary(rows, rejects, shards)
        if self.cfg.export_refrad2d:
            summary["refrad2d_export"] = self._export(kept, target)
        summary = RunSummary.model_validate(summary).model_dump(mode="json", exclude_none=True)
        atomic_write_json(target / "summary.json", summary)
        atomic_write_text(target / "summary.md", _summary_md(summary))
        atomic_write_json(
            target / INDEX,
            {
                "fingerprint": item.fingerprint,
                "schema_version": SCHEMA_VERSION,
                "shards": [
                    {
                        "name": s.name,
                        "split": s.split,
                        "samples": s.samples,
                        "bytes": s.bytes,
                        "sha256": s.sha256,
                    }
                    for s in shards
                ],
            },
        )
        from refrad_builder.publish.card import write_card

        write_card(target)
        return []

    def _export(self, kept: list[TextRecord], target: Path) -> dict[str, int]:
        """The RefRad2D on-disk layout beside the shards (RadGrounder's loaders read it)."""
        from refrad_builder.publish.refrad2d import export_refrad2d, items_from_upstream

        def flat(name: str) -> list[dict]:
            return [r for _, _, recs in self.ctx.upstream(name) for r in recs]

        items = items_from_upstream(kept, flat("slices"), flat("deid"), flat("report"))
        return export_refrad2d(
            items,
            self.ctx.work,
            target / EXPORT_DIR,
            self.cfg.refrad2d_min_box_area_px,
            self.cfg.split_method,
            tuple(name for name, frac in self.cfg.split_fractions.items() if frac > 0),
        )

    def _stage_rejects(self) -> list[dict]:
        out = []
        work = self.ctx.work
        ledgers = []
        for name in STAGE_ORDER[: STAGE_ORDER.index("shards")]:
            ledgers.append(name)
            if name == "ingest":
                ledgers += ["ingest/series", "ingest/reports"]
        for name in ledgers:
            ledger = Ledger(work / name)
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

    def _summary(self, rows, rejects, shards) -> dict:
        def count(key):
            acc: dict[str, int] = {}
            for r in rows:
                acc[str(r[key])] = acc.get(str(r[key]), 0) + 1
            return dict(sorted(acc.items()))

        reasons: dict[str, int] = {}
        for r in rejects:
            k = f"{r['stage']}:{r['reason']}"
            reasons[k] = reasons.get(k, 0) + 1
        skipped: dict[str, int] = {}
        for stage in ("deid", "volume"):
            for _, _, recs in self.ctx.upstream(stage):
                for reason, n in recs[0].get("skipped", {}).items():
                    skipped[f"{stage}:{reason}"] = skipped.get(f"{stage}:{reason}", 0) + n
        return {
            "schema_version": SCHEMA_VERSION,
            "samples": len(rows),
            "shards": len(shards),
            "by_split": count("split"),
            "by_modality": count("modality"),
            "by_language": count("language"),
            "patients": len({r["patient"] for r in rows}),
            "studies": len({r["study"] for r in rows}),
            "samples_with_boxes": sum(1 for r in rows if r["n_boxes"]),
            "grounded_captions": sum(r["n_grounded"] for r in rows),
            "vqa_items": sum(r["n_vqa"] for r in rows),
            "rejects": dict(sorted(reasons.items())),
            "files_left_out_of_series": dict(sorted(skipped.items())),
        }


def _summary_md(s: dict) -> str:
    lines = [
        "# refrad_builder run summary",
        "",
        f"- samples: {s['samples']} in {s['shards']} shards "
        f"({s['patients']} patients, {s['studies']} studies)",
        f"- by split: {s['by_split']}",
        f"- by modality: {s['by_modality']}",
        f"- by report language: {s['by_language']}",
        f"- samples with boxes: {s['samples_with_boxes']}; grounded captions: "
        f"{s['grounded_captions']}; VQA items: {s['vqa_items']}",
        "",
        "## Rejects (stage:reason -> count)",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in s["rejects"].items()] or ["- none"]
    lines += ["", "## Files left out of a series that went on (stage:reason -> count)", ""]
    lines += [f"- {k}: {v}" for k, v in s["files_left_out_of_series"].items()] or ["- none"]
    return "\n".join(lines) + "\n"


STAGE = ShardsStage
