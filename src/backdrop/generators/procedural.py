"""The embedded procedural background renderer: fast, deterministic, no model weights.

It draws a product photography set *around* the laid-out product: a studio sweep, a colour
gradient, a tabletop or a room (wall + floor in perspective, with wood, marble, concrete, linen,
terrazzo or paper surfaces made from noise), a spotlight, or a bokeh light field; then it grounds
the product with a contact shadow, an ambient occlusion shadow, a cast shadow and, on glossy
floors, a soft reflection, all computed from the product's mask. Colours are harmonised with the
product's dominant colours (complementary, analogous, monochrome or neutral, in OKLCH) and kept
away from the product's lightness so it pops.

Speed: everything is rendered at a reduced working resolution (``work_scale`` of the canvas,
default 0.5) in float32 with OpenCV primitives, then upscaled once and dithered with film grain;
seed-independent tables (grids, vignettes, perspective maps, grain) are cached per size.

Determinism: one request gives the same bytes every time (numpy ``Generator`` streams derived
from the request's seed only); different seeds vary hues, light, texture and layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from ..imaging import shading as sh
from .base import GenerationRequest

from ..styles.params import (  # noqa: F401 - the schema's names, re-exported where the renderer is
    FLOOR_SCENES,
    SCENES,
    SURFACES,
    ProceduralParams,
    validate_params,
)


@lru_cache(maxsize=512)
def _params_cached(blob: str) -> ProceduralParams:
    return validate_params(json.loads(blob))


def _params_of(procedural: dict) -> ProceduralParams:
    return _params_cached(json.dumps(procedural, sort_keys=True, default=str))


# --------------------------------------------------------------------------------------------
# colour: OKLab / OKLCH


def _to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.maximum(c, 0.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


_M1 = np.array([[0.4122214708, 0.5363325363, 0.0514459929], [0.2119034982, 0.6806995451, 0.1073969566], [0.0883024619, 0.2817188376, 0.6299787005]])
_M2 = np.array([[0.2104542553, 0.7936177850, -0.0040720468], [1.9779984951, -2.4285922050, 0.4505937099], [0.0259040371, 0.7827717662, -0.8086757660]])
_M2I = np.linalg.inv(_M2)
_M1I = np.linalg.inv(_M1)


def rgb_to_oklab(rgb: Sequence[float] | np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) to OKLab (L, a, b)."""
    lin = _to_linear(np.asarray(rgb, np.float64))
    return np.cbrt(lin @ _M1.T) @ _M2.T


def oklab_to_linear(lab: np.ndarray) -> np.ndarray:
    return (np.asarray(lab, np.float64) @ _M2I.T) ** 3 @ _M1I.T


def oklch(L: float, C: float, h: float) -> np.ndarray:
    """sRGB (3,) in [0, 1] of an OKLCH colour, chroma reduced until it fits the sRGB gamut."""
    L = float(np.clip(L, 0.0, 1.0))
    hr = np.deg2rad(h)
    lo, hi = 0.0, max(0.0, float(C))

    def lin(c: float) -> np.ndarray:
        return oklab_to_linear(np.array([L, c * np.cos(hr), c * np.sin(hr)]))

    if np.all((lin(hi) >= -1e-4) & (lin(hi) <= 1 + 1e-4)):
        lo = hi
    else:
        for _ in range(14):
            mid = (lo + hi) / 2
            v = lin(mid)
            if np.all((v >= -1e-4) & (v <= 1 + 1e-4)):
                lo = mid
            else:
                hi = mid
    return np.clip(_to_srgb(np.clip(lin(lo), 0.0, 1.0)), 0.0, 1.0)


def lch_of(rgb: Sequence[float]) -> tuple[float, float, float]:
    """OKLCH (L, C, hue degrees) of an sRGB colour in [0, 1]."""
    L, a, b = rgb_to_oklab(rgb)
    return float(L), float(np.hypot(a, b)), float(np.rad2deg(np.arctan2(b, a)) % 360.0)


def _hex(c: str) -> np.ndarray:
    return np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)], np.float64) / 255.0


def _away(L: float, Lp: float, margin: float, lo: float = 0.1, hi: float = 0.97) -> float:
    """``L`` moved (if needed) to at least ``margin`` from the product lightness ``Lp``, staying in [lo, hi]."""
    if abs(L - Lp) >= margin:
        return float(np.clip(L, lo, hi))
    up, down = Lp + margin, Lp - margin
    options = [v for v in (up, down) if lo <= v <= hi]
    if not options:
        return float(np.clip(up if (hi - Lp) > (Lp - lo) else down, lo, hi))
    # dark products want a lighter set, light products a deeper one; in between keep the style's side
    prefer = up if (Lp < 0.42 or (L >= Lp and Lp <= 0.8)) else down
    if prefer in options:
        return prefer
    return options[0]


def _pleasant_hue(h: float, L: float) -> float:
    """Steer hues out of muddy zones: yellow-greens (olive) and oranges (brown) only work when light."""
    h = h % 360.0
    if 55.0 < h < 145.0:
        target = 42.0 if h < 112.0 else 160.0  # towards terracotta / coral, or towards sage / teal
        amount = float(np.clip((0.92 - L) / 0.25, 0.0, 1.0))
        if h < 75.0:  # plain orange: only the darker ones turn brown
            amount *= float(np.clip((0.8 - L) / 0.2, 0.0, 1.0))
        h += (target - h) * amount
    return h


@dataclass(frozen=True)
class Palette:
    wall: np.ndarray  # backdrop colour near the horizon
    wall_top: np.ndarray  # backdrop colour at the top
    floor: np.ndarray
    accent: np.ndarray
    light: np.ndarray  # light colour (multiplier, max 1)
    shadow: tuple[float, float, float]  # shadow tint multiplier
    hue: float
    chroma: float
    L_wall: float
    L_floor: float
    L_product: float


