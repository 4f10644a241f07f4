"""Staged scenes: podiums the product stands on, colour blocking, props and gobos, under one light."""

from __future__ import annotations

import numpy as np
import pytest

from backdrop.cli import DEMO_DIR
from backdrop.creative.catalog import load_catalog, load_image
from backdrop.creative.pipeline import CreativeMaker, PipelineConfig
from backdrop.creative.store import CreativeStore
from backdrop.generators import GenerationRequest, get_generator
from backdrop.generators.procedural.colour import make_palette
from backdrop.generators.procedural.geometry import _Geo
from backdrop.generators.procedural.staging import draw_podium, light_vector
from backdrop.imaging.color import dominant_colors
from backdrop.imaging.composite import composite, exact_region_matches
from backdrop.imaging.layout import layout, load_placements
from backdrop.imaging.mask import product_mask
from backdrop.styles import StyleLibrary
from backdrop.styles.params import podium_lift, validate_params

PLACEMENTS = load_placements()
PODIUMS = ["cylinder", "cube", "discs", "steps"]
STAGED_STYLES = ["podium-pastel", "plinth-marble", "stacked-discs", "arch-steps", "arch-backdrop", "color-block", "summer-palm",
                 "winter-frost", "festive-podium"]  # fmt: skip


@pytest.fixture(scope="module")
def mug():
    rgba = load_image(DEMO_DIR / "images" / "mighty-mug.png")
    rgb, alpha = rgba[..., :3].copy(), product_mask(rgba)
    return rgb, alpha, dominant_colors(rgb, alpha)


def staged_scene(mug, params, placement="square"):
    rgb, alpha, palette = mug
    lift = podium_lift(params)
    p = PLACEMENTS[placement]
    return layout(rgb, alpha, p.model_copy(update={"ground": p.ground - lift}) if lift else p, palette=palette)


def render(mug, params, seed=3, placement="square"):
    scene = staged_scene(mug, params, placement)
    request = GenerationRequest(scene=scene, prompt="", negative_prompt="", params=params, seed=seed)
    return get_generator("procedural").generate(request), scene


def luminance(img):
    return img.astype(np.float32) @ np.float32([0.2126, 0.7152, 0.0722])


def test_light_vector_points_to_the_key_light():
    left, right = light_vector(-0.8), light_vector(0.8)
    assert left[0] < 0 < right[0] and left[1] > 0 and np.isclose(np.linalg.norm(left), 1.0)


@pytest.mark.parametrize("podium", PODIUMS)
def test_the_product_stands_on_the_podium_top(mug, podium):
    params = {"scene": "sweep", "surface": "paper", "podium": podium, "variation": 0.0}
    scene = staged_scene(mug, params)
    p = validate_params(params)
    W, H = scene.width, scene.height
    w, h = W // 2, H // 2
    sx = w / W
    x0, y0, x1, y1 = (v * sx for v in scene.box)
    g = _Geo(w, h, scene.ground_y * sx, None, int(x0), int(y0), int(x1 - x0), int(y1 - y0), (x0 + x1) / 2)
    img = np.full((h, w, 3), 0.5, np.float32)
    stage = draw_podium(img, p, g, make_palette(p, scene.palette, np.random.default_rng(0)), -0.4, np.random.default_rng(1))
    base_row, centre = int(round(scene.ground_y * sx)), int(round(g.cx))
    # the product's base row, at its centre, is on the podium's top surface; the podium reaches below it
    assert stage.top[base_row - 2, centre] > 0.5
    assert stage.base_y > base_row + 0.08 * h and stage.mask[int(stage.base_y) - 3, centre] > 0.5
    # wider than the product, so it never overhangs
    assert stage.x0 < x0 and stage.x1 > x1
    # laid out higher by the podium's height (the placement's ground line moved up)
    plain = layout(mug[0], mug[1], PLACEMENTS["square"], palette=mug[2])
    assert plain.ground_y - scene.ground_y == pytest.approx(p.podium_height * H, abs=2)


