"""A model of the photo's background colour, and what it says about pixels: background trapped inside the product's outline, detached shadows, holes."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from .maskops import border_connected, disk, nearest_values


class ColourModel:
    """The background colour (from the image border) and per-pixel distances to it.

    ``dist``: Euclidean RGB distance to the background colour (of the slightly blurred image);
    ``tau``: the "same as background" threshold, from the border's noise (JPEG) level;
    ``shade`` / ``chroma``: the pixel as ``shade * background + residual``; a shadow on the
    background has ``shade < 1`` and a small ``chroma`` residual;
    ``grad``: gradient magnitude (per pixel, max over a 3x3 Sobel, in grey levels / px);
    ``texture``: the fine detail around a pixel (mean absolute difference of the grey image from
    its 1 px blur over 7x7, grey levels): a weave, a print's paper, hair; the backdrop, lit or in
    a shadow, is smooth (under 1), a white label or fabric is not (3 and more on the Magento photos).
    """

    #: below this ``texture`` an area is smooth like the backdrop, seen or shaded
    smooth_max = 1.0

    def __init__(self, rgb: np.ndarray, blur: float = 1.0, tau_min: float = 6.0, tau_k: float = 4.0):
        f = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), blur)
        h, w = rgb.shape[:2]
        ring = max(2, int(round(0.01 * min(h, w))))
        border = np.concatenate(
            [
                f[:ring].reshape(-1, 3),
                f[-ring:].reshape(-1, 3),
                f[:, :ring].reshape(-1, 3),
                f[:, -ring:].reshape(-1, 3),
            ]
        )
        self.bg = np.median(border, axis=0).astype(np.float32)
        bdist = np.linalg.norm(border - self.bg, axis=1)
        self.noise = float(max(1.0, 1.4826 * np.median(bdist)))
        self.tau = float(max(tau_min, tau_k * self.noise))
        self.f = f
        ones = np.ones((1, 3), np.float32)
        diff = f - self.bg
        self.dist = np.sqrt(cv2.transform(diff * diff, ones))
        norm = max(float(np.linalg.norm(self.bg)), 1e-3)
        proj = cv2.transform(f, (self.bg / norm)[None].astype(np.float32))
        self.shade = proj / norm
        self.chroma = np.sqrt(np.maximum(cv2.transform(f * f, ones) - proj * proj, 0.0))
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
        self.texture = cv2.blur(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.0)), (7, 7))
        gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        self.grad = np.sqrt(cv2.transform(gx * gx + gy * gy, ones))

    @property
    def distinct(self) -> np.ndarray:
        """Clearly not the background colour."""
        return self.dist > self.tau

    @property
    def edge(self) -> np.ndarray:
        """On an edge: a gradient above 3x the noise (at least 3 grey levels / px)."""
        return self.grad > max(3.0, 3.0 * self.noise)

    def shadow_like(self, chroma_max: float = 8.0, shade_min: float = 0.25) -> np.ndarray:
        """A darker copy of the background colour (what a grey shadow on it looks like)."""
        return (self.shade < 1.0) & (self.shade > shade_min) & (self.chroma < chroma_max)

    def shadow_regions(self, grad_max: float = 4.0, fade_min: float = 0.3, min_area: int = 30) -> np.ndarray:
        """Soft shadows: smooth shadow-coloured regions that fade into the background.

        A connected region of smooth, shadow-coloured, non-background pixels is a shadow when at
        least ``fade_min`` of its outline is smooth background (it fades out); a grey product is
        outlined by its own edges instead.
        """
        smooth = self.grad < grad_max
        cand = (self.distinct & self.shadow_like() & smooth).astype(np.uint8)
        n, lab, st, _ = cv2.connectedComponentsWithStats(cand, connectivity=4)
        if n <= 1:
            return np.zeros(cand.shape, bool)
        ring = (cv2.dilate(cand, disk(1)) > 0) & (cand == 0)
        ring_lab = cv2.dilate(lab.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
        fade = ring & ~self.distinct & smooth
        total = np.bincount(ring_lab[ring], minlength=n)
        good = np.bincount(ring_lab[fade], minlength=n)
        is_shadow = (good / np.maximum(total, 1) >= fade_min) & (st[:, cv2.CC_STAT_AREA] >= min_area)
        is_shadow[0] = False
        return is_shadow[lab]

    def object_box(self, pad: float = 0.12) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) around everything that is not background colour, padded."""
        h, w = self.dist.shape
        m = cv2.morphologyEx(self.distinct.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero(m)
        if len(ys) == 0:
            return 0, 0, w, h
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        p = int(pad * max(y1 - y0, x1 - x0)) + 4
        return max(0, x0 - p), max(0, y0 - p), min(w, x1 + p), min(h, y1 + p)


_CM_CACHE: tuple[tuple, ColourModel] | None = None


def colour_model(rgb: np.ndarray) -> ColourModel:
    """ColourModel(rgb), remembering the last one (saliency() and refine() of the combined
    segmenter both need it for the same image)."""
    global _CM_CACHE
    key = (rgb.shape, hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=16).digest())
    hit = _CM_CACHE
    if hit is not None and hit[0] == key:
        return hit[1]
    cm = ColourModel(rgb)
    _CM_CACHE = (key, cm)
    return cm


