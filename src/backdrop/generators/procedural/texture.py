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


def marble_veins(rng: np.random.Generator, h: int, w: int, uy: float, ux: float, k: float) -> np.ndarray:
    """Marble (float32 (h, w)): 1 the stone, lower in its veins and clouds.

    The stone's layers run along one drift (diagonal), bent by large and small eddies; major
    veins are level lines of that flow, their width swelling and thinning, fading in and out,
    with a soft halo; secondary veins are the zero crossings of a second noise, a network that
    branches and wanders between them; the ground is cloudy, with soft grey drifts along the
    layers (a uniform ground with a few thin dark lines reads as cracks or wires, not stone).
    ``uy`` / ``ux``: texels of one feature unit (1/20 of the canvas) in rows / columns (floors are
    stored foreshortened).
    """
    a = float(rng.uniform(0.2, 0.6)) * (1.0 if rng.random() < 0.5 else -1.0)
    ca, sa = np.float32(np.cos(a)), np.float32(np.sin(a))
    yy, xx = sh.grid(h, w)
    X, Y = xx * np.float32(1.0 / ux), yy * np.float32(1.0 / uy)  # feature units
    across = -X * sa + Y * ca

    def noise(size: float, octaves: int, gain: float) -> np.ndarray:
        return fbm(rng, h, w, size * uy, size * ux, octaves, gain)

    bend, eddy, swell = noise(12.0, 3, 0.5), noise(3.0, 4, 0.55), noise(4.0, 3, 0.5)
    field = across * np.float32(0.12) + bend * np.float32(0.45) + eddy * np.float32(0.09) + np.float32(rng.uniform(0, 1))
    r = np.abs(((field + np.float32(0.5)) % np.float32(1.0)) - np.float32(0.5))  # distance to the nearest level, in periods
    width = np.float32(0.006) + np.float32(0.03) * sh.smoothstep(-1.0, 1.6, swell)
    core = np.exp(-np.square(r / width))
    halo = np.exp(-np.square(r / (width * np.float32(5.0) + np.float32(0.02))))
    presence = sh.smoothstep(-0.9, 0.6, noise(9.0, 2, 0.5))
    web = noise(6.0, 3, 0.5) + eddy * np.float32(0.5)
    web_width = np.float32(0.035) + np.float32(0.05) * sh.smoothstep(-1.0, 1.5, swell)
    secondary = np.exp(-np.square(web / web_width)) * sh.smoothstep(-0.2, 1.2, noise(6.0, 2, 0.5))
    cloud = noise(2.5, 5, 0.6)
    drift = sh.smoothstep(-0.3, 1.5, np.sin(field * np.float32(4.0 * np.pi)) + cloud * np.float32(0.8))
    k32 = np.float32(k)
    t = 1.0 - k32 * (
        presence * (np.float32(0.42) * core + np.float32(0.12) * halo)
        + np.float32(0.16) * secondary
        + np.float32(0.07) * drift
        + np.float32(0.025) * (cloud + 1.0)
    )
    return np.clip(t, 0.0, 1.0).astype(np.float32)


def _concrete_wall(rng: np.random.Generator, h: int, w: int, u: float, k: float) -> np.ndarray:
    """Cast-in-place concrete (luminance modulation (h, w) around 1): formwork panels a shade apart,
    their joints, rows of form-tie holes, fine aggregate and the odd pore; ``u`` pixels per feature
    unit (1/20 of the canvas)."""
    yy, xx = sh.grid(h, w)
    pw_, ph_ = 9.0 * u, 6.0 * u  # a plywood form panel
    ox, oy = float(rng.uniform(0, pw_)), float(rng.uniform(0, ph_))
    gx, gy = (xx + np.float32(ox)) / np.float32(pw_), (yy + np.float32(oy)) / np.float32(ph_)
    ix, iy = np.floor(gx).astype(np.int32), np.floor(gy).astype(np.int32)
    tones = rng.uniform(-1.0, 1.0, (int(iy.max()) + 2, int(ix.max()) + 2)).astype(np.float32)
    panel = tones[iy, ix] * np.float32(0.022)
    ex = np.minimum(gx - ix, ix + 1 - gx) * np.float32(pw_)  # pixels to the panel's edge
    ey = np.minimum(gy - iy, iy + 1 - gy) * np.float32(ph_)
    edge = np.minimum(ex, ey)
    joint = 1.0 - sh.smoothstep(0.3, 1.3, edge)
    lip = np.exp(-np.square((edge - np.float32(2.0)) / np.float32(1.0)))  # the cast edge beside the joint catches light
    # form-tie holes: a grid inside each panel, a dark recess with a lighter rim
    sp_x, sp_y = pw_ / 3.0, ph_ / 2.0
    lx = ((xx + np.float32(ox)) % np.float32(sp_x)) - np.float32(sp_x / 2)
    ly = ((yy + np.float32(oy)) % np.float32(sp_y)) - np.float32(sp_y / 2)
    r = max(1.5, 0.14 * u)
    d = np.sqrt(lx * lx + ly * ly)
    hole = 1.0 - sh.smoothstep(r - 0.7, r + 0.7, d)
    rim = np.exp(-np.square((d - np.float32(r * 1.6)) / np.float32(max(0.8, 0.4 * r))))
    agg = fbm(rng, h, w, 0.12 * u, 0.12 * u, 2, 0.5)
    cloud = fbm(rng, h, w, 6.0 * u, 6.0 * u, 3, 0.5)
    pores = sh.smoothstep(0.996, 0.9995, rng.random((h, w), dtype=np.float32))
    tex = 1.0 + np.float32(k) * (
        panel
        + agg * np.float32(0.02)
        + cloud * np.float32(0.018)
        - pores * np.float32(0.22)
        - joint * np.float32(0.22)
        + lip * np.float32(0.03)
        - hole * np.float32(0.42)
        + rim * np.float32(0.035)
    )
    return tex.astype(np.float32)


