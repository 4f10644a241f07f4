"""Where the photographer's frame cuts the product.

On-model catalog photos are framed on the person, not the garment's edges: a top is cut at the
thighs by the bottom of the photo, trousers at the waist by its top. Such a product must keep
its cut edge on the same side of every ad canvas (it bleeds off there, as the photographer framed
it); laid out as a whole object it would float with a hard horizontal cut, or stand sunk into
the floor.

A side is *cut* when the product's mask runs along that border of the photo: within
``band_px`` of the edge over at least ``min_share`` of the edge's length.

>>> import numpy as np
>>> alpha = np.zeros((100, 80), np.uint8)
>>> alpha[30:, 20:60] = 255          # runs off the bottom of the photo
>>> cut_sides(alpha)
('bottom',)
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: the sides of a photo or canvas, in a fixed order
SIDES = ("top", "bottom", "left", "right")
OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


class FramingRules(BaseModel):
    """When a product counts as cut by its photo's frame (the ``framing`` section of the placements file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: mask pixels within this many pixels of a border count as touching it (JPEG edges are soft)
    band_px: int = Field(default=2, ge=1, le=32)
    #: ... when they cover at least this share of that border's length
    min_share: float = Field(default=0.02, gt=0.0, le=1.0)
    #: and at least this many pixels of it
    min_px: int = Field(default=4, ge=1)


def cut_sides(alpha: np.ndarray, rules: FramingRules | None = None, threshold: int = 128) -> tuple[str, ...]:
    """The sides of the photo (in :data:`SIDES` order) where the product's mask runs along the border."""
    rules = rules or FramingRules()
    mask = np.asarray(alpha) >= threshold
    h, w = mask.shape
    b = max(1, min(rules.band_px, h // 4 or 1, w // 4 or 1))
    bands = {
        "top": mask[:b].any(axis=0),
        "bottom": mask[h - b :].any(axis=0),
        "left": mask[:, :b].any(axis=1),
        "right": mask[:, w - b :].any(axis=1),
    }
    out = []
    for side in SIDES:
        run = bands[side]
        covered = int(np.count_nonzero(run))
        if covered >= max(rules.min_px, rules.min_share * run.size):
            out.append(side)
    return tuple(out)