def drop_detached_shadows(mask: np.ndarray, cm: ColourModel, max_frac: float = 0.1) -> np.ndarray:
    """Remove small parts, separate from the main one and below its centre, that look like a
    shadow (mostly shadow-coloured and smooth inside): baked-in floor shadows."""
    n, lab, st, cen = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = st[:, cv2.CC_STAT_AREA].astype(np.float64)
    main = 1 + int(np.argmax(areas[1:]))
    shadowish = cm.shadow_like() & (cm.grad < 6.0)
    frac = np.bincount(lab.ravel(), weights=shadowish.ravel().astype(np.float64), minlength=n) / np.maximum(areas, 1)
    drop = np.zeros(n, bool)
    for i in range(1, n):
        if i == main:
            continue
        if areas[i] <= max_frac * areas[main] and frac[i] >= 0.6 and cen[i][1] > cen[main][1]:
            drop[i] = True
    if not drop.any():
        return mask
    return mask & ~drop[lab]


def fill_product_holes(mask: np.ndarray, cm: ColourModel, s: np.ndarray) -> np.ndarray:
    """Fill enclosed holes unless they look like background (its colour, or a shadow on it, and
    smooth: the median :attr:`ColourModel.texture` of its inside, 6 px in from the outline, under
    1.5x ``smooth_max``) and the network says background: the inside of a mug handle stays a hole
    (even with a shadow in it), a white print on a white t-shirt or the white centre of a logo
    woven into a label is filled. A small hole (<= 0.1% of the mask) that hardly shows the
    backdrop's colour (<= 20% of it within 2x the noise threshold) and is no lighter than the
    lightest of the product around it is filled too: a shaded crease of the product, not a view
    through it."""
    holes = ~mask & ~border_connected(~mask)
    if not holes.any():
        return mask
    n, lab, st, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    areas = st[:, cv2.CC_STAT_AREA].astype(np.float64)
    looks_bg = ~cm.distinct | cm.shadow_like()
    bg_like = np.bincount(lab.ravel(), weights=looks_bg.ravel().astype(np.float64), minlength=n)
    s_mean = np.bincount(lab.ravel(), weights=s.ravel().astype(np.float64), minlength=n) / np.maximum(areas, 1)
    # judged 6 px in from the outline, where the texture no longer sees the hole's edge
    core = cv2.erode(holes.astype(np.uint8), disk(6)) > 0
    textured = np.zeros(n, bool)
    for i in np.unique(lab[core]):
        x, y, bw, bh = (int(v) for v in st[i, :4])
        sl = (slice(y, y + bh), slice(x, x + bw))
        t = cm.texture[sl][core[sl] & (lab[sl] == i)]
        textured[i] = t.size >= 16 and float(np.median(t)) >= 1.5 * cm.smooth_max
    keep_hole = (bg_like / np.maximum(areas, 1) >= 0.8) & (s_mean < 0.5) & (areas >= 16) & ~textured
    # a small hole that does not show the backdrop's own colour is a shaded bit of the product
    # (the grey crease between a sneaker's upper and its sole): left open, it shows the set
    exact = np.bincount(lab.ravel(), weights=(cm.dist < 2.0 * cm.tau).ravel().astype(np.float64), minlength=n)
    small = (areas <= 1e-3 * max(int(mask.sum()), 1)) & (exact <= 0.2 * areas) & keep_hole
    shaded = np.zeros(n, bool)
    for i in np.flatnonzero(small):
        # ... and is no lighter than the lightest of the product around it (the backdrop seen
        # between strands of hair is lighter than the hair)
        x, y, bw, bh = (int(v) for v in st[i, :4])
        sl = (slice(max(0, y - 3), y + bh + 3), slice(max(0, x - 3), x + bw + 3))
        inside = lab[sl] == i
        ring = (cv2.dilate(inside.astype(np.uint8), disk(2)) > 0) & mask[sl]
        shaded[i] = ring.any() and float(np.mean(cm.shade[sl][inside])) <= float(np.percentile(cm.shade[sl][ring], 90))
    keep_hole &= ~shaded
    keep_hole[0] = True
    return mask | ~keep_hole[lab]


