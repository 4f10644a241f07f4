import numpy as np
import pytest
import yaml

from backdrop.creative.catalog import load_image
from backdrop.errors import ConfigError
from backdrop.imaging.composite import composite, exact_region_matches
from backdrop.imaging.layout import Placement, layout, load_placements, resize_premultiplied
from backdrop.imaging.mask import alpha_is_meaningful, object_alpha, product_mask
from conftest import SAMPLE_CATALOG as SAMPLE


def test_default_placements_cover_the_four_ad_formats():
    p = load_placements()
    sizes = {(v.width, v.height) for v in p.values()}
    assert {(1080, 1080), (1200, 628), (1080, 1350), (1080, 1920)} <= sizes


def test_placements_yaml_errors_name_the_field(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump({"placements": [{"name": "sq", "width": 10, "height": 100}]}))
    with pytest.raises(ConfigError, match=r"placements\.0\.width"):
        load_placements(bad)
    bad.write_text(yaml.safe_dump({"placements": [{"name": "a", "width": 100, "height": 100}] * 2}))
    with pytest.raises(ConfigError, match="duplicate placement"):
        load_placements(bad)


@pytest.mark.parametrize("anchor", ["floor", "bottom", "center"])
@pytest.mark.parametrize("size", [(1080, 1080), (1200, 628), (1080, 1350), (1080, 1920)])
def test_layout_respects_share_margins_and_anchor(anchor, size):
    rgb = np.full((300, 200, 3), 80, np.uint8)
    alpha = np.zeros((300, 200), np.uint8)
    alpha[50:250, 40:160] = 255  # a 120 x 200 product inside transparent padding
    pl = Placement(name="t", width=size[0], height=size[1], anchor=anchor, product_share=0.3, margin=0.05)
    scene = layout(rgb, alpha, pl)
    x0, y0, x1, y1 = scene.box
    W, H = size
    margin = 0.05 * min(W, H)
    assert x0 >= 0 and y0 >= 0 and x1 <= W and y1 <= H
    assert x1 - x0 <= W - 2 * margin + 1
    area = (x1 - x0) * (y1 - y0) / (W * H)
    assert area <= 0.3 + 0.01
    # the patch is cropped to the product: opaque pixels touch all four sides
    assert (scene.product_alpha[0] > 0).any() and (scene.product_alpha[-1] > 0).any()
    if anchor == "center":
        assert abs((y0 + y1) / 2 - H / 2) <= 1
    elif anchor == "bottom":
        assert abs(y1 - (H - margin)) <= 1
    else:
        assert y1 == scene.ground_y and scene.horizon_y is not None and scene.horizon_y < y1


def test_premultiplied_resize_does_not_bleed_hidden_colour():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:] = (255, 0, 0)  # garbage colour under fully transparent pixels
    rgb[10:30, 10:30] = (0, 0, 255)
    alpha = np.zeros((40, 40), np.uint8)
    alpha[10:30, 10:30] = 255
    out_rgb, out_a = resize_premultiplied(rgb, alpha, (97, 97))
    edge = (out_a > 0) & (out_a < 255)
    assert edge.any()
    assert out_rgb[edge][:, 0].max() <= 2  # no red leaks into the blue edge


def test_composite_keeps_product_pixels_bit_exact_and_only_blends_the_edge():
    rgba = load_image(SAMPLE / "images" / "sunnies.png")  # semi-transparent lenses + soft edge
    alpha = product_mask(rgba)
    rng = np.random.default_rng(0)
    for pl in load_placements().values():
        scene = layout(rgba[..., :3], alpha, pl)
        bg = rng.integers(0, 256, (pl.height, pl.width, 3), dtype=np.uint8)
        out = composite(bg, scene)
        assert exact_region_matches(out, scene)
        x0, y0, x1, y1 = scene.box
        solid = scene.product_alpha == 255
        assert np.array_equal(out[y0:y1, x0:x1][solid], scene.product_rgb[solid])
        # outside the product the background is untouched
        outside = np.ones((pl.height, pl.width), bool)
        outside[y0:y1, x0:x1] = scene.product_alpha == 0
        assert np.array_equal(out[outside], bg[outside])
        # the edge band is a blend, between the two
        band = (scene.product_alpha > 0) & (scene.product_alpha < 255)
        lo = np.minimum(bg[y0:y1, x0:x1][band], scene.product_rgb[band]).astype(int)
        hi = np.maximum(bg[y0:y1, x0:x1][band], scene.product_rgb[band]).astype(int)
        got = out[y0:y1, x0:x1][band].astype(int)
        assert ((got >= lo - 1) & (got <= hi + 1)).all()


def test_composite_rejects_a_background_of_the_wrong_size():
    rgb = np.zeros((10, 10, 3), np.uint8)
    a = np.full((10, 10), 255, np.uint8)
    scene = layout(rgb, a, Placement(name="s", width=100, height=100))
    with pytest.raises(ValueError, match="background must be"):
        composite(np.zeros((50, 100, 3), np.uint8), scene)


def test_object_alpha_drops_the_baked_shadow_but_keeps_soft_edges():
    rgba = load_image(SAMPLE / "images" / "apple-drink.png")
    alpha = rgba[..., 3]
    assert alpha_is_meaningful(rgba)
    obj = object_alpha(alpha)
    core = alpha >= 128
    assert np.array_equal(obj[core], alpha[core])
    # the shadow below the bottle (alpha < 64, far from the object) is gone
    shadow = (alpha > 0) & (alpha < 64)
    assert shadow.sum() > 1000
    assert (obj[shadow] > 0).mean() < 0.2
    # an opaque image is not a cut-out
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert not alpha_is_meaningful(opaque)
