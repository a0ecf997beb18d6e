"""The de-identification action table: PS3.15 Annex E, Table E.1-1 (edition in the file).

The table is data, ``refrad_builder/data/dicom_e1_1.json``, generated from machine-readable
copies of the standard's table by :mod:`refrad_builder.deid.gen_table`. This module loads and
checks it and answers "what does the table say about this tag": the Basic Profile code as the
standard writes it (``X/Z/D``...), the single action the generator resolved it to, and the
option columns (``retain_longitudinal_modified_dates: C``, ``clean_descriptors: C``...).

The lists below are this project's policy on top of the table (which options keep what), not
part of the standard's table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydicom.datadict import keyword_for_tag, tag_for_keyword

SINGLE_ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U", "U*"})
PROFILE_RESOURCE = "dicom_e1_1.json"

# Retain Patient Characteristics keeps these four only (the standard's column also keeps
# ethnic group, smoking and pregnancy status, which this project never needs).
PATIENT_CHARACTERISTICS = ("PatientSex", "PatientAge", "PatientSize", "PatientWeight")
# Dates the longitudinal options never keep, even shifted: a birth date is an identifier.
DATES_NEVER_RETAINED = ("PatientBirthDate", "PatientBirthTime", "LastMenstrualDate")
# UI attributes that hold class, scheme or syntax UIDs (never instance identity): kept.
UID_KEEP_KEYWORDS = (
    "SOPClassUID",
    "MediaStorageSOPClassUID",
    "TransferSyntaxUID",
    "ReferencedSOPClassUID",
    "ImplementationClassUID",
    "ReferencedSOPClassUIDInFile",
    "ReferencedTransferSyntaxUIDInFile",
    "RelatedGeneralSOPClassUID",
    "OriginalSpecializedSOPClassUID",
    "AffectedSOPClassUID",
    "RequestedSOPClassUID",
    "CodingSchemeUID",
    "MappingResourceUID",
    "ContextUID",
    "PrivateInformationCreatorUID",
    "SOPClassesInStudy",
)
# The table's Clean Descriptors rows this project cleans (text VRs only; sequences marked C
# stay under their Basic Profile action).
CLEANABLE_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})


class ProfileError(ValueError):
    """The action table is malformed (a packaging or editing error, never PHI)."""


@dataclass(frozen=True)
class AttributeRule:
    """One row of the table: the standard's code, the resolved action and option cells."""

    tag: int
    keyword: str
    code: str
    action: str
    options: dict[str, str] = field(default_factory=dict)

    def option(self, name: str) -> str | None:
        """The row's cell in option column ``name`` (``K``, ``C``...), or None when blank."""
        return self.options.get(name)


@dataclass(frozen=True)
class GroupRule:
    """A row for repeating groups (curves 50xx, overlay data/comments 60xx)."""

    mask: int
    match: int
    action: str
    name: str
    code: str = "X"
    options: dict[str, str] = field(default_factory=dict)

    def matches(self, tag: int) -> bool:
        """Whether ``tag`` is one of the elements this row covers."""
        return (tag & self.mask) == self.match


@dataclass(frozen=True)
class Profile:
    """The loaded table with the option lists that go with it."""

    rules: dict[int, AttributeRule]
    group_rules: tuple[GroupRule, ...]
    edition: str = ""
    private_options: dict[str, str] = field(default_factory=dict)
    patient_characteristics: frozenset[str] = frozenset(PATIENT_CHARACTERISTICS)
    dates_never_retained: frozenset[str] = frozenset(DATES_NEVER_RETAINED)
    uid_keep_keywords: frozenset[str] = frozenset(UID_KEEP_KEYWORDS)

    def rule_for(self, tag: int) -> AttributeRule | GroupRule | None:
        """The table row covering ``tag``, or None when the table is silent."""
        rule = self.rules.get(tag)
        if rule is not None:
            return rule
        for group_rule in self.group_rules:
            if group_rule.matches(tag):
                return group_rule
        return None

    def action_for(self, tag: int) -> str | None:
        """The single action for ``tag`` from the table, or None when the table is silent."""
        rule = self.rule_for(tag)
        return None if rule is None else rule.action