def trapped_background(mask: np.ndarray, cm: ColourModel, min_area_frac: float = 2e-4) -> np.ndarray:
    """Background seen through gaps of the product that a mask wrongly holds (bool (H, W)).

    The inside of a bag handle or a watch strap, the sliver between an arm and the body: the
    network calls them salient, so they end up in the mask, and the exact composite would paste
    that white into every creative. A candidate is a connected part of the mask in the photo's
    background colour (within 2x the border noise level, see :class:`ColourModel`) with a crisp
    outline: where it meets the product, 60% of its outline lies on an edge (gradient above the
    noise) and 80% of a ring just outside it clearly differs from the background colour (a
    highlight on white fabric fades into the fabric instead), and at least 40% of it lies within
    the noise of the background colour. Such a candidate is background when

    - it continues an enclosed hole the mask already has (the rest of a bag handle's inside), or
    - it is enclosed by the product (under 10% of its outline on the silhouette's outside; a white
      sole at the edge is the segmenter's boundary decision), looks like the backdrop itself (its
      median colour within half the noise threshold of the background colour, its median gradient
      at the noise floor: white labels, prints and fabric are shaded or textured), and the product
      around it is thin: its distance to the outside of the silhouette is at most half its own
      extent or a fifth of the product's size. A white logo in the middle of a dark shirt is far
      from the outside and stays even when it is exactly the backdrop's white.
    """
    h, w = mask.shape
    area_all = int(mask.sum())
    out = np.zeros((h, w), bool)
    if area_all == 0:
        return out
    cand = mask & (cm.dist < 2.0 * cm.tau)
    cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, disk(1)) > 0
    n, lab, st, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    if n <= 1:
        return out
    exterior = border_connected(~mask)
    holes = ~mask & ~exterior
    to_exterior = None
    exact = cm.dist < cm.tau
    contrast = cm.dist > 3.0 * cm.tau
    edge = cm.edge
    flat_grad = max(1.0, cm.noise)
    min_area = max(12, int(min_area_frac * area_all))
    size = float(np.sqrt(area_all))
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in st[i])
        if area < min_area:
            continue
        p = 6
        sl = (slice(max(0, y - p), min(h, y + bh + p)), slice(max(0, x - p), min(w, x + bw + p)))
        comp = (lab[sl] == i).astype(np.uint8)
        inside = comp > 0
        if np.count_nonzero(exact[sl] & inside) < 0.4 * area:
            continue
        m = mask[sl]
        near = (cv2.dilate(comp, disk(2)) > 0) & ~inside
        n_near = max(int(near.sum()), 1)
        ring = (cv2.dilate(comp, disk(5)) > 0) & ~(cv2.dilate(comp, disk(2)) > 0) & m
        if np.count_nonzero(contrast[sl] & ring) < 0.8 * max(int(ring.sum()), 1):
            continue
        outline = inside & ~(cv2.erode(comp, disk(1)) > 0)
        outline &= cv2.dilate((near & m).astype(np.uint8), disk(1)) > 0
        if np.count_nonzero(edge[sl] & outline) < 0.6 * max(int(outline.sum()), 1):
            continue
        if np.count_nonzero(near & holes[sl]) >= 0.1 * n_near:
            out[sl] |= inside
            continue
        if np.count_nonzero(near & exterior[sl]) >= 0.1 * n_near:
            continue
        core = inside & (cv2.erode(comp, disk(2)) > 0)
        core = core if core.any() else inside
        if np.median(cm.dist[sl][inside]) > 0.5 * cm.tau or np.median(cm.grad[sl][core]) > flat_grad:
            continue
        if to_exterior is None:
            to_exterior = cv2.distanceTransform((~exterior).astype(np.uint8), cv2.DIST_L2, 3)
        wall = float(to_exterior[sl][inside].min())
        if wall <= max(0.5 * max(bw, bh), 0.2 * size):
            out[sl] |= inside
    if out.any():
        # the anti-aliased fringe where the gap meets the product goes with it
        fringe = (cv2.dilate(out.astype(np.uint8), disk(2)) > 0) & mask & (cm.dist < 4.0 * cm.tau)
        out |= fringe
    return out


