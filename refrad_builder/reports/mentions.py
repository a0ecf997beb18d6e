"""Anatomy mentions in one report sentence, mapped to the unified label schema.

Four rule sets find anatomy: the lexicon (``data/anatomy_lexicon.yaml``: DE/EN forms, German
compounds by stem, Latin stems, phrases), spine levels ("LWK 4", "L4/5", "Th12", ranges
across regions "HWK 2 bis BWK 2"), numbered ribs ("7. und 8. Rippe rechts", "left 5th and
6th ribs") and liver segments ("Segment VIII", unless the sentence is about the lung). A
compound naming the surroundings of an organ ("paraaortal", "perirenal") is no mention; a cyst
attached to a kidney adds the kidney-cyst class. Each hit then gets

* a laterality: an adjective before it ("rechte Niere", "left kidney"), a side word after it
  ("Niere rechts", "Lunge beidseits") or, failing both, the nearest side word earlier in the
  clause; then the one side the sentence gives the same organ ("Pneumonie im linken
  Unterlappen"); a paired organ with no side expands to both classes. A clause that opens with
  the other side ("A. iliaca rechts 2,4 cm, links 1,6 cm") is a mention of its own, whose span
  is that side word;
* ``abnormal``: NegEx-style. Negation cues ("kein", "ohne", "no", "without") scope forward,
  "nicht"/"not" and normal cues ("unauffällig", "regelrecht", "unremarkable", "clear") both
  ways, within a token window and a clause, and stop at scope terminators ("aber", "but") and
  at a finding that is itself not negated ("Leber bis auf eine Zyste unauffällig"). Words of
  technique and measurement ("MRT der LWS nativ", "measures 4 cm") count as normal cues, and
  "no longer seen" / "vollständig rückläufig" as negation. A finding stated next to the
  anatomy makes it abnormal; with no cue at all a mention is abnormal.

One :class:`~refrad_builder.engine.records.Mention` per class per sentence; spans are character
offsets into the sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.records import Mention

# --- lexicon ------------------------------------------------------------------------------

_INFLECTION = r"(?:e|en|n|s|es|ns|er|em)?"
_SHORT_HEADS = frozenset({"milz", "herz", "hirn"})
# A compound whose first part is one of these names the surroundings of the organ, not the
# organ ("paraaortal", "perirenal", "retrosternal"): it is no mention.
_NEIGHBOUR_PREFIXES = ("para", "peri", "retro", "extra", "infra", "supra", "juxta", "prä", "prae")


def _plural(word: str) -> str:
    """The English plural of a lexicon word (artery -> arteries, kidney -> kidneys)."""
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def _en_plural(word: str) -> str:
    return rf"(?:{re.escape(word)}|{re.escape(_plural(word))}|{re.escape(word)}es)"


def _phrase_regex(form: str, lang: str) -> str:
    words = form.split()
    parts = []
    for i, w in enumerate(words):
        if w.endswith("."):
            parts.append(re.escape(w[:-1]) + r"\.?")
            continue
        if lang == "en" and i == len(words) - 1:
            parts.append(_en_plural(w))
        elif lang == "de":
            parts.append(re.escape(w) + _INFLECTION)
        else:
            parts.append(re.escape(w))
    out = parts[0]
    for i in range(1, len(parts)):
        out += (r"\s*" if words[i - 1].endswith(".") else r"\s+") + parts[i]
    return rf"(?<![\w.]){out}(?!\w)"


@dataclass
class Lexicon:
    """The compiled anatomy lexicon (see ``data/anatomy_lexicon.yaml``)."""

    version: int
    targets: list[tuple[str, ...]]
    exact: dict[str, int]
    de_forms: list[tuple[str, int]]
    stems: list[tuple[str, int]]
    phrases: list[tuple[re.Pattern[str], int, int]]
    findings_de: tuple[str, ...]
    findings_en: tuple[str, ...]
    finding_suffixes: tuple[str, ...]
    finding_except: tuple[str, ...]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Lexicon:
        """Compile the lexicon from its parsed YAML."""
        targets: list[tuple[str, ...]] = []
        exact: dict[str, int] = {}
        de_forms: list[tuple[str, int]] = []
        stems: list[tuple[str, int]] = []
        phrases: list[tuple[re.Pattern[str], int, int]] = []
        for idx, entry in enumerate(data["entries"]):
            targets.append(tuple(entry.get("to") or ()))
            for lang in ("de", "en"):
                for form in entry.get(lang) or ():
                    form = str(form).casefold()
                    if " " in form or "." in form or "-" in form:
                        phrases.append(
                            (re.compile(_phrase_regex(form, lang), re.IGNORECASE), idx, len(form))
                        )
                        continue
                    if lang == "en":
                        exact.setdefault(form, idx)
                        exact.setdefault(_plural(form), idx)
                        exact.setdefault(form + "es", idx)
                    else:
                        exact.setdefault(form, idx)
                        de_forms.append((form, idx))
            for stem in entry.get("stems") or ():
                stems.append((str(stem).casefold(), idx))
        phrases.sort(key=lambda p: -p[2])
        found = data.get("findings") or {}
        return cls(
            version=int(data.get("version", 0)),
            targets=targets,
            exact=exact,
            de_forms=de_forms,
            stems=stems,
            phrases=phrases,
            findings_de=tuple(found.get("de") or ()),
            findings_en=tuple(found.get("en") or ()),
            finding_suffixes=tuple(found.get("suffixes") or ()),
            finding_except=tuple(found.get("except") or ()),
        )

    def match_word(self, word: str, lang: str) -> int | None:
        """Entry index for one word (longest form wins; exact beats compound), or None."""
        w = word.casefold()
        best: tuple[int, int, int] | None = None  # (length, exactness, entry)

        def offer(length: int, exactness: int, idx: int) -> None:
            nonlocal best
            if best is None or (length, exactness) > best[:2]:
                best = (length, exactness, idx)

        if w in self.exact:
            offer(len(w), 2, self.exact[w])
        for stem, idx in self.stems:
            if w.startswith(stem) and len(w) > len(stem):
                offer(len(stem), 0, idx)
        if lang == "de":
            for form, idx in self.de_forms:
                if len(w) > len(form) and w.startswith(form):
                    offer(len(form), 1, idx)
                elif (
                    (len(form) >= 5 or form in _SHORT_HEADS)
                    and len(w) > len(form)
                    and form in w
                    and re.fullmatch(rf".+{re.escape(form)}{_INFLECTION}", w)
                    and _compound_head_ok(w, form)
                ):
                    offer(len(form), 1, idx)
        return None if best is None else best[2]

    def is_finding(self, word: str, lang: str) -> bool:
        """Whether a word states a finding (a finding stem inside it, or a finding suffix)."""
        w = word.casefold()
        for ex in self.finding_except:
            w = w.replace(ex, " ")
        if any(w.endswith(s) for s in self.finding_suffixes):
            return True
        stems = self.findings_en + (self.findings_de if lang == "de" else ())
        return any(s in w for s in stems)


def _compound_head_ok(word: str, form: str) -> bool:
    """Whether ``form`` as the last part of the German compound ``word`` names the organ."""
    if word.startswith(_NEIGHBOUR_PREFIXES):
        return False
    # "-lungen" is far more often the plural of an "-lung" noun (Ansammlungen, Darstellungen)
    # than a compound of "Lunge"
    return not (form == "lunge" and word.endswith("lungen"))


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The packaged anatomy lexicon (cached)."""
    text = (
        resources.files("refrad_builder.data").joinpath("anatomy_lexicon.yaml").read_text("utf-8")
    )
    return Lexicon.from_data(yaml.safe_load(text))


