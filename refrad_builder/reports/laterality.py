"""Laterality of anatomy mentions: an adjective before the noun ("rechte Niere", "left
kidney"), a side word after it ("Niere rechts", "Lunge beidseits") or, failing both, the
nearest side word earlier in the clause; then the one side the sentence gives the same organ;
and a clause that opens with the other side ("A. iliaca rechts 2,4 cm, links 1,6 cm").
:class:`SideRules` is the part of a sentence's rules that decides ``side``."""

from __future__ import annotations

from refrad_builder.anatomy.labels import schema
from refrad_builder.reports.lexicon import Lexicon
from refrad_builder.reports.tokens import _SIDE_AFTER, _Hit, _side_before, _Tok


class SideRules:
    """The laterality rules of a sentence. The sentence provides ``text``, ``lang``, ``lex``,
    ``toks``, ``hits``, ``hit_tokens``, ``clause``, ``own``, ``_own`` and ``_weights``."""

    text: str
    lang: str
    lex: Lexicon
    toks: list[_Tok]
    hits: list[_Hit]
    hit_tokens: set[int]
    clause: list[int]
    own: list[set[int]]
    prefix: list[int]

    def _own(self, h: _Hit) -> set[int]:  # provided by the sentence
        raise NotImplementedError

    def _weights(self) -> list[int]:  # provided by the negation rules
        raise NotImplementedError

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
