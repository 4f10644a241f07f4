"""Shading helpers for rendered backgrounds: contact shadows, reflections, light, vignette, grain.

Everything works on float32 images in [0, 1] (sRGB-encoded) and float32 single-channel maps.
The helpers are vectorised (numpy / OpenCV, no per-pixel Python) and cache the seed-independent
tables they need (coordinate grids, radial maps, grain fields) per image size, so rendering many
backgrounds of the same placement stays cheap.
"""

from __future__ import annotations

from functools import lru_cache
from typing import cast

import cv2
import numpy as np

__all__ = [
    "apply_shadow",
    "blur",
    "cast_shadow",
    "contact_shadow",
    "drop_shadow",
    "fill",
    "follow_line",
    "grain_field",
    "grid",
    "mix",
    "radial",
    "ramp",
    "reflection",
    "rgb3",
    "screen",
    "smoothstep",
    "soft_clip",
    "support_line",
    "to_uint8",
    "vignette_map",
]


def rgb3(m: np.ndarray) -> np.ndarray:
    """A single-channel float32 map repeated into 3 channels (fast: numpy broadcasting over a
    length-3 last axis is slow, same-shape arithmetic is not)."""
    m = np.ascontiguousarray(m, np.float32)
    return cv2.merge([m, m, m])


def ramp(t: np.ndarray, dark, light) -> np.ndarray:
    """Colour ramp: ``dark`` where ``t`` is 0, ``light`` where it is 1 (float32 (H, W, 3))."""
    t = np.ascontiguousarray(t, np.float32)
    chans = []
    for d, lt in zip(dark, light, strict=True):
        c = t * np.float32(float(lt) - float(d))
        c += np.float32(d)
        chans.append(c)
    return cv2.merge(chans)


def fill(h: int, w: int, color) -> np.ndarray:
    """A (h, w, 3) float32 image of one colour."""
    return cv2.merge([np.full((h, w), float(c), np.float32) for c in color])


def smoothstep(e0: float, e1: float, x: np.ndarray | float) -> np.ndarray:
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (float32)."""
    t = np.clip((np.asarray(x, np.float32) - np.float32(e0)) / np.float32(e1 - e0 if e1 != e0 else 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``a * (1 - t) + b * t`` for same-shape (H, W, 3) images; a (H, W) ``t`` is expanded to 3 channels."""
    if t.ndim == 2 and a.ndim == 3:
        t = rgb3(t)
    return a + (b - a) * t


