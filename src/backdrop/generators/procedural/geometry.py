"""Perspective for floor scenes: the floor's projection maps and points projected onto it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


@dataclass(frozen=True)
class _Geo:
    w: int
    h: int
    gy: float  # where the product stands (work rows)
    hy: float | None  # the floor's back edge (None: no floor)
    px: int  # product patch (work coords)
    py: int
    pw: int
    ph: int
    cx: float  # product centre column
    #: how far above ``gy`` (rows) the product still rests: a base that recedes (a bag shot from
    #: three-quarters) needs a podium top that deep
    reach_back: float = 0.0


def focal_length(w: int, h: int) -> float:
    """The camera's focal length in (working) pixels: one for the floor and everything standing on it."""
    return 1.0 * max(w, h)


def eye_row(h: int, hy: float, gy: float) -> float:
    """The eye level (the floor's vanishing line) of a floor from ``hy`` (back edge) to ``gy`` (ground line)."""
    return float(hy - max(0.1 * h, 0.9 * max(gy - hy, 4)))


@lru_cache(maxsize=64)
def _floor_maps(w: int, h: int, hy: int, gy: int, cx: int, density: float) -> tuple:
    """Perspective maps from floor rows [hy, h) to texture space.

    Returns (map_x, map_y, texture rows, texture columns, depth density, per-row depth 0 at the
    ground line .. 1 at the back, projection parameters for :func:`_project`). Texture columns hold ``density`` texels per pixel at the
    ground line; rows are stored foreshortened (``depth density`` texels per feature-space
    pixel) so that the texture is not oversampled in depth.
    """
    fh = h - hy
    yv = eye_row(h, hy, gy)
    f = focal_length(w, h)
    fore = max(1.0, f / (gy - yv))  # foreshortening at the ground line
    dy = density / fore
    yy = np.arange(hy, h, dtype=np.float64) + 0.5
    Z = (gy - yv) / (yy - yv)  # 1 at the ground line, larger further back
    xx = np.arange(w, dtype=np.float64) + 0.5
    u = (xx[None, :] - cx) * Z[:, None] * density
    v = -f * dy * Z  # texture rows grow towards the viewer
    u0, v0 = float(u.min()) - 2, float(v.min()) - 2
    tw = int(np.ceil(float(u.max()) - u0)) + 3
    th = int(np.ceil(float(v.max()) - v0)) + 3
    map_x = np.ascontiguousarray((u - u0).astype(np.float32))
    map_y = np.ascontiguousarray(np.broadcast_to((v - v0).astype(np.float32)[:, None], (fh, w)))
    depth = ((Z - 1.0) / max(float(Z.max()) - 1.0, 1e-6)).clip(-1, 1).astype(np.float32)
    for a in (map_x, map_y, depth):
        a.setflags(write=False)
    proj = (float(u0), float(v0), float(yv), float(f * dy), float(gy - yv), float(cx), float(density), float(hy))
    return map_x, map_y, th, tw, dy, depth, proj


def _project(pts: np.ndarray, proj: tuple) -> np.ndarray:
    """Texture-space points (..., 2) to floor-image coordinates (x, y - hy) through the perspective."""
    u0, v0, yv, fdy, gyv, cx, density, hy = proj
    Z = -(pts[..., 1] + v0) / fdy
    Z = np.maximum(Z, 1e-3)
    y = yv + gyv / Z - hy
    x = cx + (pts[..., 0] + u0) / (Z * density)
    return np.stack([x, y], axis=-1)


def _rows(col: np.ndarray, w: int) -> np.ndarray:
    """A per-row map (h,) or per-row colours (h, 3) widened to w columns (fast)."""
    col = np.ascontiguousarray(col, np.float32)
    if col.ndim == 1:
        col = col[:, None]
    else:
        col = col[:, None, :]
    return cv2.resize(col, (w, col.shape[0]), interpolation=cv2.INTER_NEAREST)
