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

from .framing import FramingRules, cut_sides
from .people import PersonDetector

ANALYSIS_VERSION = "1"


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
    #: "alpha" (the image's own alpha channel) or the segmenter that made the mask
    mask_source: str = ""

    def spec(self) -> dict:
        """What decides the creatives' pixels (part of their key)."""
        return {"cut": list(self.cut), "on_model": self.on_model}

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
            mask_source=str(d.get("mask_source", "")),
        )


def background_share(rgb: np.ndarray, alpha: np.ndarray, work_side: int = 1024) -> float:
    """Share of the mask's interior (3 px in from its edge) within the border's noise of the
    photo's background colour: background the mask holds that a creative would paste everywhere."""
    from .background import ColourModel
    from .maskops import work_image

    work = work_image(rgb, work_side)
    h, w = work.shape[:2]
    m = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA) >= 128 if alpha.shape != (h, w) else alpha >= 128
    area = int(m.sum())
    if area == 0:
        return 0.0
    inner = cv2.erode(m.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    cm = ColourModel(work)
    return round(float(np.count_nonzero(inner & (cm.dist < cm.tau))) / area, 5)


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
        return Subject(
            cut=cut,
            on_model=person.on_model,
            person={"face": person.face, "skin": person.skin, "reason": person.reason},
            trapped_share=trapped,
            mask_source=mask_source,
        )