# --- tokens and cues ----------------------------------------------------------------------

# a number keeps its decimal comma ("2,3 cm"), which is no clause boundary
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|\w+|[,;:()\[\]]|\s[-–]\s", re.UNICODE)

_PRE = frozenset(
    "kein keine keinen keinem keiner keines ohne weder ausschluss no without neither nor "
    "absence".split()
)
_NEGBIDI = frozenset({"nicht", "not", "nie", "never", "cannot"})
_POST = frozenset({"ausgeschlossen", "excluded", "ruled", "absent", "negativ", "entfällt"})
_NORM_PREFIX = (
    "unauffällig",
    "unauff",
    "regelrecht",
    "normal",
    "normgroß",
    "normweit",
    "normwertig",
    "normkalib",
    "altersentsprechend",
    "altersgerecht",
    "schlank",
    "intakt",
    "homogen",
    "physiologisch",
    "unremarkable",
    "intact",
    "preserved",
    "patent",
    "physiologic",
    "negative",
    "wnl",
    "zart",
    "glatt",
    "offen",
    "mittelständig",
    "midline",
    "maintained",
    "decompressed",
    "gefüllt",
)
# Words of technique, measurement and recommendation: a mention that only they qualify
# ("MRT der LWS nativ", "MRT der Leber empfohlen", "the prostate measures 4 cm") states no
# finding. They act like normal cues, so a finding attached to the mention still wins.
_NEUTRAL_PREFIX = (
    "angiograph",
    "angiogram",
    "sequenz",
    "protokoll",
    "protocol",
    "reformat",
    "axial",
    "sagittal",
    "empfehl",
    "empfohl",
    "recommend",
    "measure",
    "imaging",
)
_NEUTRAL_EXACT = frozenset({"ct", "cct", "cta", "mrt", "mri", "mr", "nativ", "misst", "messend"})
_NORM_EXACT = frozenset({"frei", "clear", "ob"})
_RESOLVED_AFTER = ("rückläufig", "regredient", "resorbiert", "zurückgebildet")
# "sonst"/"otherwise" are no terminators: "Lunge sonst frei" is a normal lung, and a finding
# before them ("Leberzyste, sonst unauffällig") still wins as the mention's own or attached one.
_TERM = frozenset(
    "aber jedoch allerdings sondern während wobei außer ausgenommen abgesehen "
    "but however although though except apart aside whereas".split()
)
_PSEUDO = (
    "änderung",
    "progredien",
    "progression",
    "zunahme",
    "wachstum",
    "change",
    "growth",
    "increase",
    "nur",
    "only",
)
_UNCERTAIN = ("ausgeschlossen", "auszuschließen", "excluded", "exclude", "ruled", "sicher")
_CONTINUERS = frozenset(
    "mit with jedoch aber allerdings but however dabei darin hier containing showing bei "
    "teils".split()
)
_FILLER = frozenset(
    "der die das den dem des ein eine einer eines einem und oder sowie bzw beide beiden "
    "beider the a an and or both of as well im in".split()
)

# Side words: adjectives before the noun, and words that follow it.
_SIDE_BEFORE = {
    "re": "right",
    "li": "left",
    "bds": "bilateral",
    "right": "right",
    "left": "left",
    "bilateral": "bilateral",
    "both": "bilateral",
    "beide": "bilateral",
    "beiden": "bilateral",
    "beider": "bilateral",
}
_SIDE_AFTER = {
    "rechts": "right",
    "links": "left",
    "re": "right",
    "li": "left",
    "bds": "bilateral",
    "beidseits": "bilateral",
    "beidseitig": "bilateral",
    "bilateral": "bilateral",
    "bilaterally": "bilateral",
    "rechtsseitig": "right",
    "linksseitig": "left",
}
_SIDE_PREFIXES = (
    ("rechtsseitig", "right"),
    ("linksseitig", "left"),
    ("beidseitig", "bilateral"),
    ("bilateral", "bilateral"),
    ("recht", "right"),
    ("link", "left"),
)


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


