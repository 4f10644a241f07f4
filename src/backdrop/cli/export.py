"""The export commands: export feed (creatives back into the retailer's product feeds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import BackdropError
from ._common import Formatter as _Formatter
from ._common import existing_event_log


def register(sub) -> dict:
    """Add this group's commands to ``sub``; returns command -> handler."""
    ex = sub.add_parser(
        "export",
        help="export creatives: a supplemental feed for Google Merchant Center or Meta",
        formatter_class=_Formatter,
        description="Export what the store holds for use outside Backdrop.",
    )
    what = ex.add_subparsers(dest="what", metavar="WHAT", required=True)
    f = what.add_parser(
        "feed",
        help="a supplemental feed (by id) pointing image_link at each product's chosen creative",
        formatter_class=_Formatter,
        description=(
            "Write a supplemental feed for the products of FEED that the store has creatives for: by id,\n"
            "image_link = the chosen creative at --placement, additional_image_link = the others (--pick all)\n"
            "and the catalog photo. URLs are --base-url/v1/creatives/KEY (what `backdrop serve` answers), or\n"
            "--base-url/PATH with --layout store (a CDN in front of the store's files).\n\n"
            "Which creatives: what `backdrop serve` would serve, reviews included: never one rejected in the\n"
            "review console; one the QA checks flagged only once a reviewer approved it; with --review-required\n"
            "only approved ones; plain ones only (no overlay); never the catalog photo's own rendition (style\n"
            "original, the experiments' baseline): the feed has the photo itself. Which of them: with --results\n"
            "(the decision service's event log) the style with the best measured CTR per product, shrunk\n"
            "towards the style's CTR over all products; without, the first of the product's styles in the\n"
            "style library's order.\n"
            "The rows are checked against the platform's published field rules (URL length and characters,\n"
            "number of additional images, image formats, minimum size, file size); a violation is an error\n"
            "line and exit 1, and nothing is written. Google gets TSV, Meta CSV."
        ),
    )
    f.add_argument(
        "--store", required=True, metavar="STORE", help="creative store (from backdrop generate): a folder, or s3://... with --store-index"
    )
    f.add_argument("--store-index", metavar="URL", help="the store's index when it is not STORE/index.sqlite (postgresql://... or a path)")
    f.add_argument("--catalog", type=Path, required=True, metavar="FEED", help="the product feed (or catalog) the creatives were made from")
    f.add_argument("--base-url", required=True, metavar="URL", help="where the creatives are served, e.g. https://creatives.example.com")
    f.add_argument("--format", choices=["google", "meta"], default="google", help="target platform")
    f.add_argument(
        "--pick", choices=["best", "all"], default="best", help="best: one creative per product; all: the others as additional images"
    )
    f.add_argument("--placement", default="square", help="which placement's creatives (feeds show one image per product)")
    f.add_argument(
        "--layout", choices=["service", "store"], default="service", help="URL layout: the decision service's, or the store's paths"
    )
    f.add_argument("--results", metavar="DB", help="event log with measured results: postgresql://... or an sqlite path (or STORE)")
    f.add_argument(
        "--review-required",
        action="store_true",
        help="export only creatives a reviewer approved, as `backdrop serve --review-required` serves them",
    )
    f.add_argument("--style-library", type=Path, metavar="YAML", help="style library for the default order (default: the packaged one)")
    f.add_argument("--out", "-o", type=Path, metavar="FILE", help="output file (default: supplemental-FORMAT.tsv / .csv)")
    f.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    return {"export": cmd_export}


def cmd_export(args) -> int:
    from ..creative.catalog import load_catalog
    from ..creative.export import build_supplemental, write_supplemental
    from ..creative.storage import is_remote
    from ..creative.store import CreativeStore
    from ..styles import StyleLibrary

    if args.store_index is None and (is_remote(args.store) or not (Path(args.store) / "index.sqlite").is_file()):
        raise BackdropError(f"{args.store}: not a creative store (no index.sqlite; on object storage give --store-index)")
    catalog = load_catalog(args.catalog, check_images=False)
    library = StyleLibrary.load(args.style_library)
    order = {
        p.product_id: [
            s.name for s in library.match(p.category_path, google_category=p.google_category, product_type=p.product_type).styles
        ]
        for p in catalog.products
    }
    results = None
    if args.results:
        from ..serving.eventlog import open_event_log
        from ..serving.offline import style_results

        log = open_event_log(existing_event_log(args.results))
        try:
            results = style_results(log, placement=args.placement)
        finally:
            log.close()
    store = CreativeStore(args.store, readonly=True, index=args.store_index)
    try:
        result = build_supplemental(
            store,
            catalog.products,
            base_url=args.base_url,
            platform=args.format,
            pick=args.pick,
            placement=args.placement,
            style_order=order,
            results=results,
            layout=args.layout,
            review_required=args.review_required,
        )
    finally:
        store.close()
    for err in catalog.errors:
        print(err, file=sys.stderr)
    for pid, reason in result.skipped:
        print(f"backdrop export: {pid}: skipped: {reason}", file=sys.stderr)
    for problem in result.problems:
        print(f"backdrop export: {problem}", file=sys.stderr)
    out = args.out or Path(f"supplemental-{args.format}.{'tsv' if args.format == 'google' else 'csv'}")
    summary = result.to_dict() | {"out": None if result.problems else str(out), "format": args.format}
    if result.problems:
        print(f"backdrop export: {len(result.problems)} rule violation(s) for {args.format}: nothing written", file=sys.stderr)
    elif result.rows:
        from ..files import write_atomic

        write_atomic(out, write_supplemental(result.rows, args.format).encode())
        measured = sum(1 for r in result.rows if r.why.startswith("highest measured"))
        print(
            f"backdrop export: {len(result.rows)} product(s) -> {out} ({measured} chosen by measured CTR), {len(result.skipped)} skipped",
            file=sys.stderr,
        )
    else:
        print(
            f"backdrop export: no product of {args.catalog} has a servable creative at '{args.placement}' in {args.store}", file=sys.stderr
        )
    if args.json:
        print(json.dumps(summary))
    return 1 if result.problems or not result.rows else 0
