"""The unified CT+MR label schema, derived from TotalSegmentator's own class maps.

Every class of RadGrounder's published merged label map (121 classes: the ``total`` classes
with their TotalSegmentator ids, then lung_left, lung_right, intervertebral_discs, vertebrae
from ``total_mr``) has exactly its published id, so ``<segNNN>`` means the same class as in
RefRad2D. ``data/radgrounder_merged_label_map.json`` is a verbatim copy of that map
(lmb-freiburg/radgrounder, ``radgrounder/dataset/segmentation/label_map/merged_label_map.json``,
commit a8f332b; names and ids are facts). Classes the map lacks (any new TotalSegmentator
class, then the classical CPU backend's coarse classes body, bone) get ids after the map's
highest id, in generation order. ``data/totalseg_class_map.json`` is a snapshot of
``totalsegmentator.map_to_binary.class_map`` (regenerate with
``python -m refrad_builder.anatomy.labels --refresh`` where totalsegmentator is installed; a test
compares the snapshot with the installed package when it is present).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np

SCHEMA_NAME = "refrad-unified"
# Bumped whenever ids change: r2 = ids of RadGrounder's published merged label map.
SCHEMA_REVISION = "r2"
PUBLISHED_MAP = "radgrounder_merged_label_map.json"
EXTRA_CLASSES = ["body", "bone"]
_SKELETON = re.compile(
    r"^(vertebrae_|rib_|sacrum|skull|sternum|costal_cartilages|humerus_|scapula_|"
    r"clavicula_|femur_|hip_|vertebrae$)"
)


@dataclass(frozen=True)
class LabelClass:
    """One class of the unified schema."""

    id: int
    name: str
    en: str
    de: str
    side: str | None
    parent: str | None


@dataclass
class LabelSchema:
    """The unified schema with lookups."""

    version: str
    classes: list[LabelClass]
    ts_maps: dict[str, dict[int, str]]
    by_name: dict[str, LabelClass] = field(init=False)
    by_id: dict[int, LabelClass] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {c.name: c for c in self.classes}
        self.by_id = {c.id: c for c in self.classes}

    def members(self, name: str) -> set[str]:
        """``name`` and every class whose parent chain reaches it (lung_left -> its lobes)."""
        out = {name}
        changed = True
        while changed:
            changed = False
            for c in self.classes:
                if c.parent in out and c.name not in out:
                    out.add(c.name)
                    changed = True
        return out

    def lut(self, task: str) -> np.ndarray:
        """uint8 lookup table: TotalSegmentator ``task`` id -> unified id (0 stays 0)."""
        cmap = self.ts_maps[task]
        lut = np.zeros(max(cmap) + 1, dtype=np.uint8)
        for ts_id, name in cmap.items():
            lut[ts_id] = self.by_name[name].id
        return lut

    def display(self, class_id: int, lang: str) -> str:
        c = self.by_id[class_id]
        return c.de if lang == "de" else c.en


def _side(name: str) -> str | None:
    if name.endswith("_left") or "_left_" in name:
        return "left"
    if name.endswith("_right") or "_right_" in name:
        return "right"
    return None


def _parent(name: str) -> str | None:
    m = re.fullmatch(r"lung_(upper|middle|lower)_lobe_(left|right)", name)
    if m:
        return f"lung_{m.group(2)}"
    if name.startswith("vertebrae_"):
        return "vertebrae"
    if name in EXTRA_CLASSES:
        return None
    if _SKELETON.match(name):
        return "bone"
    return None


def _load_json(name: str) -> dict:
    return json.loads(resources.files("refrad_builder.data").joinpath(name).read_text("utf-8"))


@lru_cache(maxsize=1)
def published_label_map() -> dict[str, int]:
    """RadGrounder's published merged label map (class name -> id), the committed copy."""
    return {k: int(v) for k, v in _load_json(PUBLISHED_MAP).items()}


def in_published_map(class_id: int) -> bool:
    """Whether ``class_id`` is a class of RadGrounder's published map (may be a ``<seg>``)."""
    return class_id in set(published_label_map().values())


@lru_cache(maxsize=1)
def schema() -> LabelSchema:
    """The unified label schema (cached)."""
    snap = _load_json("totalseg_class_map.json")
    ts_maps = {task: {int(k): v for k, v in snap[task].items()} for task in ("total", "total_mr")}
    names = [ts_maps["total"][i] for i in sorted(ts_maps["total"])]
    names += [n for _, n in sorted(ts_maps["total_mr"].items()) if n not in names]
    names += EXTRA_CLASSES
    published = published_label_map()
    ids = {n: published[n] for n in names if n in published}
    next_id = max(published.values()) + 1
    for n in names:
        if n not in ids:
            ids[n] = next_id
            next_id += 1
    german = _load_json("anatomy_de.json")
    english = _load_json("anatomy_en.json")
    classes = sorted(
        (
            LabelClass(
                id=ids[n],
                name=n,
                en=english.get(n, n.replace("_", " ")),
                de=german.get(n, n.replace("_", " ")),
                side=_side(n),
                parent=_parent(n),
            )
            for n in names
        ),
        key=lambda c: c.id,
    )
    if len({c.id for c in classes}) != len(classes):
        raise ValueError("unified schema ids are not unique")
    if max(c.id for c in classes) > 255:
        raise ValueError("unified schema no longer fits a uint8 mask")
    source = snap["source"].split(",")[0].replace(" ", "-")
    version = f"{SCHEMA_NAME}-{SCHEMA_REVISION}-{len(classes)}-{source}"
    return LabelSchema(version=version, classes=classes, ts_maps=ts_maps)


def _refresh() -> None:
    from totalsegmentator import __version__ as ts_version  # type: ignore[import-not-found]
    from totalsegmentator.map_to_binary import class_map  # type: ignore[import-not-found]

    out = {
        "source": f"totalsegmentator {ts_version}, totalsegmentator.map_to_binary.class_map",
        "total": {str(k): v for k, v in class_map["total"].items()},
        "total_mr": {str(k): v for k, v in class_map["total_mr"].items()},
    }
    target = resources.files("refrad_builder.data").joinpath("totalseg_class_map.json")
    with resources.as_file(target) as path:
        path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    if "--refresh" in sys.argv:
        _refresh()
    for c in schema().classes:
        print(c.id, c.name, c.de, sep="\t")