def _tokens(text: str) -> list[_Tok]:
    toks = []
    for m in _TOKEN.finditer(text):
        s = m.group(0)
        punct = not s[0].isalnum() and s[0] != "_"
        toks.append(_Tok(s.strip(), s.strip().casefold(), m.start(), m.end(), punct))
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


# --- spine levels and ribs ----------------------------------------------------------------

_REGION_DE = {"lwk": "L", "bwk": "T", "hwk": "C", "swk": "S", "lw": "L", "bw": "T", "hw": "C"}
_REGION_MAX = {"C": 7, "T": 12, "L": 5, "S": 1}
_SPINE_DE = re.compile(
    r"(?<![\w.])(LWK|BWK|HWK|SWK|LW|BW|HW)\s*(\d{1,2})"
    r"(?:\s*(?:-|–|/|bis)\s*(?:(LWK|BWK|HWK|SWK|LW|BW|HW)\s*)?(\d{1,2})"
    r"|\s*(?:und|u\.|,)\s*(\d{1,2})(?![\d.]))?(?!\w)",
    re.IGNORECASE,
)
_SPINE_ORDINAL = re.compile(
    r"(?<![\w.])(\d{1,2})\.\s*(Lendenwirbel|Brustwirbel|Halswirbel|LWK|BWK|HWK)\w*", re.IGNORECASE
)
_SPINE_LETTER = re.compile(
    r"(?<![\w.])(C|Th|T|L|S)(\d{1,2})"
    r"(?:\s*(?:-|–|/|bis|to|through)\s*(?:(C|Th|T|L|S))?(\d{1,2}))?(?![\w*])"
)
_SPINE_CONTEXT = re.compile(r"^\s*-?\s*(?:wirbel|vertebra|wk\b|level|höhe)", re.IGNORECASE)
_NOT_SPINE_AFTER = re.compile(
    r"^\s*(?:-\s*)?(?:abusus|abuse|konsum|w\b|wi\b|gewichtet|weighted|wichtung|sequenz|"
    r"n\d|n\s*[0-3x]\b|m\s*[01x]\b|h\d)",
    re.IGNORECASE,
)


def _level_names(region: str, a: int, region_b: str | None, b: int | None) -> list[str]:
    def ok(r: str, n: int) -> bool:
        return 1 <= n <= _REGION_MAX[r]

    if b is None:
        return [f"vertebrae_{region}{a}"] if ok(region, a) else []
    rb = region_b or region
    if rb == region:
        lo, hi = (a, b) if a <= b else (b, a)
        return [f"vertebrae_{region}{n}" for n in range(lo, hi + 1) if ok(region, n)]
    if not (ok(region, a) and ok(rb, b)):
        return [f"vertebrae_{r}{n}" for r, n in ((region, a), (rb, b)) if ok(r, n)]
    levels = [f"{r}{n}" for r in "CTLS" for n in range(1, _REGION_MAX[r] + 1)]
    lo, hi = levels.index(f"{region}{a}"), levels.index(f"{rb}{b}")
    lo, hi = min(lo, hi), max(lo, hi)
    return [f"vertebrae_{lv}" for lv in levels[lo : hi + 1]]


