"""The catalog photo itself on a placement's canvas: the baseline creative every experiment compares with.

The photo is scaled and placed exactly as the styled creatives place the product (the same
:class:`~backdrop.imaging.layout.Scene`: same scale, same position, cut sides flush with the canvas
edge), and the rest of the canvas is a plain backdrop in the photo's own background colour:

- a photo on a background (a packshot on white, an on-model shot on a studio grey): the median of
  its border outside the product, the colour the photographer shot it on. Everything the photo
  shows comes along (its shadow, the background in a bag's handle). Where the photo's edge lies
  inside the canvas, the photo's background is continued past it (its low frequencies: the
  background with the product left out, shrunk to ~48 px and grown back) and relaxes into the
  plain colour over a quarter of the canvas, so a studio grey with a vignette or a gradient shows
  no seam; a short ramp hides the photo's grain at the edge;
- a cut-out (a meaningful alpha channel: there is no background colour to take): white
  (:data:`CUTOUT_FILL`), the marketplace standard. Measured on the Saleor cut-outs, white keeps
  even the white products' outlines (shaded 215-225 grey) 11-15 Delta E off the backdrop; a light
  grey would halve that. The cut-out is laid over it with its own alpha, its baked-in drop shadow
  included when the canvas shows all of it; else only what lies in the product's own box (a
  shadow cut off by the canvas edge looks like a smudge).

Then the product is pasted on top with :func:`~backdrop.imaging.composite.composite`, so its
pixels are the scaled product's bit for bit, as in every other creative.
"""

from __future__ import annotations

import cv2
import numpy as np

from .layout import Scene, resize_premultiplied
from .mask import OBJECT_ALPHA, alpha_is_meaningful

#: bump when the pixels this module makes change (part of the creatives' key)
PLAIN_VERSION = "2"
#: the backdrop of a cut-out (an image with a meaningful alpha channel)
CUTOUT_FILL = (255, 255, 255)
#: the ramp over which a photo's edge inside the canvas blends into its continued background, as a
#: share of the canvas's shorter side
FEATHER = 0.02
#: how far past the photo's edge its background relaxes into the plain colour (share of the shorter side)
RELAX = 0.25
#: the side of the photo's background field, in pixels (its low frequencies only)
FIELD_PX = 48


def is_cutout(rgba: np.ndarray) -> bool:
    """A cut-out: an image whose alpha channel separates the product from nothing."""
    return rgba.ndim == 3 and rgba.shape[2] == 4 and alpha_is_meaningful(rgba)


def photo_fill(rgba: np.ndarray, alpha: np.ndarray | None = None) -> tuple[tuple[int, int, int], str]:
    """(the backdrop colour, where it came from: "border" or "cutout") of a product photo.

    ``rgba`` (H, W, 3 or 4) uint8; ``alpha`` the product's mask, whose pixels on the border are left
    out (a frame-cropped garment runs along the bottom edge) when enough border is left.
    """
    if is_cutout(rgba):
        return CUTOUT_FILL, "cutout"
    rgb = rgba[..., :3]
    h, w = rgb.shape[:2]
    ring = max(2, int(round(0.01 * min(h, w))))
    edge = np.zeros((h, w), bool)
    edge[:ring], edge[-ring:], edge[:, :ring], edge[:, -ring:] = True, True, True, True
    outside = edge & (alpha < OBJECT_ALPHA) if alpha is not None else edge
    take = outside if np.count_nonzero(outside) >= 0.1 * np.count_nonzero(edge) else edge
    colour = np.median(rgb[take].reshape(-1, 3), axis=0)
    r, g, b = (int(round(float(c))) for c in colour)
    return (r, g, b), "border"


def spec() -> dict:
    """What decides the pixels besides the photo, the mask and the scene (part of the key)."""
    return {
        "plain": PLAIN_VERSION,
        "cutout_fill": list(CUTOUT_FILL),
        "feather": FEATHER,
        "relax": RELAX,
        "field_px": FIELD_PX,
        "fill": "border median outside the product",
    }


