"""The QA checks a reviewer's eye makes: a fringe of the photo's background along the outline, a
product that hovers. Each check fires on the failure and stays quiet on the clean case."""

from __future__ import annotations

import cv2
import numpy as np

from backdrop.imaging.composite import composite
from backdrop.imaging.layout import QARules, layout, load_placements
from backdrop.imaging.quality import fringe_score, hovering, qa_checks
from backdrop.imaging.support import Support


def strap_scene(fringe: bool):
    """A dark strap loop (a watch's or a bag's), its 2 px soft edge blended with the photo's white
    background (``fringe``) or decontaminated to the strap's own colour."""
    alpha = np.zeros((400, 300), np.uint8)
    cv2.ellipse(alpha, (150, 200), (110, 170), 0, 0, 360, 255, 28)
    soft = cv2.GaussianBlur(alpha, (0, 0), 1.2)
    rgb = np.full((400, 300, 3), 45, np.uint8)
    if fringe:
        a = soft.astype(np.float32)[..., None] / 255
        rgb = np.repeat(45 * a + 255 * (1 - a), 3, axis=2).astype(np.uint8)
    return layout(rgb, soft, load_placements()["square"])


def dark_set(scene) -> np.ndarray:
    return np.full((scene.height, scene.width, 3), 30, np.uint8)


def test_a_white_fringe_on_a_dark_set_scores_high_and_a_clean_edge_low():
    dirty, clean = strap_scene(True), strap_scene(False)
    assert fringe_score(composite(dark_set(dirty), dirty), dirty) > 15
    assert fringe_score(composite(dark_set(clean), clean), clean) < 6


def test_an_outline_between_a_dark_product_and_a_light_set_is_not_a_fringe():
    scene = strap_scene(False)
    light = np.full((scene.height, scene.width, 3), 235, np.uint8)
    assert fringe_score(composite(light, scene), scene) < 6


def test_a_white_garments_lit_rim_beyond_a_shaded_fold_is_not_a_fringe():
    """White fabric whose edge is lit while a fold just inside it is in shade: the rim is lighter
    than the fold and than a dark set, but no lighter than the garment's own white nearby."""
    alpha = np.zeros((400, 300), np.uint8)
    cv2.ellipse(alpha, (150, 200), (120, 180), 0, 0, 360, 255, -1)
    soft = cv2.GaussianBlur(alpha, (0, 0), 1.0)
    rgb = np.full((400, 300, 3), 235, np.uint8)
    fold = cv2.erode(alpha, np.ones((3, 3), np.uint8), iterations=3) > 0
    deep = cv2.erode(alpha, np.ones((3, 3), np.uint8), iterations=7) > 0
    rgb[fold & ~deep] = 150  # the shaded fold along the edge; the rim outside it stays lit
    scene = layout(rgb, soft, load_placements()["square"])
    assert fringe_score(composite(dark_set(scene), scene), scene) < 8


def _checks(scene, creative, mask_from_photo=True):
    from backdrop.imaging.quality import procedural_quality

    return [
        r["check"]
        for r in qa_checks(
            creative,
            scene,
            photo_cut=(),
            on_model=False,
            style_suits="both",
            trapped_share=0.0,
            metrics=procedural_quality(creative, scene),
            rules=QARules(),
            mask_from_photo=mask_from_photo,
        )
    ]


def test_qa_flags_the_fringe_of_a_segmented_photo_not_the_rim_of_an_exact_cut_out():
    dirty = strap_scene(True)
    creative = composite(dark_set(dirty), dirty)
    assert "fringe" in _checks(dirty, creative)
    assert "fringe" not in _checks(dirty, creative, mask_from_photo=False)  # its own alpha: a rim is the product's


def test_a_product_whose_weight_is_beside_what_it_rests_on_hovers():
    """A bag hanging from one corner: it rests on a stub at its far left, its body far to the right."""
    alpha = np.zeros((300, 400), np.uint8)
    cv2.rectangle(alpha, (150, 20), (390, 100), 255, -1)
    cv2.rectangle(alpha, (10, 150), (40, 290), 255, -1)
    cv2.line(alpha, (40, 160), (150, 60), 255, 20)
    scene = layout(np.full((300, 400, 3), 90, np.uint8), alpha, load_placements()["square"])
    assert scene.support is not None
    assert "hanging in mid-air" in hovering(scene, QARules().max_overhang)
    box = np.zeros((300, 400), np.uint8)
    cv2.rectangle(box, (50, 50), (350, 290), 255, -1)
    standing = layout(np.full((300, 400, 3), 90, np.uint8), box, load_placements()["square"])
    assert hovering(standing, QARules().max_overhang) == ""


def test_a_resting_point_behind_the_floor_s_back_edge_hovers():
    box = np.zeros((300, 400), np.uint8)
    cv2.rectangle(box, (50, 50), (350, 290), 255, -1)
    scene = layout(np.full((300, 400, 3), 90, np.uint8), box, load_placements()["square"])
    rows = np.full(scene.product_alpha.shape[1], np.nan, np.float32)
    rows[:10] = 5.0  # a far corner resting high up the patch, above the floor's back edge
    rows[-10:] = scene.product_alpha.shape[0]
    from dataclasses import replace

    moved = replace(scene, support=Support(rows=rows, base=float(scene.product_alpha.shape[0]), ratio=None))
    assert "back edge" in hovering(moved, 1.0)
