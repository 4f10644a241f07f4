"""Real catalog photography: the shared Magento Luma set (50 JPEG packshots and on-model photos).

    python benchmarks/bench_realcatalog.py [--data ../shared/data/magento-catalog] [--quick]

Per product: the frame-cut sides found, background trapped in the mask before (the segmenter
without the trapped-background step) and after, the on-model decision and its evidence, the style
category and the rule that matched, and the QA reasons of its creatives. Then the whole pipeline
(`backdrop generate`, every placement, every style) into a fresh store: creatives flush on every
cut side and inside the margins elsewhere, the flagged share and its reasons. The expected values
come from the catalog's own structure (its README): apparel (Men/Women) is photographed on a
model, tops cut at the thighs by the bottom of the photo, bottoms at the waist by its top; Gear is
not on a model and not cut. Products that have white parts of their own (white garments, white
labels) are listed in OWN_WHITE: for them background-coloured pixels inside the mask are product.

Writes the section in benchmarks/RESULTS.md and a small before/after contact sheet of the hard
cases, ``benchmarks/realcatalog-before-after.png`` (downscaled; the photos are OSL-3.0, see the
set's README). The photos themselves are read from ../shared and never copied here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import update_section
from backdrop.creative.catalog import load_catalog, load_image
from backdrop.creative.local import run_local
from backdrop.creative.pipeline import (
    PipelineConfig,
    category_for,
    request_for,
)
from backdrop.creative.store import CreativeStore
from backdrop.generators import get_generator
from backdrop.imaging.color import dominant_colors
from backdrop.imaging.composite import composite
from backdrop.imaging.framing import cut_sides
from backdrop.imaging.layout import layout, load_placement_set
from backdrop.imaging.people import PersonDetector
from backdrop.imaging.segmenters import CombinedSegmenter
from backdrop.imaging.subject import background_share
from backdrop.styles import StyleLibrary

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "magento-catalog"
SHEET = Path(__file__).resolve().parent / "realcatalog-before-after.png"
#: products with white parts of their own (white or near-white garments, white labels, a light bag)
OWN_WHITE = {"MH11", "MT02", "WH08", "WJ04", "WT09", "24-WG085_Group", "24-UG03"}
#: the hard cases of the contact sheet
HARD = ["MH03", "MP03", "WJ04", "24-WB02", "24-WG02", "24-UG03"]
SHEET_STYLE = "studio-sweep"


def expected(product) -> tuple[tuple[str, ...], bool]:
    top = product.category_path[0]
    if top in ("Men", "Women"):
        return (("bottom",) if product.category_path[1] == "Tops" else ("top",)), True
    return (), False


def analyse(products, seg_new, seg_old, people) -> list[dict]:
    rows = []
    for p in products:
        rgb = np.ascontiguousarray(load_image(p.image_path)[..., :3])
        t = time.perf_counter()
        saliency = seg_new.saliency(rgb)
        t_sal = time.perf_counter() - t
        t = time.perf_counter()
        old = seg_old.refine(rgb, saliency)
        t_old = time.perf_counter() - t + t_sal
        t = time.perf_counter()
        new = seg_new.refine(rgb, saliency)
        t_new = time.perf_counter() - t + t_sal
        cut = cut_sides(new)
        t = time.perf_counter()
        ev = people(rgb, new, cut)
        t_people = time.perf_counter() - t
        want_cut, want_model = expected(p)
        rows.append(
            {
                "product": p,
                "cut": cut,
                "want_cut": want_cut,
                "on_model": ev.on_model,
                "want_model": want_model,
                "evidence": ev,
                "trapped_before": background_share(rgb, old),
                "trapped_after": background_share(rgb, new),
                "removed": float(((old >= 128) & (new < 128)).sum()) / max(int((old >= 128).sum()), 1),
                "ms_old": t_old * 1000,
                "ms_new": t_new * 1000,
                "ms_people": t_people * 1000,
                "masks": (rgb, old, new),
            }
        )
    return rows


def _tile(rgb, alpha, placement, style, gen, cut, size=170) -> Image.Image:
    scene = layout(rgb, alpha, placement, palette=dominant_colors(rgb, alpha), cut=cut)
    bg = gen.generate(request_for(scene, style, {}, 7))
    im = Image.fromarray(composite(bg, scene))
    im.thumbnail((size, size), Image.LANCZOS)
    return im


def contact_sheet(rows, library, placement, path: Path) -> None:
    """Before (old mask, laid out as a whole object) over after (this pipeline), the hard cases."""
    gen = get_generator("procedural")
    style = library.all_styles()[SHEET_STYLE]
    by = {r["product"].product_id: r for r in rows}
    tiles = []
    for pid in HARD:
        if pid not in by:
            continue
        r = by[pid]
        rgb, old, new = r["masks"]
        tiles.append((_tile(rgb, old, placement, style, gen, ()), _tile(rgb, new, placement, style, gen, r["cut"])))
    if not tiles:
        return
    w, h = tiles[0][0].size
    pad, label = 4, 18
    sheet = Image.new("RGB", (len(tiles) * (w + pad) + pad + 50, 2 * (h + pad) + pad + label), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for i, (before, after) in enumerate(tiles):
        x = 50 + pad + i * (w + pad)
        draw.text((x, 3), HARD[i], fill=(230, 230, 230))
        sheet.paste(before, (x, label + pad))
        sheet.paste(after, (x, label + 2 * pad + h))
    draw.text((4, label + pad + h // 2), "before", fill=(230, 230, 230))
    draw.text((4, label + 2 * pad + h + h // 2), "after", fill=(230, 230, 230))
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def pipeline(products, library, placements, framing, qa, workers: int) -> dict:
    config = PipelineConfig(placements=tuple(placements), library=library, framing=framing, qa=qa)
    with tempfile.TemporaryDirectory() as d:
        summary = run_local(products, config, Path(d) / "store", workers=workers, progress=False)
        store = CreativeStore(Path(d) / "store", readonly=True)
        recs = store.creatives()
        reasons = Counter(x["check"] for r in recs for x in r.qa_reasons)
        flagged_by_product = Counter(r.product_id for r in recs if r.flagged)
        flush = inside = violations = 0
        for r in recs:
            x0, y0, x1, y1 = r.params["box"]
            cut = r.params["subject"]["cut"]
            pl = next(p for p in placements if p.name == r.placement)
            m = pl.margin * min(pl.width, pl.height) - 1
            edges = {"top": y0 <= 0, "bottom": y1 >= r.height, "left": x0 <= 0, "right": x1 >= r.width}
            margins = {"top": y0 >= m, "bottom": r.height - y1 >= m, "left": x0 >= m, "right": r.width - x1 >= m}
            ok = all(edges[s] for s in cut) and all(margins[s] for s in edges if s not in cut)
            flush += all(edges[s] for s in cut)
            inside += all(margins[s] for s in edges if s not in cut)
            violations += not ok
        store.close()
    return {
        "summary": summary,
        "creatives": len(recs),
        "flagged": sum(r.flagged for r in recs),
        "reasons": reasons,
        "flagged_by_product": flagged_by_product,
        "flush": flush,
        "inside": inside,
        "violations": violations,
    }


def to_markdown(rows, run, library) -> str:
    n = len(rows)
    cut_ok = sum(r["cut"] == r["want_cut"] for r in rows)
    model_tp = sum(r["on_model"] and r["want_model"] for r in rows)
    model_fp = sum(r["on_model"] and not r["want_model"] for r in rows)
    model_pos = sum(r["want_model"] for r in rows)
    by_face = sum(r["evidence"].reason == "face" for r in rows)
    by_skin = sum(r["evidence"].reason == "skin" for r in rows)
    cats = [category_for(r["product"], library) for r in rows]
    specific = sum(not c.is_default for c in cats)
    plain = [r for r in rows if r["product"].product_id not in OWN_WHITE]
    worst_before = max(plain, key=lambda r: r["trapped_before"])
    worst = max(plain, key=lambda r: r["trapped_after"])
    out = [
        "## Real catalog photos (`bench_realcatalog.py`)",
        "",
        f"The shared Magento Luma set: {n} products, JPEG on white, {model_pos} on-model apparel photos cut by the frame, "
        "gear with loops and straps. Expected cut sides and on-model from the catalog's structure (apparel: on a model, "
        "tops cut at the bottom, bottoms at the top; gear: neither).",
        "",
        "| measure | result |",
        "|---|---|",
        f"| frame-cut sides detected as expected | {cut_ok} / {n} |",
        f"| on-model detected | {model_tp} / {model_pos} on-model ({by_face} by a face, {by_skin} by skin on a cut photo), "
        f"{model_fp} of {n - model_pos} others |",
        f"| products with category styles (not `default`) | {specific} / {n} ({specific / n:.0%}) |",
        f"| trapped background (share of the mask), products without white parts of their own ({len(plain)}) | "
        f"mean {np.mean([r['trapped_before'] for r in plain]):.2%} → {np.mean([r['trapped_after'] for r in plain]):.2%}, "
        f"worst before {worst_before['trapped_before']:.2%} ({worst_before['product'].product_id}), "
        f"worst after {worst['trapped_after']:.2%} ({worst['product'].product_id}); target < 0.5% |",
        f"| segmentation ms / image (1 thread), without → with the trapped-background step | "
        f"{np.mean([r['ms_old'] for r in rows]):.0f} → {np.mean([r['ms_new'] for r in rows]):.0f} |",
        f"| on-model detection ms / image | {np.mean([r['ms_people'] for r in rows]):.0f} |",
        f"| creatives (every placement, every style) | {run['creatives']} in {run['summary'].seconds:.0f} s |",
        f"| flush on every cut side | {run['flush']} / {run['creatives']} |",
        f"| inside the margins on every uncut side | {run['inside']} / {run['creatives']} |",
        f"| flagged by QA | {run['flagged']} ({run['flagged'] / max(run['creatives'], 1):.1%}) |",
    ]
    if run["reasons"]:
        out.append("| flagged, by reason | " + ", ".join(f"`{k}` {v}" for k, v in run["reasons"].most_common()) + " |")
        out.append("| flagged, by product | " + ", ".join(f"{k} {v}" for k, v in run["flagged_by_product"].most_common()) + " |")
    out += [
        "",
        f"Before (the mask without the trapped-background step, laid out as a whole object) and after, `{SHEET_STYLE}`, "
        f"square: ![before and after](realcatalog-before-after.png) (photos: Magento sample data, OSL-3.0).",
        "",
        "Per product (trapped background: share of the mask in the photo's background colour, before → after; "
        "on-model evidence: face score, skin share of the mask):",
        "",
        "| product | category → styles (rule) | cut | on-model (evidence) | trapped before → after | removed | QA flags |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r, c in zip(rows, cats, strict=True):
        p, ev = r["product"], r["evidence"]
        mark = "" if r["cut"] == r["want_cut"] else " ✗"
        mmark = "" if r["on_model"] == r["want_model"] else " ✗"
        face = "-" if ev.face is None else f"{ev.face:.2f}"
        white = " (own white)" if p.product_id in OWN_WHITE else ""
        out.append(
            f"| {p.product_id} | {p.category_str} → {c.category} ({c.rule}) | {','.join(r['cut']) or '-'}{mark} | "
            f"{'yes' if r['on_model'] else 'no'}{mmark} (face {face}, skin {ev.skin:.2f}) | "
            f"{r['trapped_before']:.2%} → {r['trapped_after']:.2%}{white} | {r['removed']:.2%} | {run['flagged_by_product'].get(p.product_id, 0)} |"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="the hard cases only, square only; RESULTS.md not written")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    catalog = load_catalog(args.data / "products.csv")
    products = catalog.products
    if args.quick:
        products = [p for p in products if p.product_id in HARD]
    library = StyleLibrary.load()
    pset = load_placement_set()
    placements = [p for p in pset.placements if not args.quick or p.name == "square"]
    seg_new = CombinedSegmenter()
    seg_old = CombinedSegmenter(u2netp=seg_new.u2netp, remove_trapped=False)
    people = PersonDetector()
    t0 = time.perf_counter()
    rows = analyse(products, seg_new, seg_old, people)
    print(f"analysed {len(rows)} products in {time.perf_counter() - t0:.0f} s", flush=True)
    contact_sheet(rows, library, pset.placements[0], SHEET if not args.quick else Path(tempfile.gettempdir()) / SHEET.name)
    run = pipeline(products, library, placements, pset.framing, pset.qa, args.workers)
    md = to_markdown(rows, run, library)
    print(md)
    if args.quick:
        print("\n(--quick: RESULTS.md not written)")
        return 0
    update_section("bench_realcatalog", md)
    print(f"wrote benchmarks/RESULTS.md and {SHEET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