@pytest.mark.parametrize("light_x", [-0.9, 0.9])
def test_one_light_direction_for_podium_shading_and_shadows(mug, light_x):
    params = {"scene": "sweep", "surface": "paper", "podium": "cylinder", "light_x": light_x, "variation": 0.0, "cast_shadow": 0.6}
    img, scene = render(mug, params)
    lum = luminance(img)
    x0, _, x1, _ = scene.box
    cx = (x0 + x1) // 2
    half = int(0.6 * (x1 - x0) * 0.5)
    band = slice(scene.ground_y + 40, scene.ground_y + 90)  # the podium's side, below the product
    lit_left = lum[band, cx - half : cx - half // 3].mean() > lum[band, cx + half // 3 : cx + half].mean()
    assert lit_left == (light_x < 0)  # the side facing the light is the brighter one
    # every shadow (the podium's and the product's) falls away from the light: where the shadows
    # darken the set, weighted, lies on the side opposite the light
    unlit, _ = render(mug, params | {"shadow": 0.0, "cast_shadow": 0.0}, placement="landscape")
    lit, wide = render(mug, params, placement="landscape")
    dark = np.clip(luminance(unlit) - luminance(lit), 0, None)
    x0, _, x1, _ = wide.box
    dark[:, x0:x1] = 0  # beside the product and its podium's middle
    cols = np.arange(dark.shape[1])
    centroid = float((dark.sum(axis=0) * cols).sum() / dark.sum())
    assert (centroid > (x0 + x1) / 2) == (light_x < 0)


@pytest.mark.parametrize("style", STAGED_STYLES)
def test_every_staged_style_is_deterministic_and_keeps_the_product_exact(mug, style):
    params = StyleLibrary.load().all_styles()[style].procedural
    for placement in ("square", "story", "landscape"):
        a, scene = render(mug, params, seed=5, placement=placement)
        b, _ = render(mug, params, seed=5, placement=placement)
        c, _ = render(mug, params, seed=6, placement=placement)
        assert a.shape == (scene.height, scene.width, 3) and np.array_equal(a, b)
        assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.5
        assert exact_region_matches(composite(a, scene), scene)


def test_backdrop_shapes_props_and_palm_gobo_change_the_set_around_the_product(mug):
    base = {"scene": "room", "palette": "analogous", "variation": 0.0}
    plain, scene = render(mug, base)
    x0, y0, x1, y1 = scene.box
    outside = np.ones(plain.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    for extra in ({"backdrop_shape": "arch"}, {"backdrop_shape": "circle"}, {"backdrop_shape": "split"}, {"props": 2},
                  {"sun": 0.8, "sun_pattern": "palm"}):  # fmt: skip
        img, _ = render(mug, base | extra)
        diff = np.abs(luminance(img) - luminance(plain))
        assert diff[outside].mean() > 1.0, extra
    # the spheres stand on the floor either side of the product, not behind it
    spheres, _ = render(mug, base | {"props": 2})
    changed = np.abs(luminance(spheres) - luminance(plain)) > 12
    cols = np.flatnonzero(changed[scene.ground_y - 60 : scene.ground_y].any(axis=0))
    assert cols.size and (cols.min() < x0 or cols.max() > x1)
    assert not changed[y0 : scene.ground_y - 5, x0 + 10 : x1 - 10].mean() > 0.05


def test_podium_styles_are_packshot_only_and_every_demo_product_gets_a_staged_style():
    library = StyleLibrary.load()
    for name in STAGED_STYLES:
        style = library.all_styles()[name]
        assert (style.suits == "packshot") == (
            validate_params(style.procedural).podium != "none" or validate_params(style.procedural).props > 0
        )
    demo = load_catalog(DEMO_DIR / "products.csv").products
    for product in demo:
        first = [s.name for s in library.for_category(product.category_path)][:5]  # what `backdrop demo` makes
        assert set(first) & set(STAGED_STYLES), (product.product_id, first)


def test_the_pipeline_lays_out_staged_styles_higher_and_the_key_holds_the_lift(tmp_path):
    config = PipelineConfig(placements=(PLACEMENTS["square"],), library=StyleLibrary.load(), styles=("plinth-marble", "kitchen-counter"))
    maker = CreativeMaker(config, CreativeStore(tmp_path / "s"))
    product = next(p for p in load_catalog(DEMO_DIR / "products.csv").products if p.product_id == "mighty-mug")
    scenes = {item.spec.style.name: item.scene for item in maker.prepare(product, maker.plan(product))}
    lift = podium_lift(StyleLibrary.load().all_styles()["plinth-marble"].procedural)
    assert scenes["kitchen-counter"].ground_y - scenes["plinth-marble"].ground_y == pytest.approx(lift * 1080, abs=2)
    [res] = [r for r in maker.make(product) if r.style == "plinth-marble"]
    rec = maker.store.get(res.key)
    assert rec.metrics["exact"] and rec.qa_status == "ok", rec.qa_reasons
