"""The anatomy lexicon (``data/anatomy_lexicon.yaml``) compiled for matching: DE/EN forms,
German compounds by stem and head, Latin stems, phrases, and the finding vocabulary."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

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
