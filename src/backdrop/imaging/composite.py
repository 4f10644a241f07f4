"""Paste the product back onto a generated background, exactly.

Inside the product (alpha 255) the creative's pixels are the scaled product's pixels, bit for
bit; only the soft edge band (0 < alpha < 255) is blended with the background.
"""

from __future__ import annotations

import numpy as np

from .layout import Scene


def composite(background: np.ndarray, scene: Scene) -> np.ndarray:
    """The creative: ``background`` (H, W, 3) uint8 with ``scene``'s product on top."""
    if background.shape != (scene.height, scene.width, 3) or background.dtype != np.uint8:
        raise ValueError(f"background must be uint8 ({scene.height}, {scene.width}, 3), got {background.dtype} {background.shape}")
    out = background.copy()
    x0, y0, x1, y1 = scene.box
    a = scene.product_alpha[..., None].astype(np.uint16)
    region = out[y0:y1, x0:x1]
    # Integer blend: alpha 255 gives (fg * 255 + 127) // 255 == fg exactly, alpha 0 gives the background.
    blended = scene.product_rgb * a + region * (255 - a) + 127
    region[:] = (blended // 255).astype(np.uint8)
    return out


def exact_region_matches(creative: np.ndarray, scene: Scene) -> bool:
    """True when every fully opaque product pixel of ``creative`` equals the scene's product pixel."""
    x0, y0, x1, y1 = scene.box
    differs = (creative[y0:y1, x0:x1] != scene.product_rgb).any(axis=2)
    return not bool((differs & (scene.product_alpha == 255)).any())
