"""Where a product touches the ground, how high the camera was, and whether it was shot from above.

A product photographed standing rests on the lowest parts of its *body*: the base of a bag, the
sole of a shoe, the front corner of a box. Thin parts that hang below it (a messenger bag's
buckle straps, a dangling cord) do not carry it, so the body is the mask opened by a disk a few
per cent of the product's size. Its bottom contour's lower convex hull is where a floor can touch
it; the columns whose bottom lies on that hull, where the hull is not steeper than a resting
surface allows, are the **support**. A round bottom (a ball) touches in a short arc; a duffle
shot from three-quarters touches along a tilted line (its base recedes); a box along a V.

The base contour also tells the camera's elevation: a horizontal circle (a cylinder's base) or
square (a box's) seen from above at elevation e projects to an outline whose depth below the chord
through its ends is sin(e) times its half-width. :func:`find_support` measures that ratio on the
support's arc; the layout sets the floor's horizon and a podium's perspective from it.

A **flat lay** (coiled cords, a kit laid out and shot from above) has no base: standing it up in a
room is the classic mistake. :func:`looks_flat_lay` tells it by long thin strands (cords) together
with a body whose bottom wanders over much of its height (nothing rests on a line).

Everything runs on the mask scaled to at most 256 px, so it costs about a millisecond and does
not depend on the photo's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: masks are analysed at most this large (longest side)
WORK = 256
#: the steepest hull a resting product touches along (|d row / d column|)
MAX_SLOPE = 0.45
#: the steepest straight bottom edge that still lies on the floor (receding into depth)
MAX_EDGE_SLOPE = 1.5
#: camera elevation ratios outside this range are clamped (flatter reads as eye level, steeper as top-down)
RATIO_RANGE = (0.08, 0.45)


@dataclass(frozen=True, eq=False)
class Support:
    """The ground contact of a product patch, in the patch's pixel coordinates.

    ``rows[c]``: the row just under the product's bottom in column ``c`` where that column
    rests on the ground, NaN elsewhere. ``base``: the lowest of them (where the floor line goes).
    ``ratio``: depth of the base outline over its half-width (sin of the camera's elevation), or
    None when the base is too short to read.
    """

    rows: np.ndarray
    base: float
    ratio: float | None

    @property
    def columns(self) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.rows))

    @property
    def span(self) -> tuple[int, int]:
        c = self.columns
        return int(c[0]), int(c[-1]) + 1


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _small(alpha: np.ndarray) -> tuple[np.ndarray, float]:
    """The solid mask (>= 128) at most WORK px on its longest side, and the scale applied."""
    h, w = alpha.shape
    s = min(1.0, WORK / max(h, w))
    if s < 1.0:
        alpha = cv2.resize(alpha, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return (alpha >= 128).astype(np.uint8), s


def _opened(solid: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(solid, cv2.MORPH_OPEN, _disk(max(1, round(0.025 * max(solid.shape)))))


def body_of(solid: np.ndarray) -> np.ndarray:
    """The product without its thin parts (straps, cords, buckles): ``solid`` opened by a disk of
    2.5% of its size; the whole mask when little thick is left (a product made of cords)."""
    body = _opened(solid)
    if body.sum() < 0.2 * solid.sum():
        return solid
    return body


def _bottoms(mask: np.ndarray) -> np.ndarray:
    """Per column, the row just under its lowest set pixel; NaN for an empty column."""
    h = mask.shape[0]
    has = mask.any(axis=0)
    last = h - np.argmax(mask[::-1], axis=0)
    return np.where(has, last, np.nan).astype(np.float64)


def _lower_hull(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower convex hull (image rows grow downwards: the hull under the points) of points sorted by x."""
    hull: list[tuple[float, float]] = []
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        # keep the chain convex from below: pop while the last turn bends the wrong way
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append((x, y))
    hx, hy = zip(*hull, strict=True)
    return np.asarray(hx, np.float64), np.asarray(hy, np.float64)


def find_support(alpha: np.ndarray) -> Support:
    """The support of a product patch (soft mask uint8 (H, W)); see the module docstring."""
    H, W = alpha.shape
    solid, s = _small(alpha)
    if not solid.any():
        return Support(np.full(W, np.nan, np.float32), float(H), None)
    body = body_of(solid)
    bottom = _bottoms(body.astype(bool))
    cols = np.flatnonzero(np.isfinite(bottom))
    xs, ys = cols.astype(np.float64), bottom[cols]
    hx, hy = _lower_hull(xs, ys)
    hull = np.interp(xs, hx, hy)
    slope = np.gradient(hull) if hull.size > 1 else np.zeros(1)
    h_small = body.shape[0]
    tol = max(1.0, 0.012 * h_small)
    touching = hull - ys <= tol
    on = touching & (np.abs(slope) <= MAX_SLOPE)
    # a long straight stretch of the hull that the bottom follows is an edge lying on the floor
    # (a roller lying diagonally, a box's receding bottom edge), however steep it runs in the image
    for i in range(len(hx) - 1):
        run = (xs >= hx[i]) & (xs <= hx[i + 1])
        steep = abs(hy[i + 1] - hy[i]) / max(hx[i + 1] - hx[i], 1e-6)
        if hx[i + 1] - hx[i] >= 0.2 * (xs[-1] - xs[0] + 1) and steep <= MAX_EDGE_SLOPE and touching[run].mean() >= 0.8:
            on |= run & touching
    if not on.any():  # a needle-thin bottom: the lowest column carries it
        on = ys >= ys.max() - tol
    support_x, support_y = xs[on], ys[on]
    # ratio: the base outline's depth below the chord through its ends, over the half chord
    # (over the whole outline the hull follows: a cylinder's base ellipse runs up to its sides)
    ratio = None
    arc_x, arc_y = xs[touching], ys[touching]
    if arc_x.size >= 3 and arc_x[-1] - arc_x[0] >= 0.2 * (xs[-1] - xs[0] + 1):
        x0, x1, y0, y1 = arc_x[0], arc_x[-1], arc_y[0], arc_y[-1]
        chord = y0 + (y1 - y0) * (arc_x - x0) / max(x1 - x0, 1e-6)
        sag = float(np.max(arc_y - chord))
        half = 0.5 * float(np.hypot(x1 - x0, y1 - y0))
        if sag >= 0.04 * half:  # a straight base (a box face-on, a tilted duffle) says nothing of the camera
            ratio = float(np.clip(sag / max(half, 1e-6), *RATIO_RANGE))
    # back to the patch's own size: each patch column takes the support of the small column it falls in
    rows_small = np.full(body.shape[1], np.nan)
    rows_small[support_x.astype(int)] = support_y
    src = np.minimum((np.arange(W) + 0.5) * s, body.shape[1] - 1).astype(int)
    rows = (rows_small[src] / s).astype(np.float32)
    rows = np.minimum(rows, H)
    base = float(np.nanmax(rows))
    return Support(rows=rows, base=base, ratio=ratio)


def overhang(support: Support, alpha: np.ndarray) -> float:
    """How far the product's centre of mass (its mask's column weights) lies beyond the columns it
    rests on, as a share of its width: 0 when it lies over them. A product whose weight hangs
    beside what it rests on would tip over: standing, it reads as hanging in mid-air."""
    cols = support.columns
    weight = alpha.astype(np.float32).sum(axis=0)
    if cols.size == 0 or float(weight.sum()) <= 0:
        return 1.0
    com = float((weight * (np.arange(weight.size) + 0.5)).sum() / float(weight.sum()))
    beyond = max(float(cols[0]) - com, com - float(cols[-1] + 1), 0.0)
    return beyond / weight.size


def stands(alpha: np.ndarray, max_overhang: float = 0.1) -> bool:
    """True when the product, as photographed, can stand on a floor: its weight over what it rests on."""
    ys, xs = np.nonzero(alpha >= 128)
    if ys.size == 0:
        return False
    patch = alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return overhang(find_support(patch), patch) <= max_overhang


def cord_length(solid: np.ndarray) -> float:
    """Length of the mask's thin strands (what opening by the body's disk removes) over the
    product's diagonal: ~0 for a box, ~2 for coiled jump ropes."""
    thin = solid & (1 - _opened(solid))
    if not thin.any():
        return 0.0
    dt = cv2.distanceTransform(solid, cv2.DIST_L2, 3)
    ridge = (dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8)) - 1e-3) & (thin > 0)
    width = 2.0 * float(np.median(dt[ridge])) if ridge.any() else 1.0
    return float(thin.sum()) / max(width, 1.0) / float(np.hypot(*solid.shape))


def looks_flat_lay(alpha: np.ndarray, min_cords: float = 1.0, min_wander: float = 0.25) -> bool:
    """True for a product shot from above (laid out flat): long thin strands (cord length >=
    ``min_cords`` diagonals) and a body whose bottom contour wanders over at least ``min_wander``
    of its height between its 10th and 90th percentile (nothing rests on a line)."""
    ys, xs = np.nonzero(alpha >= 128)
    if ys.size == 0:
        return False
    solid, _ = _small(alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    if cord_length(solid) < min_cords:
        return False
    bottom = _bottoms(body_of(solid).astype(bool))
    bottom = bottom[np.isfinite(bottom)]
    wander = (np.percentile(bottom, 90) - np.percentile(bottom, 10)) / solid.shape[0]
    return bool(wander >= min_wander)