def _drape(rng: np.random.Generator, h: int, w: int, u: float, k: float, weave: bool) -> np.ndarray:
    """A linen drape (luminance modulation (h, w) around 1): folds hanging from above, fanning out
    as they fall, shaded from the side by their slope; the weave where it is not blurred away."""
    yy, xx = sh.grid(h, w)
    fall = yy * np.float32(1.0 / h)
    x0 = float(rng.uniform(0.3, 0.7)) * w
    xs = (xx - np.float32(x0)) / (np.float32(0.75) + np.float32(0.45) * fall)  # folds widen downwards
    sway = fbm(rng, h, w, 6.0 * u, 3.0 * u, 2, 0.5)
    height = np.zeros((h, w), np.float32)
    for lam, amp in ((5.5, 1.0), (2.6, 0.45), (1.3, 0.18)):
        phase = np.float32(rng.uniform(0, 2 * np.pi))
        height += np.float32(amp) * np.sin(xs / np.float32(lam * u / (2 * np.pi)) + sway * np.float32(1.2) + phase)
    slope = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * np.float32(u / 8.0)
    tex = 1.0 + np.float32(k) * (np.float32(0.16) * slope + np.float32(0.035) * height)
    if weave:
        tex += fbm(rng, h, w, 1.0 * u, 0.1 * u, 1, 0.5) * np.float32(0.01 * k)
    return tex.astype(np.float32)


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
        return marble_veins(rng, th, tw, uy, ux, k), (dark, light)
    if kind == "concrete":
        # a poured floor: fine aggregate, a faint cloud, a few pores, saw-cut joints receding
        agg = noise(0.12, 2, 0.5)
        n = noise(2.5, 3, 0.5)
        m = noise(12.0, 2, 0.5)
        pores = sh.smoothstep(0.993, 0.999, _white(rng, th, tw))
        bay = 14.0
        fx = np.abs(((X + np.float32(rng.uniform(0, bay))) / np.float32(bay)) % np.float32(1.0) - np.float32(0.5)) * np.float32(bay)
        fy = np.abs(((Y + np.float32(rng.uniform(0, bay))) / np.float32(bay)) % np.float32(1.0) - np.float32(0.5)) * np.float32(bay)
        joint = np.maximum(
            1.0 - sh.smoothstep(0.0, max(0.04, 0.8 / ux), np.float32(0.5 * bay) - fx),
            1.0 - sh.smoothstep(0.0, max(0.04, 0.8 / uy), np.float32(0.5 * bay) - fy),
        )
        t = np.float32(0.82) + np.float32(k) * (
            np.float32(0.07) * agg + np.float32(0.03) * n + np.float32(0.035) * m - pores * np.float32(0.3) - joint * np.float32(0.25)
        )
        return np.clip(t, 0.0, 1.1), (dark, light)
    if kind == "linen":
        # threads: slubbed warp (running into depth) and weft, a fine thread rhythm, and soft
        # wrinkles shaded from the side (the slope of a smooth height field)
        warp_t = noise(0.1, 2, 0.5, sy=25.0)
        weft_t = noise(0.1, 2, 0.5, sx=25.0)
        rhythm = np.cos(X * np.float32(2 * np.pi / 0.16)) * np.cos(Y * np.float32(2 * np.pi / 0.16))
        height = noise(4.0, 3, 0.45)
        slope = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * np.float32(ux / 8.0)
        slope += cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) * np.float32(uy / 8.0)
        t = np.float32(0.86) + np.float32(k) * (
            np.float32(0.1) * warp_t + np.float32(0.08) * weft_t + np.float32(0.05) * rhythm + np.float32(0.25) * slope
        )
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
