"""From a hard mask to a soft matte: boundary refinement, GrabCut, and soft edges."""

from __future__ import annotations

import cv2
import numpy as np

from .maskops import disk, nearest_values, resize


def refine_boundary(
    rgb: np.ndarray,
    mask: np.ndarray,
    band: int = 1,
    min_contrast: float = 12.0,
    blur: float = 1.0,
    max_reach: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-decide the pixels within ``band`` px of the mask's boundary by colour unmixing.

    Each boundary pixel is modelled as ``a * F + (1 - a) * B`` with F the colour of the nearest
    pixel well inside the mask and B that of the nearest pixel well outside; it is product when
    ``a >= 0.5``. Only where F and B differ enough and the pixel lies near the F-B line; elsewhere
    (white on white) the mask is kept. With ``max_reach``, also only where both samples lie within
    that many px: a strap, cord or ring thinner than the band has no "well inside" of its own,
    and the nearest product colour elsewhere (a dark bag body for a chrome ring) would unmix it
    away. Returns (mask, a, reliable).
    """
    m8 = mask.astype(np.uint8)
    inner = cv2.erode(m8, disk(band + 1)) > 0
    outer = cv2.dilate(m8, disk(band + 1)) == 0
    alpha = mask.astype(np.float32)
    if not inner.any() or not outer.any():
        return mask, alpha, np.zeros(mask.shape, bool)
    zone = (cv2.dilate(m8, disk(band)) > 0) & ~(cv2.erode(m8, disk(band)) > 0)
    ys, xs = np.nonzero(zone)
    y0, y1 = max(0, ys.min() - 2 * band - 4), min(mask.shape[0], ys.max() + 2 * band + 5)
    x0, x1 = max(0, xs.min() - 2 * band - 4), min(mask.shape[1], xs.max() + 2 * band + 5)
    sl = (slice(y0, y1), slice(x0, x1))
    f = rgb[sl].astype(np.float32)
    fs = cv2.GaussianBlur(f, (0, 0), blur) if blur else f
    inner_s, outer_s = inner[sl], outer[sl]
    if not inner_s.any() or not outer_s.any():
        return mask, alpha, np.zeros(mask.shape, bool)
    F = nearest_values(fs, inner_s)
    B = nearest_values(fs, outer_s)
    near = np.ones(inner_s.shape, bool)
    if max_reach is not None:
        d_in = cv2.distanceTransform((~inner_s).astype(np.uint8), cv2.DIST_L2, 3)
        d_out = cv2.distanceTransform((~outer_s).astype(np.uint8), cv2.DIST_L2, 3)
        near = (d_in <= max_reach) & (d_out <= max_reach)
    d = F - B
    dd = (d * d).sum(2)
    a = ((f - B) * d).sum(2) / np.maximum(dd, 1e-6)
    resid = np.sqrt((((f - B) - a[..., None] * d) ** 2).sum(2))
    ok = zone[sl] & near & (dd > min_contrast**2) & (resid < 0.35 * np.sqrt(dd) + 4.0)
    out = mask.copy()
    sub = out[sl]
    sub[ok] = a[ok] >= 0.5
    reliable = np.zeros(mask.shape, bool)
    reliable[sl] = ok
    alpha[sl] = np.where(ok, np.clip(a, 0.0, 1.0), alpha[sl])
    return out, alpha, reliable


def soft_mask(
    mask: np.ndarray,
    alpha: np.ndarray | None = None,
    reliable: np.ndarray | None = None,
    width: int = 1,
) -> np.ndarray:
    """uint8 mask: 255 inside, 0 outside, soft values within ``width`` px of the boundary.

    In that band the value is the unmixed alpha where it is reliable, otherwise a feathered
    (blurred) edge; it always stays on the right side of 128, so ``out >= 128`` == ``mask``.
    """
    m8 = mask.astype(np.uint8)
    band = (cv2.dilate(m8, disk(width)) > 0) & ~(cv2.erode(m8, disk(width)) > 0)
    feather = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.8)
    soft = feather
    if alpha is not None and reliable is not None:
        soft = np.where(reliable, alpha, feather)
    val = np.where(mask, np.maximum(soft, 0.5), np.minimum(soft, 0.5))
    out = np.where(mask, 255, 0).astype(np.uint8)
    v = np.clip(np.round(val[band] * 255.0), 0, 255).astype(np.uint8)
    inside = mask[band]
    v = np.where(inside, np.maximum(v, 128), np.minimum(v, 127)).astype(np.uint8)
    out[band] = v
    return out


def upscale_mask(mask8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A soft mask computed at a working scale, back at full size (interior 255, exterior 0)."""
    if (mask8.shape[1], mask8.shape[0]) == tuple(size):
        return mask8
    up = cv2.resize(mask8.astype(np.float32) / 255.0, size, interpolation=cv2.INTER_LINEAR)
    return soft_mask(up >= 0.5, up, np.ones(up.shape, bool))


def refine_edge(rgb: np.ndarray, mask8: np.ndarray, band: int = 2, snap: float = 0.04) -> np.ndarray:
    """The soft edge of a mask made at a working scale, re-decided on the full-size photo.

    A mask scaled back up puts its edge up to a couple of pixels off the photo's and its soft
    values do not follow the photo's own anti-aliasing: backdrop-coloured pixels end up fully
    opaque (a light fringe on a dark set) or product pixels transparent. Within ``band`` px of
    the edge each pixel is unmixed between the nearest product and backdrop colours
    (:func:`refine_boundary`, samples within ``2 * band + 3`` px so thin parts keep the scaled
    mask's decision) and gets that alpha (within ``snap`` of 0 or 1: exactly 0 or 255); elsewhere
    the scaled mask's soft value stays.
    """
    hard = mask8 >= 128
    if not hard.any() or hard.all():
        return mask8
    mask, a, reliable = refine_boundary(rgb, hard, band=band, max_reach=2 * band + 3)
    # a pixel or two of JPEG ringing decided "product" off the edge is no part of it, nor is a
    # pinhole the unmixing opened in it
    changed = mask != hard
    if changed.any():
        # specks: small parts of the new mask that were no small part of the old one
        n, lab, st = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)[:3]
        _, lab0, st0 = cv2.connectedComponentsWithStats(hard.astype(np.uint8), connectivity=8)[:3]
        small0 = st0[:, cv2.CC_STAT_AREA] < 16
        was_small = np.bincount(lab[mask & small0[lab0] & (lab0 > 0)], minlength=n) > 0
        drop = (st[:, cv2.CC_STAT_AREA] < 16) & ~was_small
        drop[0] = False
        mask = mask & ~drop[lab]
        # pinholes: small holes that were none
        n, lab, st = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=8)[:3]
        was_out = np.bincount(lab[~mask & ~hard], minlength=n) > 0
        fill = (st[:, cv2.CC_STAT_AREA] < 16) & ~was_out
        mask = mask | fill[lab]
        reliable &= mask == (a >= 0.5)
    a = np.where(reliable, a, mask8.astype(np.float32) / 255.0)
    a = np.where(a <= snap, 0.0, np.where(a >= 1.0 - snap, 1.0, a))
    return soft_mask(mask, a, np.ones(mask.shape, bool), width=band)


