"""Negation and normality of anatomy mentions (NegEx-style, clause-scoped).

Negation cues ("kein", "ohne", "no", "without") scope forward, "nicht"/"not" and normal cues
("unauffällig", "regelrecht", "unremarkable", "clear") both ways, within a token window and a
clause, and stop at scope terminators ("aber", "but") and at a finding that is itself not
negated. :class:`NegationRules` is the part of a sentence's rules that decides ``abnormal``.
"""

from __future__ import annotations

from dataclasses import dataclass

from refrad_builder.reports.tokens import (
    _CONTINUERS,
    _FILLER,
    _LIST_OR,
    _NEGBIDI,
    _NEUTRAL_EXACT,
    _NEUTRAL_PREFIX,
    _NORM_EXACT,
    _NORM_PREFIX,
    _PARENTHETICAL,
    _POST,
    _PRE,
    _PSEUDO,
    _RESOLVED_AFTER,
    _SIDE_AFTER,
    _TERM,
    _UNCERTAIN,
    _Hit,
    _side_before,
    _Tok,
)


def _segments(toks: list[_Tok]) -> tuple[list[list[int]], list[str]]:
    """Token indices between punctuation, and the punctuation between them."""
    segments: list[list[int]] = [[]]
    bounds: list[str] = []
    for i, t in enumerate(toks):
        if t.punct:
            segments.append([])
            bounds.append(t.low)
        else:
            segments[-1].append(i)
    return segments, bounds


def _is_list(
    toks: list[_Tok], seg: list[int], hit_at: set[int], finding: list[bool] | None = None
) -> bool:
    """A bare list of anatomy: hits, list words and sides only, and no hit that names a
    finding itself ("Infarktpneumonie im rechten Unterlappen" is a statement)."""
    if finding is not None and any(finding[i] for i in seg):
        return False
    return bool(seg) and all(
        i in hit_at
        or toks[i].low in _FILLER
        or toks[i].low in _SIDE_AFTER
        or _side_before(toks[i].text)
        for i in seg
    )


def _heading(toks: list[_Tok], seg: list[int], hit_at: set[int]) -> bool:
    loose = [i for i in seg if i not in hit_at and toks[i].low not in _FILLER]
    return any(i in hit_at for i in seg) and len(loose) <= 2


def _normal_remark(
    seg: list[int], hit_at: set[int], finding: list[bool], cue_at: dict[int, str]
) -> bool:
    return (
        0 < len(seg) <= 4
        and not any(i in hit_at or finding[i] for i in seg)
        and any(cue_at.get(i) == "norm" for i in seg)
    )


def _parenthetical(toks: list[_Tok], seg: list[int]) -> bool:
    return bool(seg) and toks[seg[0]].low in _PARENTHETICAL


def _opens_with_side(toks: list[_Tok], seg: list[int]) -> bool:
    return bool(seg) and toks[seg[0]].low in ("rechts", "links", "re", "li", "right", "left")


def _negated_lists(
    toks: list[_Tok],
    segments: list[list[int]],
    bounds: list[str],
    hit_at: set[int],
    cue_at: dict[int, str],
) -> set[int]:
    """Boundary indices merged as one negated list ("No pneumatosis, portal venous gas or
    free air")."""
    negated_list: set[int] = set()
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
    return negated_list


