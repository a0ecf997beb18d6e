"""Optional OCR check for the Clean Pixel Data policy: does an image show text?

Uses ``pytesseract`` with the ``tesseract`` binary when both are installed; neither is a
dependency. When they are missing, or the pixels cannot be decoded, the answer is "unknown"
(None) and the caller drops the instance: only a check that ran and found nothing keeps it.
Nothing recognised is ever logged or returned, only whether something was.
"""

from __future__ import annotations

import importlib.util
import re
import shutil

import numpy as np
from pydicom.dataset import Dataset

# Two or more letters or digits in a row: a word, a number, a date fragment.
_TEXT = re.compile(r"[A-Za-z0-9]{2,}")
MAX_FRAMES = 4


def available() -> bool:
    """Whether pytesseract and the tesseract binary are both installed."""
    return importlib.util.find_spec("pytesseract") is not None and bool(shutil.which("tesseract"))


def _frames(ds: Dataset) -> list[np.ndarray]:
    arr = np.asarray(ds.pixel_array)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        picks = np.linspace(0, arr.shape[0] - 1, num=min(frames, MAX_FRAMES)).astype(int)
        out = [arr[i] for i in picks]
    else:
        out = [arr]
    if samples > 1:
        out = [f.mean(axis=-1) for f in out]
    return out


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    frame = frame.astype(np.float64)
    lo, hi = np.percentile(frame, [0.5, 99.5])
    if hi <= lo:
        return np.zeros(frame.shape, dtype=np.uint8)
    return (np.clip((frame - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _ocr(image: np.ndarray) -> str:  # pragma: no cover - needs the tesseract binary
    import pytesseract
    from PIL import Image

    return pytesseract.image_to_string(Image.fromarray(image))


def shows_text(ds: Dataset) -> bool | None:
    """True when OCR reads text in the image, False when it reads none, None when unknown."""
    if not available():
        return None
    try:
        frames = _frames(ds)
    except Exception:
        return None
    try:
        for frame in frames:
            image = _to_uint8(frame)
            if _TEXT.search(_ocr(image)) or _TEXT.search(_ocr(255 - image)):
                return True
    except Exception:
        return None
    return False