def plain_background(rgba: np.ndarray, scene: Scene, fill: tuple[int, int, int], alpha: np.ndarray | None = None) -> np.ndarray:
    """The canvas (H, W, 3) uint8 under the product: the whole photo placed as ``scene`` places the
    product, on the plain ``fill``; ``alpha`` is the product's mask at the photo's size (default:
    none, the whole photo is background). A cut-out lies on ``fill`` with its own alpha; a photo's
    background is continued past its edges and relaxes into ``fill`` (see the module docstring).
    :func:`~backdrop.imaging.composite.composite` puts the product on it."""
    W, H = scene.width, scene.height
    h, w = rgba.shape[:2]
    bx0, by0, bx1, by1 = scene.source_box
    sx, sy = scene.product_alpha.shape[1] / (bx1 - bx0), scene.product_alpha.shape[0] / (by1 - by0)
    # canvas x of photo column u (edges): X = scene.x + (u - bx0) * sx; the photo's own rectangle
    rx0, rx1 = scene.x - bx0 * sx, scene.x + (w - bx0) * sx
    ry0, ry1 = scene.y - by0 * sy, scene.y + (h - by0) * sy
    cutout = is_cutout(rgba)
    if cutout:
        out = np.empty((H, W, 3), np.uint8)
        out[:] = fill
    else:
        out = _backdrop(rgba[..., :3], alpha, scene, fill, (sx, sy), (rx0, ry0, rx1, ry1))
    # the photo's columns and rows that land on the canvas (a pixel of margin for the resampling)
    u0 = max(0, int(np.floor(bx0 - scene.x / sx)) - 1)
    u1 = min(w, int(np.ceil(bx0 + (W - scene.x) / sx)) + 1)
    v0 = max(0, int(np.floor(by0 - scene.y / sy)) - 1)
    v1 = min(h, int(np.ceil(by0 + (H - scene.y) / sy)) + 1)
    if u1 <= u0 or v1 <= v0:
        return out
    # canvas position of the crop: the product's own box lands exactly on the scene's
    X0, X1 = scene.x + round((u0 - bx0) * sx), scene.box[2] + round((u1 - bx1) * sx)
    Y0, Y1 = scene.y + round((v0 - by0) * sy), scene.box[3] + round((v1 - by1) * sy)
    crop = rgba[v0:v1, u0:u1]
    if cutout:
        a = crop[..., 3]
        if not _fits(rgba[..., 3], scene, sx, sy):  # a drop shadow the canvas would cut: only what is in the product's box
            keep = np.zeros((h, w), bool)
            keep[by0:by1, bx0:bx1] = True
            a = np.where(keep[v0:v1, u0:u1], a, 0).astype(np.uint8)
    else:
        a = np.full(crop.shape[:2], 255, np.uint8)
    rgb, weight_u8 = resize_premultiplied(np.ascontiguousarray(crop[..., :3]), np.ascontiguousarray(a), (X1 - X0, Y1 - Y0))
    weight = weight_u8.astype(np.float32) / 255.0
    if not cutout:  # the photo's grain blends into its continued background at its edges inside the canvas
        ramp = max(3.0, FEATHER * min(W, H))
        weight *= _edge_ramp(X1 - X0, Y1 - Y0, ramp, left=rx0 > 0.5, right=rx1 < W - 0.5, top=ry0 > 0.5, bottom=ry1 < H - 0.5)
    cx0, cy0, cx1, cy1 = max(X0, 0), max(Y0, 0), min(X1, W), min(Y1, H)
    if cx1 <= cx0 or cy1 <= cy0:
        return out
    sl = np.s_[cy0 - Y0 : cy1 - Y0, cx0 - X0 : cx1 - X0]
    k = weight[sl][..., None]
    under = out[cy0:cy1, cx0:cx1].astype(np.float32)
    out[cy0:cy1, cx0:cx1] = np.clip(rgb[sl].astype(np.float32) * k + under * (1.0 - k) + 0.5, 0, 255).astype(np.uint8)
    return out


