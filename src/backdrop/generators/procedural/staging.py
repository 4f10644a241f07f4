"""Staged sets: podiums and plinths the product stands on, shapes on the wall, props on the floor.

Everything is lit by the scene's one key light: :func:`light_vector` turns the renderer's
``light_x`` (-1 left .. 1 right) into a direction, every face and sphere is shaded by Lambert's
law against it, and the shadows the podium and the props cast run away from it (the same
``shading.cast_shadow`` the product's own shadow uses). Drawn at working scale with antialiased
OpenCV polygons; a podium costs a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...imaging import shading as sh
from ...styles.params import ProceduralParams
from .colour import Palette, oklch
from .geometry import _Geo
from .texture import fbm

AMBIENT = 0.55  #: share of a face's tone it keeps facing away from the key light


@dataclass(frozen=True)
class Stage:
    """What a podium changed: where the product stands and where the podium stands."""

    back_y: float  #: the top surface's back edge: the product's shadows stop there
    base_y: float  #: where the podium meets the floor
    x0: float  #: the podium's horizontal extent
    x1: float
    mask: np.ndarray  #: (h, w) float32 coverage of the whole podium
    top: np.ndarray  #: (h, w) float32 coverage of its top surface


def light_vector(light_x: float) -> np.ndarray:
    """Unit vector towards the key light: ``light_x`` sideways, above, a little in front."""
    v = np.array([0.8 * light_x, 0.75, 0.35], np.float64)
    return v / np.linalg.norm(v)


def lambert(normal, light: np.ndarray) -> float:
    n = np.asarray(normal, np.float64)
    return AMBIENT + (1.0 - AMBIENT) * max(0.0, float(n @ light) / float(np.linalg.norm(n)))


def _tone(p: ProceduralParams, pal: Palette, which: str, lightness: float) -> np.ndarray:
    base = {"accent": pal.accent, "floor": pal.floor}.get(which, pal.wall)
    return np.clip(base * np.float32(1.0 + lightness), 0.0, 1.0).astype(np.float32)


def _poly_mask(h: int, w: int, pts: np.ndarray) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return m.astype(np.float32) * np.float32(1 / 255)


def _ellipse_mask(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (int(cx * 16), int(cy * 16)), (max(1, int(rx * 16)), max(1, int(ry * 16))), 0, 0, 360, 255, -1, cv2.LINE_AA, 4)
    return m.astype(np.float32) * np.float32(1 / 255)


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    m = sh.rgb3(mask)
    img += (colour - img) * m


def _texture(p: ProceduralParams, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A luminance modulation (h, w) for the podium's material."""
    if p.podium_surface == "plain":
        return np.ones((h, w), np.float32)
    u = max(w, h) / 20.0
    if p.podium_surface == "marble":
        n = fbm(rng, h, w, 3 * u, 3 * u, 5, 0.55)
        yy, xx = sh.grid(h, w)
        veins = np.abs(np.sin((xx * 0.6 + yy) / np.float32(2.5 * u) + n * np.float32(5.0)))
        return 1.0 - np.float32(0.16) * (1.0 - sh.smoothstep(0.0, 0.12, veins)) + n * np.float32(0.02)
    n = fbm(rng, h, w, 1.5 * u, 1.5 * u, 6, 0.6)  # concrete
    return 1.0 + n * np.float32(0.05)


def _perspective(g: _Geo, y: float) -> float:
    """How flat a horizontal circle at row ``y`` looks (minor / major axis): flatter near eye level."""
    eye = g.hy if g.hy is not None else y - 0.3 * g.h
    return float(np.clip(0.07 + 0.55 * (y - eye) / g.h, 0.07, 0.3))


