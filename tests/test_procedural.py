"""The procedural background renderer and the shipped style library."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from backdrop.creative.pipeline import request_for
from backdrop.generators import get_generator
from backdrop.generators.base import Generator
from backdrop.generators.procedural import (
    FLOOR_SCENES,
    SCENES,
    ProceduralGenerator,
    ProceduralParams,
    lch_of,
    make_palette,
    validate_params,
)
from backdrop.imaging.color import dominant_colors
from backdrop.imaging.composite import composite, exact_region_matches
from backdrop.imaging.layout import Placement, layout, load_placements
from backdrop.styles import Style, StyleLibrary
from conftest import SAMPLE_CATALOG as SAMPLE_DIR

BLUE = (31, 95, 255)
WHITE = (240, 240, 238)
NAVY = (29, 35, 64)


def _product(color=BLUE, w=300, h=420, shape="bottle"):
    """A synthetic cut-out: a flat-bottomed bottle (or a wide box) of one colour with a lighter label."""
    rgb = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    if shape == "bottle":
        cv2.rectangle(alpha, (60, 120), (240, h - 10), 255, -1)
        cv2.rectangle(alpha, (110, 20), (190, 130), 255, -1)
    else:
        cv2.rectangle(alpha, (10, 150), (w - 10, h - 10), 255, -1)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    rgb[:] = color
    label = tuple(min(255, c + 60) for c in color)
    cv2.rectangle(rgb, (60, 250), (240, 330), label, -1)
    return rgb, alpha


def _scene(placement="square", color=BLUE, shape="bottle"):
    rgb, alpha = _product(color, shape=shape)
    pal = dominant_colors(rgb, alpha)
    return layout(rgb, alpha, load_placements()[placement], pal)


def _style(name="t", **params):
    return Style(name=name, prompt="product photo of a {title}", procedural=params)


def _req(scene, style, seed=0):
    return request_for(scene, style, {"title": "bottle"}, seed)


def _lum(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.float32([0.2126, 0.7152, 0.0722])


@pytest.fixture(scope="module")
def gen() -> ProceduralGenerator:
    return ProceduralGenerator()


@pytest.fixture(scope="module")
def library() -> StyleLibrary:
    return StyleLibrary.load()


# --------------------------------------------------------------------------- generator basics


def test_generator_protocol_and_identity(gen):
    assert isinstance(gen, Generator)
    assert gen.name == "procedural"
    assert isinstance(gen.version, str) and gen.version
    assert gen.spec() == {"work_scale": 0.5}
    assert ProceduralGenerator(work_scale=0.25).spec() != gen.spec()
    assert isinstance(get_generator("procedural"), ProceduralGenerator)
    with pytest.raises(ValueError, match="bogus"):
        ProceduralGenerator(bogus=1)
    with pytest.raises(ValueError, match="work_scale"):
        ProceduralGenerator(work_scale=3)


@pytest.mark.parametrize("placement", ["square", "landscape", "portrait", "story"])
def test_shape_and_dtype_for_every_placement(gen, placement):
    scene = _scene(placement)
    for params in ({"scene": "sweep"}, {"scene": "tabletop", "surface": "wood"}):
        bg = gen.generate(_req(scene, _style(**params), seed=3))
        assert bg.dtype == np.uint8
        assert bg.shape == (scene.height, scene.width, 3)
        creative = composite(bg, scene)
        assert exact_region_matches(creative, scene)


def test_same_request_same_bytes(gen):
    scene = _scene()
    for params in (
        {"scene": "room", "surface": "terrazzo", "wall": "plaster", "sun": 0.6, "sun_pattern": "leaves"},
        {"scene": "bokeh", "surface": "marble", "bokeh": 0.8, "reflection": 0.3, "bokeh_color": "festive"},
    ):
        style = _style(**params)
        a = gen.generate(_req(scene, style, seed=42))
        b = ProceduralGenerator().generate(_req(scene, style, seed=42))
        assert a.tobytes() == b.tobytes()
        assert [x.tobytes() for x in gen.generate_batch([_req(scene, style, 42)] * 2)] == [a.tobytes()] * 2


def test_different_seeds_give_visibly_different_variations(gen):
    scene = _scene()
    for params in ({"scene": "sweep", "palette": "complementary"}, {"scene": "tabletop", "surface": "marble"}):
        style = _style(**params)
        imgs = [gen.generate(_req(scene, style, seed=s)).astype(np.int16) for s in (1, 2, 3)]
        for i in range(3):
            for j in range(i + 1, 3):
                assert np.abs(imgs[i] - imgs[j]).mean() > 1.5


@pytest.mark.parametrize("scene_kind", SCENES)
def test_every_scene_kind_with_and_without_a_floor(gen, scene_kind):
    floating = Placement(name="center", width=400, height=300, anchor="center")
    for scene in (_scene("landscape"), layout(*_product(), floating, ())):
        bg = gen.generate(_req(scene, _style(scene=scene_kind, bokeh=0.5, sun=0.4, reflection=0.3), seed=1))
        assert bg.shape == (scene.height, scene.width, 3)
        assert 20 < bg.mean() < 250


# --------------------------------------------------------------------------- params


def test_defaults_are_valid():
    p = validate_params({})
    assert isinstance(p, ProceduralParams)
    assert validate_params(None) == p


@pytest.mark.parametrize(
    "params, fragments",
    [
        ({"shadw": 0.5}, ["shadw", "unknown parameter"]),
        ({"shadow": 3}, ["shadow", "less than or equal to 1", "3"]),
        ({"scene": "jungle"}, ["scene", "jungle"]),
        ({"surface": "lava"}, ["surface"]),
        ({"palette": "explicit"}, ["explicit", "colors"]),
        ({"palette": "explicit", "colors": ["blue"]}, ["colors.0"]),
        ({"colors": ["#ffffff"]}, ["colors", "explicit"]),
        ({"light_x": "left"}, ["light_x"]),
    ],
)
def test_validate_params_rejects_bad_params_clearly(params, fragments):
    with pytest.raises(ValueError) as e:
        validate_params(params)
    msg = str(e.value)
    for f in fragments:
        assert f in msg, msg


def test_validate_params_rejects_non_mapping():
    with pytest.raises(ValueError, match="mapping"):
        validate_params(["scene", "sweep"])


def test_bad_params_fail_at_library_load(tmp_path):
    from backdrop.errors import ConfigError

    path = tmp_path / "lib.yaml"
    path.write_text("categories:\n  default:\n    - {name: x, prompt: p, procedural: {scene: nope}}\n")
    with pytest.raises(ConfigError, match="procedural: scene"):
        StyleLibrary.load(path)


# --------------------------------------------------------------------------- grounding


def _contact_window(scene):
    """Rows just below the product's base, across its middle columns."""
    x0, _y0, x1, _y1 = scene.box
    cw = (x1 - x0) // 4
    return slice(scene.ground_y + 1, scene.ground_y + 5), slice(x0 + cw, x1 - cw)


