"""Place a product on an ad placement's canvas: scale to a target share, anchor, margins.

A product cut by its photo's frame (see :mod:`backdrop.imaging.framing`) keeps every cut edge
flush with the same side of the canvas, where it bleeds off as the photographer framed it; cut
on two opposite sides it fills that dimension; its uncut sides keep the placement's margins.

A :class:`Scene` is what a generator receives: the canvas size, the scaled product pixels and
their soft mask at an integer offset, the canvas sides the product bleeds off, and the geometry
a background needs (where the product touches the ground, where the floor's horizon is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from .framing import OPPOSITE, FramingRules
from .support import Support, find_support

Anchor = Literal["floor", "bottom", "center"]
#: how the product was photographed: standing in front of the camera, or laid flat and shot from above
View = Literal["front", "top"]
#: a person's floor line (the wall meeting the floor behind them) above their feet, as a share of
#: their height: a camera at waist height a few metres away puts it about mid-shin
ON_MODEL_FLOOR_LINE = 0.12
#: the flattest camera a floor is drawn for (lower elevations would leave a sliver of floor)
MIN_FLOOR_RATIO = 0.2


class Placement(BaseModel):
    """One ad placement: canvas size and how the product sits on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    width: int = Field(ge=64, le=8192)
    height: int = Field(ge=64, le=8192)
    #: fraction of the canvas area the product's bounding box should cover
    product_share: float = Field(default=0.30, gt=0.01, le=0.9)
    #: "floor": standing on a surface; "bottom": bottom-anchored; "center": centred
    anchor: Anchor = "floor"
    #: margin on every side, as a fraction of the canvas's shorter side
    margin: float = Field(default=0.06, ge=0.0, le=0.3)
    #: for "floor": where the product touches the ground, as a fraction of the height from the top
    ground: float = Field(default=0.86, gt=0.3, le=1.0)
    #: for "floor": the floor's horizon above the ground line, as a fraction of the product height
    horizon_depth: float = Field(default=0.22, ge=0.0, le=1.0)
    #: horizontal position of the product's centre, as a fraction of the width
    center_x: float = Field(default=0.5, ge=0.1, le=0.9)
    #: never enlarge the product image more than this (upscaling blurs it); a product that must
    #: fill the canvas between two cut sides is enlarged as far as that needs
    max_upscale: float = Field(default=2.5, ge=1.0, le=8.0)
    #: a product its photo cuts on one side (a top cut at the thighs) reaches this share of the
    #: canvas from that side (of the height for a top/bottom cut, of the width for left/right),
    #: within the margins of its uncut sides; standing on the floor, at most up to the ground line
    cropped_fill: float = Field(default=0.9, gt=0.2, le=1.0)
    #: bands the platform's own UI covers (the story's top and bottom), as shares of the height:
    #: overlays stay out of them
    safe_top: float = Field(default=0.0, ge=0.0, le=0.4)
    safe_bottom: float = Field(default=0.0, ge=0.0, le=0.4)

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def spec(self) -> dict:
        """Everything that changes the rendered canvas (part of the creative's key; the safe bands
        only move overlays, whose part of the key holds them)."""
        return self.model_dump(exclude={"safe_top", "safe_bottom"})