def draw_podium(img: np.ndarray, p: ProceduralParams, g: _Geo, pal: Palette, light_x: float, rng: np.random.Generator) -> Stage:
    """Draw the podium under the product (in place): its top at the product's base row ``g.gy``.

    Drawn within the podium's bounding box only (its coordinates are the canvas's, shifted by the
    box's corner ``X0, Y0``): a podium is a small part of the canvas."""
    h, w = g.h, g.w
    L = light_vector(light_x).astype(np.float32)  # float32 throughout: float64 would double every array op
    colour = _tone(p, pal, p.podium_color, p.podium_lightness)
    height = p.podium_height * h
    # wider than the product always (a product overhanging its podium looks afloat), the frame permitting
    rx = float(min(max(p.podium_width * g.pw / 2.0, 0.6 * g.pw + 2), 0.5 * w))
    cx, gy = g.cx, float(g.gy)
    spread = {"steps": 1.3, "discs": 1.25}.get(p.podium, 1.0)  # the widest part's width, in top widths
    rx = max(0.6 * g.pw + 2, min(rx, 0.5 * w / spread))  # the base within the frame where the product allows
    reach = rx * spread
    X0, X1 = max(0, int(cx - reach * 1.25) - 3), min(w, int(cx + reach * 1.25) + 4)
    Y0, Y1 = max(0, int(gy - 0.7 * rx) - 3), min(h, int(gy + height + 0.8 * rx) + 4)
    hh, ww = max(1, Y1 - Y0), max(1, X1 - X0)
    shift = np.array([X0, Y0], np.float32)
    mask = np.zeros((hh, ww), np.float32)
    top = np.zeros((hh, ww), np.float32)
    # one colour, shaded: the podium is drawn as its shading (one channel), coloured once at the end
    layer = np.zeros((hh, ww), np.float32)
    cols = np.arange(X0, X0 + ww, dtype=np.float32) + 0.5
    rows = (np.arange(Y0, Y0 + hh, dtype=np.float32) + 0.5)[:, None]

    def poly(pts) -> np.ndarray:
        return _poly_mask(hh, ww, np.asarray(pts, np.float32) - shift)

    def ellipse(x: float, y: float, ax: float, ay: float) -> np.ndarray:
        return _ellipse_mask(hh, ww, x - X0, y - Y0, ax, ay)

    def cylinder(cx: float, top_c: float, rx: float, height: float) -> tuple[float, float]:
        """One cylinder; returns (top centre row, back edge row)."""
        ry = rx * _perspective(g, top_c)
        base_c = top_c + height
        side = np.maximum(poly([[cx - rx, top_c], [cx + rx, top_c], [cx + rx, base_c], [cx - rx, base_c]]), ellipse(cx, base_c, rx, ry))
        nx = np.clip((cols - cx) / np.float32(rx), -1.0, 1.0)
        shade = np.float32(AMBIENT) + np.float32(1 - AMBIENT) * np.maximum(np.float32(0.0), nx * L[0] + np.sqrt(1.0 - nx * nx) * L[2])
        ao = 1.0 - np.float32(0.12) * sh.smoothstep(top_c + 0.5 * height, base_c + ry, rows)
        side_tone = shade[None, :] * np.float32(0.93) * ao
        cap = ellipse(cx, top_c, rx, ry)
        cap_tone = np.float32(lambert((0, 1, 0), L))
        for m, tone in ((side, side_tone), (cap, cap_tone)):
            layer[:] += (tone - layer) * m
            np.maximum(mask, m, out=mask)
        top[:] = np.maximum(top * (1.0 - side), cap)
        # the cap's front rim catches the light
        rim = np.clip(ellipse(cx, top_c + 0.6, rx, ry) - cap, 0.0, 1.0)
        layer[:] += (cap_tone * np.float32(1.12) - layer) * (rim * np.float32(0.7))
        return top_c, top_c - ry

    def box(cx: float, front_top: float, a: float, height: float) -> tuple[float, float]:
        """One box seen a little from above and from the side; returns (top centre row, back edge row)."""
        depth = 2 * a * _perspective(g, front_top)
        if abs(cx - w / 2) > 0.05 * w:
            ox = 0.22 * a * np.sign(w / 2 - cx)  # the side facing the middle of the frame
        else:
            ox = -0.22 * a * (1.0 if light_x >= 0 else -1.0)  # centred: the side away from the light, for depth
        base = front_top + height
        front = poly([[cx - a, front_top], [cx + a, front_top], [cx + a, base], [cx - a, base]])
        lid = poly([[cx - a, front_top], [cx + a, front_top], [cx + a + ox, front_top - depth], [cx - a + ox, front_top - depth]])
        edge = cx + a if ox > 0 else cx - a
        flank = poly([[edge, front_top], [edge + ox, front_top - depth], [edge + ox, base - depth], [edge, base]])
        for m, normal in ((flank, (np.sign(ox), 0, 0)), (front, (0, 0, 1)), (lid, (0, 1, 0))):
            layer[:] += (np.float32(lambert(normal, L)) - layer) * m
            np.maximum(mask, m, out=mask)
            top[:] = np.maximum(top * (1.0 - m), m) if m is lid else top * (1.0 - m)
        # the lid's front edge: a lit bevel over a thin occlusion line, so stacked boxes read apart
        band = np.exp(-np.square((rows - front_top - 1.0) / np.float32(max(1.0, 0.002 * h)))) * front
        layer[:] *= 1.0 - np.float32(0.22) * band
        return front_top - depth / 2, front_top - depth

    if p.podium == "cylinder":
        # the product's base a little in front of the cap's centre
        top_c, back = cylinder(cx, gy - 0.35 * rx * _perspective(g, gy), rx, height)
        base_y = top_c + height
    elif p.podium == "discs":
        parts = ((1.25, 0.42), (1.12, 0.33), (1.0, 0.25))
        y = gy + height
        base_y = y
        top_c, back = gy, gy
        for scale, share in parts:  # bottom to top
            y -= share * height
            top_c, back = cylinder(cx, y, rx * scale, share * height)
    elif p.podium == "cube":
        depth = 2 * rx * _perspective(g, gy)
        top_c, back = box(cx, gy + depth / 2, rx, height)
        base_y = gy + depth / 2 + height
    else:  # steps: a taller narrow box, a low wide step in front of it
        depth = 2 * rx * _perspective(g, gy)
        top_c, back = box(cx, gy + depth / 2, rx, height)
        base_y = gy + depth / 2 + height
        front_top = base_y - 0.45 * height + 0.12 * height
        box(cx, front_top, rx * 1.3, 0.45 * height)
        base_y += 0.12 * height
    layer *= _texture(p, hh, ww, rng)
    region = img[Y0 : Y0 + hh, X0 : X0 + ww]
    region += (np.minimum(colour * layer[..., None], 1.0) - region) * mask[..., None]
    full_mask, full_top = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    full_mask[Y0 : Y0 + hh, X0 : X0 + ww] = mask
    full_top[Y0 : Y0 + hh, X0 : X0 + ww] = top
    return Stage(back_y=back, base_y=base_y, x0=cx - reach, x1=cx + reach, mask=full_mask, top=full_top)


