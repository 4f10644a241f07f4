"""Creative generation benchmark: procedural creatives per second per core, and segmentation quality.

    python benchmarks/bench_generate.py [--quick] [--no-segmentation] [--render-only]

Measures, on the demo catalog at the square 1080x1080 placement with every style of each
product's category:
  * render + composite per second on one core (cv2 single-threaded): the generator's own speed;
  * the same plus lossless PNG encoding (what the store writes);
  * the whole pipeline end to end into a fresh store (decode, mask, layout, render, composite,
    quality, encode, index) with 1 worker and with one worker per core.
Then the segmentation table of ``bench_segment.py``. Results go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import update_section
from backdrop.cli import DEMO_DIR
from backdrop.creative.catalog import load_catalog, load_image
from backdrop.creative.local import run_local
from backdrop.creative.pipeline import (
    PipelineConfig,
    request_for,
)
from backdrop.creative.store import encode_image
from backdrop.generators import get_generator
from backdrop.imaging.color import dominant_colors
from backdrop.imaging.composite import composite
from backdrop.imaging.layout import layout, load_placements
from backdrop.imaging.mask import product_mask
from backdrop.styles import StyleLibrary
from backdrop.styles.params import podium_lift, validate_params


def is_staged(style) -> bool:
    """A staged scene (issue 17): a podium, colour blocking on the wall, props or a palm gobo."""
    p = validate_params(style.procedural)
    return p.podium != "none" or p.backdrop_shape != "none" or p.props > 0 or (p.sun > 0 and p.sun_pattern == "palm")


def bench_render(products, library, placement, repeats: int) -> dict:
    cv2.setNumThreads(1)
    gen = get_generator("procedural")
    jobs = []
    for p in products:
        rgba = load_image(p.image_path)
        alpha = product_mask(rgba)
        rgb = rgba[..., :3].copy()
        palette = dominant_colors(rgb, alpha)
        for style in library.for_category(p.category_path):
            lift = podium_lift(style.procedural)  # laid out as the pipeline does: higher on a podium
            staged_placement = placement.model_copy(update={"ground": placement.ground - lift}) if lift else placement
            scene = layout(rgb, alpha, staged_placement, palette=palette)
            jobs.append((request_for(scene, style, p.fields(), len(jobs)), is_staged(style)))
    render_s, encode_s, staged_s, plain_s = [], [], [], []
    for _ in range(repeats):
        for job, staged in jobs:
            t0 = time.perf_counter()
            creative = composite(gen.generate(job), job.scene)
            t1 = time.perf_counter()
            encode_image(creative, "png")
            t2 = time.perf_counter()
            render_s.append(t1 - t0)
            encode_s.append(t2 - t1)
            (staged_s if staged else plain_s).append(t1 - t0)
    n = len(render_s)
    return {
        "creatives": n,
        "render_per_s": n / sum(render_s),
        "render_ms_p50": 1000 * statistics.median(render_s),
        "render_ms_p95": 1000 * sorted(render_s)[int(0.95 * (n - 1))],
        "with_png_per_s": n / (sum(render_s) + sum(encode_s)),
        "png_ms_p50": 1000 * statistics.median(encode_s),
        "staged": _rate(staged_s),
        "plain": _rate(plain_s),
    }


def _rate(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0, "per_s": 0.0, "p50": 0.0, "p95": 0.0}
    ordered = sorted(seconds)
    return {
        "n": len(seconds),
        "per_s": len(seconds) / sum(seconds),
        "p50": 1000 * statistics.median(seconds),
        "p95": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
    }


def bench_pipeline(products, library, placement, workers: int) -> dict:
    config = PipelineConfig(placements=(placement,), library=library)
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_local(products, config, Path(tmp) / "store", workers=workers, progress=False)
    assert summary.failed == 0, summary.errors
    return {"workers": workers, "creatives": summary.generated, "seconds": summary.seconds, "per_s": summary.generated / summary.seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer products and repeats (smoke run; results not written)")
    ap.add_argument("--no-segmentation", action="store_true", help="skip the segmentation table (then RESULTS.md is not written)")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="only the render + composite figures (no PNG, pipeline or segmentation; RESULTS.md is not written): "
        "run it against two checkouts back to back to compare renderers",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also measure render + composite with another checkout's code (e.g. a `git worktree` of the previous "
        "commit), in this run, for the table's comparison row",
    )
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # render-only figures for --baseline
    args = ap.parse_args()

    baseline = None
    if args.baseline is not None:
        import json
        import subprocess

        commit = subprocess.run(
            ["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        done = subprocess.run(
            [sys.executable, __file__, "--render-only", "--json"] + (["--quick"] if args.quick else []),
            env={**os.environ, "PYTHONPATH": str(args.baseline.resolve() / "src")},
            capture_output=True,
            text=True,
            check=True,
        )
        baseline = json.loads(done.stdout.strip().splitlines()[-1]) | {"commit": commit or str(args.baseline)}
        print(
            f"baseline {baseline['commit']}: all {baseline['render_per_s']:.1f}/s, staged {baseline['staged']['per_s']:.1f}/s", flush=True
        )

    catalog = load_catalog(DEMO_DIR / "products.csv")
    products = catalog.products[:4] if args.quick else catalog.products
    library = StyleLibrary.load()
    placement = load_placements()["square"]

    r = bench_render(products, library, placement, repeats=1 if args.quick else 2)
    print(
        f"render+composite: {r['render_per_s']:.1f}/s per core (p50 {r['render_ms_p50']:.1f} ms), "
        f"with PNG encode {r['with_png_per_s']:.1f}/s; staged scenes {r['staged']['per_s']:.1f}/s, others {r['plain']['per_s']:.1f}/s",
        flush=True,
    )
    if args.render_only and args.json:
        import json

        print(json.dumps(r))
        return
    if args.render_only:
        print(
            f"render-only: all {r['render_per_s']:.1f}/s (p50 {r['render_ms_p50']:.1f} ms, p95 {r['render_ms_p95']:.1f} ms); "
            f"staged {r['staged']['per_s']:.1f}/s (p50 {r['staged']['p50']:.1f}, p95 {r['staged']['p95']:.1f} ms, n={r['staged']['n']}); "
            f"others {r['plain']['per_s']:.1f}/s (p50 {r['plain']['p50']:.1f} ms, n={r['plain']['n']})"
        )
        return
    cores = os.cpu_count() or 1
    pipes = [bench_pipeline(products, library, placement, w) for w in sorted({1, cores})]
    for p in pipes:
        print(f"pipeline, {p['workers']} worker(s): {p['per_s']:.1f} creatives/s ({p['creatives']} in {p['seconds']:.1f} s)", flush=True)

    lines = [
        "## Procedural creatives (`bench_generate.py`)",
        "",
        f"Demo catalog ({len(products)} products x every style of their category), square 1080x1080, "
        "procedural generator, cv2 single-threaded. Targets: >= 10 creatives/s per core, staged scenes >= 12.",
        "",
        "| measure | creatives/s | p50 ms | p95 ms |",
        "|---|---:|---:|---:|",
        f"| render + exact composite, 1 core | **{r['render_per_s']:.1f}** | {r['render_ms_p50']:.1f} | {r['render_ms_p95']:.1f} |",
        f"| + lossless PNG encode, 1 core | {r['with_png_per_s']:.1f} | {r['render_ms_p50'] + r['png_ms_p50']:.1f} | |",
        f"| of which staged scenes (podiums, colour blocks, props, palm gobo: {r['staged']['n']} creatives), 1 core | "
        f"{r['staged']['per_s']:.1f} | {r['staged']['p50']:.1f} | {r['staged']['p95']:.1f} |",
        f"| of which the other scenes ({r['plain']['n']} creatives), 1 core | {r['plain']['per_s']:.1f} | {r['plain']['p50']:.1f} | {r['plain']['p95']:.1f} |",
    ]
    for p in pipes:
        lines.append(f"| whole pipeline into a fresh store, {p['workers']} worker process(es) | {p['per_s']:.1f} | | |")
    if baseline is not None:
        b = baseline
        lines += [
            f"| *same run, the code of {b['commit']}:* render + exact composite, 1 core | {b['render_per_s']:.1f} | {b['render_ms_p50']:.1f} | {b['render_ms_p95']:.1f} |",
            f"| *same run, the code of {b['commit']}:* staged scenes ({b['staged']['n']} creatives), 1 core | {b['staged']['per_s']:.1f} | {b['staged']['p50']:.1f} | {b['staged']['p95']:.1f} |",
        ]
    lines += [
        "",
        "The whole pipeline adds image decoding, mask, palette, layout, quality scores, PNG encoding, fsync'd",
        "atomic writes and the SQLite index; its per-second figure includes worker start-up.",
    ]

    if not args.no_segmentation:
        import bench_segment

        quick_images = ["mighty-mug", "white-plimsolls-1", "sunnies", "blue-hoodie"] if args.quick else None
        rows = bench_segment.run(images=quick_images, segmenters=("classical", "u2netp", "combined-before", "combined"))
        lines += [
            "",
            "## Segmentation (`bench_segment.py`)",
            "",
            "Every sample cut-out on white, off-white and light grey, each with and without a soft drop shadow,",
            "random scale and position, JPEG quality 80; IoU against the exact alpha (>= 128). `combined` is the",
            "default (`auto`); `combined-before` is the same without the step that removes background trapped in",
            "gaps (`imaging.background.trapped_background`), measured in the same run. White products on white: the 9 white",
            "products on the white background, with and without a shadow. Target: mean IoU >= 0.985, min >= 0.92.",
            "",
            bench_segment.to_markdown(rows),
        ]
        print(bench_segment.to_markdown(rows))

    if args.quick or args.no_segmentation:  # the section holds both tables: never write half of it
        print(f"\n({'--quick' if args.quick else '--no-segmentation'}: RESULTS.md not written)")
        return
    update_section("bench_generate", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
