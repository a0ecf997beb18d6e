"""Apply the action table to a data set, at every sequence depth.

Decisions are made per element from its tag, keyword and VR only; values are read solely to
be replaced (UIDs remapped, dates shifted). Nothing here logs or raises with a value.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_has_tag, dictionary_keyword, get_entry
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from refrad_builder.deid.profile import CLEANABLE_VRS, Profile
from refrad_builder.deid.pseudo import shift_da, uid_from
from refrad_builder.deid.safe_private import SafePrivateTable

DICOM_ROOT = "1.2.840.10008."
DATE_VRS = frozenset({"DA", "DT", "TM"})
STRING_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})

# Dummies are short ASCII values valid for their VR, so a re-encoded file stays conformant
# under any Specific Character Set.
_DUMMY_TEXT = {
    "AE": "ANON",
    "AS": "000Y",
    "CS": "ANON",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": "ANON",
    "LT": "ANON",
    "PN": "ANON",
    "SH": "ANON",
    "ST": "ANON",
    "TM": "000000",
    "UC": "ANON",
    "UR": "",
    "UT": "ANON",
}

# Internal actions on top of the table's codes: SHIFT moves a date by the patient offset;
# CLEAN keeps a descriptor the scrubber finds clean (Clean Descriptors), else the table's
# Basic Profile action applies.
SHIFT = "SHIFT"
CLEAN = "CLEAN"


def is_well_known_uid(value: str) -> bool:
    """Whether ``value`` is a registered DICOM UID (SOP class, transfer syntax, coding
    scheme...) rather than an instance UID; such UIDs carry no identity and stay."""
    return value in UID_dictionary or value.startswith(DICOM_ROOT)


def remap_uid(secret: bytes, value: str) -> str:
    """The keyed replacement of one UID value; empty and well-known UIDs are returned as is."""
    return _remap_uid(secret, str(value))


# The instances of a series repeat most of their UIDs (study, frame of reference, references).
@functools.lru_cache(maxsize=4096)
def _remap_uid(secret: bytes, value: str) -> str:
    value = value.strip().rstrip("\x00")
    if not value or is_well_known_uid(value):
        return value
    return uid_from(secret, value)


def shift_dt(value: str, days: int) -> str:
    """Shift the date part of a DT value (``YYYY[MM[DD[...]]]``); the rest is kept."""
    value = value.strip()
    n = 0
    while n < min(len(value), 8) and value[n].isdigit():
        n += 1
    if n not in (4, 6, 8):
        return ""
    shifted = shift_da(value[:n] + "0101"[n - 4 :], days)
    if not shifted:
        return ""
    return shifted[:n] + value[n:]


def _shift_date_value(vr: str, value: str, *, days: int) -> str:
    if vr == "DA":
        text = str(value).strip()
        # ACR-NEMA 2.0 wrote dates as YYYY.MM.DD; old archives still carry them.
        if len(text) == 10 and text[4] == "." and text[7] == ".":
            text = text.replace(".", "")
        return shift_da(text, days) if text else ""
    if vr == "DT":
        return shift_dt(str(value), days) if str(value).strip() else ""
    return str(value)


@dataclass
class ActionContext:
    """What the recursive walk needs: the table, the key, the option switches, counters.

    ``date_shift`` is the per-patient offset in days when longitudinal dates are retained
    (0 keeps full dates), or None when dates are replaced by the table's actions.
    ``cleaner`` (Clean Descriptors) answers whether one descriptor text is free of PHI; it is
    None when the option is off. ``safe_private`` (Retain Safe Private) is the table of
    private attributes kept; None removes every private attribute. ``decisions`` memoises
    the action per (tag, VR): it may be shared by every data set de-identified with the same
    profile and option switches (a series), so the table is asked once per element kind.
    """

    profile: Profile
    secret: bytes
    date_shift: int | None
    retain_patient_characteristics: bool
    cleaner: Callable[[str], bool] | None = None
    safe_private: SafePrivateTable | None = None
    stats: collections.Counter[str] = field(default_factory=collections.Counter)
    decisions: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)


def _is_overlay_or_curve(group: int) -> bool:
    # Overlay planes (60xx) and retired curves (50xx): the table lists their data and
    # comments; the rest of each group (rows, origin, labels, descriptions) describes them
    # and goes with them.
    return group & 0xFF00 in (0x5000, 0x6000)


def decide(tag: int, keyword: str, vr: str, ctx: ActionContext) -> str:
    """The action for one element, from its tag, keyword and VR (never its value)."""
    action, counter = _decide(int(tag), keyword, vr, ctx)
    if counter:
        ctx.stats[counter] += 1
    return action


def _decide(tag: int, keyword: str, vr: str, ctx: ActionContext) -> tuple[str, str]:
    """(action, the counter it adds to or ""): a function of the tag, the VR and the
    context's option switches only, so it is asked once per (tag, VR) (see _decision)."""
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2 == 1:
        # PS3.15 E.1-1 "Private Attributes": X. Retain Safe Private keeps the elements of
        # Table E.3.10-1 before this is asked (see apply_actions).
        return "X", "private_removed"
    # Group lengths are retired and would be stale; file meta found inside a data set is
    # rebuilt from scratch, never copied.
    if element == 0 or group == 0x0002:
        return "X", ""
    if _is_overlay_or_curve(group):
        return "X", "overlay_removed"
    profile = ctx.profile
    rule = profile.rule_for(tag)
    if rule is None:
        try:
            get_entry(tag)
        except KeyError:
            return "X", "unknown_public_removed"
    if vr == "UN":
        return "X", ""
    if ctx.retain_patient_characteristics and keyword in profile.patient_characteristics:
        return "K", ""
    if vr == "UI" and keyword in profile.uid_keep_keywords:
        return "K", ""
    if vr in DATE_VRS:
        never = keyword in profile.dates_never_retained
        if ctx.date_shift is not None and not never and _longitudinal(rule):
            return ("K" if vr == "TM" else SHIFT), ""
        if rule is None:
            return ("X" if never else "D"), ""
    if rule is not None:
        if (
            ctx.cleaner is not None
            and vr in CLEANABLE_VRS
            and rule.option("clean_descriptors") == "C"
        ):
            return CLEAN, ""
        return ("X" if rule.action == "C" else rule.action), ""
    if vr == "UI":
        return "U", ""
    if vr in ("PN", "AE", "UR"):
        # Names, network titles and URLs (WADO links embed original UIDs) identify even
        # where the table does not list them.
        return "X", ""
    return "K", ""


