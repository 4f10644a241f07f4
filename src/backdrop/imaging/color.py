"""Colour helpers: a product's dominant colours, colour-space conversions for palettes."""

from __future__ import annotations

import cv2
import numpy as np


def dominant_colors(rgb: np.ndarray, alpha: np.ndarray, k: int = 4, seed: int = 0) -> tuple[tuple[int, int, int], ...]:
    """Up to ``k`` dominant colours of the opaque product pixels, most frequent first."""
    pixels = rgb[alpha >= 200].reshape(-1, 3)
    if pixels.shape[0] == 0:
        pixels = rgb.reshape(-1, 3)
    if pixels.shape[0] > 20000:
        rng = np.random.default_rng(seed)
        pixels = pixels[rng.choice(pixels.shape[0], 20000, replace=False)]
    k = max(1, min(k, pixels.shape[0]))
    data = pixels.astype(np.float32)
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, labels, centers = cv2.kmeans(data, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)  # no initial labels
    counts = np.bincount(labels.ravel(), minlength=k)
    order = np.argsort(-counts)

    def as_rgb(c: np.ndarray) -> tuple[int, int, int]:
        return int(round(c[0])), int(round(c[1])), int(round(c[2]))

    return tuple(as_rgb(centers[i]) for i in order if counts[i] > 0)
