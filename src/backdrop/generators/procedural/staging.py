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
from .colour import Palette, lch_of, oklch
from .geometry import _Geo, eye_row, focal_length
from .texture import _lab_mix, fbm, marble_veins

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


def _podium_colour(p: ProceduralParams, pal: Palette) -> np.ndarray:
    """The podium's colour: its tone of the palette; marble is stone (white, or a dark stone on a dark set)
    with a breath of that tone, concrete a grey with a little more of it."""
    tone = _tone(p, pal, p.podium_color, p.podium_lightness)
    if p.podium_surface == "plain":
        return tone
    L = lch_of(tone)[0]
    if p.podium_surface == "marble":
        stone = oklch(0.93, 0.008, 85.0) if L >= 0.5 else oklch(0.3, 0.006, 250.0)
        return _lab_mix(stone, tone, 0.2)
    return _lab_mix(oklch(float(np.clip(L, 0.45, 0.85)), 0.006, 250.0), tone, 0.35)


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
    """A luminance modulation (h, w) for the podium's material, in its own (face) coordinates."""
    if p.podium_surface == "plain":
        return np.ones((h, w), np.float32)
    u = max(0.045 * max(w, h), 3.0)  # one feature unit: the veins / aggregate scale with the podium
    if p.podium_surface == "marble":
        # finer and fainter than a floor's: a block's face is a small piece of the slab
        t = marble_veins(rng, h, w, 0.6 * u, 0.6 * u, 0.8)
        return np.float32(0.96) + (t - np.float32(1.0)) * np.float32(0.55) + np.float32(0.04) * t
    # concrete: fine aggregate, a faint cloud, a few pores
    n = fbm(rng, h, w, 0.25 * u, 0.25 * u, 2, 0.5)
    m = fbm(rng, h, w, 3.0 * u, 3.0 * u, 3, 0.5)
    pores = sh.smoothstep(0.994, 0.999, rng.random((h, w), dtype=np.float32))
    return 1.0 + n * np.float32(0.025) + m * np.float32(0.03) - pores * np.float32(0.22)