def stage_shadows(p: ProceduralParams, g: _Geo, stage: Stage, light_x: float, floor_top: float | None) -> np.ndarray:
    """The podium's contact and cast shadows on the floor (h, w), kept off the podium itself."""
    ys, xs = np.nonzero(stage.mask > 0.02)
    if ys.size == 0:
        return np.zeros((g.h, g.w), np.float32)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    patch = np.ascontiguousarray(stage.mask[y0:y1, x0:x1])
    contact = sh.contact_shadow(g.h, g.w, patch, x0, y0, float(y1), p.shadow_softness, floor_top) * np.float32(p.shadow)
    cast = sh.cast_shadow(g.h, g.w, patch, x0, y0, float(y1), light_x, 0.35 + 0.3 * abs(light_x), p.shadow_softness, floor_top)
    shadow = 1.0 - (1.0 - contact) * (1.0 - cast * np.float32(p.cast_shadow * 0.7))
    return shadow * (1.0 - stage.mask)


def draw_backdrop_shape(img: np.ndarray, p: ProceduralParams, g: _Geo, pal: Palette, light_x: float) -> None:
    """Colour blocking on the wall (in place): an arch or a disc behind the product, or a two-tone split."""
    h, w = img.shape[:2]
    floor = g.hy if g.hy is not None else float(h)
    colour = _tone(p, pal, p.shape_color, p.shape_lightness)
    if p.backdrop_shape == "split":
        yy = np.arange(h, dtype=np.float32) + 0.5
        split = floor - 0.42 * floor
        m = sh.smoothstep(split - 0.6, split + 0.6, yy)[:, None] * np.ones((1, w), np.float32)
    elif p.backdrop_shape == "circle":
        r = 0.3 * min(w, h)
        m = _ellipse_mask(h, w, g.cx, min(g.py + 0.3 * g.ph, floor - 0.6 * r), r, r)
    else:  # arch: a doorway shape standing on the floor
        half = float(np.clip(0.95 * g.pw, 0.16 * w, 0.4 * w))
        top = max(0.05 * h + half, g.py - 0.02 * h)
        m = _poly_mask(
            h, w, np.array([[g.cx - half, top], [g.cx + half, top], [g.cx + half, floor + 2], [g.cx - half, floor + 2]], np.float32)
        )
        m = np.maximum(m, _ellipse_mask(h, w, g.cx, top, half, half))
    # a shape cut into the wall: a thin shadow on the side away from the light, a lit edge facing it
    shift = max(1.0, 0.006 * w) * (1.0 if light_x <= 0 else -1.0)
    moved = cv2.warpAffine(m, np.array([[1, 0, shift], [0, 1, 0]], np.float32), (w, h))
    edge = np.clip(moved - m, 0.0, 1.0)
    img *= sh.rgb3(1.0 - np.float32(0.18) * cv2.GaussianBlur(edge, (0, 0), max(0.8, abs(shift))))
    _paint(img, m, colour)


