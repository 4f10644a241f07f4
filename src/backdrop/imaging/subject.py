"""What the photo says about the product, beyond its mask: cut by the frame? worn by a person?
background left inside the mask?

The analysis decides the layout (cut edges flush), the styles (on-model products get scenes a
person can stand in) and feeds the QA checks. It is deterministic per image and method, so the
pipeline caches it in the store's index by the image's content hash: a re-run plans without
decoding a single image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from .background import ColourModel, cut_parts, missed_parts
from .framing import FramingRules, cut_sides
from .maskops import disk, fill_holes, work_image
from .people import PersonDetector
from .support import looks_flat_lay, stands

ANALYSIS_VERSION = "5"  # 3: left_out_share; 4: a product that cannot stand is shown lying (view "top"); 5: missed parts count as left out


@dataclass(frozen=True)
class Subject:
    #: photo sides where the product runs along the border (cut by the frame)
    cut: tuple[str, ...] = ()
    #: photographed on a person
    on_model: bool = False
    #: the evidence for ``on_model``: face score, skin share, which signal decided
    person: dict = field(default_factory=dict)
    #: share of the mask's interior in the photo's background colour (background trapped in gaps);
    #: 0 for a mask from an alpha channel
    trapped_share: float = 0.0
    #: share (of the mask) of product-looking pixels the mask leaves out inside its outline: enclosed
    #: by it, in a narrow bay of it or cut off by it at the frame (:func:`left_out_share`, the QA
    #: check ``cut-part``); 0 for a mask from an alpha channel
    left_out_share: float = 0.0
    #: "alpha" (the image's own alpha channel) or the segmenter that made the mask
    mask_source: str = ""
    #: "top": a flat lay shot from above (:func:`~backdrop.imaging.support.looks_flat_lay`), or a
    #: product that cannot stand as photographed (its weight beside what it would rest on:
    #: :func:`~backdrop.imaging.support.stands`), shown lying on a surface seen from above;
    #: "front": everything else, standing on the set's floor
    view: str = "front"

    def spec(self) -> dict:
        """What decides the creatives' pixels (part of their key)."""
        return {"cut": list(self.cut), "on_model": self.on_model} | ({"view": self.view} if self.view != "front" else {})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cut"] = list(self.cut)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Subject:
        return cls(
            cut=tuple(d.get("cut", ())),
            on_model=bool(d.get("on_model", False)),
            person=dict(d.get("person", {})),
            trapped_share=float(d.get("trapped_share", 0.0)),
            left_out_share=float(d.get("left_out_share", 0.0)),
            mask_source=str(d.get("mask_source", "")),
            view=str(d.get("view", "front")),
        )