def _spine_hits(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    for m in _SPINE_DE.finditer(text):
        region = _REGION_DE[m.group(1).casefold()]
        rb = _REGION_DE[m.group(3).casefold()] if m.group(3) else None
        b = int(m.group(4)) if m.group(4) else None
        names = _level_names(region, int(m.group(2)), rb, b)
        if m.group(5):  # "LWK 3 und 5": a list, not a range
            names += _level_names(region, int(m.group(5)), None, None)
        if names:
            hits.append(_Hit(m.start(), m.end(), tuple(names)))
    for m in _SPINE_ORDINAL.finditer(text):
        word = m.group(2).casefold()
        region = {"lendenwirbel": "L", "brustwirbel": "T", "halswirbel": "C"}.get(
            word
        ) or _REGION_DE[word]
        names = _level_names(region, int(m.group(1)), None, None)
        if names:
            hits.append(_Hit(m.start(), m.end(), tuple(names)))
    for m in _SPINE_LETTER.finditer(text):
        region = "T" if m.group(1) in ("Th", "T") else m.group(1)
        rb_raw = m.group(3)
        rb = ("T" if rb_raw in ("Th", "T") else rb_raw) if rb_raw else None
        a = int(m.group(2))
        b = int(m.group(4)) if m.group(4) else None
        after = text[m.end() :]
        if _NOT_SPINE_AFTER.match(after):
            continue
        paired = b is not None
        context = bool(_SPINE_CONTEXT.match(after))
        if region == "S" and not (context or (paired and rb not in (None, "S"))):
            continue  # "S4" is far more often a liver segment than a sacral level
        if region == "T" and m.group(1) == "T" and a <= 2 and not (paired or context):
            continue  # "T1"/"T2" alone is an MR weighting
        if region == "S" and rb is None and b is not None:
            continue
        names = _level_names(region, a, rb, b)
        if names:
            hits.append(_Hit(m.start(), m.end(), tuple(names)))
    return hits


# Couinaud segments ("Segment VIII", "segment 6", "Segment IVa"): the liver, unless the
# sentence is about the lung, whose segments are numbered too.
_LIVER_SEGMENT = re.compile(
    r"(?<![\w.])(?i:segment|segments|seg\.)\s*(?:[IV]{1,4}|[1-8])[ab]?(?![\w])"
)


def _segment_hits(text: str) -> list[_Hit]:
    return [_Hit(m.start(), m.end(), ("liver",)) for m in _LIVER_SEGMENT.finditer(text)]


_ORD_DE = {
    w: i
    for i, ws in enumerate(
        [
            ("erste",),
            ("zweite",),
            ("dritte",),
            ("vierte",),
            ("fünfte",),
            ("sechste",),
            ("siebte", "siebente"),
            ("achte",),
            ("neunte",),
            ("zehnte",),
            ("elfte",),
            ("zwölfte",),
        ],
        start=1,
    )
    for base in ws
    for w in (base, base + "n", base + "r", base + "s", base + "m")
}
_ORD_EN = {
    w: i
    for i, w in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split(),
        start=1,
    )
}
_NUM_DE = r"(?:\d{1,2}\.?|" + "|".join(sorted(_ORD_DE, key=len, reverse=True)) + ")"
_NUM_EN = r"(?:\d{1,2}(?:st|nd|rd|th)|" + "|".join(_ORD_EN) + ")"
_LIST_SEP = r"\s*(?:,|und|u\.|oder|bis|-|–|/|and|or|to|through)\s*"
_RIB_PATTERNS = [
    re.compile(
        rf"(?<![\w.])({_NUM_DE}(?:{_LIST_SEP}{_NUM_DE})*)\s*-?\s*Rippe(?!n?knorpel)\w*",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?<![\w.])Rippe(?!n?knorpel)\w*\s+(\d{{1,2}}(?:{_LIST_SEP}\d{{1,2}})*)(?![\w.]\d)",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?<![\w.])({_NUM_EN}(?:{_LIST_SEP}{_NUM_EN})*)\s+(?:(?:left|right|posterior|anterior|lateral)\s+)*ribs?(?!\w)",
        re.IGNORECASE,
    ),
    re.compile(rf"(?<![\w.])ribs?\s+(\d{{1,2}}(?:{_LIST_SEP}\d{{1,2}})*)(?!\w)", re.IGNORECASE),
]


def _rib_numbers(listing: str) -> list[int]:
    parts = re.split(
        r"(\s*(?:,|und|u\.|oder|bis|-|–|/|and|or|to|through)\s*)", listing, flags=re.IGNORECASE
    )
    values: list[int] = []
    range_next = False
    for part in parts:
        p = part.strip().casefold().rstrip(".")
        if not p:
            continue
        if p in ("bis", "-", "–", "to", "through"):
            range_next = True
            continue
        if p in (",", "und", "u", "oder", "/", "and", "or"):
            continue
        m = re.match(r"\d+", p)
        n = int(m.group(0)) if m else _ORD_DE.get(p) or _ORD_EN.get(p)
        if n is None:
            continue
        if range_next and values and values[-1] < n:
            values.extend(range(values[-1] + 1, n + 1))
        else:
            values.append(n)
        range_next = False
    return [n for n in dict.fromkeys(values) if 1 <= n <= 12]


def _rib_hits(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    taken: list[tuple[int, int]] = []
    for pattern in _RIB_PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < e and m.end() > s for s, e in taken):
                continue
            numbers = _rib_numbers(m.group(1))
            if numbers:
                hits.append(_Hit(m.start(), m.end(), tuple(f"rib_{{side}}_{n}" for n in numbers)))
                taken.append(m.span())
    return hits


# --- the rules ----------------------------------------------------------------------------


def _lexicon_hits(text: str, toks: list[_Tok], lang: str, lex: Lexicon) -> list[_Hit]:
    hits: list[_Hit] = []
    taken: list[tuple[int, int]] = []
    for pattern, idx, _ in lex.phrases:
        for m in pattern.finditer(text):
            if any(m.start() < e and m.end() > s for s, e in taken):
                continue
            taken.append(m.span())
            if lex.targets[idx]:
                hits.append(_Hit(m.start(), m.end(), lex.targets[idx]))
    for i, t in enumerate(toks):
        if t.punct or any(t.start < e and t.end > s for s, e in taken):
            continue
        idx: int | None = None
        extra: tuple[int, ...] = ()
        if lang == "de" and text[t.end : t.end + 1] == "-":
            # "Ober- und Unterlappen", and "Knochen- und Weichteilfenster" (a blocked form)
            idx, extra = _complete_truncated(text, toks, i, lex)
        if idx is None:
            idx = lex.match_word(t.text, lang)
        if idx is not None and lex.targets[idx]:
            hits.append(_Hit(t.start, t.end, lex.targets[idx], extra_finding_toks=extra))
    return hits


def _complete_truncated(
    text: str, toks: list[_Tok], i: int, lex: Lexicon
) -> tuple[int | None, tuple[int, ...]]:
    """ "Ober- und Unterlappen": complete "Ober-" with the head of the following compound."""
    j = i + 1
    while j < len(toks) and (toks[j].punct or toks[j].low in ("und", "oder", "sowie", "bzw")):
        j += 1
    if j >= len(toks) or j - i > 3:
        return None, ()
    nxt = toks[j].low
    for k in range(1, len(nxt) - 2):
        candidate = toks[i].low + nxt[k:]
        for ending in ("", "e", "en", "n", "s", "es", "er", "em"):
            if ending and not candidate.endswith(ending):
                continue
            idx = lex.exact.get(candidate[: len(candidate) - len(ending)])
            if idx is not None:
                return idx, (j,)
    return None, ()


