"""The optional LLM pass of report scrubbing (``report.llm_phi``): the configured model lists
the report's PHI, and every place that text occurs is replaced, unioned with the rules' spans.

The model answers with the prompt's JSON schema (``prompts/phi.<lang>.yaml``: exact strings
with their kind) through the OpenAI-compatible client of the text stage
(:mod:`refrad_builder.text.llm_client`: structured output per server flavour, timeouts,
retries). Each string is found in the report again (whole words, any case, any run of blanks);
a string that does not occur, or has fewer than two characters, is ignored. The located spans
``(start, end, kind)`` go to the scrubber as :attr:`ScrubOptions.extra`, where they merge with
the rules' spans like any other.

Caching: the located spans, never the model's strings (they quote PHI), are kept per report
under a keyed hash of model, prompt id and version, and text (the run's secret keys it, so
the name cannot confirm a guessed report). A rerun with the same model, prompt and text asks
nothing.

Failures: an unreachable server, a refused request or an answer that is no valid JSON of the
schema raises :class:`LLMPhiError`; the report stage lets it fail the item, which the next run
retries. The pass never reports "no PHI" for a request that did not succeed. Messages carry the
error's type only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refrad_builder.deid.pseudo import keyed_hex
from refrad_builder.engine.config import LLMConfig
from refrad_builder.engine.io import atomic_write_bytes, dumps, read_json
from refrad_builder.text.llm_client import LLMClient, Request
from refrad_builder.text.prompts import Prompt, load_prompt

TASK = "phi"
KINDS = frozenset({"NAME", "DATE", "ID", "PHONE", "EMAIL", "URL", "ADDR", "INST", "AGE"})
MIN_CHARS = 2

Span = tuple[int, int, str]


class LLMPhiError(RuntimeError):
    """The LLM PHI pass got no usable answer for a report (transient: retried next run)."""


def locate(text: str, found: Sequence[dict[str, Any]]) -> tuple[list[Span], int]:
    """The spans of ``text`` where each found string occurs (whole words, case and runs of
    blanks ignored), and how many strings were not found or too short."""
    spans: list[Span] = []
    missed = 0
    for item in found:
        needle = " ".join(str(item.get("text", "")).split())
        kind = item.get("kind")
        if len(needle) < MIN_CHARS or kind not in KINDS:
            missed += 1
            continue
        body = r"\s+".join(re.escape(part) for part in needle.split(" "))
        hits = [
            (m.start(), m.end(), kind)
            for m in re.finditer(rf"(?<!\w){body}(?!\w)", text, re.IGNORECASE)
        ]
        if not hits:
            missed += 1
        spans += hits
    return sorted(set(spans)), missed


class SpanCache:
    """Located spans per report, one JSON file each, under a keyed content hash."""

    def __init__(self, root: Path, secret: bytes):
        self.root = Path(root)
        self._secret = secret

    def key(self, model: str, prompt: Prompt, text: str) -> str:
        """The keyed hash of (model, prompt id + version, text)."""
        return keyed_hex(self._secret, "llm-phi", model, prompt.key, text, n=64)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[Span] | None:
        """The cached spans, or None when this report was not asked yet."""
        path = self._path(key)
        if not path.exists():
            return None
        return [(int(s), int(e), str(k)) for s, e, k in read_json(path)["spans"]]

    def put(self, key: str, spans: list[Span]) -> None:
        """Store the spans (no fsync: a lost entry is only asked again)."""
        data = dumps({"spans": [list(s) for s in spans]}).encode("utf-8")
        atomic_write_bytes(self._path(key), data, durable=False)


class LLMPhiPass:
    """Ask the configured model for the PHI of report texts, with the span cache.

    ``calls`` counts requests sent, ``cache_hits`` reports answered from the cache and
    ``missed`` strings of the model that were not found in their report.
    """

    def __init__(self, cfg: LLMConfig, cache_dir: Path, secret: bytes):
        self.cfg = cfg
        self.client = LLMClient(cfg, Path(cache_dir), store_answers=False)
        self.cache = SpanCache(Path(cache_dir) / "spans", secret)
        self.cache_hits = 0
        self.missed = 0

    @property
    def calls(self) -> int:
        """Requests sent to the server so far."""
        return self.client.calls

    def spans(self, text: str, lang: str) -> tuple[Span, ...]:
        """The model's PHI spans of ``text`` (``lang``: de or en); LLMPhiError when the model
        gave no valid answer."""
        prompt = load_prompt(TASK, "de" if lang == "de" else "en")
        key = self.cache.key(self.cfg.model, prompt, text)
        cached = self.cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            return tuple(cached)
        [answer] = self.client.complete_many([Request(prompt, {"text": text})])
        if isinstance(answer, Exception):
            raise LLMPhiError(f"the LLM PHI pass got no valid answer ({type(answer).__name__})")
        spans, missed = locate(text, answer["phi"])
        self.missed += missed
        self.cache.put(key, spans)
        return tuple(spans)