def shadowed_gaps(mask: np.ndarray, cm: ColourModel, max_frac: float = 0.02) -> np.ndarray:
    """The rest of a gap the mask still holds where the backdrop lies in a soft shadow (bool (H, W)).

    Inside a D-ring or a buckle the backdrop is lit where the view is open and shaded by the
    ring where it is not: the lit part is a hole of the mask (:func:`trapped_background`), the
    shaded part stays product because it is not the backdrop's colour. A part of the mask is
    that shadow when it is shadow-coloured (:meth:`ColourModel.shadow_like`, at most a quarter
    darker), smooth (``texture`` under :attr:`ColourModel.smooth_max`: a white label, fabric or
    rubber is not), holds no edge, touches enclosed holes of the mask at least a quarter its
    size (a white sneaker's inside touches no view through the product, a white jacket's side
    only a pinhole under the arm) and is small (at most ``max_frac`` of the mask).
    """
    out = np.zeros(mask.shape, bool)
    holes = ~mask & ~border_connected(~mask)
    area_all = int(mask.sum())
    if not holes.any() or area_all == 0:
        return out
    edge = cm.edge
    shaded = mask & cm.shadow_like() & (cm.shade >= 0.75) & (cm.texture < cm.smooth_max) & ~edge
    n, lab, st, _ = cv2.connectedComponentsWithStats(shaded.astype(np.uint8), connectivity=4)
    if n <= 1:
        return out
    _, hlab, hst, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    # the view through the gap it shades: the holes it touches, as large as a quarter of it at least
    # (a pinhole between an arm and a white jacket's side is no view that the jacket could shade)
    grown = cv2.dilate(hlab.astype(np.float32), disk(2)).astype(np.int32)
    pairs = np.unique(np.stack([lab[shaded & (grown > 0)], grown[shaded & (grown > 0)]], 1), axis=0)
    seen = np.zeros(n, np.float64)
    for i, j in pairs:
        seen[i] += hst[j, cv2.CC_STAT_AREA]
    area = st[:, cv2.CC_STAT_AREA]
    keep = (seen >= 0.25 * area) & (area <= max_frac * area_all) & (area >= 12)
    keep[0] = False
    return keep[lab]


