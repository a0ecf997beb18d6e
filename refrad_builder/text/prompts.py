"""LLM prompts as versioned data files: ``prompts/<task>.<lang>.yaml``.

Each file declares ``id``, ``version``, ``language``, the ``system`` and ``user`` templates
(``str.format`` fields) and the JSON Schema of the answer (``output_schema``). The cache key
of an answer includes the prompt id and version, so editing a prompt and bumping its version
invalidates exactly its answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft202012Validator


@dataclass(frozen=True)
class Prompt:
    """One prompt file."""

    id: str
    version: int
    language: str
    system: str
    user: str
    output_schema: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.id}.{self.language}@{self.version}"

    @cached_property
    def validator(self) -> Draft202012Validator:
        """The compiled validator of ``output_schema`` (built once per prompt)."""
        return Draft202012Validator(self.output_schema)

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        """Chat messages with the variables filled in."""
        msgs = []
        if self.system.strip():
            msgs.append({"role": "system", "content": self.system.strip()})
        msgs.append({"role": "user", "content": self.user.format(**variables).strip()})
        return msgs


class PromptError(ValueError):
    """A prompt file that does not declare what it must."""


@lru_cache(maxsize=64)
def load_prompt(task: str, language: str) -> Prompt:
    """The prompt for ``task`` in ``language`` (from the packaged ``prompts/`` folder)."""
    name = f"{task}.{language}.yaml"
    files = resources.files("refrad_builder.prompt_files")
    try:
        data = yaml.safe_load(files.joinpath(name).read_text("utf-8"))
    except FileNotFoundError:
        raise PromptError(f"no prompt file {name}") from None
    for field in ("id", "version", "language", "user", "output_schema"):
        if field not in data:
            raise PromptError(f"prompt {name} lacks {field!r}")
    Draft202012Validator.check_schema(data["output_schema"])
    return Prompt(
        id=data["id"],
        version=int(data["version"]),
        language=data["language"],
        system=data.get("system", ""),
        user=data["user"],
        output_schema=data["output_schema"],
    )
