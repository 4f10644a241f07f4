"""Grounding: products rest on their support (not on a strap hanging below it), shadows follow a
receding base, the camera's elevation read from the base sets the floor, flat lays lie on a
surface seen from above."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from backdrop.generators.base import GenerationRequest
from backdrop.generators.procedural import ProceduralGenerator
from backdrop.imaging import shading as sh
from backdrop.imaging.layout import layout, load_placements
from backdrop.imaging.support import find_support, looks_flat_lay, stands
from conftest import MAGENTO


def bag_with_hanging_straps() -> np.ndarray:
    """A bag body (a rounded box) with two thin buckle straps hanging 60 px below its base."""
    m = np.zeros((500, 600), np.uint8)
    cv2.rectangle(m, (50, 100), (550, 400), 255, -1)
    for x in (180, 420):
        cv2.rectangle(m, (x, 380), (x + 8, 460), 255, -1)
    return m


def cylinder(ratio: float, a: int = 120, height: int = 180) -> np.ndarray:
    """A cylinder seen from a camera whose elevation flattens its circular base to ``ratio``."""
    b = a * ratio
    m = np.zeros((height + int(2 * b) + 20, 2 * a + 20), np.uint8)
    cx, top = m.shape[1] // 2, 10 + b
    cv2.rectangle(m, (cx - a, int(top)), (cx + a, int(top + height)), 255, -1)
    for y in (top, top + height):
        cv2.ellipse(m, (cx, int(y)), (a, int(round(b))), 0, 0, 360, 255, -1)
    return m


def test_a_strap_hanging_below_the_base_does_not_carry_the_product():
    s = find_support(bag_with_hanging_straps())
    assert s.base == pytest.approx(401, abs=3)  # the body's base, not the straps' tips at 461
    c0, c1 = s.span
    assert c0 < 80 and c1 > 520  # the whole base rests


def test_the_layout_puts_the_base_on_the_ground_line_and_lets_straps_hang_in_front():
    alpha = bag_with_hanging_straps()
    rgb = np.full((*alpha.shape, 3), 90, np.uint8)
    placement = load_placements()["square"]
    scene = layout(rgb, alpha, placement)
    assert scene.support is not None
    assert scene.ground_y == pytest.approx(round(placement.ground * placement.height), abs=1)
    assert scene.y + scene.product_alpha.shape[0] > scene.ground_y + 20  # the straps' tips lie below it


def test_a_ball_rests_on_a_short_arc_and_a_lying_roller_along_its_length():
    ball = np.zeros((400, 400), np.uint8)
    cv2.circle(ball, (200, 200), 190, 255, -1)
    c0, c1 = find_support(ball).span
    assert (c1 - c0) < 0.5 * 380
    roller = np.zeros((500, 500), np.uint8)
    cv2.line(roller, (60, 440), (440, 60), 255, 60)
    c0, c1 = find_support(roller).span
    assert (c1 - c0) > 0.6 * 440  # a bar lying diagonally rests along its lower edge


@pytest.mark.parametrize("ratio", [0.12, 0.2, 0.3, 0.4])
def test_the_camera_elevation_read_from_a_round_base_is_within_the_measured_tolerance(ratio):
    # measured over a = 60..200 px: |error| <= 0.035 (about 2 degrees of elevation)
    est = find_support(cylinder(ratio)).ratio
    assert est is not None and abs(est - ratio) <= 0.04


def test_a_flat_base_says_nothing_of_the_camera():
    box = np.zeros((300, 400), np.uint8)
    cv2.rectangle(box, (20, 20), (380, 280), 255, -1)
    assert find_support(box).ratio is None


def test_a_high_camera_gives_a_deeper_floor():
    placement = load_placements()["square"]
    low, high = (layout(np.full((*m.shape, 3), 120, np.uint8), m, placement) for m in (cylinder(0.15), cylinder(0.4)))
    assert low.horizon_y is not None and high.horizon_y is not None
    assert (high.ground_y - high.horizon_y) > (low.ground_y - low.horizon_y) + 20


def test_a_person_s_floor_line_is_near_their_feet():
    alpha = np.zeros((900, 300), np.uint8)
    cv2.rectangle(alpha, (100, 0), (200, 899), 255, -1)
    scene = layout(np.full((900, 300, 3), 80, np.uint8), alpha, load_placements()["story"], on_model=True)
    h = scene.product_alpha.shape[0]
    assert scene.horizon_y is not None and scene.ground_y - scene.horizon_y < 0.2 * h


def test_the_contact_shadow_follows_a_receding_base():
    """A duffle shot from three-quarters: its base runs from row 210 (back corner) to 250 (front):
    the shadow sits under the back corner too, not only on the lowest row's line."""
    h, w = 320, 400
    alpha = np.zeros((250, 300), np.float32)
    pts = np.array([[0, 60], [300, 100], [300, 250], [0, 210]], np.int32)
    cv2.fillPoly(alpha, [pts], 1.0)
    s = find_support((alpha * 255).astype(np.uint8))
    assert np.nanmin(s.rows) < 215 and s.base > 245
    shadow = sh.contact_shadow(h, w, alpha, 50, 40, 40 + s.base, 0.5, None, s.rows)
    back_corner = shadow[40 + 211 : 40 + 216, 50 + 5 : 50 + 15].mean()
    flat = sh.contact_shadow(h, w, alpha, 50, 40, 40 + s.base, 0.5, None, None)
    assert back_corner > 0.3
    assert back_corner > 3 * flat[40 + 211 : 40 + 216, 50 + 5 : 50 + 15].mean()


