"""Segmentation benchmark: catalog packshots on plain light backgrounds, JPEG-compressed.

Protocol: every RGBA cut-out of the sample catalog (``images/*.png``, 40) is reduced to its object
(rgb + :func:`backdrop.imaging.mask.object_alpha`) and, for each of 6 variants, scaled (the object
covers 55-85 % of the canvas along its limiting side) and placed at a random position (margins
>= 4 %) on a canvas of random size (600-800 px a side), composited onto white (255,255,255),
off-white (246,244,240) or light grey (232,232,232), each without and with a synthetic soft shadow
(half the time a drop shadow: the product's own silhouette offset by 2-6 % of its size and blurred
with sigma 1.5-4 %, opacity 25-50 %; otherwise a flat contact ellipse at its base, opacity 30-60 %),
encoded as JPEG quality 80 (Pillow) and decoded. Each segmenter's mask is compared with the exact
ground truth (object alpha >= 128) by IoU. All randomness comes from a numpy Generator seeded by
(seed, file name), so a run is reproducible and images are independent of each other.

    python benchmarks/bench_segment.py [--data DIR] [--seed 0] [--quick] [--workers 2]

Timing: each segmenter is timed on its own calls, in worker processes (one per core, 2 by default;
onnxruntime with one intra-op thread each). To keep the run short, "combined" reuses the U²-Net-p
whole-image saliency computed for the "u2netp" row of the same sample; its reported time is
(that inference's time + the rest of the combined call), i.e. what a standalone call costs.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from backdrop.imaging.mask import object_alpha

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "saleor-catalog"

#: background name -> RGB
BACKGROUNDS = {
    "white": (255, 255, 255),
    "offwhite": (246, 244, 240),
    "grey": (232, 232, 232),
}
#: (background, shadow) pairs
VARIANTS = tuple((bg, sh) for bg in BACKGROUNDS for sh in (False, True))
JPEG_QUALITY = 80


@dataclass
class Sample:
    image: str
    background: str
    shadow: bool
    rgb: np.ndarray  # decoded JPEG, uint8 (H, W, 3)
    truth: np.ndarray  # bool (H, W), object alpha >= 128

    @property
    def variant(self) -> str:
        return f"{self.background}{'+shadow' if self.shadow else ''}"


def load_object(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out's object: (rgb uint8, alpha uint8) cropped to the object's box (plus a margin)."""
    rgba = np.array(Image.open(path).convert("RGBA"))
    alpha = object_alpha(rgba[..., 3])
    ys, xs = np.nonzero(alpha)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    m = 4
    y0, x0 = max(0, y0 - m), max(0, x0 - m)
    y1, x1 = min(alpha.shape[0], y1 + m), min(alpha.shape[1], x1 + m)
    return np.ascontiguousarray(rgba[y0:y1, x0:x1, :3]), np.ascontiguousarray(alpha[y0:y1, x0:x1])