class QARules(BaseModel):
    """Thresholds of the quality checks every creative gets (the ``qa`` section of the placements file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the product's share of the canvas area (its mask, not its box) must lie in this range
    min_product_share: float = Field(default=0.02, ge=0.0, le=1.0)
    max_product_share: float = Field(default=0.8, ge=0.0, le=1.0)
    #: Delta E between the product's outline and the background around it, at least
    min_edge_contrast: float = Field(default=5.0, ge=0.0)
    #: Delta E between a thin ring around the product and the ring beyond it, at most
    max_halo: float = Field(default=14.0, ge=0.0)
    #: background colour left inside the product's mask (trapped in gaps), at most this share of it
    max_trapped_share: float = Field(default=0.005, ge=0.0, le=1.0)
    #: product-coloured pixels the mask left out (a bite out of the product), at most this share of the mask
    max_left_out: float = Field(default=0.008, ge=0.0, le=1.0)
    #: how far the outline stands out from both the product and the background (L*, 95th percentile), at most
    max_fringe: float = Field(default=18.0, ge=0.0)
    #: a standing product's centre of mass may lie this share of its width beyond what it rests on
    max_overhang: float = Field(default=0.1, ge=0.0, le=1.0)


class PlacementSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    placements: list[Placement]
    framing: FramingRules = Field(default_factory=FramingRules)
    qa: QARules = Field(default_factory=QARules)

    @model_validator(mode="after")
    def _unique(self) -> PlacementSet:
        names = [p.name for p in self.placements]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate placement name(s): {', '.join(sorted(dup))}")
        return self


DEFAULT_PLACEMENTS_FILE = Path(__file__).resolve().parent.parent / "config" / "placements.yaml"


def load_placements(path: str | Path | None = None) -> dict[str, Placement]:
    """Placements by name from a YAML file (the packaged defaults when ``path`` is None)."""
    return {p.name: p for p in load_placement_set(path).placements}


def load_placement_set(path: str | Path | None = None) -> PlacementSet:
    """The whole placements file: placements, framing rules and QA thresholds."""
    path = Path(path) if path else DEFAULT_PLACEMENTS_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read placements: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    try:
        pset = PlacementSet.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{path}: {loc}: {first['msg']}") from e
    return pset


@dataclass(frozen=True, eq=False)
class Scene:
    """A product laid out on a placement canvas.

    ``product_rgb`` / ``product_alpha`` are the scaled product patch; its top-left corner sits
    at (``x``, ``y``) on a ``width`` x ``height`` canvas. Alpha 255 marks pixels that must
    come out of compositing exactly as they are here.
    """

    placement: Placement
    width: int
    height: int
    product_rgb: np.ndarray
    product_alpha: np.ndarray
    x: int
    y: int
    ground_y: int
    horizon_y: int | None
    palette: tuple[tuple[int, int, int], ...] = field(default=())
    #: canvas sides the product bleeds off (its photo's cut sides, kept flush)
    cut: tuple[str, ...] = ()
    #: (x0, y0, x1, y1) of the product patch in the photo it was cut from, before scaling: with
    #: ``box`` it says where every pixel of the photo lands on the canvas
    source_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    #: where the patch rests on the ground (patch coordinates; see :mod:`backdrop.imaging.support`);
    #: None for a product that does not stand (cut at the bottom, shot from above, centred)
    support: Support | None = None
    #: "top": a flat lay, shown on a surface seen from above (no floor, no horizon)
    view: View = "front"

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the product patch on the canvas."""
        h, w = self.product_alpha.shape
        return self.x, self.y, self.x + w, self.y + h

    def canvas_alpha(self) -> np.ndarray:
        """The product's soft mask at canvas size, uint8 (H, W)."""
        out = np.zeros((self.height, self.width), np.uint8)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.product_alpha
        return out

    def canvas_mask(self, threshold: int = 128) -> np.ndarray:
        return self.canvas_alpha() >= threshold

    def canvas_product(self) -> np.ndarray:
        """The product's pixels at canvas size (zero outside), uint8 (H, W, 3)."""
        out = np.zeros((self.height, self.width, 3), np.uint8)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.product_rgb
        return out


