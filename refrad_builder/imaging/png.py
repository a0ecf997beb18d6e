"""Deterministic, lossless grayscale PNG encode/decode (8-bit and 16-bit) with Pillow.

The same array always gives the same bytes: fixed compression settings and no ancillary
chunks (no time, text or gamma), so blobs and shard checksums are stable across reruns.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

COMPRESS_LEVEL = 6


def encode_png(array: np.ndarray) -> bytes:
    """Encode a 2D ``uint8`` or ``uint16`` array as a grayscale PNG (8 or 16 bit)."""
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2D array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        img = Image.fromarray(np.ascontiguousarray(arr))
    elif arr.dtype.kind == "u" and arr.dtype.itemsize == 2:
        # Little-endian uint16 maps to Pillow's "I;16" on every host; the writer byte-swaps.
        img = Image.fromarray(np.ascontiguousarray(arr.astype("<u2", copy=False)))
    else:
        raise ValueError(f"expected uint8 or uint16, got {arr.dtype}")
    if img.mode not in ("L", "I;16"):
        raise ValueError(f"unexpected Pillow mode {img.mode}")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decode a grayscale PNG made by :func:`encode_png` to ``uint8`` or ``uint16``."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        mode = img.mode
        if mode == "L":
            return np.array(img, dtype=np.uint8)
        if mode in ("I;16", "I;16B", "I;16L"):
            return np.array(img).astype(np.uint16, copy=False)
        if mode == "I":
            arr = np.array(img)
            if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
                raise ValueError("32-bit PNG values outside the uint16 range")
            return arr.astype(np.uint16)
    raise ValueError(f"not a grayscale 8/16-bit PNG (mode {mode})")