def background_gaps(mask: np.ndarray, cm: ColourModel, min_area: int = 12, max_frac: float = 0.005, min_level: float = 250.0) -> np.ndarray:
    """Backdrop seen through gaps the mask holds that :func:`trapped_background` leaves (bool (H, W)).

    The slivers between fingers, between an arm and the torso, between hair and a shirt: small
    patches of the photo's background colour inside the mask, often next to light fabric (which
    fails that function's contrast test) and often opening to the outside through a narrow neck
    (a wedge under the arm). A candidate is a connected part of the mask within 2x the noise
    threshold of the background colour with at least 40% of it, and its median, within the
    threshold (white fabric is shaded: it rarely gets there), a median gradient below 8 grey levels / px and at
    most ``max_frac`` of the mask (a sliver; a white shoe's upper on white is no gap). It is
    background when the product just around it (2-4 px out, inside the mask) mostly (>= 50%)
    clearly differs from the background colour (> 2x the threshold: a highlight on white fabric
    fades into the fabric instead) and does not lie both lighter and darker than it (>= 20% each: a
    band of shading through the background colour, white fabric on a grey backdrop), and

    - it is enclosed (under 10% of its outline on the silhouette's outside) and near the outside
      of the silhouette (within half its extent or a fifth of the product's size; a white logo in
      the middle of a shirt stays), or
    - it opens to the outside through a neck narrower than it is deep (the length of its contact
      with the outside at most its deepest point's distance from the outside): a wedge under the
      arm, while a white strip along the silhouette's edge (a sole, a lit sleeve) is the
      segmenter's boundary decision.

    Only on a white set (every channel of the background colour >= ``min_level``), where nothing
    in the product is lighter than the backdrop: on an off-white or grey one the shading of light
    products passes through the backdrop's colour in bands that look like these gaps (measured
    on benchmarks/bench_segment.py: white hoodies, plimsolls and bottles on (246, 244, 240) and
    (232, 232, 232) lost patches), and what is trapped there is left to
    :func:`trapped_background`.
    """
    h, w = mask.shape
    out = np.zeros((h, w), bool)
    area_all = int(mask.sum())
    if area_all == 0 or float(cm.bg.min()) < min_level:
        return out
    cand = cv2.morphologyEx((mask & (cm.dist < 2.0 * cm.tau)).astype(np.uint8), cv2.MORPH_OPEN, disk(1))
    n, lab, st, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return out
    exterior = border_connected(~mask)
    to_exterior = cv2.distanceTransform((~exterior).astype(np.uint8), cv2.DIST_L2, 3)
    exact = cm.dist < cm.tau
    contrast = cm.dist > 2.0 * cm.tau
    size = float(np.sqrt(area_all))
    max_area = max_frac * area_all
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in st[i])
        if area < min_area or area > max_area:
            continue
        p = 6
        sl = (slice(max(0, y - p), min(h, y + bh + p)), slice(max(0, x - p), min(w, x + bw + p)))
        comp = (lab[sl] == i).astype(np.uint8)
        inside = comp > 0
        if (
            np.count_nonzero(exact[sl] & inside) < 0.4 * area
            or np.median(cm.dist[sl][inside]) > cm.tau
            or np.median(cm.grad[sl][inside]) > 8.0
        ):
            continue
        m = mask[sl]
        near = (cv2.dilate(comp, disk(2)) > 0) & ~inside
        ring = (cv2.dilate(comp, disk(4)) > 0) & ~near & ~inside & m
        if ring.any() and np.count_nonzero(contrast[sl] & ring) < 0.5 * int(ring.sum()):
            continue
        # the product around it on both sides of the background colour, lighter and darker: a
        # band of shading passing through it (white fabric on a grey backdrop), no gap
        shade = cm.shade[sl][contrast[sl] & ring]
        if min(np.count_nonzero(shade > 1.0), np.count_nonzero(shade < 1.0)) >= 0.2 * max(shade.size, 1):
            continue
        ext = exterior[sl]
        n_near = max(int(near.sum()), 1)
        contact = np.count_nonzero(near & ext)
        d = to_exterior[sl][inside]
        at_frame = x == 0 or y == 0 or x + bw == w or y + bh == h  # open to the outside through the frame
        backdrop = (
            np.count_nonzero(exact[sl] & inside) >= 0.55 * area
            and np.median(cm.grad[sl][inside]) <= 2.5
            and np.count_nonzero(contrast[sl] & ring) >= 0.8 * int(ring.sum())
        )
        if np.count_nonzero(near & m) < 0.5 * n_near:
            out[sl] |= inside  # a speck of backdrop in a hole or on the outline
        elif contact < 0.1 * n_near:
            if at_frame or float(d.min()) <= max(0.5 * max(bw, bh), 0.2 * size):
                out[sl] |= inside
        elif backdrop or 0.5 * contact <= float(d.max()):  # the near ring is 2 px wide: contact / 2 = neck length
            out[sl] |= inside
    if out.any():
        fringe = (cv2.dilate(out.astype(np.uint8), disk(2)) > 0) & mask & (cm.dist < 4.0 * cm.tau)
        out |= fringe
    return out


