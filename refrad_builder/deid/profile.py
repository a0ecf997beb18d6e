"""The de-identification action table (PS3.15 Annex E, Table E.1-1, Basic Profile column).

The table is data (``refrad_builder/data/deid_basic_profile.json``); this module loads and
checks it and answers "what happens to this tag". Combined codes such as ``X/Z/D`` are
resolved once, at load time, to the single action recorded in the table's ``resolved``
field (or ``X``, the most conservative choice, when none is recorded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydicom.datadict import keyword_for_tag, tag_for_keyword

SINGLE_ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U", "U*"})
PROFILE_RESOURCE = "deid_basic_profile.json"


class ProfileError(ValueError):
    """The action table is malformed (a packaging or editing error, never PHI)."""


@dataclass(frozen=True)
class AttributeRule:
    """One row of the action table: the standard's code and the action this engine applies."""

    tag: int
    keyword: str
    code: str
    action: str


@dataclass(frozen=True)
class GroupRule:
    """An action for whole repeating groups (curves 50xx, overlays 60xx)."""

    mask: int
    group: int
    action: str
    name: str

    def matches(self, tag: int) -> bool:
        """Whether ``tag`` lies in one of the groups this rule covers."""
        return ((tag >> 16) & self.mask) == self.group


@dataclass(frozen=True)
class Profile:
    """The loaded action table with the option lists that go with it."""

    rules: dict[int, AttributeRule]
    group_rules: tuple[GroupRule, ...]
    patient_characteristics: frozenset[str]
    dates_never_retained: frozenset[str]
    uid_keep_keywords: frozenset[str]

    def action_for(self, tag: int) -> str | None:
        """The single action for ``tag`` from the table, or None when the table is silent."""
        rule = self.rules.get(tag)
        if rule is not None:
            return rule.action
        for group_rule in self.group_rules:
            if group_rule.matches(tag):
                return group_rule.action
        return None


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


def _keywords(values: list[str], what: str) -> frozenset[str]:
    unknown = [v for v in values if tag_for_keyword(v) is None]
    if unknown:
        raise ProfileError(f"{what}: unknown keywords {unknown}")
    return frozenset(values)


def parse_profile(doc: dict) -> Profile:
    """Build a :class:`Profile` from the table's JSON document, checking every row."""
    rules: dict[int, AttributeRule] = {}
    for row in doc["attributes"]:
        tag = _parse_tag(row["tag"])
        keyword = row["keyword"]
        if keyword_for_tag(tag) != keyword:
            raise ProfileError(f"tag {row['tag']} is not {keyword!r} in the data dictionary")
        if tag in rules:
            raise ProfileError(f"tag {row['tag']} listed twice")
        action = resolve_code(row["action"], row.get("resolved"))
        rules[tag] = AttributeRule(tag=tag, keyword=keyword, code=row["action"], action=action)
    groups = tuple(
        GroupRule(
            mask=int(g["group_mask"], 16),
            group=int(g["group"], 16),
            action=resolve_code(g["action"], None),
            name=g["name"],
        )
        for g in doc.get("group_rules", [])
    )
    return Profile(
        rules=rules,
        group_rules=groups,
        patient_characteristics=_keywords(
            doc.get("patient_characteristics", []), "patient_characteristics"
        ),
        dates_never_retained=_keywords(doc.get("dates_never_retained", []), "dates_never_retained"),
        uid_keep_keywords=_keywords(doc.get("uid_keep_keywords", []), "uid_keep_keywords"),
    )


def load_profile(path: Path | None = None) -> Profile:
    """Load the action table from ``path`` or the packaged default (cached)."""
    if path is None:
        return _default_profile()
    return parse_profile(json.loads(Path(path).read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _default_profile() -> Profile:
    text = resources.files("refrad_builder.data").joinpath(PROFILE_RESOURCE).read_text("utf-8")
    return parse_profile(json.loads(text))