def draw_spheres(
    img: np.ndarray,
    p: ProceduralParams,
    g: _Geo,
    pal: Palette,
    light_x: float,
    rng: np.random.Generator,
    floor_y: float,
    avoid: tuple[float, float],
) -> np.ndarray:
    """Up to ``p.props`` shaded spheres on the floor either side of ``avoid`` (in place); returns their shadows."""
    h, w = img.shape[:2]
    L = light_vector(light_x)
    shadow: np.ndarray = np.zeros((h, w), np.float32)
    colours = [_tone(p, pal, "accent", 0.05), oklch(min(0.95, pal.L_wall + 0.06), pal.chroma * 0.8, pal.hue), pal.floor]
    sides = [-1.0, 1.0] if light_x > 0 else [1.0, -1.0]
    for i in range(p.props):
        r = float(rng.uniform(0.045, 0.08) * min(w, h)) * (0.75 if i == 2 else 1.0)
        side = sides[i % 2]
        gap = (0.02 + 0.5 * (i // 2) * 0.08) * w
        cx = (avoid[1] + gap + r) if side > 0 else (avoid[0] - gap - r)
        cy = floor_y - r + (i // 2) * 0.01 * h
        if cx - r < 0 or cx + r > w or cy - r < 0:
            continue
        x0, x1, y0, y1 = int(max(0, cx - r - 1)), int(min(w, cx + r + 2)), int(max(0, cy - r - 1)), int(min(h, cy + r + 2))
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        nx, ny = (xx + 0.5 - cx) / r, -(yy + 0.5 - cy) / r
        inside = nx * nx + ny * ny
        nz = np.sqrt(np.clip(1.0 - inside, 0.0, 1.0))
        diffuse = np.maximum(0.0, nx * L[0] + ny * L[1] + nz * L[2])
        spec = np.power(np.maximum(0.0, 2 * diffuse * nz - L[2]), 24).astype(np.float32) * np.float32(0.25)
        tone = (AMBIENT * 0.85 + (1 - AMBIENT) * diffuse)[..., None] * colours[i % len(colours)] + spec[..., None]
        cover = np.clip((1.0 - np.sqrt(inside)) * r, 0.0, 1.0)[..., None]
        region = img[y0:y1, x0:x1]
        region += (np.clip(tone, 0.0, 1.0) - region) * cover
        disc = np.ascontiguousarray(cover[..., 0])
        contact = sh.contact_shadow(h, w, disc, x0, y0, cy + r, p.shadow_softness, g.hy) * np.float32(p.shadow)
        cast = sh.cast_shadow(h, w, disc, x0, y0, cy + r, light_x, 0.5, p.shadow_softness, g.hy) * np.float32(0.5)
        own = 1.0 - (1.0 - contact) * (1.0 - cast)
        own[y0:y1, x0:x1] *= 1.0 - cover[..., 0]
        shadow = 1.0 - (1.0 - shadow) * (1.0 - own)
    return shadow
