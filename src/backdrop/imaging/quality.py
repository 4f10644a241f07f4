"""Quality scores of a creative.

``edge_contrast`` measures how well the product separates from its background: the mean
CIE76 colour difference (Delta E in Lab) between a thin ring just inside the product's outline
and a ring just outside it. Below ~10 a product tends to melt into the scene (white sneaker on
a white sweep); the report shows it so such creatives can be spotted.
"""

from __future__ import annotations

import cv2
import numpy as np

from .layout import Scene


def _rings(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    m = mask.astype(np.uint8)
    inner = m & ~cv2.erode(m, kernel) & 1
    outer = cv2.dilate(m, kernel) & ~m & 1
    return inner.astype(bool), outer.astype(bool)


def edge_contrast(creative: np.ndarray, scene: Scene, ring: int = 6) -> float:
    x0, y0, x1, y1 = scene.box
    pad = ring + 2
    X0, Y0 = max(0, x0 - pad), max(0, y0 - pad)
    X1, Y1 = min(scene.width, x1 + pad), min(scene.height, y1 + pad)
    mask = scene.canvas_mask()[Y0:Y1, X0:X1]
    inner, outer = _rings(mask, ring)
    if not inner.any() or not outer.any():
        return 0.0
    lab = cv2.cvtColor(creative[Y0:Y1, X0:X1], cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return float(np.linalg.norm(lab[inner].mean(0) - lab[outer].mean(0)))


def procedural_quality(creative: np.ndarray, scene: Scene) -> dict:
    mask = scene.product_alpha >= 128
    return {
        "edge_contrast": round(edge_contrast(creative, scene), 2),
        "product_share": round(float(mask.sum()) / (scene.width * scene.height), 4),
    }
