"""Colour decontamination of a cut-out's soft edge: the photo's background colour out of the band.

A pixel on the product's edge in a catalog photo is a mix of the product and the backdrop,
``I = t * F + (1 - t) * B``. Pasted onto a new background with alpha ``a`` it keeps its share of
the old backdrop, so a dark strap cut from white paper carries a light outline on a dark set. For
the pixels of the soft band (0 < alpha < 255) :func:`decontaminate` estimates the pure product
colour instead: with ``B`` the photo's local background colour (the nearest pixel well outside the
mask) and ``P`` the nearest solid product colour (well inside it), the pixel's position along the
``B -> P`` line, ``s = (I - B) . (P - B) / |P - B|^2``, says how much backdrop it holds; it is
moved along the line by ``(1 - s) (P - B)``, so its component along the line becomes the
product's while the part off the line (the edge's own hue and detail) stays. A pixel already at
or beyond the product's colour (``s >= 1``) is kept. This is unmixing without dividing by the
alpha (``(I - (1 - a) B) / a`` blows up noise where ``a`` is small and keeps backdrop where the
mask's alpha is too high); where the product and backdrop colours barely differ (white on
white) there is no fringe to remove and the pixel is kept.

Pixels with alpha 255 are never changed (the product's own pixels stay the photo's, bit for bit),
nor are those with alpha 0 (they are not shown).
"""

from __future__ import annotations

import cv2
import numpy as np

from .maskops import disk, nearest_values

__all__ = ["decontaminate"]


def decontaminate(rgb: np.ndarray, alpha: np.ndarray, min_contrast: float = 12.0, reach: int = 2) -> np.ndarray:
    """``rgb`` (uint8 (H, W, 3)) with the backdrop colour removed from the soft edge band of
    ``alpha`` (uint8 (H, W)); a new array, equal to ``rgb`` wherever alpha is 0 or 255.

    ``reach``: the background and product colours are sampled at least this far (px) from the
    band, where the pixels are not mixed; ``min_contrast``: below this RGB distance between the
    two the pixel is left alone.
    """
    rgb = np.asarray(rgb)
    alpha = np.asarray(alpha)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match the image {rgb.shape[:2]}")
    out = rgb.copy()
    band = (alpha > 0) & (alpha < 255)
    if not band.any():
        return out
    solid = alpha == 255
    clear = alpha == 0
    if not solid.any() or not clear.any():
        return out
    # work on the band's box (plus room to sample both sides)
    ys, xs = np.nonzero(band)
    pad = 4 * reach + 8
    h, w = alpha.shape
    y0, y1 = max(0, int(ys.min()) - pad), min(h, int(ys.max()) + pad + 1)
    x0, x1 = max(0, int(xs.min()) - pad), min(w, int(xs.max()) + pad + 1)
    sl = (slice(y0, y1), slice(x0, x1))
    k = disk(reach)
    product = cv2.erode(solid[sl].astype(np.uint8), k) > 0
    backdrop = cv2.erode(clear[sl].astype(np.uint8), k) > 0
    # a product thinner than the erosion (a cord) has no "well inside": its solid pixels do
    product = product if product.any() else solid[sl]
    backdrop = backdrop if backdrop.any() else clear[sl]
    if not product.any() or not backdrop.any():
        return out
    img = rgb[sl].astype(np.float32)
    smooth = cv2.GaussianBlur(img, (0, 0), 1.0)  # the samples without JPEG noise and texture
    b_sl = band[sl]
    P = nearest_values(smooth, product)[b_sl]
    B = nearest_values(smooth, backdrop)[b_sl]
    ipx = img[b_sl]
    d = P - B
    dd = (d * d).sum(1)
    s = ((ipx - B) * d).sum(1) / np.maximum(dd, 1e-6)
    shift = np.clip(1.0 - s, 0.0, 1.0)
    shift[dd < min_contrast**2] = 0.0
    fixed = np.clip(ipx + shift[:, None] * d + 0.5, 0, 255).astype(np.uint8)
    region = out[sl]
    region[b_sl] = fixed
    return out
