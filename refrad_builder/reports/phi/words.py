"""The recognizers' word lists, loaded from ``data/phi_words.yaml``."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=1)
def _lists() -> dict[str, str]:
    text = resources.files("refrad_builder.data").joinpath("phi_words.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def phi_words(name: str) -> frozenset[str]:
    """One word list of ``data/phi_words.yaml`` (case as written)."""
    return frozenset(str(_lists()[name]).split())