def _clauses(
    toks: list[_Tok], hit_at: set[int], finding: list[bool], cue_at: dict[int, str]
) -> list[int]:
    """Clause id per token (-1 for punctuation). A comma or colon ends a clause, except:

    * a comma inside a bare list of anatomy ("Leber, Milz und Pankreas unauffällig"; "keine
      Raumforderung in Leber, Milz oder Pankreas") and a colon after one ("Leber: ...") or
      after a short organ heading ("Cervical spine: No fracture", "Lunge basal: frei");
    * a comma before a short remark that only states normality ("Harnblase gering gefüllt,
      unauffällig"), and around a parenthetical "soweit beurteilbar";
    * the commas of a negated list that ends in "or"/"oder" ("No pneumatosis, portal venous
      gas or free air").
    """
    segments, bounds = _segments(toks)
    negated_list = _negated_lists(toks, segments, bounds, hit_at, cue_at)
    clause_of_seg = [0]
    for s in range(1, len(segments)):
        prev, cur = segments[s - 1], segments[s]
        b = bounds[s - 1]
        merge = (
            b == ","
            # "rechts 2,4 cm, links 1,6 cm": the other side starts a clause of its own
            and not _opens_with_side(toks, cur)
            and (
                _is_list(toks, prev, hit_at, finding)
                or _is_list(toks, cur, hit_at, finding)
                or _normal_remark(cur, hit_at, finding, cue_at)
                or _parenthetical(toks, cur)
                or _parenthetical(toks, prev)
                or (s - 1) in negated_list
            )
        ) or (b == ":" and (_is_list(toks, prev, hit_at) or _heading(toks, prev, hit_at)))
        clause_of_seg.append(clause_of_seg[-1] if merge else clause_of_seg[-1] + 1)
    seg_of: list[int] = []
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
    """Whether German token ``i`` is followed by attributive adjectives and then a capitalised
    noun ("nicht dislozierte Fraktur", "Nicht dislozierte mediale Schenkelhalsfraktur", "nicht
    KM-aufnehmende Läsion"): only the adjective is negated."""
    for j in range(i + 2, min(i + 5, len(toks))):
        before, word = toks[j - 1], toks[j]
        if before.punct or word.punct:
            return False
        if word.text[:1].isupper():
            return before.text[:1].islower() and before.low.endswith(("e", "en", "er", "es", "em"))
    return False


def _pseudo(word: str) -> bool:
    return word.startswith(_PSEUDO) or any(
        p in word for p in ("änderung", "progredienz", "zunahme")
    )


_PRE_WINDOW = 10
_BIDI_WINDOW = 6
_PRE_AFTER_WINDOW = 3


class NegationRules:
    """The ``abnormal`` rules of a sentence. The sentence provides ``toks``, ``hits``,
    ``hit_tokens``, ``own``, ``cues``, ``term_pos``, ``finding`` and ``clause``."""

    toks: list[_Tok]
    hits: list[_Hit]
    hit_tokens: set[int]
    own: list[set[int]]
    cues: list[_Cue]
    term_pos: list[int]
    finding: list[bool]
    clause: list[int]
    prefix: list[int]
    _negated: dict[int, bool]

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

    def _negation_in(self, cl: int) -> bool:
        """Whether clause ``cl`` holds a negation cue: the scope ends at its boundary, so a
        finding in the next clause ("kein Erguss, ausgeprägte Arthrose") is asserted."""
        return any(
            c.kind in ("pre", "bidi", "post") and self.clause[c.pos] == cl for c in self.cues
        )

    def _attach_continuations(self) -> None:
        """ "Milz nicht vergrößert, mit kleiner Zyste": a clause without anatomy that opens
        with a continuing word, or follows a clause with a negation ("Hüfte ohne Erguss,
        ausgeprägte Arthrose"), and states a finding belongs to the last anatomy before it."""
        by_clause: dict[int, list[int]] = {}
        for i, c in enumerate(self.clause):
            if c >= 0:
                by_clause.setdefault(c, []).append(i)
        for cl, idxs in sorted(by_clause.items()):
            if any(i in self.hit_tokens for i in idxs):
                continue
            if self.toks[idxs[0]].low not in _CONTINUERS and not self._negation_in(cl - 1):
                continue
            if not any(self.finding[i] and not self.negated(i) for i in idxs):
                continue
            before = [h for h in self.hits if self.clause[h.tok_a] < cl]
            if before:
                before[-1].abnormal = True