def product_key(palette: Sequence[Sequence[int]]) -> tuple[float, float | None, float]:
    """(lightness, key hue or None when the product is achromatic, key chroma) of a product palette."""
    if not palette:
        return 0.6, None, 0.0
    cols = [np.asarray(c, np.float64) / 255.0 for c in palette]
    lchs = [lch_of(c) for c in cols]
    Lp = lchs[0][0]
    if len(lchs) > 1:
        Lp = 0.75 * lchs[0][0] + 0.25 * lchs[1][0]
    for L, C, h in lchs:
        if C >= 0.05:
            return Lp, h, C
    return Lp, None, lchs[0][1]


def make_palette(p: ProceduralParams, product_palette: Sequence[Sequence[int]], rng: np.random.Generator) -> Palette:
    """The set's colours for a product: harmonised with its dominant colours, kept away from its lightness."""
    Lp, key_hue, key_c = product_key(product_palette)
    var = p.variation
    hue_j = float(np.clip(rng.normal(0.0, 16.0), -32, 32)) * var
    L_j = float(rng.uniform(-0.07, 0.07)) * var
    C_j = 1.0 + float(rng.uniform(-0.45, 0.45)) * var
    side = 1.0 if rng.random() < 0.5 else -1.0
    warm_pick = float(rng.choice([75.0, 55.0, 95.0, 160.0]))
    neutral_j = float(rng.uniform(-40.0, 40.0)) * var  # warm greige .. rosy beige / sandy

    if p.palette == "explicit":
        wall = _hex(p.colors[0])
        Lw, Cw, hw = lch_of(wall)
        Lw = float(np.clip(Lw + L_j * 0.5, 0.04, 0.98))
        wall = oklch(Lw, Cw, hw + hue_j * 0.5)
        if len(p.colors) > 1:
            floor = _hex(p.colors[1])
            Lf = lch_of(floor)[0]
        else:
            Lf = float(np.clip(Lw + p.floor_lightness, 0.04, 0.98))
            floor = oklch(Lf, Cw * 0.9, hw + hue_j * 0.5)
        accent = _hex(p.colors[2]) if len(p.colors) > 2 else oklch(min(0.85, Lw + 0.05), max(Cw * 1.6, 0.08), hw + 30)
        hue, C = hw, Cw
        wall_top = oklch(Lw - 0.05 - 0.1 * p.light_strength, Cw * 1.05, hw + hue_j * 0.5)
    else:
        cool = key_hue is not None and 180.0 <= key_hue <= 330.0
        base = key_hue if key_hue is not None else warm_pick
        if p.palette == "complementary":
            hue = base + 180.0 if key_hue is not None else base
            C = 0.13 * p.saturation
        elif p.palette == "analogous":
            hue = base + side * 35.0
            C = 0.12 * p.saturation
        elif p.palette == "monochrome":
            hue = base
            C = 0.11 * p.saturation if key_hue is not None else 0.02 * p.saturation
        else:  # neutral: a warm grey next to cool products, a cool grey next to warm ones
            hue = (80.0 if (cool or key_hue is None) else 250.0) + neutral_j
            C = 0.04 * p.saturation
        C *= C_j
        Lw = _away(p.lightness + L_j, Lp, p.min_contrast)
        Lf = _away(Lw + p.floor_lightness, Lp, p.min_contrast * 0.8)
        hue = _pleasant_hue(hue + p.hue_shift + hue_j, Lw - 0.1 * min(1.0, C / 0.06))
        wall = oklch(Lw, C, hue)
        floor = oklch(Lf, C * 0.9, hue)
        top_L = Lw - 0.05 - 0.12 * p.light_strength
        wall_top = oklch(top_L, C * 1.1, hue + 6.0 * side)
        acc_h = _pleasant_hue(hue + 35.0 * side if p.palette != "monochrome" else hue, 0.7)
        accent = oklch(float(np.clip(Lw - 0.15, 0.35, 0.8)), max(C * 1.6, 0.09), acc_h)

    warm = p.light_warmth
    light = oklch(0.97, 0.045 * abs(warm), 70.0 if warm >= 0 else 245.0)
    light = light / max(float(light.max()), 1e-6)
    # shadows pick up a little of the sky: slightly cooler and darker than the surface
    shadow = oklch(0.5, 0.02, (hue + 180.0) % 360.0 if p.palette != "neutral" else 250.0)
    shadow = tuple(float(v) for v in (shadow / max(float(shadow.max()), 1e-6)) * 0.32)
    return Palette(
        wall=wall.astype(np.float32),
        wall_top=wall_top.astype(np.float32),
        floor=floor.astype(np.float32),
        accent=np.asarray(accent, np.float32),
        light=light.astype(np.float32),
        shadow=shadow,  # type: ignore[arg-type]
        hue=float(hue % 360.0),
        chroma=float(C),
        L_wall=float(lch_of(wall)[0]),
        L_floor=float(lch_of(floor)[0]),
        L_product=float(Lp),
    )


# --------------------------------------------------------------------------------------------
# noise


def fbm(rng: np.random.Generator, h: int, w: int, cy: float, cx: float, octaves: int = 4, gain: float = 0.5) -> np.ndarray:
    """Fractal value noise (float32 (h, w), zero mean, unit std) with base cells ``cy`` x ``cx`` pixels.

    Unequal cell sizes elongate the features (wood grain, threads) or compensate anisotropic
    texels (floor textures are stored foreshortened).
    """
    gh0 = max(2, int(round(h / max(cy, 1e-3))))
    gw0 = max(2, int(round(w / max(cx, 1e-3))))
    gh0, gw0 = min(gh0, h), min(gw0, w)
    acc = rng.random((gh0, gw0), dtype=np.float32) - np.float32(0.5)
    amp = 1.0
    gh, gw = gh0, gw0
    for _ in range(1, octaves):
        if gh * 2 > h or gw * 2 > w:
            break
        gh, gw = gh * 2, gw * 2
        acc = cv2.resize(acc, (gw, gh), interpolation=cv2.INTER_CUBIC)
        amp *= gain
        acc += (rng.random((gh, gw), dtype=np.float32) - np.float32(0.5)) * np.float32(amp)
    out = cv2.resize(acc, (w, h), interpolation=cv2.INTER_CUBIC)
    m, s = cv2.meanStdDev(out)
    out -= np.float32(m[0, 0])
    out *= np.float32(1.0 / (s[0, 0] + 1e-6))
    return out


