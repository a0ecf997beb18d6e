"""JSON Schemas generated from the pydantic records (the committed ``schemas/`` folder).

``python -m refrad_builder.publish.schema_gen [DIR]`` (``make schemas``) rewrites them; a test fails
when the committed files differ from what the records generate.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from refrad_builder.engine.records import (
    SCHEMA_VERSION,
    IndexRow,
    Reject,
    ReportRecord,
    RunSummary,
    Sample,
    ShardIndex,
)
from refrad_builder.publish.refrad2d.models import (
    Refrad2DLabelMap,
    Refrad2DManifest,
    Refrad2DReportRow,
    Refrad2DSampledIndex,
    Refrad2DSegmentIndex,
    Refrad2DSnippetIndex,
)

MODELS: dict[str, type[BaseModel]] = {
    "sample": Sample,
    "index_row": IndexRow,
    "reject_row": Reject,
    "shard_index": ShardIndex,
    "run_summary": RunSummary,
    "report_analysis": ReportRecord,
    "refrad2d_report_row": Refrad2DReportRow,
    "refrad2d_segment_index": Refrad2DSegmentIndex,
    "refrad2d_sampled_index": Refrad2DSampledIndex,
    "refrad2d_snippet_index": Refrad2DSnippetIndex,
    "refrad2d_label_map": Refrad2DLabelMap,
    "refrad2d_manifest": Refrad2DManifest,
}


def generate() -> dict[str, str]:
    """File name -> JSON text for every schema."""
    out = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema(by_alias=True, mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"refrad_builder/{name}/{SCHEMA_VERSION}"
        schema["x-schema-version"] = SCHEMA_VERSION
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def load(name: str) -> dict:
    """A committed schema by name (works from a checkout and from an installed wheel)."""
    files = resources.files("refrad_builder.schema_files")
    return json.loads(files.joinpath(f"{name}.schema.json").read_text("utf-8"))


def write(target: Path) -> list[Path]:
    """Write every schema into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in generate().items():
        (target / fname).write_text(text, encoding="utf-8")
        written.append(target / fname)
    return written


if __name__ == "__main__":
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[2] / "schemas"
    for path in write(dest):
        print(path)