def resolve_code(code: str, resolved: str | None) -> str:
    """The one action applied for a (possibly combined) code such as ``X/Z/U*``."""
    choices = code.split("/")
    if any(c not in SINGLE_ACTIONS for c in choices):
        raise ProfileError(f"unknown action code {code!r}")
    if len(choices) == 1:
        if resolved not in (None, code):
            raise ProfileError(f"code {code!r} is not combined but resolves to {resolved!r}")
        return code
    if resolved is None:
        if "X" not in choices:
            raise ProfileError(f"combined code {code!r} without X needs an explicit resolution")
        return "X"
    if resolved not in choices:
        raise ProfileError(f"resolution {resolved!r} is not one of {code!r}")
    return resolved


def _parse_tag(text: str) -> int:
    cleaned = text.strip().strip("()").replace(",", "")
    if len(cleaned) != 8:
        raise ProfileError(f"bad tag {text!r}")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise ProfileError(f"bad tag {text!r}") from None


def _options(row: dict) -> dict[str, str]:
    options = row.get("options") or {}
    for name, cell in options.items():
        if cell not in SINGLE_ACTIONS:
            raise ProfileError(f"{row.get('tag')}: option {name} has unknown code {cell!r}")
    return dict(options)


def _keywords(values, what: str) -> frozenset[str]:
    unknown = [v for v in values if tag_for_keyword(v) is None]
    if unknown:
        raise ProfileError(f"{what}: unknown keywords {unknown}")
    return frozenset(values)


def parse_profile(doc: dict) -> Profile:
    """Build a :class:`Profile` from the table's JSON document, checking every row."""
    rules: dict[int, AttributeRule] = {}
    groups: list[GroupRule] = []
    private: dict[str, str] = {}
    if not doc.get("edition"):
        raise ProfileError("the table does not name its edition")
    for row in doc["rows"]:
        code = row["basic"]
        action = resolve_code(code, row.get("action") if "/" in code else None)
        if row.get("action") not in (None, action):
            raise ProfileError(f"{row.get('tag')}: action {row.get('action')!r} for {code!r}")
        if row.get("private"):
            private = _options(row)
            continue
        if "mask" in row:
            groups.append(
                GroupRule(
                    mask=int(row["mask"], 16),
                    match=int(row["match"], 16),
                    action=action,
                    name=row.get("name", ""),
                    code=code,
                    options=_options(row),
                )
            )
            continue
        tag = _parse_tag(row["tag"])
        keyword = row["keyword"]
        if keyword_for_tag(tag) != keyword:
            raise ProfileError(f"tag {row['tag']} is not {keyword!r} in the data dictionary")
        if tag in rules:
            raise ProfileError(f"tag {row['tag']} listed twice")
        rules[tag] = AttributeRule(
            tag=tag, keyword=keyword, code=code, action=action, options=_options(row)
        )
    return Profile(
        rules=rules,
        group_rules=tuple(groups),
        edition=str(doc["edition"]),
        private_options=private,
        patient_characteristics=_keywords(PATIENT_CHARACTERISTICS, "patient_characteristics"),
        dates_never_retained=_keywords(DATES_NEVER_RETAINED, "dates_never_retained"),
        uid_keep_keywords=_keywords(UID_KEEP_KEYWORDS, "uid_keep_keywords"),
    )


def load_profile(path: Path | None = None) -> Profile:
    """Load the action table from ``path`` or the packaged default (cached)."""
    if path is None:
        return _default_profile()
    return parse_profile(json.loads(Path(path).read_text(encoding="utf-8")))


def table_document() -> dict:
    """The packaged table's JSON document (edition, sources, rows)."""
    text = resources.files("refrad_builder.data").joinpath(PROFILE_RESOURCE).read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _default_profile() -> Profile:
    return parse_profile(table_document())