@dataclass(frozen=True)
class Camera:
    """The scene's pinhole camera, looking level: the floor's eye row and focal length, its axis
    down the frame's middle. World units are working pixels at the depth ``f`` (the podium's)."""

    f: float
    eye: float  #: the eye level's row (the floor's vanishing line)
    axis: float  #: the optical axis' column

    def project(self, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> np.ndarray:
        Z = np.maximum(np.asarray(Z, np.float64), 1e-3)
        return np.stack([self.axis + self.f * np.asarray(X) / Z, self.eye - self.f * np.asarray(Y) / Z], axis=-1)

    def flatness(self, y: float) -> float:
        """Minor / major axis of a horizontal circle whose centre projects to row ``y``."""
        return float(np.clip((y - self.eye) / self.f, 0.05, 0.5))


def scene_camera(p: ProceduralParams, g: _Geo) -> Camera:
    """The camera the floor is drawn with (see :func:`geometry._floor_maps`), seen from a podium's top at ``g.gy``.

    The eye stays between 0.09 and 0.2 focal lengths above the podium's top: its top is seen from
    above, never edge-on nor from overhead."""
    h, w = g.h, g.w
    f = focal_length(w, h)
    if g.hy is not None:
        hy = min(max(int(np.floor(g.hy)), 0), h - 2)
        floor_gy = int(round(min(max(min(g.gy + p.podium_height * h, h - 1.0), hy + 2), h)))
        eye = eye_row(h, hy, floor_gy)
    else:
        eye = g.gy - 0.2 * f
    return Camera(f, float(np.clip(eye, g.gy - 0.2 * f, g.gy - 0.09 * f)), w / 2.0)


def draw_podium(img: np.ndarray, p: ProceduralParams, g: _Geo, pal: Palette, light_x: float, rng: np.random.Generator) -> Stage:
    """Draw the podium under the product (in place): its top at the product's base row ``g.gy``.

    Modelled in 3D and projected through the floor's camera (:func:`scene_camera`): a box's lid
    and sides are the projections of its corners (lines converge on the eye level), a cylinder's
    caps are ellipses as flat as its height above the floor and the eye level make them. Drawn
    within the podium's bounding box only (its coordinates are the canvas's, shifted by the box's
    corner ``X0, Y0``): a podium is a small part of the canvas."""
    h, w = g.h, g.w
    L = light_vector(light_x).astype(np.float32)  # float32 throughout: float64 would double every array op
    colour = _podium_colour(p, pal)
    cam = scene_camera(p, g)
    height = p.podium_height * h

    def lid_depth_for(reach: float) -> float:
        """The half depth (world units) a box's lid needs so that rows up to ``reach`` above its
        centre row still lie on it (a margin of 15% and 2 px)."""
        need = 1.15 * reach + 2.0
        below_eye = gy - cam.eye
        if reach <= 0 or need >= 0.8 * below_eye:
            return 0.0 if reach <= 0 else 3.0 * cam.f
        return cam.f / (1.0 - need / below_eye) - cam.f

    # wider than the product always (a product overhanging its podium looks afloat), the frame permitting
    rx = float(min(max(p.podium_width * g.pw / 2.0, 0.6 * g.pw + 2), 0.5 * w))
    cx, gy = g.cx, float(g.gy)
    spread = {"steps": 1.3, "discs": 1.25}.get(p.podium, 1.0)  # the widest part's width, in top widths
    rx = max(0.6 * g.pw + 2, min(rx, 0.5 * w / spread))  # the base within the frame where the product allows
    reach = rx * spread
    flat = cam.flatness(gy)
    near = cam.f / max(cam.f - 1.1 * rx, 0.3 * cam.f)  # a box's near corners: this much larger on screen
    X0, X1 = max(0, int(cx - reach * 1.3 * near) - 3), min(w, int(cx + reach * 1.3 * near) + 4)
    Y0, Y1 = max(0, int(gy - 1.6 * rx * flat) - 3), min(h, int(gy + (height + (gy - cam.eye)) * near - (gy - cam.eye)) + 4)
    hh, ww = max(1, Y1 - Y0), max(1, X1 - X0)
    shift = np.array([X0, Y0], np.float32)
    mask = np.zeros((hh, ww), np.float32)
    top = np.zeros((hh, ww), np.float32)
    # one colour, shaded: the podium is drawn as its shading (one channel), coloured once at the end
    layer = np.zeros((hh, ww), np.float32)
    # the material, in each face's own coordinates where the faces are planar (boxes), else on screen
    material = np.ones((hh, ww), np.float32)
    cols = np.arange(X0, X0 + ww, dtype=np.float32) + 0.5
    rows = (np.arange(Y0, Y0 + hh, dtype=np.float32) + 0.5)[:, None]
    edges = np.zeros((hh, ww), np.uint8)

    def poly(pts) -> np.ndarray:
        return _poly_mask(hh, ww, np.asarray(pts, np.float32) - shift)

    def ellipse(x: float, y: float, ax: float, ay: float) -> np.ndarray:
        return _ellipse_mask(hh, ww, x - X0, y - Y0, ax, ay)

    def cylinder(cx: float, top_c: float, rx: float, height: float) -> tuple[float, float]:
        """One cylinder; returns (top centre row, back edge row)."""
        ry = rx * cam.flatness(top_c)
        base_c = top_c + height
        ry_base = rx * cam.flatness(base_c)  # the base is further below the eye: rounder
        side = np.maximum(
            poly([[cx - rx, top_c], [cx + rx, top_c], [cx + rx, base_c], [cx - rx, base_c]]), ellipse(cx, base_c, rx, ry_base)
        )
        nx = np.clip((cols - cx) / np.float32(rx), -1.0, 1.0)
        shade = np.float32(AMBIENT) + np.float32(1 - AMBIENT) * np.maximum(np.float32(0.0), nx * L[0] + np.sqrt(1.0 - nx * nx) * L[2])
        ao = 1.0 - np.float32(0.12) * sh.smoothstep(top_c + 0.5 * height, base_c + ry_base, rows)
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

    def box(centre: tuple[float, float], top_y: float, a: float, d: float, hb: float, yaw: float, lid: bool = True) -> np.ndarray:
        """One box (world coordinates: ``centre`` (X, Z) of its lid at height ``top_y``, half width
        ``a``, half depth ``d``, height ``hb``, turned by ``yaw`` about the vertical); draws its
        visible faces and returns its lid's corners on screen (4, 2)."""
        c, s = np.cos(yaw), np.sin(yaw)
        sx = np.array([-1.0, 1.0, 1.0, -1.0])  # near-left, near-right, far-right, far-left
        sz = np.array([-1.0, -1.0, 1.0, 1.0])
        X = centre[0] + c * sx * a - s * sz * d
        Z = centre[1] + s * sx * a + c * sz * d
        up = cam.project(X, np.full(4, top_y), Z)
        down = cam.project(X, np.full(4, top_y - hb), Z)
        # the material: one tile, the lid above the front face, the sides beside it (veins run on over the front edge)
        tw_, th_ = int(np.ceil(2 * a + 2 * d)) + 2, int(np.ceil(2 * d + hb)) + 2
        tile = _texture(p, th_, tw_, rng) if p.podium_surface != "plain" else None
        faces = []
        for i in range(4):  # the sides, each between two corners
            j = (i + 1) % 4
            mx, mz = (X[i] + X[j]) / 2, (Z[i] + Z[j]) / 2
            nx, nz = mx - centre[0], mz - centre[1]
            if nx * mx + nz * mz >= 0:  # facing away from the camera
                continue
            n = np.array([nx, 0.0, -nz])  # to the light's axes (z towards the viewer)
            quad = np.array([up[i], up[j], down[j], down[i]])
            uv = (
                [[0, 2 * d], [2 * a, 2 * d], [2 * a, 2 * d + hb], [0, 2 * d + hb]]
                if i == 0
                else [[2 * a, 2 * d], [2 * a + 2 * d, 2 * d], [2 * a + 2 * d, 2 * d + hb], [2 * a, 2 * d + hb]]
            )
            faces.append((quad, n, uv, False))
        if lid:
            faces.append((up, np.array([0.0, 1.0, 0.0]), [[0, 2 * d], [2 * a, 2 * d], [2 * a, 0], [0, 0]], True))
        for quad, n, uv, is_lid in faces:
            m = poly(quad)
            tone: np.ndarray | np.float32 = np.float32(lambert(n, L))
            if not is_lid:  # the floor's occlusion darkens the sides towards their foot
                foot = float(quad[:, 1].max())
                tone = tone * (1.0 - np.float32(0.1) * sh.smoothstep(foot - 0.7 * (foot - float(quad[:, 1].min())), foot, rows))
            layer[:] += (tone - layer) * m
            np.maximum(mask, m, out=mask)
            top[:] = np.maximum(top * (1.0 - m), m) if is_lid else top * (1.0 - m)
            if tile is not None:
                M = cv2.getPerspectiveTransform(np.asarray(uv, np.float32), np.asarray(quad - shift, np.float32))
                tex = cv2.warpPerspective(tile, M, (ww, hh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                material[:] += (tex - material) * m
        # the lid's edges over the visible sides: a thin lit bevel, so the faces read apart
        for quad, _, _, is_lid in faces:
            if not is_lid:
                pts = np.round((quad[:2] - shift) * 16).astype(np.int32)
                cv2.line(edges, tuple(pts[0]), tuple(pts[1]), 255, max(1, int(round(0.0015 * h))), cv2.LINE_AA, 4)
        return up

    def box_podium(front: bool) -> tuple[float, float, float]:
        """A plinth (and, for ``steps``, a low wide step in front of it); returns (top centre row, back edge row, half depth)."""
        Zc = cam.f  # the lid's centre: one world unit is one working pixel there
        Xc = (cx - cam.axis) * Zc / cam.f
        top_y = -(gy - cam.eye) * Zc / cam.f
        yaw = float(rng.uniform(0.2, 0.38)) * (1.0 if light_x >= 0 else -1.0)  # its side away from the light shows
        d = max((0.45 if front else 0.6) * rx, lid_depth_for(g.reach_back))
        hb = height * (Zc - d) / cam.f  # the front face is ``height`` rows tall
        lid = box((Xc, Zc), top_y, rx, d, hb, yaw)
        if front:  # the step: 45 % as tall, 1.3 x as wide, against the plinth's front
            d2 = 0.5 * d
            off = d + d2
            box((Xc + np.sin(yaw) * off, Zc - np.cos(yaw) * off), top_y - hb * 0.55, rx * 1.3, d2, hb * 0.45, yaw)
        return gy, float(lid[:, 1].min()), d

    if p.podium == "cylinder":
        # the product's base a little in front of the cap's centre; a receding base needs a rounder cap
        rx = max(rx, min(g.reach_back * 1.15 / (1.35 * flat), 0.5 * w))
        _, back = cylinder(cx, gy - 0.35 * rx * flat, rx, height)
    elif p.podium == "discs":
        parts = ((1.25, 0.42), (1.12, 0.33), (1.0, 0.25))
        y = gy + height
        back = gy
        for scale, share in parts:  # bottom to top
            y -= share * height
            _, back = cylinder(cx, y, rx * scale, share * height)
    else:  # cube, or steps
        _, back, _ = box_podium(p.podium == "steps")
    if edges.any():
        bevel = edges.astype(np.float32) * np.float32(1 / 255) * mask
        layer += (np.float32(lambert((0, 1, 0), L) * 1.08) - layer) * bevel * np.float32(0.6)
    if p.podium_surface != "plain":
        if p.podium in ("cylinder", "discs"):
            material = _texture(p, hh, ww, rng)
        layer *= material
    region = img[Y0 : Y0 + hh, X0 : X0 + ww]
    region += (np.minimum(colour * layer[..., None], 1.0) - region) * mask[..., None]
    full_mask, full_top = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    full_mask[Y0 : Y0 + hh, X0 : X0 + ww] = mask
    full_top[Y0 : Y0 + hh, X0 : X0 + ww] = top
    # where it meets the floor: its lowest row below the product, and how far it reaches sideways
    col = min(max(int(cx) - X0, 0), ww - 1)
    solid = np.flatnonzero(mask[:, col] > 0.5)
    base_y = float(Y0 + solid[-1] + 1) if solid.size else gy + height
    covered = np.flatnonzero(mask.max(axis=0) > 0.5)
    x0, x1 = (float(X0 + covered[0]), float(X0 + covered[-1] + 1)) if covered.size else (cx - reach, cx + reach)
    return Stage(back_y=back, base_y=base_y, x0=x0, x1=x1, mask=full_mask, top=full_top)


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
