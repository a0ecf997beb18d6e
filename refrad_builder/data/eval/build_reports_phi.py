"""Compile the marked-up evaluation reports (``*.src``) into ``reports_phi*.jsonl``.

Run from a checkout: ``python refrad_builder/data/eval/build_reports_phi.py``. The JSONL is
committed; this script only exists so the spans never have to be counted by hand.

One JSON object per report: ``id``, ``lang``, ``style``, ``text`` (markup removed), ``phi``
(``[{type, start, end, text}]``), ``keep`` (``[{start, end, text}]``: clinical terms that must
survive verbatim) and ``known`` (raw header values by type, as ingest would see them).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# output file -> its marked-up sources; the holdout set was written after the recognizers
# were frozen and is evaluated separately
OUTPUTS = {
    "reports_phi.jsonl": ("reports_phi_de.src", "reports_phi_en.src"),
    "reports_phi_holdout.jsonl": ("reports_phi_holdout.src",),
    "reports_phi_dev2.jsonl": ("reports_phi_dev2.src",),
    "reports_phi_blind_c.jsonl": ("reports_phi_blind_c.src",),
    "reports_phi_blind_d.jsonl": ("reports_phi_blind_d.src",),
    "reports_phi_stress_e.jsonl": ("reports_phi_stress_e.src",),
    "reports_phi_blind_e.jsonl": ("reports_phi_blind_e.src",),
    "reports_phi_blind_f.jsonl": ("reports_phi_blind_f.src",),
}
PHI_TYPES = {"NAME", "ID", "DATE", "INST", "ADDR", "PHONE", "EMAIL", "URL", "AGE"}
_MARK = re.compile(r"\{\{(?P<type>[A-Z]+)\|(?P<phi>[^{}]+)\}\}|<<(?P<keep>(?:(?!>>).)+)>>")


def _strip(marked: str) -> tuple[str, list[dict], list[dict]]:
    out: list[str] = []
    phi: list[dict] = []
    keep: list[dict] = []
    pos = last = 0
    for m in _MARK.finditer(marked):
        out.append(marked[last : m.start()])
        pos += m.start() - last
        value = m.group("phi") if m.group("type") else m.group("keep")
        start, end = pos, pos + len(value)
        if m.group("type"):
            if m.group("type") not in PHI_TYPES:
                raise ValueError(f"unknown PHI type {m.group('type')}")
            phi.append({"type": m.group("type"), "start": start, "end": end, "text": value})
        else:
            keep.append({"start": start, "end": end, "text": value})
        out.append(value)
        pos = end
        last = m.end()
    out.append(marked[last:])
    text = "".join(out)
    if "{{" in text or "}}" in text or "<<" in text.replace("<<<", ""):
        raise ValueError("unbalanced markup")
    return text, phi, keep


def parse(path: Path) -> list[dict]:
    """The reports of one source file."""
    records = []
    blocks = re.split(r"^=== ", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    for block in blocks:
        head, body = block.split("\n---\n", 1)
        lines = head.splitlines()
        meta = {"id": lines[0].strip()}
        for line in lines[1:]:
            key, value = line.split(":", 1)
            meta[key.strip()] = value.strip()
        text, phi, keep = _strip(body.strip("\n") + "\n")
        for span in phi + keep:
            assert text[span["start"] : span["end"]] == span["text"]
        records.append(
            {
                "id": meta["id"],
                "lang": meta["lang"],
                "style": meta.get("style", ""),
                "text": text,
                "phi": phi,
                "keep": keep,
                "known": json.loads(meta.get("known", "{}")),
            }
        )
    return records


def main() -> int:
    """Write the JSONL files and print their sizes."""
    for out, sources in OUTPUTS.items():
        records = [r for name in sources for r in parse(HERE / name)]
        ids = [r["id"] for r in records]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate report ids")
        with (HERE / out).open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        n_phi = sum(len(r["phi"]) for r in records)
        n_keep = sum(len(r["keep"]) for r in records)
        langs = {lang: sum(r["lang"] == lang for r in records) for lang in ("de", "en")}
        print(f"{out}: {len(records)} reports {langs}, {n_phi} PHI strings, {n_keep} terms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
