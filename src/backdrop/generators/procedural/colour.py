"""Colour for the renderer: OKLab / OKLCH conversions and the set's palette, picked around the product's own colours."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...styles.params import (
    ProceduralParams,
)


def _to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.maximum(c, 0.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


_M1 = np.array(
    [[0.4122214708, 0.5363325363, 0.0514459929], [0.2119034982, 0.6806995451, 0.1073969566], [0.0883024619, 0.2817188376, 0.6299787005]]
)


_M2 = np.array(
    [[0.2104542553, 0.7936177850, -0.0040720468], [1.9779984951, -2.4285922050, 0.4505937099], [0.0259040371, 0.7827717662, -0.8086757660]]
)


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


def lch_of(rgb: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
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
    prefer = up if (Lp < 0.42 or (Lp <= L and Lp <= 0.8)) else down
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


#: the hue ranges (OKLCH degrees) a warm and a cool set keep to
WARM_HUES = (25.0, 100.0)
COOL_HUES = (185.0, 270.0)


def _temper(h: float, temperature: str) -> float:
    """``h`` moved (by the shorter way round) into the warm or cool hue range."""
    lo, hi = WARM_HUES if temperature == "warm" else COOL_HUES
    h = h % 360.0
    if lo <= h <= hi:
        return h

    def gap(a: float, b: float) -> float:
        return abs((a - b + 180.0) % 360.0 - 180.0)

    return lo if gap(h, lo) <= gap(h, hi) else hi


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
    for _, C, h in lchs:
        if C >= 0.05:
            return Lp, h, C
    return Lp, None, lchs[0][1]


def make_palette(p: ProceduralParams, product_palette: Sequence[Sequence[int]], rng: np.random.Generator) -> Palette:
    """The set's colours for a product: harmonised with its dominant colours, kept away from its lightness."""
    Lp, key_hue, _key_c = product_key(product_palette)
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
        else:  # neutral: a warm grey next to cool products, a cool grey next to warm ones (unless the style says which)
            warm_side = {"warm": True, "cool": False}.get(p.temperature, cool or key_hue is None)
            hue = (75.0 if warm_side else 245.0) + neutral_j * (0.5 if p.temperature != "auto" else 1.0)
            C = 0.04 * p.saturation
        C *= C_j
        Lw = _away(p.lightness + L_j, Lp, p.min_contrast)
        Lf = _away(Lw + p.floor_lightness, Lp, p.min_contrast * 0.8)
        hue = _pleasant_hue(hue + p.hue_shift + hue_j, Lw - 0.1 * min(1.0, C / 0.06))
        if p.temperature != "auto":  # a warm / cool set stays warm / cool whatever the product's colour
            hue = _temper(hue, p.temperature)
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
    shadow_rgb = oklch(0.5, 0.02, (hue + 180.0) % 360.0 if p.palette != "neutral" else 250.0)
    shadow_v = (shadow_rgb / max(float(shadow_rgb.max()), 1e-6)) * 0.32
    shadow = (float(shadow_v[0]), float(shadow_v[1]), float(shadow_v[2]))
    return Palette(
        wall=wall.astype(np.float32),
        wall_top=wall_top.astype(np.float32),
        floor=floor.astype(np.float32),
        accent=np.asarray(accent, np.float32),
        light=light.astype(np.float32),
        shadow=shadow,
        hue=float(hue % 360.0),
        chroma=float(C),
        L_wall=float(lch_of(wall)[0]),
        L_floor=float(lch_of(floor)[0]),
        L_product=float(Lp),
    )
