"""The embedded procedural background renderer: fast, deterministic, no model weights.

It draws a product photography set *around* the laid-out product: a studio sweep, a colour
gradient, a tabletop or a room (wall + floor in perspective, with wood, marble, concrete, linen,
terrazzo or paper surfaces made from noise), a spotlight, or a bokeh light field; then it grounds
the product with a contact shadow, an ambient occlusion shadow, a cast shadow and, on glossy
floors, a soft reflection, all computed from the product's mask. Colours are harmonised with the
product's dominant colours (complementary, analogous, monochrome or neutral, in OKLCH) and kept
away from the product's lightness so it pops.

Speed: everything is rendered at a reduced working resolution (``work_scale`` of the canvas,
default 0.5) in float32 with OpenCV primitives, then upscaled once and dithered with film grain;
seed-independent tables (grids, vignettes, perspective maps, grain) are cached per size.

Determinism: one request gives the same bytes every time (numpy ``Generator`` streams derived
from the request's seed only); different seeds vary hues, light, texture and layout.
"""

from __future__ import annotations

#: the parameter schema lives with the styles (pydantic only); its names are re-exported here, where the renderer is
from ...styles.params import FLOOR_SCENES, SCENES, SURFACES, ProceduralParams, validate_params
from .colour import (
    Palette,
    lch_of,
    make_palette,
    oklab_to_linear,
    oklch,
    product_key,
    rgb_to_oklab,
)
from .renderer import ProceduralGenerator
from .texture import fbm

__all__ = [
    "FLOOR_SCENES",
    "SCENES",
    "SURFACES",
    "Palette",
    "ProceduralGenerator",
    "ProceduralParams",
    "fbm",
    "lch_of",
    "make_palette",
    "oklab_to_linear",
    "oklch",
    "product_key",
    "rgb_to_oklab",
    "validate_params",
]