def _backdrop(rgb, alpha, scene: Scene, fill, scale, rect) -> np.ndarray:
    """The canvas without the photo: the photo's background field continued past its edges
    (clamped), relaxing into ``fill`` with the distance from the photo's rectangle."""
    W, H = scene.width, scene.height
    h, w = rgb.shape[:2]
    sx, sy = scale
    rx0, ry0, rx1, ry1 = rect
    field = _background_field(rgb, alpha)
    fh, fw = field.shape[:2]
    xs = np.arange(W, dtype=np.float32) + 0.5
    ys = np.arange(H, dtype=np.float32) + 0.5
    bx0, by0 = scene.source_box[:2]
    # photo coordinates of each canvas pixel, clamped to the photo (the field's border continues), in field pixels
    fu = np.clip((bx0 + (xs - scene.x) / sx) * fw / w - 0.5, 0, fw - 1).astype(np.float32)
    fv = np.clip((by0 + (ys - scene.y) / sy) * fh / h - 0.5, 0, fh - 1).astype(np.float32)
    mx, my = np.meshgrid(fu, fv)
    ext = cv2.remap(field, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # distance outside the photo's rectangle, in canvas pixels
    dx = np.maximum(np.maximum(rx0 - xs, xs - rx1), 0.0)
    dy = np.maximum(np.maximum(ry0 - ys, ys - ry1), 0.0)
    d = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    t = np.clip(d / max(1.0, RELAX * min(W, H)), 0.0, 1.0)
    k = (t * t * (3.0 - 2.0 * t))[..., None]
    plain = np.array(fill, np.float32)
    return np.clip(ext * (1.0 - k) + plain * k + 0.5, 0, 255).astype(np.uint8)


def _background_field(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """The photo's background at low resolution (float32, ~:data:`FIELD_PX` on the long side): the
    product (its mask, grown a little) left out and filled in from the background around it."""
    h, w = rgb.shape[:2]
    f = FIELD_PX / max(h, w)
    fw, fh = max(2, round(w * f)), max(2, round(h * f))
    bg = np.ones((h, w), np.float32)
    if alpha is not None:
        grown = cv2.dilate((alpha >= 16).astype(np.uint8), np.ones((5, 5), np.uint8), iterations=max(1, round(0.01 * max(h, w) / 2)))
        bg = (grown == 0).astype(np.float32)
    num = cv2.resize(rgb.astype(np.float32) * bg[..., None], (fw, fh), interpolation=cv2.INTER_AREA)
    den = cv2.resize(bg, (fw, fh), interpolation=cv2.INTER_AREA)
    known = den > 0.5
    field = num / np.maximum(den, 1e-6)[..., None]
    if not known.any():
        return np.broadcast_to(rgb.reshape(-1, 3).mean(0).astype(np.float32), (fh, fw, 3)).copy()
    if not known.all():  # the product's place: filled from the background around it
        holes = (~known).astype(np.uint8)
        filled = cv2.inpaint(np.clip(field + 0.5, 0, 255).astype(np.uint8), holes, 3, cv2.INPAINT_TELEA).astype(np.float32)
        field = np.where(known[..., None], field, filled)
    return cv2.GaussianBlur(field, (0, 0), 1.0)


def _fits(alpha: np.ndarray, scene: Scene, sx: float, sy: float, threshold: int = 8) -> bool:
    """Whether everything a cut-out shows (its alpha, drop shadow included) lands on the canvas (its cut sides aside)."""
    bx0, by0, _, _ = scene.source_box
    rows = np.flatnonzero((alpha >= threshold).any(axis=1))
    cols = np.flatnonzero((alpha >= threshold).any(axis=0))
    x0, x1 = scene.x + (cols[0] - bx0) * sx, scene.x + (cols[-1] + 1 - bx0) * sx
    y0, y1 = scene.y + (rows[0] - by0) * sy, scene.y + (rows[-1] + 1 - by0) * sy
    cut, tol = set(scene.cut), 1.0
    return (
        (x0 >= -tol or "left" in cut)
        and (x1 <= scene.width + tol or "right" in cut)
        and (y0 >= -tol or "top" in cut)
        and (y1 <= scene.height + tol or "bottom" in cut)
    )


def _edge_ramp(w: int, h: int, ramp: float, *, left: bool, right: bool, top: bool, bottom: bool) -> np.ndarray:
    """(h, w) float32 weights: 1 inside, easing to 0 at the edges named (smoothstep over ``ramp`` px)."""
    xs = np.arange(w, dtype=np.float32) + 0.5
    ys = np.arange(h, dtype=np.float32) + 0.5
    far_x, far_y = np.full(w, np.inf, np.float32), np.full(h, np.inf, np.float32)
    dx = np.minimum(xs if left else far_x, (w - xs) if right else far_x)
    dy = np.minimum(ys if top else far_y, (h - ys) if bottom else far_y)
    t = np.clip(np.minimum(dy[:, None], dx[None, :]) / ramp, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)
