"""The creative commands: generate, segment, report, store, styles, demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ._common import Formatter as _Formatter
from ._common import csv_list as _csv_list
from ._common import day as _day
from ._common import positive_int as _positive_int

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
DEMO_PLACEMENTS = ("square", "landscape", "story")
DEMO_STYLES_PER_PRODUCT = 5
#: the plain creative, the price, and on sale the percentage off (products on sale in the demo catalog)
DEMO_OVERLAYS = ("none", "price", "sale")


def register(sub) -> dict:
    """Add this group's commands to ``sub``; returns command -> handler."""
    g = sub.add_parser(
        "generate",
        help="make creatives for every product of a catalog",
        formatter_class=_Formatter,
        description=(
            "Make the creatives of every product in CATALOG (CSV, JSONL or Parquet with product_id, title,\n"
            "category, image; optional description, attributes (JSON object), brand, color) into STORE.\n"
            "CATALOG may also be a Google Merchant Center or Meta product feed (TSV, CSV or RSS/Atom XML,\n"
            "gzip or not; told by content): id, title, image_link, product_type or google_product_category;\n"
            "other columns become attributes. Image URLs are downloaded into a cache (--image-cache) and\n"
            "revalidated on a rerun (ETag / Last-Modified), so unchanged images are not downloaded again.\n"
            "Bad rows are reported on stderr as FILE:ROW: FIELD: reason and skipped; the good rows go on.\n"
            "Creatives already in the store are skipped, so an interrupted run resumes where it stopped.\n"
            "Every product also gets its baseline on every placement: the catalog photo fitted to the canvas\n"
            "on its own background colour (white for a cut-out), product untouched, style 'original' (the\n"
            "control the decision service serves for the catalog image; no overlay variants).\n\n"
            "Defaults: every placement of the placement file, every style of each product's category."
        ),
    )
    g.add_argument("catalog", type=Path, help="catalog or product feed file; image paths are relative to it, or http(s) URLs")
    g.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="STORE",
        help="creative store: a directory (created if missing), or object storage (s3://bucket/prefix, any fsspec URL) with --index",
    )
    g.add_argument(
        "--index",
        metavar="URL",
        help="the store's index: postgresql://... (several machines writing one store) or an SQLite path (default: STORE/index.sqlite)",
    )
    _add_generation_options(g)
    g.add_argument("--limit", type=_positive_int, help="only the first N good products")
    g.add_argument("--category", action="append", metavar="PATH", help="only products in this category or below (repeatable)")
    g.add_argument("--strict", action="store_true", help="exit 1 without generating anything if any row is bad")
    g.add_argument(
        "--image-cache",
        type=Path,
        metavar="DIR",
        help="where downloaded images are kept (default: $BACKDROP_IMAGE_CACHE, else ~/.cache/backdrop/images)",
    )
    g.add_argument("--json", action="store_true", help="print one JSON summary object on stdout at the end")

    s = sub.add_parser(
        "segment",
        help="write a product mask per image",
        formatter_class=_Formatter,
        description=(
            "Write one 8-bit PNG mask per IMAGE into DIR, named after the image's stem (255 = product).\n"
            "The alpha channel is used when the image has a meaningful one; otherwise the segmenter runs\n"
            "(auto = U2-Net-p refined by a colour model and GrabCut when onnxruntime and the weights are\n"
            "installed, else the classical colour-model segmenter)."
        ),
    )
    s.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    s.add_argument("--out", "-o", type=Path, required=True, metavar="DIR")
    s.add_argument(
        "--method",
        default="auto",
        choices=["auto", "alpha", "classical", "u2netp", "combined"],
        help="auto: alpha when meaningful, else the best segmenter; alpha: fail on images without one",
    )
    s.add_argument("--json", action="store_true", help="print a JSON summary on stdout")

    r = sub.add_parser(
        "report",
        help="write an HTML contact sheet of a store",
        formatter_class=_Formatter,
        description=(
            "Write a static HTML contact sheet (product x style x placement thumbnails) of STORE. Each thumbnail\n"
            "says what QA found, what a reviewer decided in the console, and whether `backdrop serve` serves it\n"
            "(the same rule `backdrop export feed` applies: a rejected creative is marked and never usable)."
        ),
    )
    r.add_argument("store", metavar="STORE", help="a store directory, or object storage (s3://...) with --index")
    r.add_argument("--index", metavar="URL", help="the store's index when it is not STORE/index.sqlite (postgresql://... or a path)")
    r.add_argument("--out", "-o", type=Path, default=Path("report.html"), help="HTML file; thumbnails go to <name>_files/")
    r.add_argument(
        "--review-required",
        action="store_true",
        help="show as usable only what `backdrop serve --review-required` serves (approved creatives)",
    )
    r.add_argument("--json", action="store_true")

    so = sub.add_parser(
        "store",
        help="check a creative store's files against its index, or repair it",
        formatter_class=_Formatter,
        description=(
            "verify: every indexed creative's file must exist with the size the index says; files no index row\n"
            "names (orphans) and temp files of killed writers are listed; an index that cannot be read is\n"
            "reported. Exit 1 when anything is wrong.\n"
            "repair: removes the index rows of missing or damaged files (the next `backdrop generate` makes them\n"
            "again), deletes orphan and temp files, and moves an unreadable index aside for a fresh one."
        ),
    )
    so.add_argument("action", choices=["verify", "repair"])
    so.add_argument("store", metavar="STORE", help="a store directory, or object storage (s3://...) with --index")
    so.add_argument("--index", metavar="URL", help="the store's index when it is not STORE/index.sqlite (postgresql://... or a path)")
    so.add_argument("--json", action="store_true")

    sy = sub.add_parser(
        "styles",
        help="list the style library's categories, or what one category gets and why",
        formatter_class=_Formatter,
        description=(
            "Without --category: every category of the style library with its styles and the keywords\n"
            "and Google product categories that lead to it. With --category PATH (and optionally\n"
            "--google-category ID_OR_PATH, --product-type PATH): the style category that product would\n"
            "get, the rule that matched (path, google, keyword, default), and its styles with what each\n"
            "suits (packshot, on-model, both)."
        ),
    )
    sy.add_argument("--category", metavar="PATH", help="a catalog category path, e.g. 'Men > Tops > Jackets'")
    sy.add_argument("--google-category", metavar="ID_OR_PATH", default="", help="a google_product_category value")
    sy.add_argument("--product-type", metavar="PATH", default="", help="a product_type value")
    sy.add_argument("--style-library", type=Path, metavar="YAML", help="style library (default: the packaged one)")
    sy.add_argument("--json", action="store_true")

    d = sub.add_parser(
        "demo",
        help="run the whole creative pipeline on the bundled sample catalog",
        formatter_class=_Formatter,
        description=(
            f"Generate {len(DEMO_PLACEMENTS)} placements ({', '.join(DEMO_PLACEMENTS)}) x {DEMO_STYLES_PER_PRODUCT} styles for the\n"
            "20 bundled sample products (Saleor demo data, BSD-3-Clause) with the procedural generator,\n"
            "plain and with price / sale overlays, and each product's baseline (the catalog photo on each\n"
            "placement's canvas), then write the HTML report. Running it again reuses the store."
        ),
    )
    d.add_argument("--out", "-o", type=Path, default=Path("demo-out"), help="output directory (store/ and report.html)")
    d.add_argument("--workers", type=_positive_int, help="worker processes (default: one per core)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--products", type=_positive_int, metavar="N", help="only the first N sample products (default: all 20)")
    d.add_argument("--on", type=_day, metavar="YYYY-MM-DD", help="plan seasonal styles as on this day (default: today)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument("--json", action="store_true")
    return {
        "generate": cmd_generate,
        "segment": cmd_segment,
        "report": cmd_report,
        "store": cmd_store,
        "styles": cmd_styles,
        "demo": cmd_demo,
    }


def _add_generation_options(p: argparse.ArgumentParser) -> None:
    from ..creative.store import FORMATS
    from ..generators import GENERATORS
    from ..generators.diffusion.schedulers import SCHEDULERS

    p.add_argument("--placements", type=_csv_list, metavar="A,B", help="placement names (default: all in the placement file)")
    p.add_argument("--placements-file", type=Path, metavar="YAML", help="placement definitions (default: the packaged ones)")
    p.add_argument("--styles", type=_csv_list, metavar="A,B", help="only these style names (default: every style of the category)")
    p.add_argument("--style-library", type=Path, metavar="YAML", help="style library (default: the packaged one)")
    p.add_argument("--generator", default="procedural", choices=GENERATORS, help="background generator")
    p.add_argument(
        "--overlays",
        type=_csv_list,
        metavar="A,B",
        help="overlay templates, each one more creative per scene: none (plain), price, price-badge, sale, logo, "
        "logo-price-cta (default: none); a product without the fields a template needs does not get it",
    )
    p.add_argument("--overlay-library", type=Path, metavar="YAML", help="overlay templates (default: the packaged ones)")
    p.add_argument(
        "--brand-logo",
        metavar="FILE|DIR",
        help="the logo for products whose catalog row names none: one image for the catalog, or a folder of "
        "one per brand named after it (Nordly Outdoor -> nordly-outdoor.png)",
    )
    p.add_argument("--locale", default="en_US", help="how prices are written where the catalog has no locale column (de_DE: 1.299,00 €)")
    p.add_argument("--segmenter", default="auto", choices=["auto", "classical", "u2netp", "combined"], help="mask for images without alpha")
    p.add_argument("--seed", type=int, default=0, help="base seed; each creative derives its own from it")
    p.add_argument(
        "--on",
        type=_day,
        metavar="YYYY-MM-DD",
        help="plan seasonal styles (festive, winter) as on this day (default: today); the same day gives the same creatives",
    )
    p.add_argument("--format", default="png", choices=sorted(FORMATS), help="creative file format (png/webp lossless)")
    p.add_argument("--workers", type=_positive_int, help="worker processes (default: one per core; 1 for diffusion)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray Data: a local Ray (no ADDRESS) or a cluster (ray://host:10001 or host:6379)",
    )
    dg = p.add_argument_group("diffusion generator (--generator diffusion; needs the [diffusion] extra)")
    dg.add_argument(
        "--model",
        metavar="DIR|FILE",
        help="diffusers folder (save_pretrained of an SD 1.5/2 or SDXL pipeline), a hub id in the local HF cache, "
        "or one .safetensors checkpoint in the original layout (community fine-tunes)",
    )
    dg.add_argument(
        "--model-config",
        metavar="DIR",
        help="for a single-file --model: a diffusers folder of the same kind to take the configs from "
        "(default: the packaged SD 1.5 / SDXL configs, picked from the checkpoint's tensors)",
    )
    dg.add_argument("--controlnet", metavar="DIR", help="a separately saved ControlNetModel folder")
    dg.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="PATH[:SCALE]",
        help="a LoRA folder or .safetensors file, with its weight (default 1.0); repeat for several; fused into the model",
    )
    dg.add_argument(
        "--scheduler",
        default="default",
        choices=SCHEDULERS,
        help="sampler: lcm and tcd are few-step (for LCM/TCD-distilled models or LoRAs); default: the model's own",
    )
    dg.add_argument("--steps", type=_positive_int, help="denoising steps (default: the sampler's: 20, 25 for euler, 4 for lcm/tcd)")
    dg.add_argument(
        "--guidance", type=float, help="classifier-free guidance scale (default: the sampler's: 7.5, 7 for dpm++, 1 for lcm/tcd)"
    )
    dg.add_argument("--control", default="canny", choices=["canny", "mask", "none"], help="ControlNet image from the product")
    dg.add_argument("--controlnet-scale", type=float, default=0.8)
    dg.add_argument(
        "--upscale",
        default="lanczos",
        choices=["lanczos", "img2img"],
        help="from the model's size to the placement's: a Lanczos resize, or that plus a short img2img pass at the placement's size",
    )
    dg.add_argument("--refine-strength", type=float, default=0.3, help="share of the schedule the img2img pass re-runs (0-1]")
    dg.add_argument("--batch-size", type=_positive_int, default=4, help="images per pipeline call")
    dg.add_argument("--device", default="auto", help="cuda, cuda:1, cpu (auto: cuda when available)")
    dg.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"], help="auto: float16 on CUDA, float32 on CPU"
    )
    dg.add_argument("--compile", action="store_true", help="torch.compile the UNet (slow first batch, faster after)")
    dg.add_argument("--gate-attempts", type=_positive_int, default=3, help="seeds tried before the procedural fallback")
    dg.add_argument("--gate-max-expansion", type=float, default=0.15, help="max object expansion (share of the product's area)")
    dg.add_argument("--gate-min-iou", type=float, default=0.8, help="min IoU of the generated foreground with the product")
    dg.add_argument("--gate-max-halo", type=float, default=14.0, help="max Delta E of the ring around the product")


