"""Display windows: stored slice values -> uint8 images for previews and the trainer.

CT: one channel per HU window (lung, soft tissue, brain by default), clipped linear.
MR: one percentile window, replicated to three channels. Windows carry centre/width; MR
percentile windows are in *stored* units (the PNG values), CT windows in HU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

DEFAULT_MR_PERCENTILES = (0.5, 99.5)


def _center_width(window: Any) -> tuple[float, float]:
    if isinstance(window, Mapping):
        return float(window["center"]), float(window["width"])
    return float(window.center), float(window.width)


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Clipped linear window: ``center - width/2`` -> 0, ``center + width/2`` -> 255."""
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    lo = center - width / 2.0
    scaled = (np.asarray(values, dtype=np.float64) - lo) / width
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def apply_ct_windows(hu_2d: np.ndarray, windows: Iterable[Any]) -> np.ndarray:
    """HU image (H, W) -> uint8 (H, W, N), one channel per window in the given order.

    ``windows`` are :class:`~refrad_builder.engine.records.Window`/``WindowConfig`` objects or dicts
    with ``center`` and ``width``; the default three CT windows give an RGB-like image.
    """
    hu = np.asarray(hu_2d)
    if hu.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {hu.shape}")
    channels = [apply_window(hu, *_center_width(w)) for w in windows]
    if not channels:
        raise ValueError("at least one window is needed")
    return np.stack(channels, axis=-1)


def percentile_window(
    img: np.ndarray, lo: float = DEFAULT_MR_PERCENTILES[0], hi: float = DEFAULT_MR_PERCENTILES[1]
) -> tuple[float, float]:
    """(centre, width) spanning the ``lo``..``hi`` percentiles of ``img`` (width >= 1)."""
    arr = np.asarray(img, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("empty image")
    p_lo, p_hi = np.percentile(arr, [lo, hi])
    width = max(float(p_hi - p_lo), 1.0)
    return float(p_lo) + width / 2.0, width


def mr_percentile_scale(
    img: np.ndarray, lo: float = DEFAULT_MR_PERCENTILES[0], hi: float = DEFAULT_MR_PERCENTILES[1]
) -> np.ndarray:
    """MR image (H, W) -> uint8 (H, W): the ``lo``..``hi`` percentiles stretched to 0..255."""
    center, width = percentile_window(img, lo, hi)
    return apply_window(img, center, width)


def _three_channels(channels: np.ndarray) -> np.ndarray:
    n = channels.shape[-1]
    if n == 3:
        return channels
    # Fewer windows than channels repeat cyclically; extra windows beyond three are not shown.
    idx = [i % n for i in range(3)]
    return np.ascontiguousarray(channels[..., idx])


def stored_to_display(stored: np.ndarray, sample_json: Any) -> np.ndarray:
    """A stored 16-bit slice and its sample/slice JSON -> uint8 (H, W, 3) for display.

    CT (``units == "HU"``): stored values are rescaled to HU with ``rescale_slope`` and
    ``rescale_intercept`` and shown through the recorded windows (the default CT windows if
    none are recorded). MR: the recorded percentile window (stored units) or, if absent, a
    fresh 0.5/99.5 percentile stretch, replicated to three channels.
    """
    meta = sample_json if isinstance(sample_json, Mapping) else sample_json.model_dump()
    arr = np.asarray(stored)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2D stored image, got shape {arr.shape}")
    windows = list(meta.get("windows") or [])
    if meta.get("units") == "HU":
        hu = arr.astype(np.float64) * float(meta.get("rescale_slope", 1.0)) + float(
            meta.get("rescale_intercept", 0.0)
        )
        if not windows:
            from refrad_builder.engine.config import SlicesConfig

            windows = SlicesConfig().ct_windows
        return _three_channels(apply_ct_windows(hu, windows))
    if windows:
        named = [w for w in windows if _name(w) == "percentile"]
        gray = apply_window(arr, *_center_width((named or windows)[0]))
    else:
        gray = mr_percentile_scale(arr)
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))


def _name(window: Any) -> str | None:
    return window.get("name") if isinstance(window, Mapping) else getattr(window, "name", None)
