"""The pattern recognizer with PHI groups, and the character classes every kind shares."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import regex
from presidio_analyzer import (
    AnalysisExplanation,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts

# any script's capitals and small letters ("Şahin", "Łukasz", "Yıldız"); regex module only
_UP = r"\p{Lu}"
_LOW = r"\p{Ll}"

Adjust = Callable[[str, int, int, "regex.Match[str]"], "tuple[int, int] | None"]


@dataclass(frozen=True)
class Rule:
    """One regular expression of a recognizer.

    ``groups``: the named groups holding PHI (the whole match when none matched);
    ``adjust``: optional ``(text, start, end, match) -> (start, end) | None`` to narrow or
    veto a span; ``flags``: ``regex`` flags (case-sensitive unless given).
    """

    name: str
    pattern: str
    score: float
    groups: tuple[str, ...] = ("phi", "phi2")
    adjust: Adjust | None = None
    flags: int = regex.MULTILINE


class GroupPatternRecognizer(PatternRecognizer):
    """A presidio ``PatternRecognizer`` whose results are the ``phi`` groups of its rules.

    Presidio reports whole matches; a report needs "Dr. med. [NAME]" and "Tel. [TELEFON]",
    so the title or label that made the match certain stays in the text.
    """

    def __init__(
        self,
        entity: str,
        language: str,
        rules: Iterable[Rule],
        context: list[str] | None = None,
        name: str | None = None,
    ):
        self.rules = list(rules)
        super().__init__(
            supported_entity=entity,
            name=name or f"{entity.lower()}_{language}",
            supported_language=language,
            patterns=[Pattern(r.name, r.pattern, r.score) for r in self.rules],
            context=context,
            global_regex_flags=regex.MULTILINE,
        )
        self._compiled = [regex.compile(r.pattern, r.flags) for r in self.rules]

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """The PHI spans of every rule's matches in ``text``."""
        results: list[RecognizerResult] = []
        for rule, compiled in zip(self.rules, self._compiled, strict=True):
            for m in compiled.finditer(text):
                spans = [m.span(g) for g in rule.groups if g in m.re.groupindex and m.group(g)]
                if not spans and not any(g in m.re.groupindex for g in rule.groups):
                    spans = [m.span()]
                for s, e in spans:
                    if rule.adjust is not None:
                        got = rule.adjust(text, s, e, m)
                        if got is None:
                            continue
                        s, e = got
                    if e <= s:
                        continue
                    results.append(
                        RecognizerResult(
                            entity_type=self.supported_entities[0],
                            start=s,
                            end=e,
                            score=rule.score,
                            analysis_explanation=AnalysisExplanation(
                                recognizer=self.name,
                                original_score=rule.score,
                                pattern_name=rule.name,
                            ),
                            recognition_metadata={
                                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                            },
                        )
                    )
        return EntityRecognizer.remove_duplicates(results)


def span_result(
    recognizer: EntityRecognizer, kind: str, s: int, e: int, score: float, pattern: str
):
    """A presidio result for one span found outside a rule (explanation and metadata set)."""
    return RecognizerResult(
        entity_type=kind,
        start=s,
        end=e,
        score=score,
        analysis_explanation=AnalysisExplanation(
            recognizer=recognizer.name, original_score=score, pattern_name=pattern
        ),
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )
