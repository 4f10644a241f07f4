"""Every style renders what its library entry says it looks like (its ``look``): the backdrop's
tone (warm / cool hue, neutral / vivid chroma, dark / light) measured in OKLab away from the
product, and the floor's material measured as fine-scale texture energy (textured materials vs
smooth paper / plain)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from backdrop.cli import DEMO_DIR
from backdrop.creative.catalog import load_image
from backdrop.creative.pipeline import request_for
from backdrop.generators import get_generator
from backdrop.generators.procedural.colour import rgb_to_oklab
from backdrop.imaging.color import dominant_colors
from backdrop.imaging.layout import layout, load_placements
from backdrop.imaging.mask import product_mask
from backdrop.styles import StyleLibrary
from backdrop.styles.params import FLOOR_SCENES, podium_lift, validate_params

LIBRARY = StyleLibrary.load()
PLACEMENT = load_placements()["square"]
STYLES = LIBRARY.all_styles()
#: a cool product, a warm one, a light one and a dark one: a style keeps its word next to each
PRODUCTS = ["blue-plimsolls-1.png", "carrot-drink.png", "mighty-mug.png", "dark-polygon-tee-front.png"]
TEXTURED = {"wood", "marble", "concrete", "linen", "terrazzo"}
#: hue windows (OKLCH degrees) for warm and cool: reds through yellows, mints through violets
WARM = (345.0, 110.0)
COOL = (150.0, 290.0)


@pytest.fixture(scope="module")
def products():
    out = []
    for name in PRODUCTS:
        rgba = load_image(DEMO_DIR / "images" / name)
        rgb, alpha = rgba[..., :3].copy(), product_mask(rgba)
        out.append((rgb, alpha, dominant_colors(rgb, alpha)))
    return out


def render(product, style, seed=4):
    rgb, alpha, palette = product
    placement = PLACEMENT
    lift = podium_lift(style.procedural)
    if lift:
        placement = placement.model_copy(update={"ground": placement.ground - lift})
    scene = layout(rgb, alpha, placement, palette=palette)
    return get_generator("procedural").generate(request_for(scene, style, {}, seed)), scene


def regions(scene, p):
    """(wall, floor) boolean masks away from the product, its podium and props; floor is None without one."""
    H, W = scene.height, scene.width
    x0, y0, x1, y1 = scene.box
    away = np.ones((H, W), bool)
    half = (x1 - x0) / 2 * (1.4 * p.podium_width if p.podium != "none" else 1.0) + 0.04 * W
    cx = (x0 + x1) / 2
    bottom = y1 + (p.podium_height * H + 0.08 * H if p.podium != "none" else 0.04 * H)
    away[max(0, int(y0 - 0.04 * H)) : int(bottom), max(0, int(cx - half)) : int(cx + half)] = False
    if p.props:  # the spheres stand beside the product on the floor
        away[int(y1 - 0.2 * H) :, :] = False
    away[:, : int(0.02 * W)] = away[:, W - int(0.02 * W) :] = False
    horizon = scene.horizon_y if (p.scene in FLOOR_SCENES and scene.horizon_y is not None) else None
    wall = away.copy()
    wall[: int(0.04 * H)] = False
    if horizon is None:
        return wall, None
    wall[int(horizon - 0.04 * H) :] = False
    floor = away.copy()
    floor[: int(horizon + 0.03 * H)] = False
    floor[int(0.98 * H) :] = False
    return wall, (floor if floor.sum() > 4000 else None)


def tone(img, mask):
    """Median OKLab L, chroma and hue (degrees) of ``mask``'s pixels."""
    lab = rgb_to_oklab(img[mask].astype(np.float64) / 255.0)
    L, a, b = np.median(lab, axis=0)
    return float(L), float(np.hypot(a, b)), float(np.degrees(np.arctan2(b, a)) % 360.0)


def fine_energy(img, mask):
    """Standard deviation of the luminance's fine detail (what a 2 px blur takes away), in 8-bit levels."""
    lum = img.astype(np.float32) @ np.float32([0.2126, 0.7152, 0.0722])
    detail = lum - cv2.GaussianBlur(lum, (0, 0), 2.0)
    return float(detail[mask].std())


def in_hues(h, window):
    lo, hi = window
    return lo <= h <= hi if lo <= hi else (h >= lo or h <= hi)


def measure(style, products):
    p = validate_params(style.procedural)
    rows = []
    for product in products:
        img, scene = render(product, style)
        wall, floor = regions(scene, p)
        rows.append((tone(img, wall), fine_energy(img, floor) if floor is not None else None, fine_energy(img, wall)))
    return rows


def band_energy(img, mask, fine=1.5, coarse=12.0):
    """Standard deviation of the luminance between two blurs: a defocused wall's folds, panels and tie holes."""
    lum = img.astype(np.float32) @ np.float32([0.2126, 0.7152, 0.0722])
    band = cv2.GaussianBlur(lum, (0, 0), fine) - cv2.GaussianBlur(lum, (0, 0), coarse)
    return float(band[mask].std())


def _with(style, **procedural):
    return style.model_copy(update={"procedural": {**style.procedural, **procedural}})


def test_every_style_declares_a_look_that_matches_its_parameters():
    for name, style in STYLES.items():
        assert style.look is not None, f"{name}: no look"
        p = validate_params(style.procedural)
        if p.scene in FLOOR_SCENES:
            assert style.look.surface == p.surface, f"{name}: look says {style.look.surface}, renders {p.surface}"
        if p.scene in ("tabletop", "room", "spotlight", "bokeh"):
            assert style.look.wall == p.wall, f"{name}: look says wall {style.look.wall}, renders {p.wall}"


@pytest.mark.parametrize("name", sorted(STYLES))
def test_the_backdrop_has_the_declared_tone(products, name):
    style = STYLES[name]
    for i, product in enumerate(products):
        img, scene = render(product, style)
        wall, _ = regions(scene, validate_params(style.procedural))
        L, C, h = tone(img, wall)
        where = f"{name} next to {PRODUCTS[i]}: L={L:.2f} C={C:.3f} h={h:.0f}"
        for word in style.look.tone:
            if word == "warm":
                assert C >= 0.012 and in_hues(h, WARM), where
            elif word == "cool":
                assert C >= 0.008 and in_hues(h, COOL), where
            elif word == "neutral":
                assert C <= 0.03, where
            elif word == "vivid":
                assert C >= 0.055, where
            elif word == "dark":
                assert L <= 0.45, where
            else:  # light
                assert L >= 0.72, where


def _open_floor(style) -> bool:
    p = validate_params(style.procedural)
    return p.scene in FLOOR_SCENES and p.podium == "none" and p.props == 0  # a podium or props cover most of it


FLOORED = sorted(n for n, s in STYLES.items() if _open_floor(s))


@pytest.mark.parametrize("name", FLOORED)
def test_the_floor_shows_the_declared_material(products, name):
    """A textured material has more fine detail than the same set with a plain floor (next to most
    products: marble's veins are sparse, and may miss the patch in view); paper and plain have none to speak of."""
    style = STYLES[name]
    plain = _with(style, surface="plain")
    ratios = []
    for product in products:
        img, scene = render(product, style)
        ref, _ = render(product, plain)
        _, floor = regions(scene, validate_params(style.procedural))
        if floor is None:
            continue
        ratios.append(fine_energy(img, floor) / fine_energy(ref, floor))
    assert ratios, f"{name}: no floor in view"
    if style.look.surface in TEXTURED:
        # 1.08: the plain reference's film grain, upscaled bicubic, carries fine energy of its own
        assert float(np.median(ratios)) >= 1.08, f"{name}: {style.look.surface} floor barely differs from a plain one: {ratios}"
    else:
        assert max(ratios) <= 1.05, f"{name}: a {style.look.surface} floor with texture: {ratios}"


@pytest.mark.parametrize("name", sorted(n for n, s in STYLES.items() if s.look is not None and s.look.wall in ("concrete", "linen")))
def test_a_concrete_or_linen_wall_shows(products, name):
    """Board-formed concrete (panel joints, tie holes) and a linen drape (folds) show on the wall, defocused or not."""
    style = STYLES[name]
    plain = _with(style, wall="plain")
    for i, product in enumerate(products):
        img, scene = render(product, style)
        ref, _ = render(product, plain)
        wall, _ = regions(scene, validate_params(style.procedural))
        ratio = band_energy(img, wall) / band_energy(ref, wall)
        assert ratio >= 1.4, f"{name} next to {PRODUCTS[i]}: wall texture ratio {ratio:.2f}"