def cut_parts(mask: np.ndarray, cm: ColourModel, min_area: int = 12, band: int = 2) -> np.ndarray:
    """Parts of the product the mask bit out (bool (H, W)): to be filled back.

    A connected region outside the mask, more than ``band`` px off its edge (the anti-aliased
    edge all around the product would join everything), of pixels clearly not the background
    colour (> 2x the noise threshold) with hardly any (<= 5%) of the backdrop's exact colour,
    whose outline, apart from the image border, lies mostly (>= 60%; >= 95% when it is mostly
    shadow-coloured, :meth:`ColourModel.shadow_like`) along the mask, and where
    the photo goes on across the mask's edge along at least half of that: the colour there is
    that of the nearest pixel in the mask (within 3x the noise threshold, or 30% of its distance
    from the background colour). The grey of a pair of shorts runs into the chunk a mask left out
    of them, a white sole into the hole in it; the inside of a handle that shows a shadow is
    outlined by the handle's colour, and a shadow beside the product fades into the backdrop.
    Filled with the band between it and the mask.
    """
    h, w = mask.shape
    out = np.zeros((h, w), bool)
    if not mask.any():
        return out
    m8 = mask.astype(np.uint8)
    grown = cv2.dilate(m8, disk(band)) > 0
    distinct = cm.dist > 2.0 * cm.tau
    cand = (~grown & distinct).astype(np.uint8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(cand, connectivity=4)
    if n <= 1:
        return out
    exact = cm.dist < cm.tau
    shadowy = cm.shadow_like(shade_min=0.35)  # cast shadows are rarely darker; dark grey cloth is
    k3 = np.ones((3, 3), np.uint8)
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in st[i])
        if area < min_area:
            continue
        p = band + 3
        sl = (slice(max(0, y - p), min(h, y + bh + p)), slice(max(0, x - p), min(w, x + bw + p)))
        comp = (lab[sl] == i).astype(np.uint8)
        inside = comp > 0
        if np.count_nonzero(exact[sl] & inside) > 0.05 * area:
            continue
        # the region's 1 px outside; what lies beyond the image border does not count
        around = (cv2.dilate(comp, k3) > 0) & ~inside
        g = grown[sl]
        n_along = np.count_nonzero(around & g)
        # shadow-coloured (a grey shadow cast between two parts of the product looks the same as
        # a light grey part): only when enclosed
        along = 0.95 if np.count_nonzero(shadowy[sl] & inside) >= 0.5 * area else 0.6
        if n_along < along * max(int(around.sum()), 1):
            continue
        outline = inside & (cv2.dilate(g.astype(np.uint8), k3) > 0)
        m = mask[sl]
        if not m.any() or not outline.any():
            continue
        f = cm.f[sl]
        nearest = nearest_values(f, m)
        diff = np.linalg.norm(f[outline] - nearest[outline], axis=1)
        tol = np.maximum(3.0 * cm.tau, 0.3 * cm.dist[sl][outline])
        if np.count_nonzero(diff <= tol) >= 0.5 * diff.size:
            out[sl] |= (cv2.dilate(comp, disk(band + 1)) > 0) & ~m & distinct[sl]
    return out