def test_a_flat_lay_gets_a_surface_seen_from_above():
    alpha = np.zeros((400, 400), np.uint8)
    cv2.ellipse(alpha, (200, 200), (150, 90), 20, 0, 360, 255, 6)
    scene = layout(np.full((400, 400, 3), 40, np.uint8), alpha, load_placements()["square"], view="top")
    assert scene.horizon_y is None and scene.support is None
    _, y0, _, y1 = scene.box
    assert abs((y0 + y1) / 2 - scene.height / 2) <= 2  # centred, not standing on a ground line
    bg = ProceduralGenerator().generate(
        GenerationRequest(scene=scene, prompt="", negative_prompt="", params={"scene": "room", "surface": "wood"}, seed=1)
    )
    lum = cv2.cvtColor(bg, cv2.COLOR_RGB2GRAY).astype(float)
    ring = cv2.dilate(scene.canvas_mask().astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    ring &= ~scene.canvas_mask()
    far = np.zeros_like(ring)
    far[:80] = True
    assert lum[ring].mean() < lum[far].mean() - 8  # the drop shadow around what lies on the surface


def test_coiled_cords_shot_from_above_are_a_flat_lay_and_a_bag_is_not():
    cords = np.zeros((600, 600), np.uint8)
    for i, (cx, cy) in enumerate([(150, 150), (420, 200), (250, 420), (470, 470)]):
        for r in (40, 60, 80):
            cv2.ellipse(cords, (cx, cy), (r, int(r * 0.7)), 30 * i, 0, 330, 255, 5)
    cv2.rectangle(cords, (280, 250), (360, 320), 255, -1)
    assert looks_flat_lay(cords)
    bag = np.zeros((600, 600), np.uint8)
    cv2.rectangle(bag, (80, 250), (520, 560), 255, -1)
    cv2.ellipse(bag, (300, 250), (150, 180), 0, 180, 360, 255, 12)
    assert not looks_flat_lay(bag)


@pytest.mark.parametrize(
    ("image", "flat"), [("ug03-bk-0.jpg", True), ("wb07-brown-0.jpg", False), ("wb05-red-0.jpg", False), ("wb04-blue-0.jpg", False)]
)
def test_the_real_catalog_s_flat_lay_is_told_from_its_bags(image, flat):
    from backdrop.creative.catalog import load_image
    from backdrop.imaging.mask import get_segmenter, product_mask

    alpha = product_mask(load_image(MAGENTO / "images" / image), get_segmenter("auto"))
    assert looks_flat_lay(alpha) is flat


def test_a_product_that_cannot_stand_as_photographed_is_shown_lying():
    """A stack of rolled straps shot tilted rests (as photographed) on one ring's tip, its weight far
    to the side: standing on a floor it would hang in mid-air, so the analysis shows it lying."""
    from backdrop.creative.catalog import load_image
    from backdrop.imaging.mask import get_segmenter, product_mask
    from backdrop.imaging.subject import SubjectAnalyser

    rgba = load_image(MAGENTO / "images" / "luma-yoga-strap-set.jpg")
    alpha = product_mask(rgba, get_segmenter("auto"))
    assert not stands(alpha)
    assert SubjectAnalyser()(rgba[..., :3], alpha, "combined").view == "top"
    box = np.zeros((300, 400), np.uint8)
    cv2.rectangle(box, (50, 50), (350, 290), 255, -1)
    assert stands(box)
