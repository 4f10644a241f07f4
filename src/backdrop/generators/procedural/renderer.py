"""The procedural renderer: a GenerationRequest in, a background around the laid-out product out."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from ...imaging import shading as sh
from ...styles.params import (
    FLOOR_SCENES,
    ProceduralParams,
    validate_params,
)
from ..base import GenerationRequest
from .colour import (
    Palette,
    _pleasant_hue,
    make_palette,
    oklch,
)
from .geometry import _floor_maps, _Geo, _project, _rows
from .staging import Stage, draw_backdrop_shape, draw_podium, draw_spheres, stage_shadows
from .texture import _chips, _concrete_wall, _drape, _surface, fbm


@lru_cache(maxsize=512)
def _params_cached(blob: str) -> ProceduralParams:
    return validate_params(json.loads(blob))


def _params_of(procedural: dict) -> ProceduralParams:
    return _params_cached(json.dumps(procedural, sort_keys=True, default=str))


#: the deepest receding base (rows above the lowest support point, as a share of the height) a
#: podium's top is drawn deep enough for
MAX_PODIUM_REACH = 0.06


#: the key light stands at least this far to one side (of -1 .. 1): lit from the front, the
#: product's cast shadow falls straight behind it, hidden by the product itself, and a model on a
#: plain gradient has nothing under the feet but a thin contact line (labelled as hovering)
MIN_LIGHT_SIDE = 0.3


def _light_x(p: ProceduralParams, rng: np.random.Generator) -> float:
    """The key light's side (-1 left .. 1 right): the style's, varied by the seed, never frontal."""
    x = float(np.clip(p.light_x + rng.normal(0, 0.5) * p.variation, -1, 1))
    if abs(x) < MIN_LIGHT_SIDE:
        x = math.copysign(MIN_LIGHT_SIDE, x if x != 0 else (p.light_x or -1.0))
    return x


def _stream(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (2**63), k])


class ProceduralGenerator:
    """Procedural backgrounds: studio sets drawn around the product, harmonised with its colours."""

    name = "procedural"
    # 3: marble with cloudy ground and branching veins (2: thin dark lines that read as cracks);
    # 4: the key light never frontal (MIN_LIGHT_SIDE)
    version = "4"

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
        # where it stands: on its support (the base of its body, not a strap hanging below it);
        # without one, the ground line or the lowest solid row when the mask carries a faint
        # baked-in shadow below the object
        support = None
        if scene.support is not None:
            cols = np.minimum(((np.arange(pw, dtype=np.float32) + 0.5) / np.float32(sx)).astype(int), pw_full - 1)
            support = scene.support.rows[cols] * np.float32(sy)
            gy = py + scene.support.base * sy
        else:
            solid_rows = np.flatnonzero((a_w >= 0.5).any(axis=1))
            gy = scene.ground_y * sy
            if solid_rows.size:
                gy = min(gy, py + float(solid_rows[-1]) + 1.0)
        hy = None
        if scene.view == "top":
            return self._top_view(request, p, a_w, px, py, (w, h))
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
        reach_back = float(gy - (py + np.nanmin(support))) if support is not None else 0.0
        geo = _Geo(w, h, gy, hy, px, py, pw, ph, px + pw / 2.0, max(reach_back, 0.0))
        # a base that recedes deeper than a podium's top can hold stands on the floor instead:
        # never half on a plinth and half in the air
        staged = p.podium != "none" and grounded and reach_back <= MAX_PODIUM_REACH * h
        # the floor runs under the podium's base; the product stands on its top (at gy)
        floor_geo = geo
        if staged:
            podium_base = gy + p.podium_height * h
            floor_geo = _Geo(w, h, min(podium_base, h - 1.0), hy, px, py, pw, ph, geo.cx)

        rng_pal, rng_tex, rng_wall, rng_light, rng_bokeh = (_stream(seed, k) for k in range(1, 6))
        pal = make_palette(p, scene.palette, rng_pal)
        light_x = _light_x(p, rng_light)

        img = self._backdrop(p, geo, pal, rng_wall)
        if p.backdrop_shape != "none":
            draw_backdrop_shape(img, p, geo, pal, light_x)
        if hy is not None:
            self._floor(img, p, floor_geo, pal, rng_tex)
        stage: Stage | None = draw_podium(img, p, geo, pal, light_x, _stream(seed, 6)) if staged else None
        props_shadow = None
        if p.props > 0 and grounded:
            base = stage.base_y if stage is not None else gy
            avoid = (stage.x0, stage.x1) if stage is not None else (float(px), float(px + pw))
            props_shadow = draw_spheres(img, p, geo, pal, light_x, _stream(seed, 7), base, avoid)
        self._key_light(img, p, geo, pal, light_x, rng_light)
        if p.bokeh > 0:
            self._bokeh(img, p, geo, pal, rng_bokeh)

        # grounding: reflection, contact + ambient shadow, cast shadow
        # shadows end at a table's back edge; in a room they run on up the wall; on a podium at its top's back edge
        floor_top = hy if p.scene in ("tabletop", "bokeh") else None
        product_floor_top = stage.back_y if stage is not None else floor_top
        if p.reflection > 0 and grounded and stage is None:
            rgb_w = cv2.resize(scene.product_rgb, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32) * np.float32(1 / 255)
            sh.reflection(
                img, rgb_w, a_w, px, py, gy, p.reflection, falloff=0.2, softness=0.3 + 0.5 * p.shadow_softness, floor_color=tuple(pal.floor)
            )
        shadow = None
        if p.shadow > 0 and grounded:
            shadow = sh.contact_shadow(h, w, a_w, px, py, gy, p.shadow_softness, product_floor_top, support)
            shadow *= np.float32(p.shadow)
        if p.cast_shadow > 0 and grounded:
            line = sh.support_line(support, px, gy) if support is not None else None
            cast = sh.cast_shadow(h, w, a_w, px, py, gy, light_x, 0.3 + 0.3 * abs(light_x), p.shadow_softness, product_floor_top, line)
            cast *= np.float32(p.cast_shadow * 0.7)
            shadow = cast if shadow is None else 1.0 - (1.0 - shadow) * (1.0 - cast)
        if stage is not None:
            if shadow is not None:  # the product's shadows fall on the podium's top, not off its edge
                shadow *= cv2.GaussianBlur(stage.top, (0, 0), max(0.6, 0.003 * w))
            on_floor = stage_shadows(p, floor_geo, stage, light_x, floor_top)
            shadow = on_floor if shadow is None else 1.0 - (1.0 - shadow) * (1.0 - on_floor)
        if props_shadow is not None:
            shadow = props_shadow if shadow is None else 1.0 - (1.0 - shadow) * (1.0 - props_shadow)
        if shadow is not None:
            sh.apply_shadow(img, shadow, pal.shadow)
        return self._finish(img, p, (W, H))

    def _key_light(self, img: np.ndarray, p: ProceduralParams, g: _Geo, pal: Palette, light_x: float, rng: np.random.Generator) -> None:
        """Light the set (in place): the key light's glow and pool, the vignette, the light's
        colour (a gentle warm / cool cast) and the sunlight pattern."""
        shade = self._light(p, g, light_x)
        if p.vignette > 0:
            shade *= sh.vignette_map(g.h, g.w, p.vignette * 0.55)
        tint = 1.0 + (pal.light / float(pal.light.mean()) - 1.0) * 0.5
        img *= cv2.merge([shade * np.float32(c) for c in tint])
        if p.sun > 0:
            self._sun(img, p, g, rng, light_x)

    @staticmethod
    def _finish(img: np.ndarray, p: ProceduralParams, size: tuple[int, int]) -> np.ndarray:
        """The float set as the canvas's uint8 (W, H): hot highlights rolled off, not clipped flat."""
        if float(img.max()) > 0.97:
            sh.soft_clip(img, 0.8)
        np.clip(img, 0.0, 1.0, out=img)
        return sh.to_uint8(img, size, grain=0.6 + 3.0 * p.grain)

    def _top_view(
        self, request: GenerationRequest, p: ProceduralParams, a_w: np.ndarray, px: int, py: int, size: tuple[int, int]
    ) -> np.ndarray:
        """A flat lay's set: the style's surface seen from straight above (no floor, no horizon,
        no podium or props), lit by its light, the product lying on it with a soft drop shadow."""
        scene, seed = request.scene, int(request.seed)
        w, h = size
        ph, pw = a_w.shape
        geo = _Geo(w, h, float(h), None, px, py, pw, ph, px + pw / 2.0)
        rng_pal, rng_tex, rng_wall, rng_light = (_stream(seed, k) for k in range(1, 5))
        pal = make_palette(p, scene.palette, rng_pal)
        light_x = _light_x(p, rng_light)
        if p.surface in ("plain", "paper") or p.scene == "gradient":
            img = self._backdrop(p.model_copy(update={"wall": "paper"}), geo, pal, rng_wall)
        else:
            unit = max(w, h) / 20.0
            tex, ramp = _surface(p, pal, h, w, unit * 0.75, unit * 0.75, rng_tex)
            if p.surface == "terrazzo" and ramp is not None:
                img = self._draw_chips(tex, ramp, p, pal, h, w, unit * 0.75, unit * 0.75, None, rng_tex)
            else:
                img = sh.ramp(tex, ramp[0], ramp[1]) if ramp is not None else np.ascontiguousarray(tex, np.float32)
        self._key_light(img, p, geo, pal, light_x, rng_light)
        strength = max(p.shadow, 0.35)
        shadow = sh.drop_shadow(h, w, a_w, px, py, light_x, p.shadow_softness) * np.float32(strength)
        sh.apply_shadow(img, shadow, pal.shadow)
        return self._finish(img, p, (scene.width, scene.height))

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
        # render at a lower resolution when it gets blurred anyway (concrete keeps its aggregate a little longer)
        q = 1 if sigma < (6 if p.wall == "concrete" else 3) else (2 if sigma < 8 else 4)
        w, h = max(8, g.w // q), max(8, g.h // q)
        sigma /= q
        k = p.texture
        u = max(w, h) / 20.0 * p.texture_scale
        kind = p.wall if p.scene in ("tabletop", "room", "spotlight", "bokeh") else "plain"
        tex: np.ndarray
        if kind == "plain":
            m = fbm(rng, h, w, 10 * u, 10 * u, 2, 0.5)
            tex = 1.0 + m * np.float32(0.012 * k)
        elif kind == "plaster":
            n = fbm(rng, h, w, 2.5 * u, 2.5 * u, 5, 0.55)
            m = fbm(rng, h, w, 12 * u, 12 * u, 2, 0.5)
            tex = 1.0 + (n * np.float32(0.025) + m * np.float32(0.03)) * np.float32(k)
        elif kind == "concrete":  # architectural concrete: formwork panels, their joints and tie holes, fine aggregate
            tex = _concrete_wall(rng, h, w, u, k)
        elif kind == "paper":
            n = fbm(rng, h, w, 0.5 * u, 0.5 * u, 3, 0.5)
            tex = 1.0 + n * np.float32(0.01 * k)
        elif kind == "linen":  # a draped fabric backdrop: folds hanging from above, shaded from the side
            tex = _drape(rng, h, w, u, k, weave=q == 1)
        else:  # wood: vertical boards
            _yy, xx = sh.grid(h, w)
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

    def _draw_chips(
        self,
        t: np.ndarray,
        ramp: tuple,
        p: ProceduralParams,
        pal: Palette,
        th: int,
        tw: int,
        ux: float,
        uy: float,
        proj: tuple | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Terrazzo: the binder (colour ramp of ``t``) with chips projected onto the floor (``proj``;
        None: the texture is the screen, a surface seen from above) and drawn antialiased."""
        base = sh.ramp(t, ramp[0], ramp[1])
        img = base.copy()
        pts, ci, cols = _chips(p, pal, th, tw, ux, uy, rng)
        scr = _project(pts, proj) if proj is not None else pts
        fh, fw = t.shape
        lo, hi = scr.min(axis=1), scr.max(axis=1)
        keep = (hi[:, 0] >= 0) & (lo[:, 0] < fw) & (hi[:, 1] >= 0) & (lo[:, 1] < fh) & ((hi - lo).max(axis=1) > 0.4)
        fixed = np.round(scr * 16).astype(np.int32)
        # antialiased coverage per chip colour: OpenCV antialiases 8-bit images only (a float image
        # gets hard, stair-stepped edges, which the upscale to the canvas then doubles)
        for c, col in enumerate(cols):
            idx = np.flatnonzero(keep & (ci == c))
            if idx.size == 0:
                continue
            cover = np.zeros((fh, fw), np.uint8)
            for i in idx:
                cv2.fillConvexPoly(cover, fixed[i], 255, cv2.LINE_AA, 4)
            m = sh.rgb3(cover.astype(np.float32) * np.float32(1 / 255))
            img += (sh.fill(fh, fw, col) * (0.96 + 0.04 * t[..., None]) - img) * m
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
        if p.sun_pattern == "palm":
            pat: np.ndarray = 1.0 - _palm_fronds(rng, shh, sw, light_x)
            pen = 0.008
        elif p.sun_pattern == "leaves":
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
        if p.sun_pattern == "palm":  # sunlight everywhere but where the fronds shade it
            shade = np.float32(1.0 + 0.06 * amt) - (1.0 - pat) * np.float32(0.4 * amt)
            img *= cv2.merge([shade * np.float32(1.0 + (float(c) / float(max(warm)) - 1.0) * 0.3 * amt) for c in warm])
            return
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
        layer: np.ndarray | None = None
        for far in (True, False):
            q = 2 if far else 1  # the far discs are softer: half the working size is enough
            lw, lh = max(8, w // q), max(8, h // q)
            lay: np.ndarray = np.zeros((lh, lw, 3), np.float32)
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
        assert layer is not None  # the loop above always runs
        rows = h
        if g.hy is not None:
            rows = min(h, int(np.ceil(g.hy + 0.005 * h)) + 1)
            yy = np.arange(rows, dtype=np.float32) + 0.5
            fade = 1.0 - sh.smoothstep(g.hy - 0.02 * h, g.hy + 0.005 * h, yy)
            layer = layer[:rows] * sh.rgb3(_rows(fade, w))
        img[:rows] = sh.screen(img[:rows], layer)


def _palm_fronds(rng: np.random.Generator, h: int, w: int, light_x: float) -> np.ndarray:
    """The shadow of palm fronds (1 = shadow), as a gobo in front of the key light would cast it:
    fronds arching from a crown beyond the frame on the light's side, leaflets along each."""
    out = np.zeros((h, w), np.uint8)
    side = -1.0 if light_x <= 0 else 1.0
    crown = np.array([w * (0.5 + side * 0.62), -0.12 * h])
    for _ in range(int(rng.integers(4, 7))):
        angle = np.deg2rad(rng.uniform(200, 340) if side < 0 else rng.uniform(20, 160)) + np.pi / 2 * 0.0
        direction = np.array([np.cos(angle), abs(np.sin(angle)) * 0.9 + 0.25])
        direction[0] = -side * abs(direction[0])
        length = rng.uniform(0.55, 0.9) * max(w, h)
        bend = rng.uniform(0.15, 0.35)
        n = 26
        for i in range(1, n):
            t = i / n
            spine = crown + direction * length * t + np.array([0.0, bend * length * t * t])
            tangent = direction + np.array([0.0, 2 * bend * t])
            tangent /= np.linalg.norm(tangent)
            normal = np.array([-tangent[1], tangent[0]])
            leaf = (1.0 - t) * 0.16 * length + 0.02 * length
            for s in (-1.0, 1.0):
                tip = spine + (normal * s * 0.9 + tangent * 0.45) * leaf
                mid = (spine + tip) / 2
                axis = tip - spine
                ang = float(np.degrees(np.arctan2(axis[1], axis[0])))
                cv2.ellipse(out, (int(mid[0] * 4), int(mid[1] * 4)), (max(1, int(np.linalg.norm(axis) * 2)), max(1, int(leaf * 0.35))),
                            ang, 0, 360, 255, -1, cv2.LINE_AA, 2)  # fmt: skip
        pts = np.array([crown + direction * length * t + np.array([0.0, bend * length * t * t]) for t in np.linspace(0, 1, 12)])
        cv2.polylines(out, [np.round(pts * 4).astype(np.int32)], False, 255, max(1, int(0.006 * max(w, h))), cv2.LINE_AA, 2)
    return out.astype(np.float32) * np.float32(1 / 255)
