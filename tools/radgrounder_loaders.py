"""Run RadGrounder's own dataset classes, unmodified, over a RefRad2D export.

    RADGROUNDER_SRC=/path/to/radgrounder  python tools/radgrounder_loaders.py EXPORT OUT.json

``RADGROUNDER_SRC`` is a checkout of lmb-freiburg/radgrounder (the folder holding the
``radgrounder`` package); its dataset classes need torch and monai in the running Python
(``pip install monai``). Run it from any working directory: the ``REFRAD2D_*`` variables are
read from ``EXPORT/radgrounder.env`` before their package is imported, the way a user sources
that file. A stand-in tokenizer (whitespace words) replaces PaliGemma's: the classes only
encode and decode to cut text to length.

Every class x split x modality x language is built in two modes: training (augmentation,
random sampling, report and VQA questions; three passes over the items) and their evaluation
scripts' (``eval_mode``, report questions, prefix "both"; one pass). Prints a table of items
built and failed and writes the same rows and every distinct error to OUT.json; exit status 1
when any item failed or a class did not build. ``RefRad2DSegmentVQA`` reads CT snippets only
(its constructor passes no modality to the snippet loader), so with ``modality="mr"`` it has
no items on any export, RefRad2D's included; that combination is listed as not applicable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from collections import Counter
from pathlib import Path

PASSES = {"train": 3, "eval": 1}
MODES = {
    "train": dict(eval_mode=False, augment=True, question_types="all", prefix_style=None),
    "eval": dict(eval_mode=True, augment=False, question_types="report", prefix_style="both"),
}
NOT_APPLICABLE = {("SegmentVQA", "mr"): "the class reads CT snippets only"}


class StandInTokenizer:
    """Whitespace words as tokens: enough for the classes' length cuts."""

    def __init__(self) -> None:
        self.vocab: list[str] = []
        self.ids: dict[str, int] = {}

    def encode(self, text):
        out = []
        for word in str(text).split():
            if word not in self.ids:
                self.ids[word] = len(self.vocab)
                self.vocab.append(word)
            out.append(self.ids[word])
        return out

    def decode(self, ids, skip_special_tokens=False):
        return " ".join(self.vocab[i] for i in ids)


def load_env(export: Path) -> None:
    for line in (export / "radgrounder.env").read_text().splitlines():
        if line.startswith("export "):
            key, value = line[len("export ") :].split("=", 1)
            os.environ[key] = value


def classes(tok: StandInTokenizer) -> dict:
    from radgrounder.dataset.segmentation.refrad2d_detect import RefRad2DDetect
    from radgrounder.dataset.segmentation.refrad2d_detect_vqa import RefRad2DDetectVQA
    from radgrounder.dataset.segmentation.refrad2d_segment import RefRad2DSegment
    from radgrounder.dataset.segmentation.refrad2d_segment_vqa import RefRad2DSegmentVQA
    from radgrounder.dataset.vqa_dataset.refrad2d_v18 import RefRad2DV18

    # (class, its own keyword arguments, whether it takes report-question arguments)
    return {
        "V18": (RefRad2DV18, {"max_length": 200}, True),
        "Detect": (RefRad2DDetect, {"max_length": 200, "tokenizer": tok}, True),
        "Segment": (RefRad2DSegment, {"max_length": 200}, True),
        "DetectVQA": (RefRad2DDetectVQA, {"max_length": 200, "tokenizer": tok}, False),
        "SegmentVQA": (RefRad2DSegmentVQA, {"max_length": 200, "tokenizer": tok}, False),
    }


def build_items(ds, passes: int, row: dict, errors: Counter) -> None:
    import torch

    for _ in range(passes):
        for i in range(len(ds)):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    item = ds[i]
                texts = [t for t in item[1:] if isinstance(t, str)]
                assert isinstance(item[0], torch.Tensor) and item[0].ndim == 3, "image"
                assert len(texts) >= 2, "prompt and target texts"
                row["built"] += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted and listed
                row["failed"] += 1
                key = f"{row['cls']}: {type(e).__name__}: {e}"
                errors[key] += 1
                if errors[key] == 1:
                    traceback.print_exc()


def run_one(cls, kw: dict, passes: int, row: dict, errors: Counter) -> None:
    import numpy as np
    import torch

    np.random.seed(0)
    torch.manual_seed(0)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ds = cls(**kw)
    except Exception as e:  # noqa: BLE001 - the constructor's failure is the row's result
        row["ctor_error"] = f"{type(e).__name__}: {e}"
        return
    row["items"] = len(ds)
    build_items(ds, passes, row, errors)


def main(export: Path, out_json: Path) -> int:
    load_env(export)
    sys.path.insert(0, os.environ["RADGROUNDER_SRC"])
    table = classes(StandInTokenizer())
    rows, errors = [], Counter()
    for mode, mkw in MODES.items():
        for name, (cls, ckw, report_style) in table.items():
            for split in ("train", "val", "test"):
                for modality in ("ct", "mr", "all"):
                    for language in ("english", "german"):
                        row = dict(mode=mode, cls=name, split=split, modality=modality,
                                   language=language, items=0, built=0, failed=0,
                                   ctor_error=None, not_applicable=None)  # fmt: skip
                        rows.append(row)
                        if (name, modality) in NOT_APPLICABLE:
                            row["not_applicable"] = NOT_APPLICABLE[name, modality]
                            continue
                        kw = dict(ckw, split=split, language=language, modality=modality,
                                  eval_mode=mkw["eval_mode"], augment=mkw["augment"])  # fmt: skip
                        if report_style:
                            kw.update(question_types=mkw["question_types"],
                                      prefix_style=mkw["prefix_style"])  # fmt: skip
                        run_one(cls, kw, PASSES[mode], row, errors)
    out_json.write_text(json.dumps({"cwd": os.getcwd(), "rows": rows, "errors": errors}, indent=1))
    print_table(rows, errors)
    bad = [r for r in rows if r["failed"] or r["ctor_error"]]
    return 1 if bad else 0


def print_table(rows: list[dict], errors: Counter) -> None:
    print("cwd", os.getcwd())
    print(f"{'mode':5} {'class':10} {'split':5} {'mod':3} {'lang':7} {'items':>5} {'built':>5} "
          f"{'failed':>6}  note")  # fmt: skip
    for r in rows:
        note = r["ctor_error"] or (f"n/a: {r['not_applicable']}" if r["not_applicable"] else "")
        print(f"{r['mode']:5} {r['cls']:10} {r['split']:5} {r['modality']:3} {r['language']:7} "
              f"{r['items']:5d} {r['built']:5d} {r['failed']:6d}  {note}")  # fmt: skip
    built = sum(r["built"] for r in rows)
    failed = sum(r["failed"] for r in rows)
    ctor = sum(1 for r in rows if r["ctor_error"])
    print(f"items built {built}, failed {failed}; classes not built {ctor}")
    print("errors:", dict(errors) or "none")


if __name__ == "__main__":
    if len(sys.argv) != 3 or "RADGROUNDER_SRC" not in os.environ:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
