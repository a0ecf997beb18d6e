"""Ages over 89 (HIPAA Safe Harbor): "92-jährige", "93 years old", "aged 95"."""

from __future__ import annotations

from refrad_builder.reports.phi.base import Rule

_AGE90 = r"(?P<phi>9\d|1[01]\d)"
_AGE_RULES = [
    Rule(
        "de_age",
        rf"(?<![\d,.]){_AGE90}(?=\.?[ \t]*-?[ \t]*(?:jährig|Jährig|Jahre\b|Jahren\b|J\.|j\.|Lebensjahr|LJ\b))",
        0.8,
    ),
    Rule(
        "en_age",
        rf"(?<![\d,.]){_AGE90}(?=(?i:th)?[ \t]*-?[ \t]*(?i:years?\b|year-old|yrs?\b|yo\b|y/o|y\.o\.|y\b|-y-o))",
        0.8,
    ),
    Rule(
        "age_label",
        rf"(?<![\w])(?i:Alter|age|aged|im[ \t]+Alter[ \t]+von)[ \t]*:?[ \t]*{_AGE90}(?![\d,.]\d|\d)",
        0.8,
    ),
]
