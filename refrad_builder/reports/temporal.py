"""Temporal references: sentences that compare with an earlier study.

Such sentences ("größenkonstant zur Voruntersuchung", "new since the prior study") cannot be
verified from one image, so the text stage rewrites or drops them.
"""

from __future__ import annotations

import re

_TEMPORAL = re.compile(
    r"(?<!\w)(?:"
    r"vor(?:untersuchung|befund|aufnahme|studie|bild|ct|mrt?)\w*"
    r"|vergleich\w*|verglichen"
    r"|größen(?:konstant|progredient|regredient|stabil)\w*|groessenkonstant\w*"
    r"|befundkonstant\w*|neu\s+aufgetreten\w*|neu\s+abgrenzbar\w*|neu\s+hinzugekommen\w*"
    r"|progredien\w*|regredien\w*|rückläufig\w*|ruecklaeufig\w*|unverändert\w*|unveraendert\w*"
    r"|zwischenzeitlich\w*|konstant\w*"
    r"|prior|previous\w*|unchanged|new\s+since|interval\w*|compared\s+(?:to|with)"
    r"|comparison|since\s+the\s+(?:last|prior|previous)|no\s+longer|stable\s+since"
    r"|increased\s+in\s+size|decreased\s+in\s+size|has\s+(?:increased|decreased)"
    r")(?!\w)",
    re.IGNORECASE,
)


def is_temporal(sentence: str) -> bool:
    """Whether a sentence refers to a prior study or to change over time."""
    return _TEMPORAL.search(sentence) is not None