def missed_parts(mask: np.ndarray, cm: ColourModel, band: int = 2, min_frac: float = 0.002) -> np.ndarray:
    """Parts of the product the mask left out whole (bool (H, W)): to be added.

    :func:`cut_parts` fills a bite whose outline runs along the mask; these are parts the network
    missed outright, measured on the shared Magento set: the foam roller of a yoga kit (a
    coloured piece sticking out of the mask), the white midsole of a raised sneaker (a light
    strip between the upper and the outsole's lugs). A connected region outside the mask, more
    than ``band`` px off its edge, of pixels clearly not the background colour with hardly any
    (<= 5%) of the backdrop's exact colour, is product when its outline away from the mask is
    crisp (an edge on >= 50% of it; a shadow fades into the backdrop, a tinted one too) and
    - it is coloured (median chroma >= 12 against the backdrop's grey axis), not mostly a soft
      shadow, and at least ``min_frac`` of the image: then its core is added (pixels at least
      half as far from the backdrop colour as its 90th percentile: the tinted shadow that may
      join it stays out), or
    - it is enclosed: >= 75% of its outline along the mask, and crisp (>= 60%) where it is not.
    """
    h, w = mask.shape
    out = np.zeros((h, w), bool)
    if not mask.any():
        return out
    grown = cv2.dilate(mask.astype(np.uint8), disk(band)) > 0
    distinct = cm.dist > 2.0 * cm.tau
    cand = cv2.morphologyEx((~grown & distinct).astype(np.uint8), cv2.MORPH_OPEN, disk(1))
    n, lab, st, _ = cv2.connectedComponentsWithStats(cand, connectivity=4)
    if n <= 1:
        return out
    exact = cm.dist < cm.tau
    edge = cm.edge
    shadow = None
    k3 = np.ones((3, 3), np.uint8)
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in st[i])
        if area < 30:
            continue
        p = band + 3
        sl = (slice(max(0, y - p), min(h, y + bh + p)), slice(max(0, x - p), min(w, x + bw + p)))
        inside = lab[sl] == i
        if np.count_nonzero(exact[sl] & inside) > 0.05 * area:
            continue
        comp = inside.astype(np.uint8)
        around = (cv2.dilate(comp, k3) > 0) & ~inside
        g = grown[sl]
        along = np.count_nonzero(around & g) / max(int(around.sum()), 1)
        away = around & ~g
        crisp = np.count_nonzero(away & edge[sl]) / max(int(away.sum()), 1)
        enclosed = along >= 0.75 and crisp >= 0.6
        if not enclosed:
            coloured = crisp >= 0.5 and area >= min_frac * h * w and float(np.median(cm.chroma[sl][inside])) >= 12.0
            if not coloured:
                continue
            if shadow is None:
                shadow = cm.shadow_regions()
            if np.count_nonzero(shadow[sl] & inside) >= 0.5 * area:
                continue
            d = cm.dist[sl]
            core = inside & (d >= 0.5 * np.percentile(d[inside], 90))
            comp = cv2.morphologyEx(core.astype(np.uint8), cv2.MORPH_OPEN, disk(2))
        out[sl] |= (cv2.dilate(comp, disk(band + 1)) > 0) & ~mask[sl] & distinct[sl]
    return out


