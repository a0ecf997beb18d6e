"""The cue words of the mention rules (``data/mention_cues.yaml``) and a sentence's tokens
and anatomy hits, shared by the negation, laterality and numbered-structure rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=1)
def _cue_data() -> dict:
    text = resources.files("refrad_builder.data").joinpath("mention_cues.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _set(key: str) -> frozenset[str]:
    return frozenset(str(_cue_data()[key]).split())


def _tuple(key: str) -> tuple[str, ...]:
    return tuple(str(_cue_data()[key]).split())


_PRE = _set("pre")
_NEGBIDI = _set("negbidi")
_POST = _set("post")
_NORM_PREFIX = _tuple("norm_prefix")
_NORM_EXACT = _set("norm_exact")
_NEUTRAL_PREFIX = _tuple("neutral_prefix")
_NEUTRAL_EXACT = _set("neutral_exact")
_RESOLVED_AFTER = _tuple("resolved_after")
_TERM = _set("term")
_PSEUDO = _tuple("pseudo")
_UNCERTAIN = _tuple("uncertain")
_CONTINUERS = _set("continuers")
_FILLER = _set("filler")
_PARENTHETICAL = _set("parenthetical")
_LIST_OR = _set("list_or")
_SIDE_BEFORE: dict[str, str] = dict(_cue_data()["side_before"])
_SIDE_AFTER: dict[str, str] = dict(_cue_data()["side_after"])
_SIDE_PREFIXES: tuple[tuple[str, str], ...] = tuple(
    (str(a), str(b)) for a, b in _cue_data()["side_prefixes"]
)

# a number keeps its decimal comma ("2,3 cm"), which is no clause boundary
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|\w+|[,;:()\[\]]|\s[-–]\s", re.UNICODE)


def _side_before(word: str) -> str | None:
    w = word.casefold()
    if w in _SIDE_BEFORE:
        return _SIDE_BEFORE[w]
    for prefix, side in _SIDE_PREFIXES:
        if w.startswith(prefix) and (
            prefix.endswith("seitig")
            or prefix == "bilateral"
            or re.fullmatch(rf"{prefix}(?:e|er|en|es|em)", w)
        ):
            return side
    return None


@dataclass
class _Tok:
    text: str
    low: str
    start: int
    end: int
    punct: bool
    group: int = 0


@dataclass
class _Hit:
    start: int
    end: int
    targets: tuple[str, ...]
    tok_a: int = 0
    tok_b: int = 0
    extra_finding_toks: tuple[int, ...] = ()
    side: str | None = None
    abnormal: bool = True


# Punctuation spoken into speech recognition ("kein Erguss komma Arthrose", "no effusion
# period"): the word stands for the mark, so it bounds a clause as the mark would
_SPOKEN_PUNCT = {"komma": ",", "comma": ",", "punkt": ";", "period": ";", "semikolon": ";"}
_NOT_SPOKEN_BEFORE = frozenset(
    "a an the this that each one per any every ein einem einen der den dem".split()
)


def _spoken_punct(words: list[str], i: int) -> str | None:
    """The mark a spoken punctuation word stands for, or None ("a period of", "Punkt 1")."""
    mark = _SPOKEN_PUNCT.get(words[i])
    if mark is None:
        return None
    prev = words[i - 1] if i else ""
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if prev in _NOT_SPOKEN_BEFORE or nxt in ("of", "von", "des", "der") or nxt[:1].isdigit():
        return None
    return mark


def _tokens(text: str) -> list[_Tok]:
    toks = []
    for m in _TOKEN.finditer(text):
        s = m.group(0)
        punct = not s[0].isalnum() and s[0] != "_"
        toks.append(_Tok(s.strip(), s.strip().casefold(), m.start(), m.end(), punct))
    words = [t.low for t in toks]
    for i, t in enumerate(toks):
        mark = None if t.punct else _spoken_punct(words, i)
        if mark is not None:
            t.low, t.punct = mark, True
    group = 0
    for i, t in enumerate(toks):
        if i and not t.punct and not toks[i - 1].punct:
            gap = text[toks[i - 1].end : t.start]
            if gap in ("-", "/"):
                t.group = toks[i - 1].group
                continue
        group += 1
        t.group = group
    return toks