def _pipeline_config(args, placement_names=None, max_styles=None):
    from ..creative.pipeline import PipelineConfig
    from ..errors import ConfigError
    from ..imaging.layout import load_placement_set
    from ..styles import StyleLibrary

    placement_set = load_placement_set(args.placements_file)
    placements = {p.name: p for p in placement_set.placements}
    names = placement_names or args.placements
    if names:
        unknown = [n for n in names if n not in placements]
        if unknown:
            raise ConfigError(f"unknown placement(s) {', '.join(unknown)}; known: {', '.join(placements)}")
        chosen = tuple(placements[n] for n in names)
    else:
        chosen = tuple(placements.values())
    library = StyleLibrary.load(args.style_library)
    from ..creative.store import ORIGINAL

    if ORIGINAL in library.all_styles():
        raise ConfigError(
            f"{library.source}: a style is named '{ORIGINAL}', the name of every product's baseline (the catalog photo "
            "on the placement's canvas); rename the style"
        )
    if args.styles:
        known = set(library.all_styles())
        unknown = [s for s in args.styles if s not in known]
        if unknown:
            raise ConfigError(f"unknown style(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    options, gate = {}, {}
    if args.generator == "diffusion":
        if not getattr(args, "model", None):
            raise ConfigError("--generator diffusion needs --model DIR (a diffusers folder or a hub id in the local HF cache)")
        from ..generators.diffusion import DiffusionGenerator

        options = dict(
            model=args.model,
            model_config=args.model_config,
            controlnet=args.controlnet,
            loras=list(args.lora),
            steps=args.steps,
            guidance_scale=args.guidance,
            control=args.control,
            controlnet_scale=args.controlnet_scale,
            scheduler=args.scheduler,
            upscale=args.upscale,
            refine_strength=args.refine_strength,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
            compile=args.compile,
        )
        try:  # fail now, not in every worker: the model's files, its ControlNet, its LoRAs, every placement's size
            DiffusionGenerator.describe(**options)
            DiffusionGenerator.generation_sizes(args.model, chosen, model_config=args.model_config)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        gate = dict(
            max_attempts=args.gate_attempts,
            max_expansion=args.gate_max_expansion,
            min_iou=args.gate_min_iou,
            max_halo=args.gate_max_halo,
        )
    from ..overlays import OverlayLibrary
    from ..overlays.money import MoneyError, check_locale

    overlay_library = OverlayLibrary.load(getattr(args, "overlay_library", None))
    overlays = tuple(getattr(args, "overlays", None) or ())
    for name in overlays:
        if name != "none":
            overlay_library.get(name)  # an unknown name is a ConfigError listing the known ones
    try:
        locale = check_locale(getattr(args, "locale", None) or "en_US")
    except MoneyError as e:
        raise ConfigError(f"--locale: {e}") from None
    logo = getattr(args, "brand_logo", None)
    if logo:
        from ..creative.catalog import check_image

        where = Path(logo).expanduser()
        problem = None if where.is_dir() else (check_image(where) if where.exists() else "no such file or folder")
        if problem:
            raise ConfigError(f"--brand-logo {logo}: {problem}")
        logo = str(where.resolve())
    return PipelineConfig(
        overlays=overlays,
        overlay_library=overlay_library,
        locale=locale,
        brand_logo=logo,
        placements=chosen,
        library=library,
        styles=args.styles,
        max_styles=max_styles,
        generator=args.generator,
        generator_options=options,
        segmenter=args.segmenter,
        seed=args.seed,
        fmt=args.format,
        gate=gate,
        framing=placement_set.framing,
        qa=placement_set.qa,
        day=getattr(args, "on", None),
    )


def cmd_generate(args) -> int:
    from ..creative.catalog import load_catalog
    from ..creative.fetch import ImageFetcher
    from ..creative.local import run_local

    config = _pipeline_config(args)
    with ImageFetcher(args.image_cache) as fetcher:
        catalog = load_catalog(args.catalog, fetcher=fetcher, progress=not args.no_progress)
    for err in catalog.errors:
        print(err, file=sys.stderr)
    images = {"images": catalog.images.to_dict()} if catalog.images is not None else {}
    if catalog.images is not None:
        s = catalog.images
        print(
            f"backdrop generate: images: {s.downloaded} downloaded ({s.bytes / 1e6:.1f} MB), {s.revalidated} unchanged, "
            f"{s.failed} failed{f', {s.retries} retries' if s.retries else ''} (cache: {fetcher.cache_dir})",
            file=sys.stderr,
        )
    nothing = {"generated": 0, "skipped": 0, "failed": 0, "flagged": 0, "baselines": 0, "errors": [e.to_dict() for e in catalog.errors]}
    nothing |= images
    if args.strict and catalog.errors:
        print(f"backdrop generate: {len(catalog.errors)} bad row(s) in {args.catalog} (--strict): nothing generated", file=sys.stderr)
        _print_summary(args, nothing)
        return 1
    products = [p for p in catalog.products if not args.category or any(map(p.in_category, args.category))][: args.limit]
    if not products:
        where = f" (none in {' or '.join(map(repr, args.category))})" if catalog.products else ""
        print(f"backdrop generate: no usable product in {args.catalog}{where}", file=sys.stderr)
        _print_summary(args, nothing)
        return 1
    from ..creative.local import default_categories

    for path, n in sorted(default_categories(products, config).items()):
        print(
            f"backdrop generate: category '{path}' ({n} product{'s' if n != 1 else ''}) matches no style category; "
            "it gets the default styles (add a keyword for it to the style library; `backdrop styles --category` explains)",
            file=sys.stderr,
        )
    from ..creative.pipeline import missing_styles

    for category, (missing, have, n) in sorted(missing_styles(products, config).items()):
        print(
            f"backdrop generate: --styles: style category '{category}' ({n} product{'s' if n != 1 else ''}) has no "
            f"{', '.join(repr(m) for m in missing)}; its styles: {', '.join(have)}",
            file=sys.stderr,
        )
    from ..creative.overlaying import overlay_shortfall

    for name, (n, need) in sorted(overlay_shortfall(products, config).items()):
        print(
            f"backdrop generate: overlay '{name}': {n} product(s) lack {', '.join(need)} and get no '{name}' creative "
            "(add the column to the catalog)",
            file=sys.stderr,
        )
    from ..creative.storage import is_remote
    from ..creative.store import CreativeStore

    store = CreativeStore(args.out if is_remote(args.out) else Path(args.out).resolve(), index=args.index)  # created and migrated here
    store.close()
    if args.ray:
        from ..creative.ray import run_ray

        summary = run_ray(products, config, store, address=None if args.ray == "local" else args.ray, progress=not args.no_progress)
    else:
        workers = args.workers or (1 if config.generator == "diffusion" else None)
        summary = run_local(products, config, store, workers=workers, progress=not args.no_progress)
    for err in summary.errors:
        print(err, file=sys.stderr)
    summary.errors = catalog.errors + summary.errors
    out = summary.to_dict() | images
    _print_summary(args, out, store=args.out)
    if summary.environment:  # the machine, not the catalog: never a success
        n = sum(summary.environment.values())
        why = "; ".join(f"{reason} ({count})" for reason, count in summary.environment.items())
        print(
            f"backdrop generate: {n} creative(s) failed because of the environment, not the data: {why}; "
            f"fix it and run again (what was written is kept)",
            file=sys.stderr,
        )
        return 3
    if summary.generated + summary.skipped - summary.baselines == 0:  # every creative asked for failed: the baselines alone are no success
        return 1
    return 1 if args.strict and summary.failed else 0


def _print_summary(args, summary: dict, store: Path | None = None) -> None:
    if args.json:
        print(json.dumps(summary))
        return
    line = f"generated {summary['generated']}, skipped {summary['skipped']} (already in the store), failed {summary['failed']}"
    if summary.get("flagged"):
        line += f"; {summary['flagged']} flagged by QA (see the report)"
    if summary.get("seconds"):
        line += f" in {summary['seconds']:.1f} s"
    if store is not None:
        line += f" -> {store}"
    print(line)
    if summary["errors"]:
        print(f"{len(summary['errors'])} problem(s), listed above on stderr")


def cmd_store(args) -> int:
    from ..creative.store_check import repair_store, verify_store

    check = repair_store if args.action == "repair" else verify_store
    report = check(args.store, index=args.index)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        if report.corrupt_index:
            print(f"index: {report.corrupt_index}")
        print(
            f"{report.root}: {report.creatives} indexed creatives; {len(report.missing)} missing, "
            f"{len(report.mismatched)} damaged (size differs from the index), {len(report.orphans)} orphan file(s), "
            f"{len(report.temp)} temp file(s)" + ("; repaired" if report.repaired else "")
        )
        for name in ("missing", "mismatched"):
            for key in getattr(report, name)[:10]:
                print(f"  {name}: {key}")
        if report.repaired and (report.missing or report.mismatched or report.corrupt_index):
            print("run `backdrop generate` again to make the removed creatives")
    if args.action == "verify" and not report.ok:
        return 1
    return 0


def cmd_styles(args) -> int:
    from ..styles import StyleLibrary

    library = StyleLibrary.load(args.style_library)
    styles = library.all_styles()
    if args.category is None and not args.google_category and not args.product_type:
        cats = [
            {
                "category": c,
                "styles": [s.name for s in library.for_category(c)],
                "keywords": library.keywords(c),
                "google": library.google_paths(c),
            }
            for c in library.categories()
        ]
        if args.json:
            print(json.dumps({"library": library.source, "categories": cats}))
            return 0
        print(f"{library.source}: {len(cats)} categories, {len(styles)} styles")
        seasonal = [s for s in styles.values() if s.season is not None]
        if seasonal:
            print("seasonal: " + ", ".join(f"{s.name} ({s.season}{'' if s.in_season() else ', out of season today'})" for s in seasonal))
        for c in cats:
            print(f"\n{c['category']}: {', '.join(c['styles'])}")
            if c["keywords"]:
                print(f"  keywords: {', '.join(c['keywords'])}")
            if c["google"]:
                print(f"  google: {'; '.join(c['google'])}")
        return 0
    match = library.match(args.category or "", google_category=args.google_category, product_type=args.product_type)
    out = match.to_dict() | {
        "suits": {s.name: s.suits for s in match.styles},
        "seasons": {s.name: s.season.model_dump() for s in match.styles if s.season is not None},
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{args.category or '(no category)'} -> {match.category}  [{match.rule}: {match.why}]")
    for s in match.styles:
        season = f" [season {s.season}{'' if s.in_season() else ', out of season today'}]" if s.season is not None else ""
        print(f"  {s.name:18s} suits {s.suits:9s} {s.description}{season}")
    return 0


def cmd_segment(args) -> int:
    import numpy as np
    from PIL import Image

    from ..creative.catalog import check_image, load_image
    from ..imaging.mask import alpha_is_meaningful, get_segmenter, object_alpha

    args.out.mkdir(parents=True, exist_ok=True)
    segmenter = None
    written, failed = [], []
    for path in args.images:
        reason = check_image(path)
        try:
            if reason is not None:
                raise ValueError(reason)
            rgba = load_image(path)
            if args.method in ("auto", "alpha") and alpha_is_meaningful(rgba):
                mask, used = object_alpha(rgba[..., 3]), "alpha"
            elif args.method == "alpha":
                raise ValueError("no meaningful alpha channel (use --method auto to segment it)")
            else:
                if segmenter is None:
                    segmenter = get_segmenter("auto" if args.method == "auto" else args.method)
                mask, used = segmenter(np.ascontiguousarray(rgba[..., :3])), segmenter.name
            dst = args.out / f"{path.stem}.png"
            Image.fromarray(mask.astype(np.uint8), "L").save(dst)
            written.append({"image": str(path), "mask": str(dst), "method": used, "coverage": round(float((mask >= 128).mean()), 4)})
        except ValueError as e:
            print(f"{path}: {e}", file=sys.stderr)
            failed.append({"image": str(path), "reason": str(e)})
    if args.json:
        print(json.dumps({"written": written, "failed": failed}))
    else:
        for w in written:
            print(f"{w['mask']}  ({w['method']}, product covers {w['coverage']:.1%})")
    return 0 if written and not failed else 1


def cmd_report(args) -> int:
    from collections import Counter

    from ..creative.report import usability, write_contact_sheet
    from ..creative.review import review_counts
    from ..creative.store import CreativeStore

    store = CreativeStore(args.store, readonly=True, index=args.index)
    path = write_contact_sheet(store, args.out, review_required=args.review_required)
    n = len(store)
    counts = review_counts(store)
    usable = Counter(usability(store, args.review_required).values())
    store.close()
    summary = {"report": str(path), "creatives": n, "approved": counts["approved"], "rejected": counts["rejected"]}
    summary |= {"usable": usable["servable"], "not_usable": {k: v for k, v in usable.items() if k != "servable"}}
    text = (
        f"wrote {path} ({n} creatives, {usable['servable']} usable, {counts['rejected']} rejected in review); open: file://{path.resolve()}"
    )
    print(json.dumps(summary) if args.json else text)
    return 0


def cmd_demo(args) -> int:
    from ..creative.catalog import load_catalog
    from ..creative.local import run_local
    from ..creative.report import write_contact_sheet
    from ..creative.store import CreativeStore

    t0 = time.perf_counter()
    ns = argparse.Namespace(
        placements=None,
        placements_file=None,
        styles=None,
        style_library=None,
        generator="procedural",
        segmenter="auto",
        seed=args.seed,
        format="png",
        on=args.on,
    )
    ns.overlays = DEMO_OVERLAYS
    config = _pipeline_config(ns, placement_names=DEMO_PLACEMENTS, max_styles=DEMO_STYLES_PER_PRODUCT)
    catalog = load_catalog(DEMO_DIR / "products.csv")
    for err in catalog.errors:
        print(err, file=sys.stderr)
    store_dir, products = args.out / "store", catalog.products[: args.products]
    summary = run_local(products, config, store_dir, workers=args.workers, progress=not args.no_progress)
    for err in summary.errors:
        print(err, file=sys.stderr)
    report = write_contact_sheet(CreativeStore(store_dir, readonly=True), args.out / "report.html", title="Backdrop demo")
    elapsed = time.perf_counter() - t0
    out = summary.to_dict() | {
        "report": str(report),
        "store": str(store_dir),
        "products": len(products),
        "seconds": round(elapsed, 2),
    }
    if args.json:
        print(json.dumps(out))
    else:
        n, pl, k = len(products), len(DEMO_PLACEMENTS), DEMO_STYLES_PER_PRODUCT
        print(
            f"demo: {n} products x {pl} placements ({', '.join(DEMO_PLACEMENTS)}; `generate` makes every placement) x (up to {k} styles"
            f" + the catalog photo) = up to {n * pl * (k + 1)} images; each styled one also with a price tag, and a sale badge where"
            f" the product is on sale\ncreatives: generated {summary.generated}, skipped {summary.skipped} (already in the store),"
            f" failed {summary.failed}, flagged by QA {summary.flagged}, in {elapsed:.1f} s"
        )
        print(f"open the report: file://{report.resolve()}")
        print(f"review the creatives in the browser: backdrop console --store {store_dir}")
    return 0 if summary.failed == 0 else 1