def _decision(tag: int, vr: str, ctx: ActionContext) -> str:
    """:func:`decide` through the context's memo of (tag, VR) -> (action, counter)."""
    key = (tag, vr)
    hit = ctx.decisions.get(key)
    if hit is None:
        hit = ctx.decisions[key] = _decide(tag, _keyword(tag), vr, ctx)
    action, counter = hit
    if counter:
        ctx.stats[counter] += 1
    return action


def _longitudinal(rule) -> bool:
    """Whether the longitudinal options keep (shifted) this date: an unlisted date, or a
    row whose option columns say so."""
    if rule is None:
        return True
    return (
        rule.option("retain_longitudinal_modified_dates") == "C"
        or rule.option("retain_longitudinal_full_dates") == "K"
    )


def basic_action(tag: int, ctx: ActionContext) -> str:
    """The Basic Profile action of a table row (what Clean Descriptors falls back to)."""
    action = ctx.profile.action_for(int(tag)) or "X"
    return "X" if action in ("C", "K") else action


def _empty_value(vr: str):
    if vr == "SQ":
        return Sequence()
    if vr in STRING_VRS:
        return ""
    if vr in BINARY_VRS:
        return b""
    return None


def _dummy_value(vr: str):
    if vr in _DUMMY_TEXT:
        return _DUMMY_TEXT[vr]
    if vr == "SQ":
        return Sequence()
    if vr in BINARY_VRS:
        return b""
    return 0


def _map_values(value, fn):
    if isinstance(value, MultiValue | list | tuple):
        return [fn(v) for v in value]
    return fn(value)


def _values(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    return [str(value)]


@functools.lru_cache(maxsize=4096)
def _keyword(tag: int) -> str:
    """The data dictionary keyword of ``tag`` ("" for private and unknown tags), as
    ``DataElement.keyword`` gives it."""
    return dictionary_keyword(tag) if dictionary_has_tag(tag) else ""


def apply_actions(ds: Dataset, ctx: ActionContext) -> None:
    """De-identify ``ds`` in place with the table, recursing into kept sequences."""
    safe = ctx.safe_private.kept_tags(ds) if ctx.safe_private is not None else frozenset()
    for tag in list(ds.keys()):
        # the element as read: an unchanged raw one is written back as its original bytes
        # (source._materialize checked it and kept its VR); converted only when its value
        # is read or replaced
        elem = ds.get_item(tag)
        vr = elem.VR
        if elem.is_raw and vr is None:
            elem = ds[tag]
            vr = elem.VR
        if tag in safe:
            ctx.stats["private_kept"] += 1
            # a listed UID (an analysed series, a bookmark) is an instance UID: remapped
            action = "U" if vr in ("UI", "SQ") else "K"
        else:
            action = _decision(int(tag), vr, ctx)
        if action == "X":
            del ds[tag]
            ctx.stats["removed"] += 1
            continue
        if action == "K" and vr != "SQ":
            continue
        if elem.is_raw:
            elem = ds[tag]
        if action == CLEAN:
            texts = _values(elem.value)
            if ctx.cleaner is not None and all(ctx.cleaner(t) for t in texts):
                ctx.stats["descriptors_kept"] += 1
                continue
            ctx.stats["descriptors_removed"] += 1
            action = basic_action(tag, ctx)
        if action == "X":
            del ds[tag]
            ctx.stats["removed"] += 1
        elif action == "Z":
            elem.value = _empty_value(vr)
        elif action == "D":
            if vr == "UI":
                elem.value = _map_values(elem.value, functools.partial(remap_uid, ctx.secret))
            else:
                elem.value = _dummy_value(vr)
        elif action in ("U", "U*"):
            if vr == "SQ":
                _recurse(elem.value, ctx)
            elif vr == "UI":
                if elem.value not in (None, ""):
                    elem.value = _map_values(elem.value, functools.partial(remap_uid, ctx.secret))
                ctx.stats["uids_remapped"] += 1
            else:
                del ds[tag]
        elif action == SHIFT:
            days = ctx.date_shift or 0
            if elem.value not in (None, ""):
                elem.value = _map_values(
                    elem.value, functools.partial(_shift_date_value, vr, days=days)
                )
            ctx.stats["dates_shifted"] += 1
        elif action == "K":
            if vr == "SQ":
                _recurse(elem.value, ctx)
        else:  # pragma: no cover - the profile loader only admits known actions
            raise ValueError(f"unknown action {action!r}")


def _recurse(seq, ctx: ActionContext) -> None:
    for item in seq or []:
        apply_actions(item, ctx)