def _white(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.random((h, w), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# surfaces (texture space: rows = depth, columns = across)


def _lab_mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    la, lb = rgb_to_oklab(a), rgb_to_oklab(b)
    lab = la + (lb - la) * t
    return np.clip(_to_srgb(np.clip(oklab_to_linear(lab), 0, 1)), 0, 1).astype(np.float32)


def _material_colors(p: ProceduralParams, pal: Palette, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(dark, light) ends of a surface's colour ramp."""
    Lf = pal.L_floor
    m = pal.L_product
    if kind == "wood":
        t = float(np.clip((Lf - 0.45) / 0.4, 0.0, 1.0))
        L = _away(0.5 + 0.27 * t, m, p.min_contrast * 0.6, 0.3, 0.85)
        base = oklch(L, 0.06 + 0.015 * (1 - t), 65.0 - 8 * (1 - t))
        base = _lab_mix(base, pal.floor, p.surface_tint * 0.6)
        dark = _lab_mix(base, oklch(L - 0.22, 0.06, 50.0), 0.75)
        return dark, base.astype(np.float32)
    if kind == "marble":
        if Lf < 0.45:  # dark marble, light veins
            base = oklch(max(0.2, Lf - 0.03), 0.008, pal.hue)
            vein = oklch(0.8, 0.008, pal.hue)
        else:
            L = _away(max(Lf, 0.87), m, p.min_contrast * 0.6, 0.3, 0.96)
            base = oklch(L, 0.006, 80.0)
            vein = oklch(L - 0.3, 0.01, 250.0)
        base = _lab_mix(base, pal.floor, p.surface_tint * 0.5)
        return vein.astype(np.float32), base.astype(np.float32)
    if kind == "concrete":
        L = _away(Lf, m, p.min_contrast * 0.6, 0.25, 0.9)
        base = oklch(L, 0.008, 90.0)
        base = _lab_mix(base, pal.floor, p.surface_tint)
        dark = _lab_mix(base, oklch(L - 0.2, 0.006, 250.0), 1.0)
        return dark, base.astype(np.float32)
    if kind == "terrazzo":
        L = _away(max(Lf, 0.84), m, p.min_contrast * 0.6, 0.3, 0.96)
        base = _lab_mix(oklch(L, 0.012, 85.0), pal.floor, max(p.surface_tint, 0.3))
        return (base * 0.9).astype(np.float32), base.astype(np.float32)
    # plain, paper, linen: the palette colour
    base = pal.floor
    return (base * 0.85).astype(np.float32), base.astype(np.float32)


def _surface(
    p: ProceduralParams, pal: Palette, th: int, tw: int, ux: float, uy: float, rng: np.random.Generator
) -> tuple[np.ndarray, tuple | None]:
    """A surface in texture space: either (t (th, tw), (dark, light)) for a colour ramp, or (rgb (th, tw, 3), None).

    ``ux`` / ``uy`` are the texels of one feature unit (1/20 of the canvas at the product)
    across / in depth: floor textures are stored foreshortened (``uy`` < ``ux``).
    """
    kind = p.surface
    dark, light = _material_colors(p, pal, kind)
    k = float(p.texture)
    ux, uy = ux * p.texture_scale, uy * p.texture_scale

    def noise(size: float, octaves: int, gain: float, sy: float = 1.0, sx: float = 1.0) -> np.ndarray:
        return fbm(rng, th, tw, size * uy * sy, size * ux * sx, octaves, gain)

    yy, xx = sh.grid(th, tw)
    Y, X = yy * np.float32(1.0 / uy), xx * np.float32(1.0 / ux)  # feature units
    if kind == "wood":
        # boards running across the table, their seams receding towards the back
        plank, length = 4.0, 28.0
        row = np.floor(Y / np.float32(plank)).astype(np.int32)  # (th, 1)
        n_pl = int(row.max()) + 2
        tone = rng.uniform(-1.0, 1.0, n_pl).astype(np.float32)[row]
        offs = rng.uniform(0, 50, n_pl).astype(np.float32)[row]
        shift = rng.uniform(0, length, n_pl).astype(np.float32)[row]
        warp = noise(2.0, 3, 0.5, sx=8.0)
        rings = np.sin((Y + offs + warp * np.float32(0.8)) * np.float32(1 / 0.3)) * np.float32(0.5) + np.float32(0.5)
        rings *= rings
        streak = noise(0.35, 3, 0.6, sx=10.0)
        frac = (Y / np.float32(plank)) % np.float32(1.0)
        seam = 1.0 - sh.smoothstep(0.0, min(0.06, 1.0 / max(plank * uy, 1.0)), np.minimum(frac, 1.0 - frac))
        jf = ((X + shift) % np.float32(length)) / np.float32(length)
        joint = 1.0 - sh.smoothstep(0.0, min(0.01, 1.0 / (length * ux)), np.minimum(jf, 1.0 - jf))
        t = np.float32(0.62) + np.float32(k) * (np.float32(0.16) * tone + np.float32(0.26) * (rings - np.float32(0.5)) + np.float32(0.1) * streak)
        t -= np.maximum(seam, joint) * np.float32(0.45 * (0.4 + 0.6 * k))
        return np.clip(t, 0.0, 1.15), (dark, light)
    if kind == "marble":
        n = noise(7.0, 5, 0.5)
        m = noise(10.0, 2, 0.5)
        a = rng.uniform(0, np.pi)
        d = (X * np.float32(np.cos(a)) + Y * np.float32(np.sin(a))) * np.float32(1 / 9.0)
        v = np.abs(np.sin((d + n * np.float32(0.55)) * np.float32(np.pi)))
        presence = sh.smoothstep(-0.7, 0.9, m)
        thin = 1.0 - sh.smoothstep(0.0, 0.045, v)
        halo = 1.0 - sh.smoothstep(0.0, 0.4, v)
        cloud = noise(3.0, 4, 0.55)
        t = 1.0 - np.float32(k) * (presence * (np.float32(0.45) * thin + np.float32(0.12) * halo) + np.float32(0.035) * (cloud + 1.0))
        return np.clip(t, 0.0, 1.0), (dark, light)
    if kind == "concrete":
        n = noise(2.5, 6, 0.6)
        m = noise(12.0, 2, 0.5)
        pores = sh.smoothstep(0.985, 0.998, _white(rng, th, tw))
        t = np.float32(0.8) + np.float32(k) * (np.float32(0.1) * n + np.float32(0.08) * m - pores * np.float32(0.35))
        return np.clip(t, 0.0, 1.1), (dark, light)
    if kind == "linen":
        warp_t = noise(0.12, 2, 0.5, sy=10.0)
        weft_t = noise(0.12, 2, 0.5, sx=10.0)
        fold_n = noise(10.0, 2, 0.5)
        folds = np.sin((X * np.float32(0.8) + Y * np.float32(0.25)) * np.float32(1 / 3.5) + fold_n * np.float32(2.0))
        t = np.float32(0.88) + np.float32(k) * (np.float32(0.04) * warp_t + np.float32(0.04) * weft_t + np.float32(0.07) * folds)
        return np.clip(t, 0.0, 1.1), (dark, light)
    if kind == "terrazzo":
        # the binder here; the chips are geometry, drawn crisply in screen space (see _chips)
        base_n = noise(6.0, 3, 0.5)
        t = np.float32(0.95) + np.float32(0.04 * k) * base_n
        return np.clip(t, 0.0, 1.1), (dark, light)
    if kind == "paper":
        n = noise(0.6, 3, 0.5)
        m = noise(10.0, 2, 0.5)
        t = np.float32(0.94) + np.float32(k) * (np.float32(0.012) * n + np.float32(0.03) * m)
        return np.clip(t, 0.0, 1.1), (dark, light)
    # plain
    m = noise(12.0, 2, 0.5)
    t = np.float32(0.95) + np.float32(k * 0.025) * m
    return np.clip(t, 0.0, 1.1), (dark, light)


def _chips(p: ProceduralParams, pal: Palette, th: float, tw: float, ux: float, uy: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list]:
    """Terrazzo chips in texture space: polygons (n, 5, 2) in texels, colour indices (n,), colours."""
    k = float(p.texture)
    ux, uy = ux * p.texture_scale, uy * p.texture_scale
    acc_L, _, acc_h = lch_of(pal.accent)
    cols = [
        oklch(float(np.clip(acc_L, 0.5, 0.72)), 0.06, acc_h),
        oklch(0.55, 0.012, pal.hue),
        oklch(0.97, 0.005, 90.0),
        oklch(0.7, 0.07, 45.0),
        oklch(0.8, 0.03, 85.0),
    ]
    n = int(np.clip(tw / ux * th / uy * 1.4 * (0.25 + k), 10, 1500))
    cx = rng.uniform(0, tw / ux, n)
    cy = rng.uniform(0, th / uy, n)
    r = 0.13 * rng.gamma(2.0, 0.5, n) + 0.04
    ci = rng.integers(0, len(cols), n)
    nv = 5
    ang = np.sort(rng.uniform(0, 2 * np.pi, (n, nv)), axis=1)
    rad = r[:, None] * rng.uniform(0.5, 1.0, (n, nv))
    pts = np.stack([(cx[:, None] + rad * np.cos(ang)) * ux, (cy[:, None] + rad * np.sin(ang)) * uy], axis=-1)
    return pts, ci, cols


# --------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class _Geo:
    w: int
    h: int
    gy: float  # where the product stands (work rows)
    hy: float | None  # the floor's back edge (None: no floor)
    px: int  # product patch (work coords)
    py: int
    pw: int
    ph: int
    cx: float  # product centre column


@lru_cache(maxsize=64)
def _floor_maps(w: int, h: int, hy: int, gy: int, cx: int, density: float) -> tuple:
    """Perspective maps from floor rows [hy, h) to texture space.

    Returns (map_x, map_y, texture rows, texture columns, depth density, per-row depth 0 at the
    ground line .. 1 at the back, projection parameters for :func:`_project`). Texture columns hold ``density`` texels per pixel at the
    ground line; rows are stored foreshortened (``depth density`` texels per feature-space
    pixel) so that the texture is not oversampled in depth.
    """
    fh = h - hy
    D = max(0.1 * h, 0.9 * max(gy - hy, 4))  # horizon (floor's back edge) to the vanishing line
    yv = hy - D
    f = 1.0 * max(w, h)  # focal length (px)
    fore = max(1.0, f / (gy - yv))  # foreshortening at the ground line
    dy = density / fore
    yy = np.arange(hy, h, dtype=np.float64) + 0.5
    Z = (gy - yv) / (yy - yv)  # 1 at the ground line, larger further back
    xx = np.arange(w, dtype=np.float64) + 0.5
    u = (xx[None, :] - cx) * Z[:, None] * density
    v = -f * dy * Z  # texture rows grow towards the viewer
    u0, v0 = float(u.min()) - 2, float(v.min()) - 2
    tw = int(np.ceil(float(u.max()) - u0)) + 3
    th = int(np.ceil(float(v.max()) - v0)) + 3
    map_x = np.ascontiguousarray((u - u0).astype(np.float32))
    map_y = np.ascontiguousarray(np.broadcast_to((v - v0).astype(np.float32)[:, None], (fh, w)))
    depth = ((Z - 1.0) / max(float(Z.max()) - 1.0, 1e-6)).clip(-1, 1).astype(np.float32)
    for a in (map_x, map_y, depth):
        a.setflags(write=False)
    proj = (float(u0), float(v0), float(yv), float(f * dy), float(gy - yv), float(cx), float(density), float(hy))
    return map_x, map_y, th, tw, dy, depth, proj


def _project(pts: np.ndarray, proj: tuple) -> np.ndarray:
    """Texture-space points (..., 2) to floor-image coordinates (x, y - hy) through the perspective."""
    u0, v0, yv, fdy, gyv, cx, density, hy = proj
    Z = -(pts[..., 1] + v0) / fdy
    Z = np.maximum(Z, 1e-3)
    y = yv + gyv / Z - hy
    x = cx + (pts[..., 0] + u0) / (Z * density)
    return np.stack([x, y], axis=-1)


def _rows(col: np.ndarray, w: int) -> np.ndarray:
    """A per-row map (h,) or per-row colours (h, 3) widened to w columns (fast)."""
    col = np.ascontiguousarray(col, np.float32)
    if col.ndim == 1:
        col = col[:, None]
    else:
        col = col[:, None, :]
    return cv2.resize(col, (w, col.shape[0]), interpolation=cv2.INTER_NEAREST)


# --------------------------------------------------------------------------------------------
# the generator


def _stream(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (2**63), k])


class ProceduralGenerator:
    """Procedural backgrounds: studio sets drawn around the product, harmonised with its colours."""

    name = "procedural"
    version = "1"

    def __init__(self, work_scale: float = 0.5, **options: Any):
        if options:
            raise ValueError(f"unknown procedural generator option(s): {', '.join(sorted(options))} (known: work_scale)")
        work_scale = float(work_scale)
        if not 0.2 <= work_scale <= 1.0:
            raise ValueError(f"work_scale must be between 0.2 and 1.0, got {work_scale}")
        self.work_scale = work_scale

    def spec(self) -> dict:
        return {"work_scale": self.work_scale}

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray]:
        return [self.generate(r) for r in requests]

    # ------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> np.ndarray:
        """The background for ``request``: uint8 (H, W, 3) at the scene's canvas size."""
        scene = request.scene
        p = _params_of(request.params)
        seed = int(request.seed)
        W, H = scene.width, scene.height
        w = max(16, int(round(W * self.work_scale)))
        h = max(16, int(round(H * self.work_scale)))
        sx, sy = w / W, h / H

        # the product at working scale
        alpha = scene.product_alpha.astype(np.float32) * np.float32(1 / 255)
        ph_full, pw_full = alpha.shape
        pw, ph = max(1, int(round(pw_full * sx))), max(1, int(round(ph_full * sy)))
        px, py = int(round(scene.x * sx)), int(round(scene.y * sy))
        a_w = cv2.resize(alpha, (pw, ph), interpolation=cv2.INTER_AREA)
        # where it stands: the ground line, or the lowest solid row when the mask carries a faint
        # baked-in shadow below the object
        solid_rows = np.flatnonzero((a_w >= 0.5).any(axis=1))
        gy = scene.ground_y * sy
        if solid_rows.size:
            gy = min(gy, py + float(solid_rows[-1]) + 1.0)
        hy = None
        # a product the frame cuts at the bottom (a model cut at the thighs) stands below the
        # canvas: the set is a wall behind it, with no floor and nothing cast on one
        grounded = "bottom" not in scene.cut
        if p.scene in FLOOR_SCENES and grounded:
            if scene.horizon_y is not None:
                # keep the floor's depth behind the product when its base sits above the ground line
                hy = scene.horizon_y * sy - (scene.ground_y * sy - gy)
            elif p.scene in ("sweep", "spotlight"):
                # no floor in this placement: a seamless sweep still works under a floating product
                hy = gy - 0.22 * ph - 0.04 * h
        if hy is not None:
            hy = float(min(max(hy, 0.0), gy - 2))
        geo = _Geo(w, h, gy, hy, px, py, pw, ph, px + pw / 2.0)

        rng_pal, rng_tex, rng_wall, rng_light, rng_bokeh = (_stream(seed, k) for k in range(1, 6))
        pal = make_palette(p, scene.palette, rng_pal)
        light_x = float(np.clip(p.light_x + rng_light.normal(0, 0.5) * p.variation, -1, 1))

        img = self._backdrop(p, geo, pal, rng_wall)
        if hy is not None:
            self._floor(img, p, geo, pal, rng_tex)
        shade = self._light(p, geo, light_x)
        if p.vignette > 0:
            shade *= sh.vignette_map(h, w, p.vignette * 0.55)
        # the key light's colour: a gentle warm / cool cast
        tint = 1.0 + (pal.light / float(pal.light.mean()) - 1.0) * 0.5
        img *= cv2.merge([shade * np.float32(c) for c in tint])
        if p.sun > 0:
            self._sun(img, p, geo, rng_light, light_x)
        if p.bokeh > 0:
            self._bokeh(img, p, geo, pal, rng_bokeh)

        # grounding: reflection, contact + ambient shadow, cast shadow
        # shadows end at a table's back edge; in a room they run on up the wall
        floor_top = hy if p.scene in ("tabletop", "bokeh") else None
        if p.reflection > 0 and grounded:
            rgb_w = cv2.resize(scene.product_rgb, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32) * np.float32(1 / 255)
            sh.reflection(img, rgb_w, a_w, px, py, gy, p.reflection, falloff=0.2, softness=0.3 + 0.5 * p.shadow_softness, floor_color=tuple(pal.floor))
        shadow = None
        if p.shadow > 0 and grounded:
            shadow = sh.contact_shadow(h, w, a_w, px, py, gy, p.shadow_softness, floor_top)
            shadow *= np.float32(p.shadow)
        if p.cast_shadow > 0 and grounded:
            cast = sh.cast_shadow(h, w, a_w, px, py, gy, light_x, 0.3 + 0.3 * abs(light_x), p.shadow_softness, floor_top)
            cast *= np.float32(p.cast_shadow * 0.7)
            shadow = cast if shadow is None else 1.0 - (1.0 - shadow) * (1.0 - cast)
        if shadow is not None:
            sh.apply_shadow(img, shadow, pal.shadow)
        if float(img.max()) > 0.97:  # roll hot highlights off instead of clipping them flat
            sh.soft_clip(img, 0.8)
        np.clip(img, 0.0, 1.0, out=img)
        return sh.to_uint8(img, (W, H), grain=0.6 + 3.0 * p.grain)

    # ------------------------------------------------------------------
    def _backdrop(self, p: ProceduralParams, g: _Geo, pal: Palette, rng: np.random.Generator) -> np.ndarray:
        """The wall / backdrop over the whole canvas (the floor is laid over it)."""
        w, h = g.w, g.h
        bottom = g.hy if g.hy is not None else g.gy
        if p.scene == "gradient":
            yy, xx = sh.grid(h, w)
            a = np.deg2rad(rng.uniform(-35, 35) * (0.4 + p.variation))
            dx, dy = np.float32(np.sin(a)), np.float32(np.cos(a))
            proj = ((xx - np.float32(w / 2)) * dx + (yy - np.float32(h / 2)) * dy) / np.float32(0.5 * (abs(dx) * w + abs(dy) * h) + 1e-6)
            t = sh.smoothstep(-1.0, 1.0, proj)
            if p.palette == "explicit" and len(p.colors) > 1:
                second = pal.floor  # explicit gradients run from the second colour (top) to the first
            else:
                second = oklch(
                    float(np.clip(pal.L_wall - 0.07, 0.1, 0.95)),
                    max(pal.chroma * 1.3, 0.03 if p.saturation > 0.15 else 0.0),
                    _pleasant_hue(pal.hue + 28.0 * (1 if rng.random() < 0.5 else -1), pal.L_wall - 0.2),
                )
            img = sh.ramp(t, second, pal.wall)
        else:
            yy = np.arange(h, dtype=np.float32) + 0.5
            t = np.sqrt(sh.smoothstep(0.0, max(bottom, 1.0), yy))
            col = pal.wall_top[None, :] + (pal.wall - pal.wall_top)[None, :] * t[:, None]
            img = _rows(col, w)
        if p.scene == "bokeh":
            img *= np.float32(0.85)
        # wall texture (a luminance modulation), defocused
        dof = {"tabletop": 0.02, "bokeh": 0.03, "room": 0.002, "spotlight": 0.006}.get(p.scene, 0.004)
        sigma = (p.blur * 0.02 + dof) * min(w, h)
        tex = self._wall_texture(p, g, rng, sigma)
        img *= sh.rgb3(tex)
        return img

    def _wall_texture(self, p: ProceduralParams, g: _Geo, rng: np.random.Generator, sigma: float) -> np.ndarray:
        # render at a lower resolution when it gets blurred anyway
        q = 1 if sigma < 3 else (2 if sigma < 8 else 4)
        w, h = max(8, g.w // q), max(8, g.h // q)
        sigma /= q
        k = p.texture
        u = max(w, h) / 20.0 * p.texture_scale
        kind = p.wall if p.scene in ("tabletop", "room", "spotlight", "bokeh") else "plain"
        if kind == "plain":
            m = fbm(rng, h, w, 10 * u, 10 * u, 2, 0.5)
            tex = 1.0 + m * np.float32(0.012 * k)
        elif kind == "plaster":
            n = fbm(rng, h, w, 2.5 * u, 2.5 * u, 5, 0.55)
            m = fbm(rng, h, w, 12 * u, 12 * u, 2, 0.5)
            tex = 1.0 + (n * np.float32(0.025) + m * np.float32(0.03)) * np.float32(k)
        elif kind == "concrete":
            n = fbm(rng, h, w, 2 * u, 2 * u, 6, 0.6)
            m = fbm(rng, h, w, 10 * u, 10 * u, 2, 0.5)
            pores = sh.smoothstep(0.992, 0.999, _white(rng, h, w))
            tex = 1.0 + (n * np.float32(0.04) + m * np.float32(0.045) - pores * np.float32(0.25)) * np.float32(k)
        elif kind == "paper":
            n = fbm(rng, h, w, 0.5 * u, 0.5 * u, 3, 0.5)
            tex = 1.0 + n * np.float32(0.01 * k)
        elif kind == "linen":  # a draped fabric backdrop: soft vertical folds
            yy, xx = sh.grid(h, w)
            n = fbm(rng, h, w, 8 * u * 4.0, 8 * u, 2, 0.5)
            folds = np.sin(xx / np.float32(1.6 * u) + n * np.float32(2.2) + np.float32(rng.uniform(0, 6.28)))
            folds2 = np.sin(xx / np.float32(0.7 * u) + n * np.float32(3.0))
            tex = 1.0 + (folds * np.float32(0.05) + folds2 * np.float32(0.015)) * np.float32(k)
            if q == 1:
                weave = fbm(rng, h, w, 0.1 * u, 0.1 * u * 10.0, 1, 0.5)
                tex += weave * np.float32(0.008 * k)
        else:  # wood: vertical boards
            yy, xx = sh.grid(h, w)
            board = 2.2 * u
            idx = np.floor(xx / np.float32(board)).astype(np.int32)
            tone = rng.uniform(-1, 1, int(idx.max()) + 2).astype(np.float32)[idx]
            streak = fbm(rng, h, w, 0.3 * u * 12.0, 0.3 * u, 3, 0.6)
            frac = (xx / np.float32(board)) % np.float32(1.0)
            seam = 1.0 - sh.smoothstep(0.0, min(0.05, 1.5 / board), np.minimum(frac, 1.0 - frac))
            tex = 1.0 + (tone * np.float32(0.03) + streak * np.float32(0.03) - seam * np.float32(0.18)) * np.float32(k)
        tex = sh.blur(np.ascontiguousarray(tex, np.float32), sigma)
        if q > 1:
            tex = cv2.resize(tex, (g.w, g.h), interpolation=cv2.INTER_LINEAR)
        return tex

    # ------------------------------------------------------------------
    def _floor(self, img: np.ndarray, p: ProceduralParams, g: _Geo, pal: Palette, rng: np.random.Generator) -> None:
        """Lay the floor (a surface in perspective) over the backdrop's lower part, in place."""
        w, h = g.w, g.h
        hy = int(np.floor(g.hy))  # type: ignore[arg-type]
        hy = min(max(hy, 0), h - 2)
        gy = int(round(min(max(g.gy, hy + 2), h)))
        fh = h - hy
        unit = max(w, h) / 20.0
        density = 0.75
        flat = p.surface in ("plain", "paper") and p.scene in ("sweep", "spotlight")
        map_x, map_y, th, tw, dy, depth, proj = _floor_maps(w, h, hy, gy, int(round(g.cx)), density)
        if flat:  # seamless paper: no perspective needed
            tex, ramp = _surface(p, pal, fh, w, unit * 0.8, unit * 0.8, rng)
        else:
            tex, ramp = _surface(p, pal, th, tw, unit * density, unit * dy, rng)
            tex = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if p.surface == "terrazzo" and ramp is not None:
            tex = self._draw_chips(tex, ramp, p, pal, th, tw, unit * density, unit * dy, proj, rng)
            ramp = None
        yy = np.arange(hy, h, dtype=np.float32) + 0.5
        back = np.clip(depth, 0, 1)
        # depth of field: the back of the floor is softer
        if p.scene in ("tabletop", "bokeh", "room") and p.blur > 0:
            soft = sh.blur(tex, (0.003 + 0.012 * p.blur) * min(w, h))
            kk = _rows(back * np.float32(min(1.0, 0.4 + p.blur)), w)
            tex = tex + (soft - tex) * (kk if tex.ndim == 2 else sh.rgb3(kk))
        # shading: the front edge falls off a little; the back hazes towards the backdrop
        front = np.clip((yy - gy) / max(h - gy, 1.0), 0.0, 1.0)
        fshade = 1.0 - np.float32(0.1 + 0.12 * p.light_strength) * front * front
        haze_k = back * back * np.float32(0.25)
        if ramp is not None:
            floor = sh.ramp(tex * _rows(fshade, w), ramp[0], ramp[1])
        else:
            floor = tex * sh.rgb3(_rows(fshade, w))
        haze = pal.wall if p.scene != "spotlight" else pal.wall_top
        floor += (sh.fill(fh, w, haze) - floor) * sh.rgb3(_rows(haze_k, w))
        region = img[hy:]
        if p.scene in ("sweep", "spotlight"):
            # the paper curves up into the wall: no visible edge
            band = max(4.0, (gy - hy) * 1.1)
            k = sh.smoothstep(hy - band * 0.3, hy + band, yy)
            region += (floor - region) * sh.rgb3(_rows(k, w))
            return
        # a real edge (table top / floor meets the wall), with contact occlusion
        region[:] = floor
        edge = max(1.0, 0.004 * h)
        ywall = np.arange(0, hy, dtype=np.float32) + 0.5
        occl_wall = np.exp(-np.maximum(0.0, np.float32(g.hy) - ywall) / np.float32(edge * (6 if p.scene == "room" else 2.5)))
        img[:hy] *= sh.rgb3(_rows(1.0 - np.float32(0.12 if p.scene == "room" else 0.05) * occl_wall, w))
        mult = 1.0 - np.float32(0.1) * np.exp(-(yy - hy) / np.float32(edge * 4))
        if p.scene in ("tabletop", "bokeh"):  # the table's back edge catches a thin highlight
            mult += np.float32(0.07) * np.exp(-np.square((yy - hy - 1.0) / np.float32(edge)))
        region *= sh.rgb3(_rows(mult, w))

    def _draw_chips(self, t: np.ndarray, ramp: tuple, p: ProceduralParams, pal: Palette, th: int, tw: int, ux: float, uy: float, proj: tuple, rng: np.random.Generator) -> np.ndarray:
        """Terrazzo: the binder (colour ramp of ``t``) with chips projected onto the floor and drawn antialiased."""
        base = sh.ramp(t, ramp[0], ramp[1])
        img = base.copy()
        pts, ci, cols = _chips(p, pal, th, tw, ux, uy, rng)
        scr = _project(pts, proj)
        fh, fw = t.shape
        lo, hi = scr.min(axis=1), scr.max(axis=1)
        keep = (hi[:, 0] >= 0) & (lo[:, 0] < fw) & (hi[:, 1] >= 0) & (lo[:, 1] < fh) & ((hi - lo).max(axis=1) > 0.4)
        fixed = np.round(scr * 4).astype(np.int32)
        colors = [tuple(float(c) for c in col) for col in cols]
        for i in np.flatnonzero(keep):
            cv2.fillConvexPoly(img, fixed[i], colors[ci[i]], cv2.LINE_AA, 2)
        k = float(p.texture)
        # chips sit in the binder: soften them towards it a little
        return cv2.addWeighted(img, 0.5 + 0.4 * k, base, 0.5 - 0.4 * k, 0.0)

    # ------------------------------------------------------------------
    def _light(self, p: ProceduralParams, g: _Geo, light_x: float) -> np.ndarray:
        """Luminance multiplier (h, w): key light glow on the backdrop and a pool of light around the product."""
        w, h = g.w, g.h
        s = p.light_strength
        lx = w * (0.5 + 0.38 * light_x)
        glow = sh.radial(h, w, lx, h * 0.15, w * 0.9, h * 0.75)
        shade = np.float32(1.0 - 0.05 * s) + np.float32(0.1 * s) * (1.0 - sh.smoothstep(0.0, 1.3, glow))
        pool = sh.radial(h, w, g.cx + 0.1 * w * light_x, g.gy - 0.2 * g.ph, max(g.pw * 1.2, 0.35 * w), max(g.ph * 0.9, 0.3 * h))
        if p.scene == "spotlight":
            spot = 1.0 - sh.smoothstep(0.2, 1.25, pool)
            shade *= np.float32(0.55) + np.float32(0.45 + 0.9 * s) * spot
            halo = sh.radial(h, w, g.cx, g.py + 0.35 * g.ph, max(g.pw * 1.4, 0.3 * w), max(g.ph * 1.4, 0.4 * h))
            shade *= 1.0 + np.float32(0.35 * s) * (1.0 - sh.smoothstep(0.0, 1.0, halo))
        else:
            shade *= 1.0 + np.float32(0.08 * s) * (1.0 - sh.smoothstep(0.0, 1.0, pool))
        return shade.astype(np.float32)

    def _sun(self, img: np.ndarray, p: ProceduralParams, g: _Geo, rng: np.random.Generator, light_x: float) -> None:
        """Sunlight through a window, blinds or leaves: warm light patches with soft penumbrae (in place)."""
        w, h = g.w, g.h
        q = 4  # a quarter of the working size: it is soft anyway
        sw, shh = max(8, w // q), max(8, h // q)
        yy, xx = sh.grid(shh, sw)
        a = np.deg2rad(rng.uniform(15, 35) * (1 if light_x <= 0 else -1))
        ca, sa = np.float32(np.cos(a)), np.float32(np.sin(a))
        u = (xx * ca + yy * sa) / np.float32(sw)
        v = (-xx * sa + yy * ca) / np.float32(shh)
        if p.sun_pattern == "leaves":
            n = fbm(rng, shh, sw, max(sw, shh) / 9.0, max(sw, shh) / 9.0, 4, 0.55)
            pat = sh.smoothstep(-0.1, 0.5, n)
            region = 1.0 - sh.smoothstep(0.4, 1.1, sh.radial(shh, sw, sw * (0.5 - 0.3 * light_x), shh * 0.35, sw * 0.8, shh * 0.7))
            pat = pat * region
            pen = 0.012
        else:
            if p.sun_pattern == "blinds":
                period = rng.uniform(0.06, 0.09)
                pat = sh.smoothstep(0.35, 0.45, np.abs(((v / np.float32(period)) % 1.0) - 0.5) * 2.0)
                u0, u1 = rng.uniform(-0.1, 0.15), rng.uniform(0.7, 1.0)
                v0, v1 = -0.3, 1.3
            else:
                pane = rng.uniform(0.18, 0.26)
                mull = 0.06
                fu = np.abs(((u / np.float32(pane)) % 1.0) - 0.5) * 2.0
                fv = np.abs(((v / np.float32(pane * 1.3)) % 1.0) - 0.5) * 2.0
                pat = (1.0 - sh.smoothstep(1 - mull * 2, 1 - mull, fu)) * (1.0 - sh.smoothstep(1 - mull * 2, 1 - mull, fv))
                off = rng.uniform(-0.2, 0.2)
                u0, u1 = 0.05 + off, 0.05 + off + pane * 2.6
                v0, v1 = rng.uniform(-0.2, 0.1), 0.95
            inside = sh.smoothstep(u0, u0 + 0.02, u) * (1.0 - sh.smoothstep(u1 - 0.02, u1, u))
            inside = inside * sh.smoothstep(v0, v0 + 0.02, v) * (1.0 - sh.smoothstep(v1 - 0.02, v1, v))
            pat = pat * inside
            pen = 0.006
        pat = cv2.GaussianBlur(pat.astype(np.float32), (0, 0), max(0.6, pen * sw * 4))
        pat = cv2.resize(pat, (w, h), interpolation=cv2.INTER_LINEAR)
        warm = oklch(0.95, 0.06, 75.0)
        amt = float(p.sun)
        base = 1.0 - amt * 0.14
        img *= cv2.merge([pat * np.float32(amt * 0.55 * float(c)) + np.float32(base) for c in warm])

    def _bokeh(self, img: np.ndarray, p: ProceduralParams, g: _Geo, pal: Palette, rng: np.random.Generator) -> None:
        """Out-of-focus light discs on the backdrop (screen-blended), kept off the floor (in place).

        Two depths: large faint discs far away (softer), and smaller brighter ones nearer.
        """
        w, h = g.w, g.h
        limit = g.hy if g.hy is not None else h
        if p.bokeh_color == "festive":
            cols = [oklch(0.84, 0.15, 85.0), oklch(0.78, 0.16, 65.0), oklch(0.7, 0.17, 25.0), oklch(0.93, 0.06, 95.0)]
        elif p.bokeh_color == "palette":
            cols = [pal.accent, pal.light, oklch(min(0.95, pal.L_wall + 0.1), pal.chroma * 1.5 + 0.03, pal.hue)]
        elif p.bokeh_color == "warm":
            cols = [oklch(0.82, 0.15, 75.0), oklch(0.76, 0.16, 58.0), oklch(0.9, 0.11, 90.0)]
        else:
            cols = [pal.light, oklch(0.95, 0.02, pal.hue)]
        base_r = 0.03 * min(w, h) * p.bokeh_size
        layer = None
        for far in (True, False):
            q = 2 if far else 1  # the far discs are softer: half the working size is enough
            lw, lh = max(8, w // q), max(8, h // q)
            lay = np.zeros((lh, lw, 3), np.float32)
            n = int((6 if far else 4) + (30 if far else 40) * p.bokeh)
            for _ in range(n):
                r = base_r / q * float(np.clip(rng.lognormal(0.35 if far else -0.1, 0.35), 0.3, 3.0))
                cx = float(rng.uniform(-0.05, 1.05) * lw)
                cy = float(rng.uniform(-0.05, 1.0) * limit / q)
                col = cols[int(rng.integers(0, len(cols)))]
                inten = float(rng.uniform(0.15, 0.45) if far else rng.uniform(0.3, 0.85)) * (0.45 + 0.55 * p.bokeh)
                if g.hy is None and abs(cx * q - g.cx) < g.pw * 0.6 and g.py < cy * q < g.gy:
                    inten *= 0.4  # keep the product's silhouette clean
                cv2.circle(lay, (int(cx * 4), int(cy * 4)), max(1, int(r * 4)), tuple(float(c) * inten for c in col), -1, cv2.LINE_AA, 2)
            lay = sh.blur(lay, max(0.6, base_r / q * (0.3 if far else 0.1)))
            if q > 1:
                lay = cv2.resize(lay, (w, h), interpolation=cv2.INTER_LINEAR)
            layer = lay if layer is None else cv2.add(layer, lay)
        rows = h
        if g.hy is not None:
            rows = min(h, int(np.ceil(g.hy + 0.005 * h)) + 1)
            yy = np.arange(rows, dtype=np.float32) + 0.5
            fade = 1.0 - sh.smoothstep(g.hy - 0.02 * h, g.hy + 0.005 * h, yy)
            layer = layer[:rows] * sh.rgb3(_rows(fade, w))
        img[:rows] = sh.screen(img[:rows], layer)
