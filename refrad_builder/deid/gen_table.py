"""Generate ``refrad_builder/data/dicom_e1_1.json`` from machine-readable copies of PS3.15
Table E.1-1 ("Application Level Confidentiality Profile Attributes").

Run it by hand when the table is updated; the committed JSON is what the engine reads (no
network at run time)::

    python -m refrad_builder.deid.gen_table \\
        --basic dicomfields_2024b.py \\
        --options confidentiality_profile_attributes.json \\
        --out refrad_builder/data/dicom_e1_1.json

Inputs (both extracted from the standard's own HTML rendering of Table E.1-1):

``--basic``
    The "Basic Prof." column of the **2024b** edition: ``dicomanonymizer/
    dicom_anonymization_databases/dicomfields_2024b.py`` of KitwareMedical/dicom-anonymizer
    (MIT licence, see ``refrad_builder/data/NOTICE``), scraped from
    ``https://dicom.nema.org/medical/dicom/2024b/output/chtml/part15/chapter_E.html``. It is
    read with :func:`ast.literal_eval` on its list assignments (``D_TAGS``, ``X_Z_D_TAGS``...),
    never executed. Its 620 rows plus the "Private Attributes" row are the whole table.
``--options``
    The option columns (Retain Safe Private, UIDs, Device/Institution Identity, Patient
    Characteristics, Longitudinal Full/Modified Dates, Clean Descriptors/Structured
    Content/Graphics): ``standard/confidentiality_profile_attributes.json`` of
    innolitics/dicom-standard (commit 0d01bf11dfc1d0b73b6df85bbf6e1764d3c558a3, an earlier
    edition of the same table, 456 rows). Rows of the 2024b table it lacks get their option
    cells from one rule: DA, DT and TM attributes carry the two Longitudinal columns (K/C),
    as every dated row of the table does; no other option applies to them (so the Basic
    Profile action stands, the safe side).

Combined codes (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) are kept as the standard
writes them and resolved here once: the first (most removing) choice, unless
:data:`RESOLUTIONS` names the attribute as Type 1/2 in the CT/MR image IODs this project
writes, with the reason.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
from pathlib import Path

from pydicom.datadict import dictionary_description, dictionary_VR, keyword_for_tag

EDITION = "2024b"
TABLE = "DICOM PS3.15 Table E.1-1 Application Level Confidentiality Profile Attributes"
BASIC_SOURCE = {
    "what": "Basic Prof. column, all rows",
    "repository": "KitwareMedical/dicom-anonymizer",
    "path": "dicomanonymizer/dicom_anonymization_databases/dicomfields_2024b.py",
    "commit": "3cd5853591ce1870011c6b98d2053c5737a39faa",
    "licence": "MIT (Copyright 2019, Kitware SAS)",
    "licence_text": (
        "Copyright 2019, Kitware SAS. Permission is hereby granted, free of charge, to any "
        "person obtaining a copy of this software and associated documentation files (the "
        '"Software"), to deal in the Software without restriction, including without '
        "limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, "
        "and/or sell copies of the Software, and to permit persons to whom the Software is "
        "furnished to do so, subject to the following conditions: The above copyright notice "
        "and this permission notice shall be included in all copies or substantial portions "
        'of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, '
        "EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, "
        "FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS "
        "OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN "
        "AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH "
        "THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."
    ),
    "standard_url": "https://dicom.nema.org/medical/dicom/2024b/output/chtml/part15/chapter_E.html",
}
OPTIONS_SOURCE = {
    "what": "option columns (rows present in that copy)",
    "repository": "innolitics/dicom-standard",
    "path": "standard/confidentiality_profile_attributes.json",
    "commit": "0d01bf11dfc1d0b73b6df85bbf6e1764d3c558a3",
    "licence": "no licence file in the copy read; only facts of the standard's table are used",
}

# Variable name in the basic-column source -> the standard's code.
BASIC_LISTS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
# innolitics column key -> our option name (the order is the table's column order).
OPTION_COLUMNS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_longitudinal_full_dates",
    "rtnLongModifDatesOpt": "retain_longitudinal_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}
DATE_VRS = ("DA", "DT", "TM")
CODES = {
    "D": "replace with a non-zero-length dummy value consistent with the VR",
    "Z": "replace with a zero-length value, or a non-zero-length dummy consistent with the VR",
    "X": "remove",
    "K": "keep (non-sequence attributes) or clean (sequences)",
    "C": "clean: replace with values of similar meaning known not to contain identifying "
    "information",
    "U": "replace with a non-zero-length UID that is internally consistent within the set "
    "of instances",
    "U*": "(in X/Z/U*) keep the sequence and replace the UIDs it contains (U)",
    "Z/D": "Z unless D is required to maintain IOD conformance (Type 2 versus Type 1)",
    "X/Z": "X unless Z is required to maintain IOD conformance (Type 3 versus Type 2)",
    "X/D": "X unless D is required to maintain IOD conformance (Type 3 versus Type 1)",
    "X/Z/D": "X unless Z or D is required to maintain IOD conformance (Type 3, 2, 1)",
    "X/Z/U*": "X unless Z or replacement of contained instance UIDs (U) is required to "
    "maintain IOD conformance (Type 3, 2, 1 sequences containing UID references)",
}
# Combined codes resolved away from their first choice: the attribute is Type 1/2 in a CT/MR
# image IOD that the deid stage writes, or a reference the corpus keeps (with remapped UIDs).
RESOLUTIONS = {
    "ContentDate": ("D", "Type 1 in the Enhanced CT/MR Image modules (2C in General Image)"),
    "ContentTime": ("D", "Type 1 in the Enhanced CT/MR Image modules (2C in General Image)"),
    "AcquisitionDateTime": ("D", "Type 1C in the Enhanced CT/MR Image modules"),
    "DeviceSerialNumber": ("D", "Type 1 in the Enhanced General Equipment module"),
    "AcquisitionContextSequence": ("Z", "Type 2 in the Acquisition Context module"),
    "ReferencedImageSequence": ("U*", "references kept, their instance UIDs remapped"),
    "SourceImageSequence": ("U*", "Type 1C in Enhanced CT/MR for derived images"),
}


class TableSourceError(ValueError):
    """An input does not look like the expected extraction of Table E.1-1."""


def _tag_text(group: int, element: int) -> str:
    return f"({group:04X},{element:04X})"


def read_basic_column(text: str, min_rows: int = 500) -> list[dict]:
    """Rows ``{tag, code, name?}`` from the Python-literal lists of the basic-column source."""
    rows: list[dict] = []
    names = _trailing_comments(text)
    tree = ast.parse(text)
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name) or target.id not in BASIC_LISTS:
            continue
        code = BASIC_LISTS[target.id]
        for entry in ast.literal_eval(node.value):
            if len(entry) == 2:
                group, element = entry
                row = {"tag": _tag_text(group, element), "code": code}
            elif len(entry) == 4:
                group, element, gmask, emask = entry
                row = {
                    "tag": _masked_tag_text(group, element, gmask, emask),
                    "match": f"0x{(group << 16) | element:08X}",
                    "mask": f"0x{(gmask << 16) | emask:08X}",
                    "code": code,
                }
            else:
                raise TableSourceError(f"unexpected entry {entry!r} in {target.id}")
            name = names.get(tuple(entry[:2]))
            if name:
                row["name"] = name
            rows.append(row)
    if len(rows) < min_rows:
        raise TableSourceError(f"only {len(rows)} rows found: not a full Table E.1-1")
    return rows


def _masked_tag_text(group: int, element: int, gmask: int, emask: int) -> str:
    g = "".join(c if m == "F" else "x" for c, m in zip(f"{group:04X}", f"{gmask:04X}", strict=True))
    e = "".join(
        c if m == "F" else "x" for c, m in zip(f"{element:04X}", f"{emask:04X}", strict=True)
    )
    return f"({g},{e})"


_ENTRY_COMMENT = re.compile(r"\(\s*0x([0-9A-Fa-f]{4})\s*,\s*0x([0-9A-Fa-f]{4})[^#\n]*#\s*(.+)$")


def _trailing_comments(text: str) -> dict[tuple[int, int], str]:
    """The attribute names the source writes as comments after each tuple."""
    out: dict[tuple[int, int], str] = {}
    for line in text.splitlines():
        m = _ENTRY_COMMENT.search(line)
        if m:
            out[(int(m.group(1), 16), int(m.group(2), 16))] = " ".join(m.group(3).split())
    return out


def read_option_columns(doc: list[dict], min_rows: int = 300) -> dict[str, dict]:
    """``tag text -> {basic, options}`` from the innolitics JSON rows."""
    out: dict[str, dict] = {}
    for row in doc:
        tag = str(row["tag"]).upper()
        options = {OPTION_COLUMNS[k]: row[k] for k in OPTION_COLUMNS if row.get(k)}
        out[tag] = {"basic": row.get("basicProfile", ""), "options": options}
    if len(out) < min_rows:
        raise TableSourceError(f"only {len(out)} option rows found")
    return out


def resolve(code: str, keyword: str | None) -> tuple[str, str | None]:
    """The single action for a (possibly combined) code, and why when not the first choice."""
    choices = code.split("/")
    if len(choices) == 1:
        return code, None
    if keyword in RESOLUTIONS:
        action, why = RESOLUTIONS[keyword]
        if action not in choices:
            raise TableSourceError(f"{keyword}: {action} is not one of {code}")
        return action, why
    return choices[0], None


def build_table(basic_text: str, options_doc: list[dict], *, min_rows: int = 500) -> dict:
    """The data file's document from the two sources (``min_rows`` guards against a
    truncated or wrong input; tests lower it for snippets)."""
    basic = read_basic_column(basic_text, min_rows)
    options = read_option_columns(options_doc, min(min_rows, 300))
    rows: list[dict] = []
    differs = 0
    for src in sorted(basic, key=lambda r: r["tag"]):
        tag = src["tag"]
        row: dict = {"tag": tag}
        if "mask" in src:
            row.update(match=src["match"], mask=src["mask"], name=src.get("name", ""))
            opt = options.get(tag.upper())
        else:
            value = int(tag.strip("()").replace(",", ""), 16)
            keyword = keyword_for_tag(value)
            if not keyword:
                raise TableSourceError(f"{tag} is not in pydicom's data dictionary")
            row.update(
                keyword=keyword,
                name=dictionary_description(value),
                vr=dictionary_VR(value),
            )
            opt = options.get(tag)
        row["basic"] = src["code"]
        action, why = resolve(src["code"], row.get("keyword"))
        row["action"] = action
        if why:
            row["why"] = why
        if opt is not None:
            row["options"] = opt["options"]
            row["options_from"] = "innolitics"
            if opt["basic"] != src["code"]:
                differs += 1
        elif row.get("vr") in DATE_VRS:
            row["options"] = {
                "retain_longitudinal_full_dates": "K",
                "retain_longitudinal_modified_dates": "C",
            }
            row["options_from"] = "rule:date_vr"
        else:
            row["options"] = {}
            row["options_from"] = "none"
        rows.append(row)
    private = options.get("(GGGG,EEEE) WHERE GGGG IS ODD", {"options": {}})
    rows.append(
        {
            "tag": "(gggg,eeee) odd gggg",
            "private": True,
            "name": "Private Attributes",
            "basic": "X",
            "action": "X",
            "options": private["options"],
            "options_from": "innolitics",
        }
    )
    canonical = json.dumps(
        [[r["tag"], r["basic"], r["action"]] for r in rows], separators=(",", ":")
    ).encode()
    return {
        "table": TABLE,
        "edition": EDITION,
        "generated_by": "refrad_builder/deid/gen_table.py",
        "sources": {"basic": BASIC_SOURCE, "options": OPTIONS_SOURCE},
        "note": (
            f"Basic Profile codes are the {EDITION} edition's; option cells come from an earlier "
            f"edition of the same table where it has the row ({differs} of those rows changed "
            "their basic code since; the 2024b code is used)."
        ),
        "codes": CODES,
        "option_columns": list(OPTION_COLUMNS.values()),
        "row_count": len(rows),
        "rows_sha256": hashlib.sha256(canonical).hexdigest(),
        "rows": rows,
    }


def dump(doc: dict) -> str:
    """The data file's text: one row per line, so diffs of table updates stay readable."""
    head = {k: v for k, v in doc.items() if k != "rows"}
    text = json.dumps(head, indent=2, ensure_ascii=False)[:-2]
    lines = [json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) for r in doc["rows"]]
    return text + ',\n  "rows": [\n    ' + ",\n    ".join(lines) + "\n  ]\n}\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--basic", type=Path, required=True)
    parser.add_argument("--options", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    doc = build_table(
        args.basic.read_text(encoding="utf-8"),
        json.loads(args.options.read_text(encoding="utf-8")),
    )
    args.out.write_text(dump(doc), encoding="utf-8")
    print(f"{doc['row_count']} rows ({doc['edition']}) -> {args.out}")


if __name__ == "__main__":
    main()