def grabcut_refine(
    rgb: np.ndarray,
    mask: np.ndarray,
    sure_bg: np.ndarray | None = None,
    side: int = 320,
    iterations: int = 3,
    ring_frac: float = 0.03,
) -> np.ndarray:
    """GrabCut seeded by ``mask``: eroded core = sure product, a ring around it = unsure, far
    away (and ``sure_bg``) = sure background. Runs on the product's box scaled to ``side`` px."""
    h, w = mask.shape
    if not mask.any():
        return mask
    m8 = mask.astype(np.uint8)
    r = max(2, int(ring_frac * np.sqrt(mask.sum())))
    seeds = np.full((h, w), cv2.GC_BGD, np.uint8)
    ring = cv2.dilate(m8, disk(2 * r)) > 0
    seeds[ring] = cv2.GC_PR_BGD
    seeds[mask] = cv2.GC_PR_FGD
    core = cv2.erode(m8, disk(r)) > 0
    seeds[core] = cv2.GC_FGD
    if sure_bg is not None:
        seeds[sure_bg & ~core] = cv2.GC_BGD
    ys, xs = np.nonzero(ring)
    y0, y1 = max(0, ys.min() - 4), min(h, ys.max() + 5)
    x0, x1 = max(0, xs.min() - 4), min(w, xs.max() + 5)
    img: np.ndarray = rgb[y0:y1, x0:x1]
    sm: np.ndarray = seeds[y0:y1, x0:x1]
    s = min(1.0, side / max(img.shape[:2]))
    if s < 1.0:
        size = (max(1, int(round(img.shape[1] * s))), max(1, int(round(img.shape[0] * s))))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        sm = cv2.resize(sm, size, interpolation=cv2.INTER_NEAREST)
    img, sm = np.ascontiguousarray(img), np.ascontiguousarray(sm)
    is_fg = (sm == cv2.GC_FGD) | (sm == cv2.GC_PR_FGD)
    if is_fg.all() or not is_fg.any():
        return mask
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random: keep it deterministic
    try:
        # the stub types rect as a required Rect, but OpenCV accepts None with GC_INIT_WITH_MASK
        cv2.grabCut(img, sm, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    except cv2.error:
        return mask
    p = ((sm == cv2.GC_FGD) | (sm == cv2.GC_PR_FGD)).astype(np.float32)
    p = resize(p, (x1 - x0, y1 - y0))
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = p >= 0.5
    return out