_PARENTHETICAL = frozenset({"soweit", "sofern", "insofern"})
_LIST_OR = frozenset({"oder", "or", "nor", "noch"})


def _clauses(
    toks: list[_Tok], hit_at: set[int], finding: list[bool], cue_at: dict[int, str]
) -> list[int]:
    """Clause id per token. A comma or colon ends a clause, except:

    * a comma inside a bare list of anatomy ("Leber, Milz und Pankreas unauffällig"; "keine
      Raumforderung in Leber, Milz oder Pankreas") and a colon after one ("Leber: ...") or
      after a short organ heading ("Cervical spine: No fracture", "Lunge basal: frei");
    * a comma before a short remark that only states normality ("Harnblase gering gefüllt,
      unauffällig"), and around a parenthetical "soweit beurteilbar";
    * the commas of a negated list that ends in "or"/"oder" ("No pneumatosis, portal venous
      gas or free air").
    """
    seg_of: list[int] = []
    segments: list[list[int]] = [[]]
    bounds: list[str] = []
    for i, t in enumerate(toks):
        if t.punct:
            segments.append([])
            bounds.append(t.low)
        else:
            segments[-1].append(i)

    def is_list(seg: list[int]) -> bool:
        return bool(seg) and all(
            i in hit_at
            or toks[i].low in _FILLER
            or toks[i].low in _SIDE_AFTER
            or _side_before(toks[i].text)
            for i in seg
        )

    def heading(seg: list[int]) -> bool:
        loose = [i for i in seg if i not in hit_at and toks[i].low not in _FILLER]
        return any(i in hit_at for i in seg) and len(loose) <= 2

    def normal_remark(seg: list[int]) -> bool:
        return (
            0 < len(seg) <= 4
            and not any(i in hit_at or finding[i] for i in seg)
            and any(cue_at.get(i) == "norm" for i in seg)
        )

    def parenthetical(seg: list[int]) -> bool:
        return bool(seg) and toks[seg[0]].low in _PARENTHETICAL

    negated_list: set[int] = set()  # boundary indices merged as one negated list
    for s in range(1, len(segments)):
        if bounds[s - 1] != "," or not any(cue_at.get(i) == "pre" for i in segments[s - 1]):
            continue
        k = s
        while k < len(segments) and 0 < len([i for i in segments[k] if i not in hit_at]) <= 4:
            if any(toks[i].low in _LIST_OR for i in segments[k]):
                negated_list.update(range(s - 1, k))
                break
            if k >= len(bounds) or bounds[k] != ",":
                break
            k += 1

    def opens_with_side(seg: list[int]) -> bool:
        return bool(seg) and toks[seg[0]].low in ("rechts", "links", "re", "li", "right", "left")

    clause_of_seg = [0]
    for s in range(1, len(segments)):
        prev, cur = segments[s - 1], segments[s]
        b = bounds[s - 1]
        merge = (
            b == ","
            # "rechts 2,4 cm, links 1,6 cm": the other side starts a clause of its own
            and not opens_with_side(cur)
            and (
                is_list(prev)
                or is_list(cur)
                or normal_remark(cur)
                or parenthetical(cur)
                or parenthetical(prev)
                or (s - 1) in negated_list
            )
        ) or (b == ":" and (is_list(prev) or heading(prev)))
        clause_of_seg.append(clause_of_seg[-1] if merge else clause_of_seg[-1] + 1)
    seg = 0
    for t in toks:
        if t.punct:
            seg += 1
            seg_of.append(-1)
        else:
            seg_of.append(clause_of_seg[seg])
    return seg_of


@dataclass
class _Cue:
    pos: int
    kind: str  # pre, bidi, post, norm, term


def _cues(toks: list[_Tok]) -> list[_Cue]:
    cues: list[_Cue] = []
    words = [t.low if not t.punct else "" for t in toks]
    for i, w in enumerate(words):
        if not w:
            continue
        nxt = [x for x in words[i + 1 : i + 4] if x]
        if (
            w in _TERM
            or (w == "bis" and nxt[:1] == ["auf"])
            or (w == "other" and nxt[:1] == ["than"])
        ):
            cues.append(_Cue(i, "term"))
            continue
        kind = None
        prev = next((x for x in reversed(words[:i]) if x), "")
        if w == "no" and nxt[:1] == ["longer"]:
            kind = "bidi"  # "the nodule is no longer seen": resolved, so absent now
        elif w in _PRE or (w in ("free", "frei") and nxt[:1] in (["of"], ["von"])):
            kind = "pre"
        elif w in ("resolution", "rückbildung") and nxt[:1] in (["of"], ["des"], ["der"]):
            kind = "pre"
        elif w == "resolved" or (
            w.startswith(_RESOLVED_AFTER) and prev in ("vollständig", "komplett", "völlig")
        ):
            kind = "post"
        elif w in _NEGBIDI or w.endswith("n't"):
            kind = "bidi"
        elif w in _POST:
            kind = "post"
        elif w in _NORM_EXACT or (
            w.startswith(_NORM_PREFIX)
            and not w.startswith("normalerweise")
            and not (w.startswith("glatt") and nxt[:1] and nxt[0].startswith(("begrenz", "beran")))
        ):
            kind = "norm"
        elif w in _NEUTRAL_EXACT or w.startswith(_NEUTRAL_PREFIX):
            kind = "norm"
        elif w == "o" and nxt[:1] == ["b"]:
            kind = "norm"
        if kind is None:
            continue
        if w == "nicht" and len(nxt) >= 2 and _adjective_then_noun(toks, i):
            continue  # "nicht dislozierte Fraktur": only the adjective is negated
        if kind in ("pre", "bidi") and any(_pseudo(x) for x in nxt[:2]):
            continue  # "keine Größenzunahme", "no change": the finding is still there
        if kind in ("bidi", "pre") and any(x.startswith(_UNCERTAIN) for x in nxt[:3]):
            continue
        if kind == "post" and i and words[i - 1] in _NEGBIDI:
            continue  # "nicht ausgeschlossen" is uncertainty, not negation
        cues.append(_Cue(i, kind))
    return cues