def thin_gaps(rgb: np.ndarray, alpha: np.ndarray, reach: int = 8, min_level: float = 250.0) -> np.ndarray:
    """The mask with the backdrop seen through thin gaps made transparent (uint8 (H, W)).

    Where a gap between an arm and the body narrows to its end or runs as a narrow strip along
    the body, between a thumb and trousers, between a rope and a bag, the backdrop shows a few
    pixels wide: too thin for the working scale's checks (:func:`background_gaps` opens its
    candidates first), yet a white line on any darker set. At the photo's own size, a pixel in
    the mask is in such a strip when product clearly unlike the backdrop (> 6x the noise
    threshold) lies on both sides of it within ``reach`` px along a line (horizontal, vertical or
    diagonal) and it is mostly backdrop: unmixed between the nearest such product colour and the
    backdrop colour, under 0.8 product. A strip of them is backdrop when
    - it meets a hole of the mask (the part of the gap already cut out), at least a fifth of it
      is within 2x the noise threshold of the backdrop colour, and it is a gap's tip, not a long
      band (its extent at most ``8 * reach`` px: a chrome ring's bright rim is a highlight along
      the ring), or
    - at least 40% of it is within 2x the noise threshold of the backdrop colour, it is long
      (at least 6x its mean width) and the product steps to it sharply, as at an occluding
      contour (the gradient where it meets the product, as a share of the colour step, at least
      0.82 in the median; measured on the shared Magento set: gaps 0.86-1.08, a watch bezel's
      highlight, which fades in, 0.77), where the product around it (within ``3 * reach`` px)
      does not itself show the backdrop's white (under 1% of it, strips aside, within 2x the
      noise threshold: a white hoodie has such strips between its seams; white sneakers far
      below a cargo strap do not count).
    It is made transparent, and so is the product's anti-aliased edge along it: alpha lowered to
    the unmixed share within 2 px. Only on a white set (every channel of the background colour
    >= ``min_level``, see :func:`background_gaps`).
    """
    m = alpha >= 128
    if not m.any() or m.all():
        return alpha
    cm = colour_model(rgb)  # the working-scale model already made, when the photo is that small
    if float(cm.bg.min()) < min_level:
        return alpha
    h, w = alpha.shape
    solid = (m & (cm.dist > 6.0 * cm.tau)).astype(np.uint8)
    size = 2 * reach + 1
    lines = (
        np.ones((1, size), np.uint8),
        np.ones((size, 1), np.uint8),
        np.eye(size, dtype=np.uint8),
        np.eye(size, dtype=np.uint8)[::-1].copy(),
    )
    between = np.zeros((h, w), bool)
    for line in lines:
        between |= cv2.morphologyEx(solid, cv2.MORPH_CLOSE, line) > 0
    zone = m & between & (solid == 0)
    if not zone.any():
        return alpha
    F = nearest_values(cm.f, solid > 0)
    d = F - cm.bg
    step = np.sqrt((d * d).sum(2))
    a = np.clip(((cm.f - cm.bg) * d).sum(2) / np.maximum(step * step, 1e-6), 0.0, 1.0)
    cand = zone & (a < 0.8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    k3 = np.ones((3, 3), np.uint8)
    holes = ~m & ~border_connected(~m)
    meets_hole = cv2.dilate(holes.astype(np.uint8), k3) > 0
    near_bg = cm.dist < 2.0 * cm.tau
    # where the product's own flat white matches the backdrop's (a white hoodie) it has strips of
    # it between its seams and zips: long strips are judged only where the product around is not
    inner = (cv2.erode(m.astype(np.uint8), disk(2)) > 0) & ~cand
    own_white = near_bg & inner
    around = 3 * reach
    gap = np.zeros((h, w), bool)
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in st[i])
        if area < 8:
            continue
        sl = (slice(y, y + bh), slice(x, x + bw))
        inside = lab[sl] == i
        backdrop = np.count_nonzero(near_bg[sl] & inside) / area
        tip = max(bw, bh) <= 8 * reach and backdrop >= 0.2 and bool((meets_hole[sl] & inside).any())
        if not tip:
            length = float(np.hypot(bw, bh))
            if area < 30 or backdrop < 0.4 or length < 6.0 * area / length:
                continue
            near = (slice(max(0, y - around), y + bh + around), slice(max(0, x - around), x + bw + around))
            if np.count_nonzero(own_white[near]) >= 0.01 * max(int(np.count_nonzero(inner[near])), 1):
                continue
            p = 2
            sl = (slice(max(0, y - p), y + bh + p), slice(max(0, x - p), x + bw + p))
            inside = lab[sl] == i
            flank = (cv2.dilate(inside.astype(np.uint8), k3) > 0) & ~inside & (solid[sl] > 0)
            if not flank.any() or float(np.median(cm.grad[sl][flank] / np.maximum(step[sl][flank], 1.0))) < 0.82:
                continue
        gap[sl] |= inside
    if not gap.any():
        return alpha
    edge = (cv2.dilate(gap.astype(np.uint8), disk(2)) > 0) & m & (a < 1.0)
    out = alpha.copy()
    out[gap | edge] = np.minimum(alpha[gap | edge], np.round(255.0 * a[gap | edge]).astype(np.uint8))
    return out