def mask_bbox(alpha: np.ndarray, threshold: int = 1) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the pixels at or above ``threshold``; raises ValueError on an empty mask."""
    rows = np.flatnonzero((alpha >= threshold).any(axis=1))
    cols = np.flatnonzero((alpha >= threshold).any(axis=0))
    if rows.size == 0:
        raise ValueError("the product mask is empty")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def resize_premultiplied(rgb: np.ndarray, alpha: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize a product patch with premultiplied alpha, so colour under transparent pixels never bleeds into edges."""
    w, h = size
    if (w, h) == (alpha.shape[1], alpha.shape[0]):
        return rgb.copy(), alpha.copy()
    downscale = w < alpha.shape[1]
    interp = cv2.INTER_AREA if downscale else cv2.INTER_CUBIC
    a = alpha.astype(np.float32) / 255.0
    premul = rgb.astype(np.float32) * a[..., None]
    premul_r = cv2.resize(premul, (w, h), interpolation=interp)
    a_r = np.clip(cv2.resize(a, (w, h), interpolation=interp), 0.0, 1.0)
    safe = np.where(a_r > 1e-4, a_r, 1.0)
    rgb_r = np.clip(premul_r / safe[..., None] + 0.5, 0, 255).astype(np.uint8)
    alpha_r = np.clip(a_r * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb_r[alpha_r == 0] = 0
    return rgb_r, alpha_r


def floor_line(ground_y: float, height: int, width: int, ratio: float) -> float:
    """The floor's back edge for a camera whose elevation makes a circle on the floor at
    ``ground_y`` ``ratio`` times as deep as wide: the eye level sits ``ratio`` focal lengths above
    the ground line (:func:`~backdrop.generators.procedural.geometry.eye_row` inverted, its focal
    length ``max(width, height)``)."""
    eye = ground_y - ratio * max(width, height)
    back = (eye + 0.9 * ground_y) / 1.9
    if 0.9 * (ground_y - back) < 0.1 * height:
        back = eye + 0.1 * height
    return back


def layout(
    rgb: np.ndarray,
    alpha: np.ndarray,
    placement: Placement,
    palette: tuple[tuple[int, int, int], ...] = (),
    cut: tuple[str, ...] = (),
    view: View = "front",
    on_model: bool = False,
) -> Scene:
    """Scale and position a product (``rgb`` (H, W, 3), soft ``alpha`` (H, W)) on ``placement``'s canvas.

    ``cut``: the sides where the product's photo cuts it (:func:`~backdrop.imaging.framing.cut_sides`);
    those edges are placed flush with the same canvas sides. Standing on the floor, the product's
    support (not its lowest pixel: a strap may hang below the base) sits on the ground line, and
    the floor's back edge follows the camera's elevation read from its base. ``view="top"`` (a flat
    lay) centres it with no floor.
    """
    if rgb.shape[:2] != alpha.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {alpha.shape} differ in size")
    unknown = set(cut) - set(OPPOSITE)
    if unknown:
        raise ValueError(f"unknown side(s) {sorted(unknown)}; sides are {', '.join(OPPOSITE)}")
    x0, y0, x1, y1 = source_box = mask_bbox(alpha)
    rgb, alpha = rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
    bw, bh = x1 - x0, y1 - y0
    cut = tuple(s for s in OPPOSITE if s in set(cut))
    top, bottom, left, right = (s in cut for s in OPPOSITE)

    W, H = placement.width, placement.height
    margin = placement.margin * min(W, H)
    if view == "top":
        placement = placement.model_copy(update={"anchor": "center"})
    floor = placement.anchor == "floor" and not bottom
    # room on each axis: the canvas less the margins of the uncut sides; a product standing on
    # the floor keeps its base on the ground line
    avail_w = W - (0 if left else margin) - (0 if right else margin)
    avail_h = (placement.ground * H if floor else H - (0 if bottom else margin)) - (0 if top else margin)
    fill_h, fill_w = top and bottom, left and right
    if fill_h or fill_w:  # cut on two opposite sides: fill that dimension (all four: cover the canvas)
        scale = max(H / bh if fill_h else 0.0, W / bw if fill_w else 0.0)
    elif cut:
        scale = min(
            placement.cropped_fill * H / bh if (top or bottom) else math.inf,
            placement.cropped_fill * W / bw if (left or right) else math.inf,
            placement.max_upscale,
        )
    else:
        scale = min(math.sqrt(placement.product_share * W * H / (bw * bh)), placement.max_upscale)
    if not fill_w:
        scale = min(scale, avail_w / bw)
    if not fill_h:
        scale = min(scale, avail_h / bh)
    w, h = max(1, round(bw * scale)), max(1, round(bh * scale))
    if fill_h and h >= H - 1:
        h = H
    if fill_w and w >= W - 1:
        w = W
    prgb, palpha = resize_premultiplied(rgb, alpha, (w, h))
    support = find_support(palpha) if floor else None
    below = h - support.base if support is not None else 0.0  # hanging parts under the base

    if left and not right:
        x = 0
    elif right and not left:
        x = W - w
    elif fill_w:
        x = round((W - w) / 2)
    else:
        x = round(placement.center_x * W - w / 2)
        x = int(min(max(x, round(margin)), W - round(margin) - w)) if w <= W - 2 * margin else round((W - w) / 2)
    if top and not bottom:
        y = 0
        ground_y = h if floor else y + h
    elif bottom and not top:
        y = H - h
        ground_y = H
    elif fill_h or placement.anchor == "center":
        y = round((H - h) / 2)
        ground_y = y + h
    elif placement.anchor == "bottom":
        y = round(H - margin - h)
        ground_y = y + h
    else:
        ground_y = round(placement.ground * H)
        y = round(ground_y - h + below)
    if not (top or bottom):
        y = int(min(max(y, 0), H - h))
    if support is not None:
        ground_y = round(y + support.base)
    ground_y = int(min(ground_y, H))
    horizon_y = None
    if floor:
        if on_model:
            back = ground_y - ON_MODEL_FLOOR_LINE * h
        elif support is not None and support.ratio is not None:
            # below ~0.2 the floor would be a sliver behind the product: a surface needs depth to read
            back = floor_line(ground_y, H, W, max(support.ratio, MIN_FLOOR_RATIO))
        else:
            back = ground_y - placement.horizon_depth * h - 0.04 * H
        if support is not None:  # every point the product rests on is on the floor, in front of its back edge
            back = min(back, y + float(np.nanmin(support.rows)) - 0.02 * H)
        horizon_y = int(max(0, back))
    bleeds = tuple(s for s, edge in (("top", y <= 0), ("bottom", y + h >= H), ("left", x <= 0), ("right", x + w >= W)) if s in cut and edge)
    return Scene(
        placement=placement,
        width=W,
        height=H,
        product_rgb=prgb,
        product_alpha=palpha,
        x=int(x),
        y=int(y),
        ground_y=ground_y,
        horizon_y=horizon_y,
        palette=palette,
        cut=bleeds,
        source_box=source_box,
        support=support,
        view=view,
    )