def _adjective_then_noun(toks: list[_Tok], i: int) -> bool:
    """Whether German token ``i`` is followed by a lower-case word and then a capitalised one
    ("nicht dislozierte Fraktur")."""
    words = [t for t in toks[i + 1 : i + 3] if not t.punct]
    return (
        len(words) == 2
        and words[0].text[:1].islower()
        and words[1].text[:1].isupper()
        and toks[i + 1] is words[0]
    )


def _pseudo(word: str) -> bool:
    return word.startswith(_PSEUDO) or any(
        p in word for p in ("änderung", "progredienz", "zunahme")
    )


_PRE_WINDOW = 10
_BIDI_WINDOW = 6
_PRE_AFTER_WINDOW = 3


class _Sentence:
    """One sentence's tokens, anatomy hits, clauses and cues, and the rules over them."""

    def __init__(self, text: str, lang: str, lex: Lexicon):
        self.text = text
        self.lang = lang
        self.lex = lex
        self.toks = _tokens(text)
        self.hits = _lexicon_hits(text, self.toks, lang, lex)
        for h in _spine_hits(text) + _rib_hits(text):
            # a rule-based level or rib replaces the lexicon word it overlaps ("Wirbel L4")
            self.hits = [x for x in self.hits if not (h.start < x.end and h.end > x.start)]
            self.hits.append(h)
        if not any(t.startswith("lung") for h in self.hits for t in h.targets):
            for h in _segment_hits(text):
                if not any(h.start < x.end and h.end > x.start for x in self.hits):
                    self.hits.append(h)
        self.hits.sort(key=lambda h: h.start)
        for h in self.hits:
            inside = [i for i, t in enumerate(self.toks) if t.start < h.end and t.end > h.start]
            h.tok_a, h.tok_b = (inside[0], inside[-1]) if inside else (0, -1)
        self.hit_tokens = {i for h in self.hits for i in range(h.tok_a, h.tok_b + 1)}
        self.cues = _cues(self.toks)
        self.term_pos = [c.pos for c in self.cues if c.kind == "term"]
        self.finding = [(not t.punct) and lex.is_finding(t.text, lang) for t in self.toks]
        self.clause = _clauses(
            self.toks, self.hit_tokens, self.finding, {c.pos: c.kind for c in self.cues}
        )
        self.own = [self._own(h) for h in self.hits]
        self.prefix = self._weights()
        self._negated: dict[int, bool] = {}

    def _weights(self) -> list[int]:
        """Prefix sums of a weight per token for scope windows: list words (anatomy, articles,
        "und") are free."""
        prefix = [0]
        for i, t in enumerate(self.toks):
            free = t.punct or i in self.hit_tokens or t.low in _FILLER
            prefix.append(prefix[-1] + (0 if free else 1))
        return prefix

    def _dist(self, a: int, b: int) -> int:
        lo, hi = min(a, b), max(a, b)
        return self.prefix[hi] - self.prefix[lo + 1] + 1

    def _own(self, h: _Hit) -> set[int]:
        groups = {self.toks[i].group for i in range(h.tok_a, h.tok_b + 1)}
        own = {i for i, t in enumerate(self.toks) if t.group in groups}
        return own | set(h.extra_finding_toks)

    def _term_between(self, a: int, b: int) -> bool:
        lo, hi = min(a, b), max(a, b)
        return any(lo < p < hi for p in self.term_pos)

    def negated(self, i: int) -> bool:
        """Whether token ``i`` (a finding) lies in the scope of a negation cue."""
        if i not in self._negated:
            self._negated[i] = self._negated_uncached(i)
        return self._negated[i]

    def _negated_uncached(self, i: int) -> bool:
        for c in self.cues:
            if c.pos == i or self.clause[c.pos] != self.clause[i]:
                continue
            if self._term_between(c.pos, i):
                continue
            d = self._dist(c.pos, i)
            if c.kind == "pre" and c.pos < i and d <= _PRE_WINDOW:
                return True
            if c.kind == "bidi" and d <= _BIDI_WINDOW:
                return True
            if c.kind == "post" and c.pos > i and d <= _BIDI_WINDOW:
                return True
        return False

    def _open_finding_between(self, a: int, b: int, own: set[int]) -> bool:
        lo, hi = min(a, b), max(a, b)
        return any(
            self.finding[k] and k not in own and not self.negated(k) for k in range(lo + 1, hi)
        )

    def _cue_applies(self, h: _Hit, own: set[int], cl: int) -> bool:
        for c in self.cues:
            if c.kind == "term" or self.clause[c.pos] != cl:
                continue
            if c.pos < h.tok_a:
                d, anchor = self._dist(c.pos, h.tok_a), h.tok_a
                ok = (c.kind == "pre" and d <= _PRE_WINDOW) or (
                    c.kind in ("bidi", "norm") and d <= _BIDI_WINDOW
                )
            elif c.pos > h.tok_b:
                d, anchor = self._dist(h.tok_b, c.pos), h.tok_b
                ok = (c.kind in ("bidi", "norm", "post") and d <= _BIDI_WINDOW) or (
                    c.kind == "pre" and d <= _PRE_AFTER_WINDOW
                )
            else:
                continue
            if (
                ok
                and not self._term_between(c.pos, anchor)
                and not self._open_finding_between(c.pos, anchor, own)
            ):
                return True
        return False

    def _attached_finding(self, n: int, cl: int) -> bool:
        """A finding in the clause, not negated, with no other anatomy between it and hit n."""
        h, own = self.hits[n], self.own[n]
        others = set().union(*(o for j, o in enumerate(self.own) if j != n)) if self.hits else set()
        for k in range(len(self.toks)):
            if not self.finding[k] or k in own or k in others or self.clause[k] != cl:
                continue
            if self.negated(k) or self._term_between(k, h.tok_a):
                continue
            lo, hi = (h.tok_b, k) if k > h.tok_b else (k, h.tok_a)
            if any(j != n and lo < o.tok_a < hi for j, o in enumerate(self.hits)):
                continue
            return True
        return False

    def resolve_abnormal(self) -> None:
        """Set ``abnormal`` on every hit (see the module docstring)."""
        for n, h in enumerate(self.hits):
            own = self.own[n]
            own_findings = [k for k in own if self.finding[k]]
            if own_findings:
                h.abnormal = not all(self.negated(k) for k in own_findings)
                continue
            cl = self.clause[h.tok_a]
            h.abnormal = self._attached_finding(n, cl) or not self._cue_applies(h, own, cl)
        self._attach_continuations()

    def _attach_continuations(self) -> None:
        """ "Milz nicht vergrößert, mit kleiner Zyste": a clause without anatomy that opens
        with a continuing word and states a finding belongs to the last anatomy before it."""
        by_clause: dict[int, list[int]] = {}
        for i, c in enumerate(self.clause):
            if c >= 0:
                by_clause.setdefault(c, []).append(i)
        for cl, idxs in sorted(by_clause.items()):
            if any(i in self.hit_tokens for i in idxs) or self.toks[idxs[0]].low not in _CONTINUERS:
                continue
            if not any(self.finding[i] and not self.negated(i) for i in idxs):
                continue
            before = [h for h in self.hits if self.clause[h.tok_a] < cl]
            if before:
                before[-1].abnormal = True

    def attach_kidney_cysts(self) -> None:
        """ "Nieren mit kortikalen Zysten beidseits", "a simple cyst in the left kidney": a cyst
        attached to a kidney (same clause, no other anatomy between) is a kidney cyst too."""
        others_own = [
            set().union(*(o for j, o in enumerate(self.own) if j != n))
            for n in range(len(self.hits))
        ]
        for n, h in enumerate(self.hits):
            if "kidney_{side}" not in h.targets or "kidney_cyst_{side}" in h.targets:
                continue
            cl = self.clause[h.tok_a]
            for k, t in enumerate(self.toks):
                if (
                    k in others_own[n]
                    or self.clause[k] != cl
                    or not ("zyst" in t.low or "cyst" in t.low)
                ):
                    continue
                lo, hi = (h.tok_b, k) if k > h.tok_b else (k, h.tok_a)
                if any(j != n and lo < o.tok_a < hi for j, o in enumerate(self.hits)):
                    continue
                h.targets = (*h.targets, "kidney_cyst_{side}")
                break

    def adopt_sides(self) -> None:
        """A paired mention with no side of its own takes the one side that the sentence gives
        its relatives (same organ: lung and lobes, ribs, kidney): in the same clause always
        ("Pneumonie im linken Unterlappen"), across clauses when it states a finding
        ("right upper lobe mass, suspicious for lung malignancy"). Plurals keep both sides."""

        classes = schema().by_name

        def family(h: _Hit) -> set[str]:
            return {t.split("_")[0] for t in h.targets if "{side}" in t or t in classes}

        def side_of(h: _Hit) -> str | None:
            if h.side in ("left", "right"):
                return h.side
            # a one-sided class of its own ("RLL", "Mittellappen", "Lingula")
            sides = {classes[t].side for t in h.targets if t in classes}
            return sides.pop() if len(sides) == 1 else None

        for h in self.hits:
            fam = family(h)
            if h.side is not None or not any("{side}" in t for t in h.targets) or self._plural(h):
                continue
            near, far = set(), set()
            for o in self.hits:
                side = side_of(o)
                if o is h or side is None or not family(o) & fam:
                    continue
                (near if self.clause[o.tok_a] == self.clause[h.tok_a] else far).add(side)
            pool = near or (far if h.abnormal else set())
            if len(pool) == 1:
                h.side = pool.pop()

    def _plural(self, h: _Hit) -> bool:
        word = self.text[h.start : h.end].casefold()
        if self.lang == "en":
            return word.endswith("s") and not word.endswith(("ss", "us", "is"))
        return word.endswith("n") and (word[:-1] in self.lex.exact or word[:-2] in self.lex.exact)

    def resolve_sides(self) -> None:
        """Set ``side`` on every hit with a paired target."""
        for h in self.hits:
            if any("{side}" in t for t in h.targets):
                h.side = self._side_for(h)
        self._add_elliptic_sides()
        for h in self.hits:
            # "Ober- und Unterlappen links": the truncated word shares its head's side
            if h.side is None and h.extra_finding_toks:
                head = h.extra_finding_toks[0]
                for o in self.hits:
                    if o.tok_a <= head <= o.tok_b and o.side is not None:
                        h.side = o.side

    def _add_elliptic_sides(self) -> None:
        """ "A. iliaca communis rechts 2,4 cm, links 1,6 cm normkalibrig": a clause that opens
        with the other side word and names no anatomy speaks of the same organ on that side."""
        other = {"left": "right", "right": "left"}
        added = []
        for h in self.hits:
            if h.side not in other:
                continue
            cl = self.clause[h.tok_a]
            nxt = [i for i, c in enumerate(self.clause) if c == cl + 1]
            if not nxt or any(i in self.hit_tokens for i in nxt):
                continue
            first = self.toks[nxt[0]]
            side = _SIDE_AFTER.get(first.low) or (first.low if first.low in other else None)
            if side == other[h.side]:
                added.append(_Hit(first.start, first.end, h.targets, nxt[0], nxt[0], side=side))
        if not added:
            return
        self.hits = sorted(self.hits + added, key=lambda x: x.start)
        self.hit_tokens |= {x.tok_a for x in added}
        self.own = [self._own(x) for x in self.hits]
        self.prefix = self._weights()

    def _side_for(self, h: _Hit) -> str | None:
        cl = self.clause[h.tok_a]
        sides: set[str] = set()
        for i in range(h.tok_a, h.tok_b + 1):
            t = self.toks[i]
            if t.low not in ("re", "li") and t.low not in self.lex.exact:
                s = _side_before(t.text)
                if s:
                    sides.add(s)
        i, steps = h.tok_a - 1, 0
        while not sides and i >= 0 and steps < 3:
            t = self.toks[i]
            if t.punct or i in self.hit_tokens or self.clause[i] != cl:
                break
            s = _side_before(t.text)
            if s:
                sides.add(s)
            steps, i = steps + 1, i - 1
        while i >= 0 and steps < 3 and sides:
            # "left and right lungs": keep collecting side words joined by a conjunction
            t = self.toks[i]
            if t.punct or i in self.hit_tokens or self.clause[i] != cl:
                break
            s = _side_before(t.text)
            if s:
                sides.add(s)
            elif t.low not in ("und", "and", "oder", "or", "sowie"):
                break
            steps, i = steps + 1, i - 1
        if not sides:
            sides |= self._side_after(h, cl)
        if not sides:
            for i in range(h.tok_a - 1, -1, -1):
                if self.clause[i] not in (cl, -1):
                    break
                s = _side_before(self.toks[i].text) or _SIDE_AFTER.get(self.toks[i].low)
                if s:
                    sides.add(s)
                    break
        if not sides:
            return None
        if "bilateral" in sides or {"left", "right"} <= sides:
            return "bilateral"
        return sides.pop()

    def _side_after(self, h: _Hit, cl: int) -> set[str]:
        sides: set[str] = set()
        i, steps = h.tok_b + 1, 0
        while i < len(self.toks) and steps < 3:
            t = self.toks[i]
            if i in self.hit_tokens or (not t.punct and self.clause[i] != cl):
                break
            if t.punct:
                if t.low != ",":
                    break
                i += 1
                continue
            s = _SIDE_AFTER.get(t.low)
            if s is None and t.low.startswith(("rechtsseitig", "linksseitig", "beidseitig")):
                s = _side_before(t.text)
            if s is None and t.low in ("right", "left"):
                prev = self.toks[i - 1].low
                nxt = self.toks[i + 1].low if i + 1 < len(self.toks) else ""
                if prev == "the" or nxt in ("side", "sided"):
                    s = t.low
            if s:
                sides.add(s)
            steps, i = steps + 1, i + 1
        return sides

    def mentions(self) -> list[Mention]:
        """One mention per schema class, in text order."""
        names = schema().by_name
        per_class: dict[str, Mention] = {}
        specific_spine = any(t.startswith("vertebrae_") for h in self.hits for t in h.targets)
        for h in self.hits:
            for template in h.targets:
                if template == "vertebrae" and specific_spine:
                    continue
                if "{side}" in template:
                    sides = ["left", "right"] if h.side in (None, "bilateral") else [h.side]
                    classes = [(template.replace("{side}", s), h.side) for s in sides]
                else:
                    cls = names.get(template)
                    classes = [(template, cls.side if cls is not None else None)]
                for name, laterality in classes:
                    if name not in names:
                        continue
                    prev = per_class.get(name)
                    if prev is None or (h.abnormal and not prev.abnormal):
                        per_class[name] = Mention(
                            class_name=name,
                            laterality=(prev.laterality if prev else None) or laterality,
                            abnormal=h.abnormal,
                            span=(h.start, h.end),
                        )
        return sorted(per_class.values(), key=lambda m: (m.span[0], m.class_name))


def find_mentions(sentence: str, lang: str) -> list[Mention]:
    """Anatomy mentions of one sentence (``lang`` is ``"de"`` or ``"en"``)."""
    s = _Sentence(sentence, lang, lexicon())
    s.resolve_sides()
    s.resolve_abnormal()
    s.adopt_sides()
    s.attach_kidney_cysts()
    return s.mentions()


_ABNORMAL_WORDS = ("auffällig", "abnormal", "patholog", "verändert", "altered")


def states_condition(sentence: str, lang: str) -> bool:
    """Whether a sentence says something about the state of anatomy: a finding word, a
    negation or normal cue, or an explicit "abnormal". A bare mention ("Is the liver
    visible?") does not: its default ``abnormal=True`` is no statement."""
    toks = _tokens(sentence)
    for cue in _cues(toks):
        word = toks[cue.pos].low
        if cue.kind != "term" and not (word in _NEUTRAL_EXACT or word.startswith(_NEUTRAL_PREFIX)):
            return True
    lex = lexicon()
    return any(
        not t.punct and (t.low.startswith(_ABNORMAL_WORDS) or lex.is_finding(t.low, lang))
        for t in toks
    )
