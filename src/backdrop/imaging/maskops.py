"""Small mask and image operations the segmenters share (OpenCV and numpy)."""

from __future__ import annotations

import cv2
import numpy as np

#: images are segmented at most this large (longest side); the mask is scaled back up
WORK_SIDE = 1024


def disk(r: int) -> np.ndarray:
    r = max(0, int(r))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def as_rgb(rgb: np.ndarray) -> np.ndarray:
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


def border_connected(mask: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` (bool) connected (4-neighbourhood) to the image border."""
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    keep = np.zeros(n, bool)
    keep[np.unique(border)] = True
    keep[0] = False
    return keep[lab]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    return mask | ~border_connected(~mask)


def nearest_values(img: np.ndarray, src: np.ndarray) -> np.ndarray:
    """For every pixel, the value of ``img`` at the nearest pixel of ``src`` (bool, non-empty)."""
    _, lab = cv2.distanceTransformWithLabels((~src).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(src)  # raster order == label order for DIST_LABEL_PIXEL
    return img[ys, xs][np.maximum(lab - 1, 0)]


def resize(img: np.ndarray, size: tuple[int, int], interp: int = cv2.INTER_LINEAR) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == tuple(size):
        return img
    return cv2.resize(img, size, interpolation=interp)


def keep_large_components(mask: np.ndarray, min_frac: float) -> np.ndarray:
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    areas = st[:, cv2.CC_STAT_AREA]
    keep = areas >= min_frac * areas[1:].max()
    keep[0] = False
    return keep[lab]


def work_image(rgb: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1.0:
        return rgb
    size = (max(2, int(round(w * s))), max(2, int(round(h * s))))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