def background_share(rgb: np.ndarray, alpha: np.ndarray, work_side: int = 1024) -> float:
    """Share of the mask's interior (3 px in from its edge) that is the photo's backdrop: background
    the mask holds that a creative would paste everywhere.

    A pixel counts when it is within the border's noise of the background colour *and* as flat as
    the backdrop (gradient at the border's noise level), in a patch of at least 16 px (and 2e-4
    of the mask) whose outline is mostly crisp: at most half of a 2 px ring around it fades
    into near-background colours (within 3x the noise threshold). A gap between an arm and the
    body or inside a handle is flat paper bounded by the product's edges; white fabric is shaded
    and textured, and where it does reach the backdrop's white (a highlight) it fades into the
    fabric around it.
    """
    m, cm = _at_work_scale(rgb, alpha, work_side)
    area = int(m.sum())
    if area == 0:
        return 0.0
    inner = cv2.erode(m.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    flat = cm.grad <= max(1.5, 1.5 * cm.noise)
    exact = (inner & (cm.dist < cm.tau) & flat).astype(np.uint8)
    cand = cv2.morphologyEx(exact, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, lab, st, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return 0.0
    ring = (cv2.dilate(cand, np.ones((5, 5), np.uint8)) > 0) & (cand == 0)
    ring_lab = cv2.dilate(lab.astype(np.float32), np.ones((5, 5), np.uint8)).astype(np.int32)
    fades = ring & m & (cm.dist >= cm.tau) & (cm.dist < 3.0 * cm.tau)
    total = np.bincount(ring_lab[ring], minlength=n)
    fading = np.bincount(ring_lab[fades], minlength=n)
    sizes = st[:, cv2.CC_STAT_AREA]
    counts = (sizes >= max(16, 2e-4 * area)) & (fading <= 0.5 * np.maximum(total, 1))
    counts[0] = False
    return round(float(sizes[counts].sum()) / area, 5)


def _at_work_scale(rgb: np.ndarray, alpha: np.ndarray, work_side: int) -> tuple[np.ndarray, ColourModel]:
    """The hard mask and the photo's colour model at the working scale (at most ``work_side`` px)."""
    work = work_image(rgb, work_side)
    h, w = work.shape[:2]
    m = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA) >= 128 if alpha.shape != (h, w) else alpha >= 128
    return m, ColourModel(work)


def left_out_share(rgb: np.ndarray, alpha: np.ndarray, work_side: int = 1024, bay: float = 0.015) -> float:
    """Share of the mask's area of product-looking pixels the mask leaves out inside its outline:
    a part of the product the mask bit off (a hole in a sole, a chunk out of a pair of shorts).

    A pixel counts when it is outside the mask, clearly not the background colour (over 2x the
    noise threshold, see :class:`~backdrop.imaging.background.ColourModel`) nor a soft shadow on
    it, at least 2 px from the mask's edge (its anti-aliased edge is a blend of both), and
    enclosed by the mask: in a hole, in a bay narrower than ``2 * bay`` of the product's size (a
    closing fills it), or cut off from the backdrop by the mask and the frame (a chunk out of
    trousers running off the bottom; the frame's edge counts as product where the photo there is
    not the background colour); or where the photo goes on across the mask's edge into a region
    of product colour (:func:`~backdrop.imaging.background.cut_parts`: a chunk bitten out of the
    side of a pair of shorts), or a part it missed whole
    (:func:`~backdrop.imaging.background.missed_parts`: a kit's foam roller); in a patch of at
    least 16 px. What a gap shows between an arm
    and the body is the backdrop's colour and does not count; a shadow between two feet is a
    soft shadow.
    """
    m, cm = _at_work_scale(rgb, alpha, work_side)
    area = int(m.sum())
    if area == 0:
        return 0.0
    # the frame closes the mask where the photo at the border is not the backdrop
    framed = np.pad(m, 1)
    d = cm.dist > 2.0 * cm.tau
    framed[0, 1:-1], framed[-1, 1:-1] = m[0] | d[0], m[-1] | d[-1]
    framed[1:-1, 0], framed[1:-1, -1] = m[:, 0] | d[:, 0], m[:, -1] | d[:, -1]
    enclosed = fill_holes(framed)[1:-1, 1:-1]
    r = max(2, int(round(bay * np.sqrt(area))))
    closed = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_CLOSE, disk(r), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    off_edge = cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 3) >= 2.0
    left = ((enclosed | closed) & ~m & off_edge & d & ~cm.shadow_regions()) | ((cut_parts(m, cm) | missed_parts(m, cm)) & off_edge)
    st = cv2.connectedComponentsWithStats(left.astype(np.uint8), connectivity=8)[2]
    sizes = st[:, cv2.CC_STAT_AREA]
    counts = sizes >= 16
    counts[0] = False
    return round(float(sizes[counts].sum()) / area, 5)


class SubjectAnalyser:
    """Runs the analysis of a product photo and its mask."""

    def __init__(self, framing: FramingRules | None = None, people: PersonDetector | None = None):
        self.framing = framing or FramingRules()
        self._people = people

    @property
    def people(self) -> PersonDetector:
        if self._people is None:
            self._people = PersonDetector()
        return self._people

    @property
    def method(self) -> str:
        rules = hashlib.sha256(json.dumps(self.framing.model_dump(), sort_keys=True).encode()).hexdigest()[:8]
        return f"subject@{ANALYSIS_VERSION}:framing-{rules}:{self.people.method}"

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray, mask_source: str) -> Subject:
        cut = cut_sides(alpha, self.framing)
        person = self.people(rgb, alpha, cut)
        trapped = 0.0 if mask_source == "alpha" else background_share(rgb, alpha)
        left_out = 0.0 if mask_source == "alpha" else left_out_share(rgb, alpha)
        return Subject(
            cut=cut,
            view="top" if not person.on_model and (looks_flat_lay(alpha) or not stands(alpha)) else "front",
            on_model=person.on_model,
            person={"face": person.face, "skin": person.skin, "reason": person.reason},
            trapped_share=trapped,
            left_out_share=left_out,
            mask_source=mask_source,
        )
