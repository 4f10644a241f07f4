"""Product masks: from the alpha channel when it is meaningful, otherwise from a segmenter.

Every segmenter has the same tiny interface: ``segmenter(rgb) -> mask`` with ``rgb`` uint8
(H, W, 3) and the mask uint8 (H, W), 0 = background, 255 = product, soft values on the edge.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import cv2
import numpy as np

#: alpha at or above this is the object itself; below it, soft edges and baked-in drop shadows
OBJECT_ALPHA = 128


@runtime_checkable
class Segmenter(Protocol):
    name: str
    version: str

    def __call__(self, rgb: np.ndarray) -> np.ndarray: ...


def alpha_is_meaningful(rgba: np.ndarray) -> bool:
    """True when the image has an alpha channel that separates an object from a transparent background."""
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        return False
    alpha = rgba[..., 3]
    opaque = np.count_nonzero(alpha >= OBJECT_ALPHA) / alpha.size
    transparent = np.count_nonzero(alpha < 16) / alpha.size
    return bool(0.005 < opaque < 0.995 and transparent > 0.005)


def object_alpha(alpha: np.ndarray, edge_px: int = 2) -> np.ndarray:
    """The object's soft mask from a cut-out's alpha, without a baked-in drop shadow.

    Catalog cut-outs often carry a soft shadow as low alpha under the product. The object is
    the high-alpha core; its anti-aliased edge (a couple of pixels around the core) is kept,
    the faint shadow further away is dropped so the background can draw its own.
    """
    core = (alpha >= OBJECT_ALPHA).astype(np.uint8)
    if edge_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * edge_px + 1, 2 * edge_px + 1))
        near = cv2.dilate(core, kernel)
    else:
        near = core
    return np.where(near > 0, alpha, 0).astype(np.uint8)


def product_mask(image: np.ndarray, segmenter: Segmenter | None = None) -> np.ndarray:
    """The product's soft mask (uint8 (H, W)) of an RGB or RGBA image.

    Uses the alpha channel when it is meaningful, otherwise ``segmenter`` (default: the best
    available, see :func:`get_segmenter`).
    """
    if image.ndim == 3 and image.shape[2] == 4 and alpha_is_meaningful(image):
        return object_alpha(image[..., 3])
    rgb = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    if segmenter is None:
        segmenter = get_segmenter("auto")
    return segmenter(np.ascontiguousarray(rgb))


def get_segmenter(name: str = "auto") -> Segmenter:
    """A segmenter by name."""
    from . import segmenters

    return segmenters.get(name)
