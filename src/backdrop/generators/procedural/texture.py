"""Surfaces of the set: fractal noise and the materials (paper, plaster, wood, stone, fabric, terrazzo chips)."""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from ...imaging import shading as sh
from ...styles.params import (
    ProceduralParams,
)
from .colour import (
    Palette,
    _away,
    _to_srgb,
    lch_of,
    oklab_to_linear,
    oklch,
    rgb_to_oklab,
)


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
        acc = cast(np.ndarray, cv2.resize(acc, (gw, gh), interpolation=cv2.INTER_CUBIC))
        amp *= gain
        acc += (rng.random((gh, gw), dtype=np.float32) - np.float32(0.5)) * np.float32(amp)
    out: np.ndarray = cv2.resize(acc, (w, h), interpolation=cv2.INTER_CUBIC)
    m, s = cv2.meanStdDev(out)
    out -= np.float32(m[0, 0])
    out *= np.float32(1.0 / (s[0, 0] + 1e-6))
    return out


def _white(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.random((h, w), dtype=np.float32)


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
        t = np.float32(0.62) + np.float32(k) * (
            np.float32(0.16) * tone + np.float32(0.26) * (rings - np.float32(0.5)) + np.float32(0.1) * streak
        )
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


def _chips(
    p: ProceduralParams, pal: Palette, th: float, tw: float, ux: float, uy: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list]:
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
