"""Thin parts of real catalog photos (bag straps, jump-rope cords, yoga straps) stay whole in the
cut-out mask: the skeleton of the photo's clearly-non-background pixels is covered by the mask
without breaks, and the mask holds no detached fragment of an object that is one piece in the
photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import magento_mask, magento_photo, needs_learned

#: photos with straps, cords and handles
THIN = (
    "wb07-brown-0",
    "ug03-bk-0",
    "luma-yoga-strap-set",
    "wb02-green-0",
    "wb03-purple-0",
    "wb04-blue-0",
    "wb05-red-0",
    "wb06-red-0",
)


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def skeleton(img: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a bool image (8-connected, one pixel wide)."""
    s = np.pad(img.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            c = s[1:-1, 1:-1]
            p2, p3, p4, p5 = s[:-2, 1:-1], s[:-2, 2:], s[1:-1, 2:], s[2:, 2:]
            p6, p7, p8, p9 = s[2:, 1:-1], s[2:, :-2], s[1:-1, :-2], s[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            b = sum(x.astype(np.int32) for x in ring[:8])
            a = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int32) for i in range(8))
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            m = (c == 1) & (b >= 2) & (b <= 6) & (a == 1) & cond
            if m.any():
                c[m] = 0
                changed = True
        if not changed:
            return s[1:-1, 1:-1] > 0


def thin_part_report(rgb: np.ndarray, alpha: np.ndarray, thick: int = 25, threshold: float = 40.0) -> dict:
    """The photo's objects: connected parts of its clearly-non-background pixels (RGB distance to
    the border's median colour > ``threshold``) that the mask mostly holds. Their thin parts
    (what an opening with a ``thick`` px disk removes: straps, cords, handles) are skeletonised,
    keeping the skeleton's core (>= 3 px from the part's edge, so an edge pixel decided either way
    does not count). Returns the skeleton's length, the share the mask covers, its pieces in the
    photo and within the mask (a cut strap is one more piece), and the mask's detached fragments
    (>= 20 px) inside one photo object."""
    f = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 1.0)
    r = max(2, int(0.01 * min(alpha.shape)))
    border = np.concatenate([f[:r].reshape(-1, 3), f[-r:].reshape(-1, 3), f[:, :r].reshape(-1, 3), f[:, -r:].reshape(-1, 3)])
    dist = np.linalg.norm(f - np.median(border, 0), axis=2)
    photo = cv2.morphologyEx((dist > threshold).astype(np.uint8), cv2.MORPH_OPEN, _disk(1)) > 0
    m = alpha >= 128
    n, lab = cv2.connectedComponents(photo.astype(np.uint8), connectivity=8)
    held = np.bincount(lab[m], minlength=n)
    size = np.bincount(lab.ravel(), minlength=n)
    objects = (held > 0.5 * size) & (size > 200)
    objects[0] = False
    photo = objects[lab]
    thin = photo & ~(cv2.morphologyEx(photo.astype(np.uint8), cv2.MORPH_OPEN, _disk(thick)) > 0)
    thin = cv2.morphologyEx(thin.astype(np.uint8), cv2.MORPH_OPEN, _disk(1)) > 0
    core = cv2.distanceTransform(photo.astype(np.uint8), cv2.DIST_L2, 3) >= 3
    sk = skeleton(thin) & core
    pieces_photo = cv2.connectedComponents(sk.astype(np.uint8), connectivity=8)[0] - 1
    pieces_mask = cv2.connectedComponents((sk & m).astype(np.uint8), connectivity=8)[0] - 1
    _, mlab, st, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    fragments = 0
    for obj in np.nonzero(objects)[0]:
        ids = [i for i in np.unique(mlab[(lab == obj) & m]) if i > 0 and st[i, cv2.CC_STAT_AREA] >= 20]
        fragments += max(0, len(ids) - 1)
    length = int(sk.sum())
    return {
        "skeleton": length,
        "covered": float((sk & m).sum()) / max(length, 1),
        "pieces_photo": pieces_photo,
        "pieces_mask": pieces_mask,
        "fragments": fragments,
    }


def _strap_photo() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic bag: a body and a 12 px wide handle arc on white; the exact mask."""
    rgb = np.full((300, 300, 3), 255, np.uint8)
    cv2.rectangle(rgb, (60, 150), (240, 280), (120, 60, 40), -1)
    cv2.ellipse(rgb, (150, 150), (70, 90), 0, 180, 360, (120, 60, 40), 12)
    alpha = np.where((rgb != 255).any(2), 255, 0).astype(np.uint8)
    return rgb, alpha


def test_the_report_sees_a_cut_strap():
    rgb, alpha = _strap_photo()
    whole = thin_part_report(rgb, alpha)
    assert whole["skeleton"] > 100 and whole["covered"] == 1.0
    assert whole["pieces_mask"] == whole["pieces_photo"] and whole["fragments"] == 0
    cut = alpha.copy()
    cut[95:103, :] = 0  # both sides of the handle chopped: its top floats
    rep = thin_part_report(rgb, cut)
    assert rep["covered"] < 1.0
    assert rep["pieces_mask"] > rep["pieces_photo"]
    assert rep["fragments"] >= 1


@needs_learned
@pytest.mark.parametrize("name", THIN)
def test_thin_parts_stay_whole_on_real_photos(name):
    rep = thin_part_report(magento_photo(name), magento_mask(name))
    assert rep["skeleton"] > 50, rep  # the photo does have thin parts
    assert rep["covered"] >= 0.995, rep
    assert rep["pieces_mask"] <= rep["pieces_photo"], rep
    assert rep["fragments"] == 0, rep
