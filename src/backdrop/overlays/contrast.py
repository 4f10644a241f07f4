"""WCAG 2.x contrast, measured on pixels: text must reach 4.5:1 against what lies under it.

>>> round(contrast_ratio((255, 255, 255), (0, 0, 0)), 1)
21.0
>>> round(contrast_ratio((118, 118, 118), (255, 255, 255)), 2)
4.54
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: WCAG 2.x, normal-size text (AA)
MIN_CONTRAST = 4.5


def relative_luminance(rgb: np.ndarray | Sequence[float]) -> np.ndarray:
    """WCAG relative luminance of sRGB values 0-255 (any shape ending in 3)."""
    c = np.asarray(rgb, np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def contrast_ratio(a, b) -> float:
    la, lb = float(relative_luminance(a)), float(relative_luminance(b))
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def worst_contrast(colour: Sequence[int], background: np.ndarray) -> float:
    """The lowest contrast ``colour`` has against the pixels of ``background`` (any (..., 3) array),
    over its 2nd to 98th luminance percentiles (a stray pixel of grain does not count, a bright
    patch under half a word does)."""
    lum = relative_luminance(background.reshape(-1, 3))
    lo, hi = np.percentile(lum, [2, 98])
    lc = float(relative_luminance(colour))
    return min((max(lc, x) + 0.05) / (min(lc, x) + 0.05) for x in (float(lo), float(hi)))