@pytest.mark.parametrize("scene_kind", sorted(FLOOR_SCENES))
def test_shadow_darkens_just_below_the_ground_contact(gen, scene_kind):
    scene = _scene(shape="box")
    params = {"scene": scene_kind, "surface": "plain", "shadow": 0.8, "vignette": 0.0, "bokeh": 0.0}
    lit = _lum(gen.generate(_req(scene, _style(**params, cast_shadow=0.3), seed=5)))
    bare = _lum(gen.generate(_req(scene, _style(**{**params, "shadow": 0.0, "cast_shadow": 0.0}), seed=5)))
    rows, cols = _contact_window(scene)
    near = lit[rows, cols].mean() / bare[rows, cols].mean()
    far = lit[rows, 5:40].mean() / bare[rows, 5:40].mean()
    assert near < 0.8, near  # a real contact shadow under the product
    assert abs(far - 1.0) < 0.02, far  # nothing far away along the same ground line
    # and it stays at the ground: well below the contact it fades
    below = slice(min(scene.height - 2, scene.ground_y + 80), min(scene.height, scene.ground_y + 84))
    assert lit[below, cols].mean() / bare[below, cols].mean() > near


def test_a_style_lit_from_the_front_still_casts_a_shadow_beside_the_product(gen):
    # a key light straight in front casts the shadow straight behind the product, where the
    # product hides it: the light keeps to one side (renderer.MIN_LIGHT_SIDE)
    scene = _scene(shape="bottle")
    params = {"scene": "sweep", "surface": "plain", "shadow": 0.0, "vignette": 0.0, "bokeh": 0.0, "light_x": 0.0, "variation": 0.0}
    cast = _lum(gen.generate(_req(scene, _style(**params, cast_shadow=0.8), seed=5)))
    bare = _lum(gen.generate(_req(scene, _style(**params, cast_shadow=0.0), seed=5)))
    x0, _y0, x1, _y1 = scene.box
    rows = slice(scene.ground_y - 40, scene.ground_y - 2)
    beside = min(
        cast[rows, x1 + 2 : x1 + 60].mean() / bare[rows, x1 + 2 : x1 + 60].mean(),
        cast[rows, x0 - 60 : x0 - 2].mean() / bare[rows, x0 - 60 : x0 - 2].mean(),
    )
    assert beside < 0.95, beside


def test_shadow_is_darker_than_the_floor_far_away_on_a_studio_sweep(gen, library):
    scene = _scene(shape="box")
    bg = _lum(gen.generate(_req(scene, library.all_styles()["studio-sweep"], seed=0)))
    rows, cols = _contact_window(scene)
    x0, _, x1, _ = scene.box
    far = np.r_[bg[rows, : max(10, x0 - 120)].ravel(), bg[rows, min(scene.width - 10, x1 + 120) :].ravel()]
    assert bg[rows, cols].mean() < 0.85 * far.mean()


