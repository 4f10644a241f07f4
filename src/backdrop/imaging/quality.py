"""Quality scores of a creative.

``edge_contrast`` measures how well the product separates from its background: the mean
CIE76 colour difference (Delta E in Lab) between a thin ring just inside the product's outline
and a ring just outside it. Below ~10 a product tends to melt into the scene (white sneaker on
a white sweep); the report shows it so such creatives can be spotted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .layout import Scene
from .support import overhang


def _rings(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    m = mask.astype(np.uint8)
    eroded: np.ndarray = cv2.erode(m, kernel)
    dilated: np.ndarray = cv2.dilate(m, kernel)
    inner = m & ~eroded & 1
    outer = dilated & ~m & 1
    return inner.astype(bool), outer.astype(bool)


def edge_contrast(creative: np.ndarray, scene: Scene, ring: int = 6) -> float:
    x0, y0, x1, y1 = scene.box
    pad = ring + 2
    X0, Y0 = max(0, x0 - pad), max(0, y0 - pad)
    X1, Y1 = min(scene.width, x1 + pad), min(scene.height, y1 + pad)
    mask = scene.canvas_mask()[Y0:Y1, X0:X1]
    inner, outer = _rings(mask, ring)
    if not inner.any() or not outer.any():
        return 0.0
    lab = cv2.cvtColor(creative[Y0:Y1, X0:X1], cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return float(np.linalg.norm(lab[inner].mean(0) - lab[outer].mean(0)))


def _local_mean(values: np.ndarray, where: np.ndarray, size: int) -> np.ndarray:
    w = where.astype(np.float32)
    num = cv2.boxFilter(values * w, -1, (size, size), normalize=False)
    den = cv2.boxFilter(w, -1, (size, size), normalize=False)
    return np.where(den > 0.5, num / np.maximum(den, 1e-6), np.nan)


#: the product's lightness (L*) just inside its edge below which a light outline counts as fringe
FRINGE_DARK_BELOW = 70.0


def fringe_score(creative: np.ndarray, scene: Scene) -> float:
    """How far the product's outline stands out from both sides of it, in L* (0..100): the 95th
    percentile, over the outline's pixels, of how much lighter each is than the product just
    inside it *and* the background just outside it *and* the lightest of the product nearby (its
    solid pixels 6 px in or more, within 15 px, smoothed: a white garment's lit rim is its white).
    A light fringe of the photo's white background along a strap on a dark set scores 20-40; a
    clean edge stays under ~8 (an outline between a dark product and a light wall lies between
    the two and scores 0)."""
    x0, y0, x1, y1 = scene.box
    pad = 8
    X0, Y0 = max(0, x0 - pad), max(0, y0 - pad)
    X1, Y1 = min(scene.width, x1 + pad), min(scene.height, y1 + pad)
    a = scene.canvas_alpha()[Y0:Y1, X0:X1]
    solid = (a >= 250).astype(np.uint8)
    seen = (a >= 8).astype(np.uint8)  # fainter edge pixels show the set, not the photo
    k3 = np.ones((3, 3), np.uint8)
    # the visible edge: its soft pixels and the product's outermost solid ring
    band = (a >= 24) & (cv2.erode(solid, k3) == 0)
    if not band.any():
        return 0.0
    inner = (cv2.erode(solid, k3, iterations=2) > 0) & (cv2.erode(solid, k3, iterations=6) == 0)
    outer = (cv2.dilate(seen, k3, iterations=6) > 0) & (seen == 0)
    L = cv2.cvtColor(np.ascontiguousarray(creative[Y0:Y1, X0:X1]), cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) * np.float32(100 / 255)
    mi, mo = _local_mean(L, inner, 17), _local_mean(L, outer, 17)
    # where the product near its edge is light (white fabric, a silver bezel) a lighter rim is its
    # own sheen, and a white fringe would not show: only darker parts are judged
    ok = band & np.isfinite(mi) & np.isfinite(mo) & (np.nan_to_num(mi, nan=100.0) < FRINGE_DARK_BELOW)
    if not ok.any():
        return 0.0
    # lighter than both sides: catalog photos are shot on white, so their fringe is light (a
    # product's own dark piping or seam along its edge is darker than both, and no fringe); and
    # lighter than the product's light parts nearby: a white jacket's lit rim is the jacket's white
    core = (cv2.erode(solid, k3, iterations=6) > 0).astype(np.float32)  # thin slivers inside the mask are no product
    own_light = cv2.dilate(cv2.blur(L, (5, 5)) * core, np.ones((31, 31), np.uint8))
    excess = L[ok] - np.maximum(np.maximum(mi[ok], mo[ok]), own_light[ok])
    return round(max(0.0, float(np.percentile(excess, 95))), 2)


def procedural_quality(creative: np.ndarray, scene: Scene) -> dict:
    """Scores of a finished creative: edge contrast, the product's share of the canvas, the halo
    around the product in the creative (a light fringe from the photo's background shows there)
    and the fringe along its outline."""
    mask = scene.product_alpha >= 128
    return {
        "edge_contrast": round(edge_contrast(creative, scene), 2),
        "product_share": round(float(mask.sum()) / (scene.width * scene.height), 4),
        "edge_halo": halo_score(creative, scene),
        "fringe": fringe_score(creative, scene),
    }


# -- the artifact gate for generative backgrounds ----------------------------------------------
#
# A diffusion model asked to paint *around* a product sometimes paints the product bigger
# ("object expansion", Eshratifar et al., "Salient Object-Aware Background Generation", CVPRW
# 2024): a second sole under the shoe, the bottle growing a taller neck, a duplicate beside it.
# Segmenting the generated image with the product segmenter exposes it: the salient foreground
# then covers more than the placed product.


def expansion_scores(generated: np.ndarray, placed: np.ndarray, segmenter) -> dict:
    """Object expansion of a generated image against the placed product mask (bool, same size).

    E = (area(G u M) - area(M)) / area(M), G = the segmenter's foreground of ``generated``, M the
    placed mask: 0 when nothing salient appears outside the product; IoU(G, M) besides.
    """
    fg = segmenter(np.ascontiguousarray(generated)) >= 128
    m = placed.astype(bool)
    area = max(int(m.sum()), 1)
    union = int((fg | m).sum())
    return {
        "expansion": round((union - area) / area, 4),
        "iou": round(int((fg & m).sum()) / max(union, 1), 4),
    }


def halo_score(background: np.ndarray, scene: Scene) -> float:
    """Delta E between a thin ring hugging the product's outline and the ring just beyond it.

    A generator that leaves a bright or dark outline (a halo) around the kept region scores high,
    and so does a creative whose product carries a light fringe of its photo's background; the
    contact-shadow zone at the product's base is excluded, a shadow there is wanted.
    """
    w = max(2, int(round(0.008 * min(scene.width, scene.height))))
    x0, y0, x1, y1 = scene.box
    pad = 4 * w + 2
    X0, Y0 = max(0, x0 - pad), max(0, y0 - pad)
    X1, Y1 = min(scene.width, x1 + pad), min(scene.height, y1 + pad)
    mask = scene.canvas_mask()[Y0:Y1, X0:X1].astype(np.uint8)
    near = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * w + 1, 2 * w + 1)))
    mid = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * w + 1, 4 * w + 1)))
    far = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (8 * w + 1, 8 * w + 1)))
    inner = (near > 0) & (mask == 0)
    outer = (far > 0) & (mid == 0)
    cut = int(y1 - 0.12 * (y1 - y0)) - Y0
    inner[max(cut, 0) :] = False
    outer[max(cut, 0) :] = False
    if not inner.any() or not outer.any():
        return 0.0
    lab = cv2.cvtColor(np.ascontiguousarray(background[Y0:Y1, X0:X1]), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return round(float(np.linalg.norm(lab[inner].mean(0) - lab[outer].mean(0))), 2)


@dataclass(frozen=True)
class Gate:
    """Accept a generated background, or ask for another seed (then fall back to the procedural one).

    Fails when the generated foreground grows beyond the product by more than ``max_expansion``
    of its area, when its IoU with the product is below ``min_iou``, or when the halo around the
    product exceeds ``max_halo`` (Delta E). ``max_attempts`` seeds are tried in all.
    """

    max_expansion: float = 0.15
    min_iou: float = 0.8
    max_halo: float = 14.0
    max_attempts: int = 3

    def __post_init__(self):
        # normalised types: 0 and 0.0 must not give two different creative keys
        for name in ("max_expansion", "min_iou", "max_halo"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "max_attempts", int(self.max_attempts))
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def spec(self) -> dict:
        return asdict(self)

    def failures(self, scores: dict) -> list[str]:
        out = []
        if scores["expansion"] > self.max_expansion:
            out.append(f"expansion {scores['expansion']:.2f} > {self.max_expansion}")
        if scores["iou"] < self.min_iou:
            out.append(f"iou {scores['iou']:.2f} < {self.min_iou}")
        if scores["halo"] > self.max_halo:
            out.append(f"halo {scores['halo']:.1f} > {self.max_halo}")
        return out

    def score(self, raw: np.ndarray, background: np.ndarray, scene: Scene, segmenter) -> dict:
        """Scores of one attempt: ``raw`` the generator's output at its own size, ``background`` on the canvas."""
        h, w = raw.shape[:2]
        placed = cv2.resize(scene.canvas_alpha(), (w, h), interpolation=cv2.INTER_AREA) >= 128
        scores = expansion_scores(raw, placed, segmenter)
        scores["halo"] = halo_score(background, scene)
        return scores


# -- QA: the checks every creative gets -------------------------------------------------------
#
# A creative is "ok" or "flagged" with its reasons; nothing broken goes out unnoticed: the report
# lists flagged creatives first and the decision service does not serve them (unless told to).


def _edge_runs(alpha: np.ndarray, side: str, threshold: int = 128) -> int:
    """Product pixels in the patch's outermost row/column on ``side``."""
    m = alpha >= threshold
    line = {"top": m[0], "bottom": m[-1], "left": m[:, 0], "right": m[:, -1]}[side]
    return int(np.count_nonzero(line))


def hovering(scene: Scene, max_overhang: float) -> str:
    """Why a product standing on the set's floor looks afloat ("" when it does not): its weight
    beside what it rests on (it would tip: it reads as hanging in the air), or a resting point
    behind the floor's back edge (standing on the wall)."""
    support = scene.support
    if support is None or scene.horizon_y is None:
        return ""
    if support.columns.size == 0:
        return "nothing of the product rests on the floor"
    beyond = overhang(support, scene.product_alpha)
    if beyond > max_overhang:
        return f"the product's centre of mass lies {beyond:.0%} of its width beyond what it rests on: it reads as hanging in mid-air"
    if scene.y + float(np.nanmin(support.rows)) < scene.horizon_y:
        return "part of what the product rests on lies behind the floor's back edge"
    return ""


def qa_checks(
    creative: np.ndarray,
    scene: Scene,
    *,
    photo_cut: tuple[str, ...],
    on_model: bool,
    style_suits: str,
    trapped_share: float,
    metrics: dict,
    rules,
    mask_from_photo: bool = True,
    left_out_share: float = 0.0,
) -> list[dict]:
    """The reasons to flag a creative (empty: ok), each ``{"check": name, "detail": words}``.

    ``mask_from_photo``: the mask was segmented from the photo (not its own alpha channel), so a
    light outline can be the photo's background (a cut-out's exact alpha outlines only the
    product: a bright rim there is the product's own).

    ``rules`` is a :class:`~backdrop.imaging.layout.QARules`; ``metrics`` holds the creative's
    ``edge_contrast`` and ``product_share`` (:func:`procedural_quality`).
    """
    reasons: list[dict] = []

    def flag(check: str, detail: str) -> None:
        reasons.append({"check": check, "detail": detail})

    x0, y0, x1, y1 = scene.box
    at_edge = {"top": y0 <= 0, "bottom": y1 >= scene.height, "left": x0 <= 0, "right": x1 >= scene.width}
    for side in ("top", "bottom", "left", "right"):
        touches = at_edge[side] and _edge_runs(scene.product_alpha, side) > 0
        if side in photo_cut and not touches:
            flag("cut-not-flush", f"the photo cuts the product at the {side}, but on the canvas it stops short of the {side} edge")
        elif side not in photo_cut and touches:
            flag("cropped-by-canvas", f"the canvas cuts the product at the {side}, where the photo shows it whole")
    if trapped_share > rules.max_trapped_share:
        flag(
            "trapped-background",
            f"{trapped_share:.1%} of the product's mask is the photo's background colour (> {rules.max_trapped_share:.1%}): background left in a gap",
        )
    if left_out_share > rules.max_left_out:
        flag(
            "cut-part",
            f"{left_out_share:.1%} of the product's mask is product the mask left out (> {rules.max_left_out:.1%}): a part bitten off",
        )
    share = float(metrics.get("product_share", 0.0))
    if not rules.min_product_share <= share <= rules.max_product_share:
        flag(
            "product-share",
            f"the product covers {share:.1%} of the canvas (allowed {rules.min_product_share:.0%}-{rules.max_product_share:.0%})",
        )
    contrast = float(metrics.get("edge_contrast", 0.0))
    if contrast < rules.min_edge_contrast:
        flag(
            "low-contrast", f"the product's edge barely differs from the background (Delta E {contrast:.1f} < {rules.min_edge_contrast:g})"
        )
    halo = float(metrics["edge_halo"]) if "edge_halo" in metrics else halo_score(creative, scene)
    if halo > rules.max_halo:
        flag("halo", f"a ring around the product differs from the background beyond it (Delta E {halo:.1f} > {rules.max_halo:g})")
    fringe = float(metrics["fringe"]) if "fringe" in metrics else fringe_score(creative, scene)
    if mask_from_photo and fringe > rules.max_fringe:
        flag(
            "fringe",
            f"the product's outline stands out from both the product and the set (L* {fringe:.1f} > {rules.max_fringe:g}): a fringe of the photo's background",
        )
    hover = hovering(scene, rules.max_overhang)
    if hover:
        flag("hovering", hover)
    if on_model and style_suits == "packshot":
        flag("on-model-packshot-scene", "a product worn by a person in a scene made for objects on a surface")
    return reasons
