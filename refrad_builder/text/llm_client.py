"""One OpenAI-compatible async client for vLLM and llama.cpp servers, with a persistent cache.

Structured output differs by server: vLLM 0.33 takes
``response_format={"type": "json_schema", "json_schema": {...}}`` (and silently ignores the old
``guided_json``); llama.cpp's server takes ``{"type": "json_object", "schema": ...}``. Every
answer is parsed as JSON and validated against the prompt's schema before it is cached or
returned: a failure raises :class:`LLMAnswerError` (an error of the item, retried by the next
run), never an empty success.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from refrad_builder.engine.config import LLMConfig
from refrad_builder.engine.io import atomic_write_bytes, dumps, read_json
from refrad_builder.text.answers import MODELS
from refrad_builder.text.prompts import Prompt


class LLMAnswerError(RuntimeError):
    """The model's answer was not valid JSON of the prompt's schema, or the server refused the
    request itself (400/413/422: too long, malformed). The same request gets the same result
    next time, so the text stage counts it as a rejected answer (``reason``), not a retry.
    The message has no content."""

    def __init__(self, message: str, reason: str = "llm_answer_unparsable"):
        super().__init__(message)
        self.reason = reason


class LLMUnavailable(RuntimeError):
    """The endpoint could not be reached or kept failing after retries."""


def response_format(flavor: str, prompt: Prompt) -> dict[str, Any]:
    """The structured-output request for the server flavour."""
    if flavor == "vllm":
        return {
            "type": "json_schema",
            "json_schema": {"name": prompt.id, "schema": prompt.output_schema, "strict": True},
        }
    if flavor == "llamacpp":
        return {"type": "json_object", "schema": prompt.output_schema}
    raise ValueError(f"unknown LLM flavour {flavor!r}")


@dataclass(frozen=True)
class Request:
    """One prompt with its variables."""

    prompt: Prompt
    variables: dict[str, Any]


class AnswerCache:
    """Answers keyed by (model, prompt id + version, input hash), one JSON file each."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @staticmethod
    def key(model: str, prompt: Prompt, variables: dict[str, Any]) -> str:
        blob = dumps({"model": model, "prompt": prompt.key, "input": variables})
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        return read_json(path)["answer"] if path.exists() else None

    def put(self, key: str, answer: dict[str, Any]) -> None:
        # No fsync: a cache entry lost in a crash is only asked again.
        data = dumps({"answer": answer}).encode("utf-8")
        atomic_write_bytes(self._path(key), data, durable=False)


class LLMClient:
    """Bounded-concurrency async client with timeouts, retries with backoff and a cache.

    ``store_answers=False`` neither reads nor writes the answer cache: for answers that quote
    their input (the PHI pass), which the caller caches in a form without it.
    """

    def __init__(self, cfg: LLMConfig, cache_dir: Path, store_answers: bool = True):
        self.cfg = cfg
        self.cache = AnswerCache(cache_dir)
        self.store_answers = store_answers
        self.calls = 0
        self.cache_hits = 0
        import openai  # noqa: F401 (imported once per worker, not inside the first batch)

    def _client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self.cfg.url,
            api_key=os.environ.get(self.cfg.api_key_env, "not-needed"),
            timeout=self.cfg.timeout_s,
            max_retries=self.cfg.max_retries,
        )

    async def _one(self, client, sem: asyncio.Semaphore, req: Request, key: str) -> dict[str, Any]:
        cached = self.cache.get(key) if self.store_answers else None
        if cached is not None:
            self.cache_hits += 1
            return cached
        async with sem:
            self.calls += 1
            try:
                # The SDK's raw POST (its retries, timeouts and errors) with a plain JSON body:
                # chat.completions.create walks every parameter, the nested output schema
                # included, through its type transforms, ~3 ms of CPU per request.
                resp = await client.post(
                    "/chat/completions",
                    cast_to=bytes,
                    body={
                        "model": self.cfg.model,
                        "messages": req.prompt.messages(**req.variables),
                        "response_format": response_format(self.cfg.flavor, req.prompt),
                        "temperature": self.cfg.temperature,
                        "max_tokens": self.cfg.max_tokens,
                    },
                )
            except Exception as exc:
                from openai import APIError, APIStatusError

                if isinstance(exc, APIStatusError) and exc.status_code in (400, 413, 422):
                    raise LLMAnswerError(
                        f"server refused the {req.prompt.key} request ({exc.status_code})",
                        "llm_request_refused",
                    ) from None
                if isinstance(exc, APIError | TimeoutError | OSError):
                    raise LLMUnavailable(f"LLM request failed ({type(exc).__name__})") from None
                raise
        try:
            content = json.loads(resp)["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMAnswerError(f"response to {req.prompt.key} is no chat completion") from None
        answer = parse_answer(content, req.prompt)
        if self.store_answers:
            self.cache.put(key, answer)
        return answer

    async def _many(self, requests: Sequence[Request]) -> list[dict[str, Any] | Exception]:
        sem = asyncio.Semaphore(max(1, self.cfg.concurrency))
        keys = [self.cache.key(self.cfg.model, r.prompt, r.variables) for r in requests]
        # Slices of one study share sentences: an identical request is sent once per batch.
        unique = dict(zip(keys, requests, strict=True))
        async with self._client() as client:
            answers = await asyncio.gather(
                *(self._one(client, sem, r, k) for k, r in unique.items()),
                return_exceptions=True,
            )
        by_key = dict(zip(unique, answers, strict=True))
        return [by_key[k] for k in keys]

    def complete_many(self, requests: Sequence[Request]) -> list[dict[str, Any] | Exception]:
        """Answers (or the exception of each failed request), in request order."""
        if not requests:
            return []
        return asyncio.run(self._many(requests))


def parse_answer(content: str, prompt: Prompt) -> dict[str, Any]:
    """The JSON answer validated against the prompt's schema and parsed into the task's
    pydantic model (refrad_builder.text.answers), or LLMAnswerError."""
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[text.find("{") :] if "{" in text else text
    try:
        answer = json.loads(text)
    except ValueError:
        raise LLMAnswerError(f"answer to {prompt.key} is not JSON") from None
    errors = list(prompt.validator.iter_errors(answer))
    if errors:
        path = "/".join(map(str, errors[0].path)) or "root"
        raise LLMAnswerError(f"answer to {prompt.key} violates its schema at {path}")
    model = MODELS.get(prompt.id)
    if model is not None:
        try:
            answer = model.model_validate(answer).model_dump(by_alias=True)
        except ValidationError:
            raise LLMAnswerError(f"answer to {prompt.key} does not fit its model") from None
    return answer