def test_reflection_mirrors_the_product_below_the_ground(gen):
    scene = _scene(color=(220, 30, 30), shape="box")
    params = {"scene": "tabletop", "surface": "plain", "palette": "neutral", "shadow": 0.0, "cast_shadow": 0.0}
    with_r = gen.generate(_req(scene, _style(**params, reflection=0.6), seed=2)).astype(np.float32)
    without = gen.generate(_req(scene, _style(**params), seed=2)).astype(np.float32)
    rows, cols = slice(scene.ground_y + 3, scene.ground_y + 12), _contact_window(scene)[1]
    d = (with_r[rows, cols] - without[rows, cols]).mean(axis=(0, 1))
    assert d[0] > d[1] + 10  # it picked up the red product


# --------------------------------------------------------------------------- palettes


@pytest.mark.parametrize("color", [BLUE, (230, 120, 30), (40, 160, 70)])
def test_complementary_background_is_far_from_the_product_hue(gen, color):
    scene = _scene(color=color)
    bg = gen.generate(_req(scene, _style(scene="sweep", palette="complementary", saturation=0.6, vignette=0), seed=7))
    x0, y0, x1, _ = scene.box
    patch = bg[max(0, y0 - 60) : y0 - 10, x0:x1].reshape(-1, 3).mean(axis=0) / 255.0
    _, chroma, hue = lch_of(patch)
    _, _, product_hue = lch_of(np.asarray(color) / 255.0)
    gap = abs((hue - product_hue + 180.0) % 360.0 - 180.0)
    assert chroma > 0.02
    assert gap >= 90.0, (hue, product_hue)


@pytest.mark.parametrize("mode", ["complementary", "analogous", "monochrome", "neutral"])
@pytest.mark.parametrize("color", [BLUE, WHITE, NAVY, (250, 200, 40)])
def test_harmonised_backdrop_keeps_its_lightness_away_from_the_product(mode, color):
    product = (color, (200, 200, 200))
    L_product = 0.75 * lch_of(np.asarray(color) / 255)[0] + 0.25 * lch_of(np.full(3, 200 / 255))[0]
    for lightness in (0.3, 0.6, 0.9):
        p = validate_params({"palette": mode, "lightness": lightness, "min_contrast": 0.2})
        for seed in range(3):
            pal = make_palette(p, product, np.random.default_rng(seed))
            assert abs(pal.L_wall - L_product) >= 0.2 - 0.02, (mode, color, lightness, pal.L_wall)


def test_neutral_palette_is_nearly_grey_and_explicit_palette_is_respected():
    rng = np.random.default_rng(0)
    pal = make_palette(validate_params({"palette": "neutral"}), (BLUE,), rng)
    assert lch_of(pal.wall)[1] < 0.03
    p = validate_params({"palette": "explicit", "colors": ["#336699"], "variation": 0.0})
    pal = make_palette(p, (BLUE,), np.random.default_rng(0))
    assert np.allclose(pal.wall * 255, (0x33, 0x66, 0x99), atol=3)


# --------------------------------------------------------------------------- the shipped library


def test_every_shipped_style_renders(gen, library):
    scene = _scene("portrait")
    styles = library.all_styles()
    assert len(styles) >= 10
    for name, style in styles.items():
        bg = gen.generate(_req(scene, style, seed=11))
        assert bg.shape == (scene.height, scene.width, 3), name
        assert 15 < bg.mean() < 250, name
        assert bg.std() > 2, name  # not a flat fill
        assert style.prompt_for({"title": "Apple Juice"}).strip()
        assert "{" not in style.prompt_for({})


def test_default_list_has_at_least_five_styles(library):
    assert len(library.for_category("default")) >= 5
    assert len(library.for_category("Some > Unknown > Category")) >= 5


def test_every_sample_category_resolves_to_five_styles(library):
    csv_path = SAMPLE_DIR / "products.csv"
    if not csv_path.exists():
        pytest.skip(f"sample catalog not found at {csv_path}")
    with csv_path.open(newline="") as f:
        paths = {row["category_path"] for row in csv.DictReader(f)}
    assert len(paths) >= 10
    default_names = [s.name for s in library.for_category("default")]
    specific = 0
    for path in sorted(paths):
        styles = library.for_category(path)
        assert len(styles) >= 5, path
        specific += [s.name for s in styles] != default_names
    assert specific == len(paths)  # every sample category has its own list


def test_style_names_are_shared_across_categories(library):
    names = {}
    for cat in library.categories():
        for s in library.for_category(cat):
            names.setdefault(s.name, set()).add(cat)
    assert sum(1 for cats in names.values() if len(cats) > 1) >= 5