def _shadow_layer(alpha: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A soft shadow's darkening (float32 (H, W), 0..1) for an object placed at ``box``."""
    h, w = shape
    x0, y0, x1, y1 = box
    ow, oh = x1 - x0, y1 - y0
    size = max(ow, oh)
    layer = np.zeros((h, w), np.float32)
    if rng.random() < 0.5:
        # drop shadow: the product's own silhouette, offset down (and sideways), blurred
        dx = int(round(rng.uniform(-0.04, 0.06) * size))
        dy = int(round(rng.uniform(0.02, 0.06) * size))
        sil = np.zeros((h, w), np.float32)
        sil[y0:y1, x0:x1] = alpha.astype(np.float32) / 255.0
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        layer = cv2.warpAffine(sil, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        sigma = rng.uniform(0.015, 0.04) * size
        opacity = rng.uniform(0.25, 0.5)
    else:
        # contact shadow: a flat ellipse where the product meets the floor
        cx = (x0 + x1) / 2 + rng.uniform(-0.05, 0.05) * ow
        cy = y1 - rng.uniform(0.0, 0.03) * oh
        ax = rng.uniform(0.35, 0.55) * ow
        ay = rng.uniform(0.03, 0.08) * oh + 2
        cv2.ellipse(layer, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, 1.0, -1)
        sigma = rng.uniform(0.01, 0.03) * size + 1
        opacity = rng.uniform(0.3, 0.6)
    layer = cv2.GaussianBlur(layer, (0, 0), sigma)
    return layer * opacity


def make_sample(
    obj_rgb: np.ndarray,
    obj_alpha: np.ndarray,
    background: str,
    shadow: bool,
    rng: np.random.Generator,
    image: str = "",
) -> Sample:
    """One packshot: the object scaled and placed on a plain background, maybe a shadow, JPEG q80."""
    w = int(rng.integers(600, 801))
    h = int(rng.integers(600, 801))
    oh0, ow0 = obj_alpha.shape
    # the object covers 55-85 % of the canvas along its limiting side
    frac = rng.uniform(0.55, 0.85)
    scale = min(frac * w / ow0, frac * h / oh0)
    ow, oh = max(8, int(round(ow0 * scale))), max(8, int(round(oh0 * scale)))
    margin_x, margin_y = int(0.04 * w), int(0.04 * h)
    x0 = int(rng.integers(margin_x, max(margin_x + 1, w - ow - margin_x + 1)))
    y0 = int(rng.integers(margin_y, max(margin_y + 1, h - oh - margin_y + 1)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    a = obj_alpha.astype(np.float32) / 255.0
    prem = cv2.resize(obj_rgb.astype(np.float32) * a[..., None], (ow, oh), interpolation=interp)
    a = np.clip(cv2.resize(a, (ow, oh), interpolation=interp), 0, 1)
    prem = np.clip(prem, 0, 255 * a[..., None])
    canvas = np.empty((h, w, 3), np.float32)
    canvas[:] = BACKGROUNDS[background]
    alpha8 = np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)
    if shadow:
        layer = _shadow_layer(alpha8, (x0, y0, x0 + ow, y0 + oh), (h, w), rng)
        canvas *= 1.0 - layer[..., None]
    region = canvas[y0 : y0 + oh, x0 : x0 + ow]
    canvas[y0 : y0 + oh, x0 : x0 + ow] = prem + region * (1.0 - a[..., None])
    rgb = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    decoded = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    truth = np.zeros((h, w), bool)
    truth[y0 : y0 + oh, x0 : x0 + ow] = alpha8 >= 128
    return Sample(image, background, shadow, decoded, truth)


def make_samples(path: Path, seed: int, variants=VARIANTS) -> list[Sample]:
    """The variants of one cut-out; the random stream depends only on (seed, file name)."""
    obj_rgb, obj_alpha = load_object(path)
    name_key = int.from_bytes(path.stem.encode()[:16].ljust(16, b"\0"), "little") % (2**63)
    rng = np.random.default_rng([seed, name_key])
    return [make_sample(obj_rgb, obj_alpha, bg, sh, rng, path.stem) for bg, sh in variants]


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    pred = mask >= 128
    union = np.count_nonzero(pred | truth)
    return 1.0 if union == 0 else np.count_nonzero(pred & truth) / union


# ---------------------------------------------------------------------------------------------
# worker side

_SEGMENTERS: dict = {}


def _segmenter(name: str):
    if name not in _SEGMENTERS:
        from backdrop.imaging import segmenters

        if name == "combined-before":  # combined without the trapped-background step: what it replaced
            _SEGMENTERS[name] = segmenters.CombinedSegmenter(u2netp=segmenters.get("u2netp"), remove_trapped=False)
        else:
            _SEGMENTERS[name] = segmenters.get(name)
    return _SEGMENTERS[name]


def _evaluate(args) -> list[dict]:
    path, seed, variants, names = args
    rows = []
    for s in make_samples(Path(path), seed, variants):
        full = None  # the u2netp row's whole-image saliency, reused by "combined"
        full_ms = 0.0
        for name in names:
            seg = _segmenter(name)
            t = time.perf_counter()
            if name == "u2netp" and "combined" in names:
                full = seg.saliency(s.rgb)
                full_ms = (time.perf_counter() - t) * 1000
                mask = seg.mask_from_saliency(full)
            elif name in ("combined", "combined-before") and full is not None:
                mask = seg.refine(s.rgb, seg.saliency(s.rgb, full=full))
            else:
                mask = seg(s.rgb)
            ms = (time.perf_counter() - t) * 1000
            if name in ("combined", "combined-before") and full is not None:
                ms += full_ms
            rows.append(
                {
                    "image": s.image,
                    "variant": s.variant,
                    "segmenter": name,
                    "iou": iou(mask, s.truth),
                    "ms": ms,
                }
            )
    return rows


def _init_worker():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cv2.setNumThreads(1)


# ---------------------------------------------------------------------------------------------


def run(
    data_dir: Path = DEFAULT_DATA,
    seed: int = 0,
    variants=VARIANTS,
    segmenters=("classical", "u2netp", "combined"),
    images: list[str] | None = None,
    workers: int | None = None,
) -> list[dict]:
    """Benchmark rows: per image and segmenter (mean/min IoU over the variants), then a summary row
    per segmenter (``image == "ALL"``: mean IoU, min IoU, images below 0.90, mean ms per image).

    Each per-image row also carries ``ious``: {variant: IoU}.
    """
    data_dir = Path(data_dir)
    paths = sorted((data_dir / "images").glob("*.png"))
    if images is not None:
        paths = [p for p in paths if p.stem in set(images)]
    if not paths:
        raise FileNotFoundError(f"no images in {data_dir / 'images'}")
    names = list(segmenters)
    # combined last so it can reuse the u2netp saliency of the same sample
    names.sort(key=lambda n: {"u2netp": 0, "combined": 2, "combined-before": 2}.get(n, 1))
    jobs = [(str(p), seed, tuple(variants), tuple(names)) for p in paths]
    workers = workers or min(len(jobs), os.cpu_count() or 1, 2)
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker) as ex:
            raw = [r for rs in ex.map(_evaluate, jobs) for r in rs]
    else:
        raw = [r for job in jobs for r in _evaluate(job)]

    rows: list[dict] = []
    for name in segmenters:
        per_image = []
        for p in paths:
            rs = [r for r in raw if r["segmenter"] == name and r["image"] == p.stem]
            ious = [r["iou"] for r in rs]
            per_image.append(
                {
                    "segmenter": name,
                    "image": p.stem,
                    "mean_iou": float(np.mean(ious)),
                    "min_iou": float(np.min(ious)),
                    "ms": float(np.mean([r["ms"] for r in rs])),
                    "ious": {r["variant"]: r["iou"] for r in rs},
                }
            )
        rows.extend(per_image)
        means = [r["mean_iou"] for r in per_image]
        all_ious = [r["iou"] for r in raw if r["segmenter"] == name]
        rows.append(
            {
                "segmenter": name,
                "image": "ALL",
                "mean_iou": float(np.mean(all_ious)),
                "min_iou": float(np.min(all_ious)),
                "below_090": int(sum(m < 0.90 for m in means)),
                "variants_below_090": int(sum(i < 0.90 for i in all_ious)),
                "ms": float(np.mean([r["ms"] for r in raw if r["segmenter"] == name])),
                "n_images": len(per_image),
                "n_samples": len(all_ious),
                "white_on_white": float(np.mean(white))
                if (
                    white := [
                        r["iou"] for r in raw if r["segmenter"] == name and _is_white(r["image"]) and r["variant"].startswith("white")
                    ]
                )
                else float("nan"),
            }
        )
    return rows


def _is_white(image: str) -> bool:
    """The white products of the sample (white tees, hoodie, plimsolls): the hard white-on-white case."""
    return "white" in image.split("-")


def to_markdown(rows: list[dict]) -> str:
    names = list(dict.fromkeys(r["segmenter"] for r in rows))
    summary = {r["segmenter"]: r for r in rows if r["image"] == "ALL"}
    out = [
        "| segmenter | mean IoU | min IoU | images with mean IoU < 0.90 | samples < 0.90 | white products on white | ms / image |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        s = summary[n]
        out.append(
            f"| {n} | {s['mean_iou']:.4f} | {s['min_iou']:.4f} | {s['below_090']} / {s['n_images']} "
            f"| {s['variants_below_090']} / {s['n_samples']} | {s['white_on_white']:.4f} | {s['ms']:.0f} |"
        )
    out += ["", "Per image: mean IoU (min over its variants)", ""]
    out.append("| image | " + " | ".join(names) + " |")
    out.append("|---|" + "---:|" * len(names))
    images = list(dict.fromkeys(r["image"] for r in rows if r["image"] != "ALL"))
    by = {(r["segmenter"], r["image"]): r for r in rows if r["image"] != "ALL"}
    for im in images:
        cells = [f"{by[(n, im)]['mean_iou']:.3f} ({by[(n, im)]['min_iou']:.3f})" for n in names]
        out.append(f"| {im} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="8 images, white and grey with shadow only")
    ap.add_argument("--segmenters", default="classical,u2netp,combined")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    variants = VARIANTS
    images = None
    if args.quick:
        variants = (("white", True), ("grey", True))
        images = [
            "mighty-mug",
            "sunnies",
            "white-plimsolls-2",
            "white-hoodie",
            "monospace-white-tee-back",
            "blue-plimsolls-4",
            "gift-50",
            "apple-drink",
        ]
    t = time.perf_counter()
    rows = run(args.data, args.seed, variants, tuple(args.segmenters.split(",")), images, args.workers)
    print(to_markdown(rows))
    print(f"\n{len(rows)} rows in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
