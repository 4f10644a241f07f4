"""The baseline creative: the catalog photo fitted to a placement's canvas, one per product and placement.

Every experiment compares the generated creatives with the retailer's own photo (the bandit's
:data:`~backdrop.bandit.arms.ORIGINAL` arm, the rollout's baseline). Served as the raw catalog file,
that photo has the photo's shape (1080x1340) whatever the slot asks for; so ``backdrop generate``
makes it a creative like the others: the photo laid out on each placement exactly as the styled
creatives lay out the product (:func:`~backdrop.imaging.layout.layout`: same scale and position,
cut sides flush with the canvas edge), the rest of the canvas a plain backdrop in the photo's own
background colour (:mod:`backdrop.imaging.plain`), the product's pixels exact. It is stored
content-addressed and indexed with the style :data:`~backdrop.creative.store.ORIGINAL`, skipped
when the store has it, and gets no overlay variants: it is the control, the photo as the shop shows it.

Its QA checks are the layout's only (cut edges flush, nothing cropped by the canvas, the product's
share): contrast, halo and background left in gaps judge a generated scene, and here the
background is the photo's own.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..imaging import plain
from ..imaging.composite import composite, exact_region_matches
from ..imaging.layout import Placement, QARules, Scene
from ..imaging.quality import procedural_quality, qa_checks
from ..imaging.subject import Subject
from ..styles import CategoryMatch, Style
from .store import LOSSLESS_FORMATS, ORIGINAL, CreativeStore, creative_key

#: the baseline's "style": no prompt, no scene
ORIGINAL_STYLE = Style(
    name=ORIGINAL,
    description="the catalog photo on the placement's canvas, on the photo's own background colour (the control)",
    prompt="",
)
#: what the index records as the baseline's generator (no model draws anything)
GENERATOR = "catalog-photo"


def original_key(*, product_id: str, image_sha256: str, placement: Placement, mask_method: str, subject: Subject, fmt: str) -> str:
    """The baseline's content address: the product (two catalog rows may share a photo), the photo,
    the placement, the mask (it decides the layout), the photo analysis (cut sides), how the
    backdrop is made and the format; no generator and no seed, so every run shares the same baselines."""
    return creative_key(
        product_id=product_id,
        image_sha256=image_sha256,
        style_spec=ORIGINAL_STYLE.spec(),
        placement_spec=placement.spec(),
        generator=GENERATOR,
        generator_version=plain.PLAIN_VERSION,
        generator_spec=plain.spec(),
        mask_method=mask_method,
        seed=0,
        fmt=fmt,
        subject=subject.spec(),
    )


def render_original(rgba: np.ndarray, scene: Scene, fill: tuple[int, int, int], alpha: np.ndarray | None = None) -> np.ndarray:
    """The baseline's pixels: the photo on ``fill`` as ``scene`` places it (``alpha``: the product's
    mask at the photo's size), the product pasted exactly."""
    creative = composite(plain.plain_background(rgba, scene, fill, alpha), scene)
    if not exact_region_matches(creative, scene):  # composite() guarantees it; a failure is a bug
        raise AssertionError("product pixels changed in the baseline creative")
    return creative


def original_checks(creative: np.ndarray, scene: Scene, subject: Subject, metrics: dict, rules: QARules) -> list[dict]:
    """The layout's QA checks (see the module docstring)."""
    layout_only = rules.model_copy(
        update={"min_edge_contrast": 0.0, "max_halo": math.inf, "max_trapped_share": 1.0, "max_fringe": math.inf}
    )
    return qa_checks(
        creative,
        replace(scene, support=None),  # the photo on its own colour: no floor to rest on
        photo_cut=subject.cut,
        on_model=subject.on_model,
        style_suits="both",
        trapped_share=0.0,
        metrics=metrics,
        rules=layout_only,
    )


def store_original(
    store: CreativeStore,
    *,
    key: str,
    product_id: str,
    rgba: np.ndarray,
    alpha: np.ndarray,
    scene: Scene,
    fill: tuple[int, int, int],
    fill_source: str,
    subject: Subject,
    category: CategoryMatch | None,
    mask_method: str,
    fmt: str,
    rules: QARules,
) -> str:
    """Make one baseline creative and write it to ``store``; returns its QA status."""
    creative = render_original(rgba, scene, fill, alpha)
    metrics = procedural_quality(creative, scene) | {"exact": True, "lossless": fmt in LOSSLESS_FORMATS, "render_s": 0.0}
    reasons = original_checks(creative, scene, subject, metrics, rules)
    qa_status = "flagged" if reasons else "ok"
    store.put(
        key,
        creative,
        fmt=fmt,
        product_id=product_id,
        style=ORIGINAL,
        placement=scene.placement.name,
        generator=GENERATOR,
        generator_version=plain.PLAIN_VERSION,
        seed=0,
        prompt="",
        negative_prompt="",
        params={
            "style": ORIGINAL_STYLE.spec(),
            "placement": scene.placement.spec(),
            "generator": plain.spec(),
            "mask": mask_method,
            "box": list(scene.box),
            "cut": list(scene.cut),
            "subject": subject.to_dict(),
            "category": {k: v for k, v in category.to_dict().items() if k != "styles"} if category else None,
            "fill": {"rgb": list(fill), "from": fill_source},
        },
        metrics=metrics,
        qa_status=qa_status,
        qa_reasons=reasons,
    )
    return qa_status
