"""An optional learned PHI recognizer: a local transformer token-classification model as a
presidio recognizer, its spans unioned with the rules.

Users who hold a de-identification model (a Hugging Face folder: config, weights, tokenizer)
point ``report.learned_recognizer`` at it; nothing is downloaded (``local_files_only``).
``report.learned_labels`` maps the model's entity groups (``PER``, ``B-PER`` and ``I-PER``
alike) to the scrubber's PHI kinds; labels it does not map are ignored. Needs the
``deid-learned`` extra (``transformers`` with torch).
"""

from __future__ import annotations

import functools
from pathlib import Path

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from refrad_builder.reports.phi.base import span_result

# The scrubber's kinds a model label may map to.
KINDS = ("NAME", "DATE", "PHONE", "EMAIL", "URL", "ID", "ADDR", "INST", "AGE")
DEFAULT_LABELS = {
    "PER": "NAME",
    "PERSON": "NAME",
    "NAME": "NAME",
    "PATIENT": "NAME",
    "DOCTOR": "NAME",
    "DATE": "DATE",
    "ID": "ID",
    "IDNUM": "ID",
    "MEDICALRECORD": "ID",
    "PHONE": "PHONE",
    "EMAIL": "EMAIL",
    "URL": "URL",
    "LOC": "ADDR",
    "LOCATION": "ADDR",
    "ADDRESS": "ADDR",
    "STREET": "ADDR",
    "CITY": "ADDR",
    "ORG": "INST",
    "HOSPITAL": "INST",
    "AGE": "AGE",
}
MIN_SCORE = 0.5


class LearnedModelError(ValueError):
    """The learned recognizer cannot be used (folder missing, extra not installed)."""


def check_model_folder(path: Path) -> Path:
    """``path`` as a folder holding a model's ``config.json``, or LearnedModelError."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise LearnedModelError(
            f"report.learned_recognizer: no model folder at {path} (a local transformers "
            "token-classification model is needed; nothing is downloaded)"
        )
    if not (path / "config.json").is_file():
        raise LearnedModelError(
            f"report.learned_recognizer: {path} holds no config.json (save the model with "
            "save_pretrained, tokenizer included)"
        )
    return path


def _label_key(label: str) -> str:
    label = label.upper()
    return label[2:] if label[:2] in ("B-", "I-", "E-", "S-", "L-", "U-") else label


class LearnedRecognizer(EntityRecognizer):
    """A ``transformers`` token-classification pipeline over a local folder as a presidio
    recognizer (both languages)."""

    def __init__(self, path: Path, labels: dict[str, str], language: str):
        self.path = check_model_folder(path)
        self.labels = {_label_key(k): v for k, v in labels.items()}
        unknown = sorted(set(self.labels.values()) - set(KINDS))
        if unknown:
            raise LearnedModelError(f"report.learned_labels: unknown PHI kinds {unknown}")
        super().__init__(
            supported_entities=sorted(set(self.labels.values())),
            name=f"learned_{language}",
            supported_language=language,
        )

    def load(self) -> None:
        """Nothing here: the pipeline is loaded once per process (see :func:`_pipeline`)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Spans the model labels with a mapped label, with the model's score."""
        out = []
        for ent in _pipeline(str(self.path))(text):
            kind = self.labels.get(_label_key(str(ent.get("entity_group", ""))))
            score = float(ent.get("score", 0.0))
            s, e = ent.get("start"), ent.get("end")
            if kind is None or s is None or e is None or e <= s or score < MIN_SCORE:
                continue
            if entities and kind not in entities:
                continue
            out.append(span_result(self, kind, int(s), int(e), score, "model"))
        return out


def _hide_broken_torchvision() -> None:
    """A text model needs no torchvision; a torchvision built for another torch (the segment
    extra's, CUDA build beside the CPU torch) breaks transformers' model imports. When it
    does not import, transformers is told it is absent."""
    import sys

    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # type: ignore[assignment]
        if "transformers" in sys.modules:  # its availability checks are cached
            from transformers.utils import import_utils

            for name in dir(import_utils):
                check = getattr(import_utils, name)
                if name.startswith("is_") and hasattr(check, "cache_clear"):
                    check.cache_clear()


@functools.lru_cache(maxsize=2)
def _pipeline(path: str):
    _hide_broken_torchvision()
    try:
        from transformers import (
            AutoModelForTokenClassification,
            AutoTokenizer,
            pipeline,
        )
    except ImportError:
        raise LearnedModelError(
            "report.learned_recognizer needs transformers: pip install 'refrad-builder[deid-learned]'"
        ) from None
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForTokenClassification.from_pretrained(path, local_files_only=True)
    model.eval()
    return pipeline(
        "token-classification",
        model=model,
        tokenizer=tokenizer,
        aggregation_strategy="simple",
        device=-1,
    )


def learned_spec(path: Path | None, labels: dict[str, str] | None):
    """The analyzer's key for a configured model (``report.learned_recognizer`` and
    ``report.learned_labels``, the common labels when empty), or None without one."""
    if path is None:
        return None
    chosen = labels or DEFAULT_LABELS
    return str(Path(path).expanduser()), tuple(sorted(chosen.items()))