def screen(base: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Screen blend: brightens ``base`` by ``light`` without clipping hard."""
    return 1.0 - (1.0 - base) * (1.0 - light)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that stays cheap for large sigmas (blurs a downscaled copy, then upscales)."""
    if sigma <= 0.3:
        return img
    if sigma <= 4.0:
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    h, w = img.shape[:2]
    factor = min(sigma / 2.0, max(h, w) / 8.0)
    sh, sw = max(2, round(h / factor)), max(2, round(w / factor))
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma * sw / w, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@lru_cache(maxsize=32)
def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (yy (H, 1), xx (1, W)) as float32 (read-only, cached per size)."""
    yy = (np.arange(h, dtype=np.float32) + 0.5).reshape(h, 1)
    xx = (np.arange(w, dtype=np.float32) + 0.5).reshape(1, w)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def radial(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Normalised elliptical distance from (cx, cy) with radii (rx, ry): 0 at the centre, 1 on the ellipse."""
    yy, xx = grid(h, w)
    dy = (yy - np.float32(cy)) * np.float32(1.0 / max(ry, 1e-3))
    dx = (xx - np.float32(cx)) * np.float32(1.0 / max(rx, 1e-3))
    return np.sqrt(dx * dx + dy * dy)


@lru_cache(maxsize=32)
def _vignette_base(h: int, w: int) -> np.ndarray:
    d = radial(h, w, w / 2.0, h / 2.0, w * 0.5 * 1.15, h * 0.5 * 1.15)
    v = smoothstep(0.45, 1.25, d)
    v = v * v
    v.setflags(write=False)
    return v


def vignette_map(h: int, w: int, strength: float) -> np.ndarray:
    """Multiplicative darkening towards the corners (1 in the centre, 1 - strength at the far corners)."""
    return 1.0 - np.float32(strength) * _vignette_base(h, w)


@lru_cache(maxsize=8)
def grain_field(h: int, w: int) -> np.ndarray:
    """A fixed, zero-mean, unit-variance film-grain field (float32 (H, W)), cached per size.

    Seed-independent on purpose: it is a dither that hides 8-bit banding in smooth gradients,
    not a source of variation.
    """
    rng = np.random.default_rng(0x6B61)
    tile = rng.standard_normal((256, 256), dtype=np.float32)
    # slightly soft grain reads as film, not as digital noise
    tile = cast(np.ndarray, cv2.GaussianBlur(np.pad(tile, 4, mode="wrap"), (0, 0), 0.6))[4:-4, 4:-4]
    tile /= float(tile.std()) + 1e-6
    reps = (-(-h // 256) + 1, -(-w // 256) + 1)
    big = np.tile(tile, reps)
    # break the tile's period with a second, offset and flipped copy
    field = big[:h, :w] * np.float32(0.8) + big[::-1, ::-1][37 : 37 + h, 91 : 91 + w] * np.float32(0.6)
    field = np.ascontiguousarray(field, np.float32)
    field.setflags(write=False)
    return field


def to_uint8(img: np.ndarray, size: tuple[int, int] | None = None, grain: float = 0.0) -> np.ndarray:
    """Quantise a float [0, 1] (h, w, 3) image to uint8, upscaled (bicubic) to ``size`` (W, H).

    Film grain of ``grain`` 8-bit levels (at least a little: it dithers away banding) is added
    at the working size, before quantising and upscaling, which keeps it cheap and makes it
    read as soft film grain.
    """
    h, w = img.shape[:2]
    amp = max(float(grain), 0.8)
    g = grain_field(h, w)
    scaled = cv2.scaleAdd(cv2.merge([g, g, g]), amp, img * np.float32(255.0))
    np.maximum(scaled, 0.0, out=scaled)
    out = cv2.convertScaleAbs(scaled)
    if size is not None and (size[0], size[1]) != (w, h):
        # bicubic: as cheap as bilinear here and it keeps chips, veins and weave crisp instead of soft
        out = cv2.resize(out, size, interpolation=cv2.INTER_CUBIC)
    return out


def soft_clip(img: np.ndarray, knee: float = 0.85) -> np.ndarray:
    """Roll highlights above ``knee`` off smoothly (in place): 1 + (1 - knee) maps to 1."""
    t = img - np.float32(knee)
    np.maximum(t, 0.0, out=t)
    t *= t
    t *= np.float32(1.0 / (4.0 * (1.0 - knee)))
    img -= t
    return img


def apply_shadow(img: np.ndarray, shadow: np.ndarray, tint: tuple[float, float, float] = (0.3, 0.3, 0.34)) -> np.ndarray:
    """Darken ``img`` in place by ``shadow`` (0..1 map) towards ``tint`` times the surface colour.

    Only the shadow's bounding box is touched.
    """
    rows = np.flatnonzero(shadow.max(axis=1) > 1e-3)
    if rows.size == 0:
        return img
    cols = np.flatnonzero(shadow[rows[0] : rows[-1] + 1].max(axis=0) > 1e-3)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    s = shadow[y0:y1, x0:x1]
    mult = cv2.merge([1.0 - s * np.float32(1.0 - t) for t in tint])
    img[y0:y1, x0:x1] *= mult
    return img


def _bottom_profile(alpha: np.ndarray, thresh: float = 0.5) -> np.ndarray:
    """For each column of a patch, the row just below its lowest solid pixel (0 where the column is empty)."""
    solid = alpha >= thresh
    h = alpha.shape[0]
    any_ = solid.any(axis=0)
    last = h - np.argmax(solid[::-1], axis=0)
    return np.where(any_, last, 0).astype(np.float32)


def support_line(support: np.ndarray, x: int, ground_y: float) -> tuple[float, float]:
    """(row at column 0, slope) of the straight line through a patch's support rows (patch
    coordinates, NaN where a column does not rest; the patch's corner at column ``x``), in image
    coordinates: the line the footprint and the cast shadow follow. Flat at ``ground_y`` when
    fewer than two columns rest."""
    cols = np.flatnonzero(np.isfinite(support))
    if cols.size < 2 or cols[-1] - cols[0] < 2:
        return float(ground_y), 0.0
    slope, icpt = np.polyfit(cols.astype(np.float64) + x + 0.5, support[cols].astype(np.float64), 1)
    # anchored so the line passes through the lowest support point (where the floor line is)
    lowest = int(cols[np.argmax(support[cols])])
    icpt = ground_y - slope * (lowest + x + 0.5)
    return float(icpt), float(slope)


def follow_line(
    band: np.ndarray, x0: int, top: int, ground_y: float, line: tuple[float, float], grow: bool = False
) -> tuple[np.ndarray, int]:
    """``band`` (a shadow drawn for a flat base at ``ground_y``; its corner at (``x0``, ``top``))
    shifted column by column onto ``line`` (see :func:`support_line`): (the shifted band, its top
    row). ``grow``: add the rows the shift needs above and below instead of cutting it off."""
    icpt, slope = line
    if abs(slope) < 1e-4 and abs(icpt - ground_y) < 0.05:
        return band, top
    shift = (icpt + slope * (np.arange(x0, x0 + band.shape[1], dtype=np.float32) + 0.5)) - np.float32(ground_y)
    if grow:
        up, down = int(np.ceil(max(0.0, -float(shift.min())))), int(np.ceil(max(0.0, float(shift.max()))))
        band = np.pad(band, ((up, down), (0, 0)))
        top -= up
    bh, bw = band.shape
    map_y = (np.arange(bh, dtype=np.float32)[:, None] - shift[None, :]).astype(np.float32)
    map_x = np.broadcast_to(np.arange(bw, dtype=np.float32)[None, :], (bh, bw)).astype(np.float32)
    moved = cv2.remap(band, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cast(np.ndarray, moved), top


def contact_shadow(
    h: int,
    w: int,
    alpha: np.ndarray,
    x: int,
    y: int,
    ground_y: float,
    softness: float = 0.5,
    floor_top: float | None = None,
    support: np.ndarray | None = None,
) -> np.ndarray:
    """Contact + ambient occlusion shadow of a product patch standing on a floor, float32 (h, w) in [0, 1].

    ``alpha`` is the product's mask (float32 0..1) at image scale with its top-left corner at
    (``x``, ``y``); ``ground_y`` is the row where it touches the ground. The tight contact
    shadow follows the columns that rest on the ground: ``support`` (per patch column, the row
    under the product where it rests, NaN elsewhere; see :mod:`backdrop.imaging.support`), or,
    without it, the columns whose lowest pixel reaches ``ground_y`` (a sneaker's sole, a
    bottle's base). It sits under each column's own bottom, so a base that recedes (a duffle
    shot from three-quarters) is shadowed along its whole edge. The soft ambient shadow is a
    flattened footprint of the silhouette laid along the support. ``floor_top`` fades the shadow
    out above that row (the floor's back edge).
    """
    ph, pw = alpha.shape
    out = np.zeros((h, w), np.float32)
    if ph < 2 or pw < 2:
        return out
    softness = float(np.clip(softness, 0.0, 1.0))
    size = float(max(ph, pw))
    # --- which columns touch the ground
    if support is not None and np.isfinite(support).any():
        rests = np.isfinite(support)
        bottom = np.where(rests, support, ph).astype(np.float32) + y
        touch = rests.astype(np.float32)
        line = support_line(support, x, ground_y)
    else:
        bottom = _bottom_profile(alpha) + y  # image row under the lowest solid pixel of each column
        reach = max(2.0, 0.05 * ph)
        touch = np.clip(1.0 - (ground_y - bottom) / reach, 0.0, 1.0)
        touch[bottom <= y] = 0.0
        touch = touch * touch
        bottom = np.full(pw, ground_y, np.float32)
        line = (float(ground_y), 0.0)

    # work in a band around the product's base (up to its highest resting point)
    pad_x = int(round(0.25 * pw + 4 + softness * 0.2 * pw))
    highest = float(np.min(np.where(touch > 0, bottom, ground_y)))
    top = int(max(0, np.floor(min(ground_y - 0.22 * ph, highest - 0.12 * ph) - 4)))
    bot = int(min(h, np.ceil(ground_y + 0.1 * ph + 8 + softness * 0.08 * ph)))
    bx0, bx1 = max(0, x - pad_x), min(w, x + pw + pad_x)
    if bot <= top or bx1 <= bx0:
        return out
    bh, bw = bot - top, bx1 - bx0
    yy = np.arange(top, bot, dtype=np.float32) + 0.5 - np.float32(ground_y)

    # columns profile on the band
    prof = np.zeros(bw, np.float32)
    c0 = x - bx0
    s0, s1 = max(0, -c0), min(pw, bw - c0)
    prof[c0 + s0 : c0 + s1] = touch[s0:s1]
    # the row each band column's contact sits on: its own bottom where it rests, the support's
    # straight line beyond (the blurred ends of the shadow)
    icpt, slope = line
    rest_row = (icpt + slope * (np.arange(bx0, bx1, dtype=np.float32) + 0.5)).astype(np.float32)
    rest_row[c0 + s0 : c0 + s1] = np.where(touch[s0:s1] > 0, bottom[s0:s1], rest_row[c0 + s0 : c0 + s1])

    # 1) tight contact shadow: thin, dark, right under the resting columns
    sig_c = 1.0 + 0.006 * size * (0.6 + softness)
    sig_h = sig_c * 1.6
    prof_c = cv2.GaussianBlur(prof.reshape(1, -1), (2 * int(3 * sig_h) + 1, 1), sig_h, borderType=cv2.BORDER_CONSTANT).ravel()
    rest_row = np.asarray(
        cv2.GaussianBlur(rest_row.reshape(1, -1), (2 * int(3 * sig_h) + 1, 1), sig_h, borderType=cv2.BORDER_REPLICATE), np.float32
    ).ravel()
    v_up, v_dn = sig_c * 2.2, sig_c * 1.1
    rel = (yy + np.float32(ground_y))[:, None] - rest_row[None, :]
    contact = np.exp(-np.square(rel / np.where(rel < 0, np.float32(v_up), np.float32(v_dn)))) * prof_c[None, :]

    # 2) soft ambient shadow: the silhouette flattened onto the floor, blurred
    fh = max(2, int(round(ph * (0.07 + 0.05 * softness))))
    foot = cv2.resize(alpha, (pw, fh), interpolation=cv2.INTER_AREA)
    amb = np.zeros((bh, bw), np.float32)
    fy0 = int(round(ground_y - top - fh * 0.6))
    ys0, ys1 = max(0, fy0), min(bh, fy0 + fh)
    if ys1 > ys0 and s1 > s0:
        amb[ys0:ys1, c0 + s0 : c0 + s1] = foot[ys0 - fy0 : ys1 - fy0, s0:s1]
    sig_a = 2.0 + size * (0.012 + 0.035 * softness)
    # isotropic: a 4th positional argument once meant as sigmaY was OpenCV's ``dst`` and ignored;
    # making it a real sigmaY would change every floor creative's pixels (and keys' meaning)
    amb = cast(np.ndarray, cv2.GaussianBlur(amb, (0, 0), sig_a, borderType=cv2.BORDER_CONSTANT))
    m = float(amb.max())
    if m > 1e-4:
        amb *= np.float32(min(1.0, 0.85 / m))
    amb, _ = follow_line(amb, bx0, top, ground_y, line)

    band = 1.0 - (1.0 - contact * np.float32(0.9)) * (1.0 - amb * np.float32(0.7))
    if floor_top is not None:
        band *= smoothstep(floor_top, floor_top + max(2.0, 0.02 * h), yy + np.float32(ground_y))[:, None]
    out[top:bot, bx0:bx1] = band
    return out


def cast_shadow(
    h: int,
    w: int,
    alpha: np.ndarray,
    x: int,
    y: int,
    ground_y: float,
    light_x: float = -0.4,
    length: float = 0.45,
    softness: float = 0.5,
    floor_top: float | None = None,
    line: tuple[float, float] | None = None,
) -> np.ndarray:
    """A soft shadow the product casts on the floor behind it, away from a key light at ``light_x`` (-1 left .. 1 right).

    The silhouette is mirrored about the ground line (the floor recedes upwards in the image),
    flattened to ``length`` of its height and sheared away from the light; it softens and fades
    with distance from the contact line. ``line`` (:func:`support_line`): a base that is not
    level in the image, which the shadow starts along. float32 (h, w) in [0, 1].
    """
    ph, pw = alpha.shape
    out = np.zeros((h, w), np.float32)
    if ph < 2 or pw < 2 or length <= 0:
        return out
    sh = max(2, int(round(ph * length)))
    flat = cv2.resize(alpha[::-1], (pw, sh), interpolation=cv2.INTER_AREA)  # row 0 = product base
    shear = -float(light_x) * 2.6  # x offset per row of distance from the ground
    pad = int(abs(shear) * sh) + int(0.1 * pw) + 4
    W2 = pw + 2 * pad
    # the base row (row 0) stays put, the far end slides sideways
    M = np.array([[1, shear, pad], [0, 1, 0]], dtype=np.float32)
    sheared = cv2.warpAffine(flat, M, (W2, sh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # flip back so that the far end is on top (towards the horizon)
    sheared = sheared[::-1]
    t = np.linspace(1.0, 0.0, sh, dtype=np.float32)[:, None]  # 1 at the far end, 0 at the base
    sig_n = 1.0 + 0.01 * ph * (0.5 + softness)
    sig_f = 2.0 + 0.05 * ph * (0.5 + 1.5 * softness)
    near = cv2.GaussianBlur(sheared, (0, 0), sig_n)
    far = blur(sheared, sig_f)
    s = near * (1.0 - t) + far * t
    s *= 1.0 - t * t
    # place: bottom row of the patch at the ground line
    gy = int(round(ground_y))
    ty0 = gy - sh
    tx0 = x - pad
    xs0, xs1 = max(0, tx0), min(w, tx0 + W2)
    if line is not None:
        s, ty0 = follow_line(s, tx0, ty0, ground_y, line, grow=True)
    ys0, ys1 = max(0, ty0), min(h, ty0 + s.shape[0])
    if ys1 > ys0 and xs1 > xs0:
        out[ys0:ys1, xs0:xs1] = s[ys0 - ty0 : ys1 - ty0, xs0 - tx0 : xs1 - tx0]
    if floor_top is not None:
        yy, _ = grid(h, w)
        out *= smoothstep(floor_top, floor_top + max(3.0, 0.04 * h), yy)
    return out


def drop_shadow(h: int, w: int, alpha: np.ndarray, x: int, y: int, light_x: float = -0.4, softness: float = 0.5) -> np.ndarray:
    """The shadow of a product lying flat on a surface lit from above (a flat lay), float32 (h, w)
    in [0, 1]: a tight occlusion right at its outline plus a soft copy of its silhouette offset
    away from the light."""
    ph, pw = alpha.shape
    out = np.zeros((h, w), np.float32)
    if ph < 2 or pw < 2:
        return out
    size = float(max(ph, pw))
    pad = int(0.08 * size) + 8
    band = np.zeros((ph + 2 * pad, pw + 2 * pad), np.float32)
    band[pad : pad + ph, pad : pad + pw] = alpha
    tight = cv2.GaussianBlur(band, (0, 0), 0.8 + 0.004 * size)
    offset = np.array([[1, 0, -float(light_x) * 0.012 * size], [0, 1, 0.018 * size]], np.float32)
    soft = cv2.warpAffine(blur(band, 2.0 + size * (0.01 + 0.02 * softness)), offset, band.shape[::-1])
    s = 1.0 - (1.0 - tight * np.float32(0.55)) * (1.0 - soft * np.float32(0.6))
    y0, x0 = y - pad, x - pad
    ys0, ys1, xs0, xs1 = max(0, y0), min(h, y0 + band.shape[0]), max(0, x0), min(w, x0 + band.shape[1])
    if ys1 > ys0 and xs1 > xs0:
        out[ys0:ys1, xs0:xs1] = s[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0]
    return out


def reflection(
    img: np.ndarray,
    rgb: np.ndarray,
    alpha: np.ndarray,
    x: int,
    y: int,
    ground_y: float,
    strength: float,
    falloff: float = 0.3,
    softness: float = 0.3,
    floor_color: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """Blend a soft mirrored copy of the product under its ground line into ``img`` (in place).

    ``rgb`` (float32 0..1) and ``alpha`` (float32 0..1) are the product patch at image scale
    with its top-left corner at (``x``, ``y``); the mirror plane is the row ``ground_y``. The
    reflection fades over ``falloff`` of the product height and blurs a little (a glossy, not
    mirror-like, surface); ``floor_color`` tints it.
    """
    h, w = img.shape[:2]
    ph, pw = alpha.shape
    if strength <= 0 or ph < 2 or pw < 2:
        return img
    depth = max(2, min(ph, int(round(ph * falloff * 2.5))))
    # mirrored patch: its first row is the patch's bottom row, which lands just under the mirror plane
    ty0 = int(round(2 * ground_y - (y + ph)))
    ref_rgb = np.ascontiguousarray(rgb[::-1][:depth])
    ref_a = np.ascontiguousarray(alpha[::-1][:depth])
    sig = 0.6 + softness * 0.015 * ph
    ref_rgb = cv2.GaussianBlur(ref_rgb, (0, 0), sig)
    ref_a = cv2.GaussianBlur(ref_a, (0, 0), sig)
    dist = np.arange(depth, dtype=np.float32) + np.float32(ty0 - ground_y)
    fade = np.exp(-np.maximum(dist, 0.0) / np.float32(max(1.0, falloff * ph)))[:, None]
    a = ref_a * fade * np.float32(strength)
    if floor_color is not None:
        ref_rgb = cv2.addWeighted(ref_rgb, 0.8, fill(depth, pw, floor_color), 0.2, 0.0)
    ys0, ys1 = max(0, ty0, int(round(ground_y))), min(h, ty0 + depth)
    xs0, xs1 = max(0, x), min(w, x + pw)
    if ys1 <= ys0 or xs1 <= xs0:
        return img
    region = img[ys0:ys1, xs0:xs1]
    aa = rgb3(a[ys0 - ty0 : ys1 - ty0, xs0 - x : xs1 - x])
    region += (ref_rgb[ys0 - ty0 : ys1 - ty0, xs0 - x : xs1 - x] - region) * aa
    return img
