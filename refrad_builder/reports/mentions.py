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
offsets into the sentence. The parts live by idea: :mod:`~refrad_builder.reports.lexicon`
(matching), :mod:`~refrad_builder.reports.numbered` (spine, ribs, liver segments),
:mod:`~refrad_builder.reports.negation` (``abnormal``), :mod:`~refrad_builder.reports.laterality`
(``side``); the cue words are data (``data/mention_cues.yaml``). This module finds the hits and
groups them into one mention per class.
"""

from __future__ import annotations

from refrad_builder.anatomy.labels import schema
from refrad_builder.engine.records import Mention
from refrad_builder.reports.laterality import SideRules
from refrad_builder.reports.lexicon import Lexicon, lexicon
from refrad_builder.reports.negation import NegationRules, _clauses, _cues
from refrad_builder.reports.numbered import _rib_hits, _segment_hits, _spine_hits
from refrad_builder.reports.tokens import _NEUTRAL_EXACT, _NEUTRAL_PREFIX, _Hit, _Tok, _tokens

__all__ = ["Lexicon", "find_mentions", "lexicon", "states_condition"]

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


class _Sentence(NegationRules, SideRules):
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

    def _own(self, h: _Hit) -> set[int]:
        groups = {self.toks[i].group for i in range(h.tok_a, h.tok_b + 1)}
        own = {i for i, t in enumerate(self.toks) if t.group in groups}
        return own | set(h.extra_finding_toks)

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
