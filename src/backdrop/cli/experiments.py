"""The experiment commands: abtest, study, cost, evolve."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import BackdropError
from ._common import Formatter as _Formatter
from ._common import existing_event_log, planned_shares
from ._common import positive_int as _positive_int


def register(sub) -> dict:
    """Add this group's commands to ``sub``; returns command -> handler."""
    ab = sub.add_parser(
        "abtest",
        help="A/B/n analysis of a log (or `abtest plan`: the sample size a test needs)",
        formatter_class=_Formatter,
        description=(
            "backdrop abtest LOG: per-arm CTR with Wilson intervals, relative lift vs the control with a\n"
            "delta-method interval, two-proportion tests with Holm correction, a sample-ratio-mismatch check\n"
            "against the planned split, an always-valid (mSPRT) p-value safe to watch while the test runs,\n"
            "and CUPED when a pre-period covariate column is given. LOG is a CSV/Parquet of impressions\n"
            "(columns arm, click; optional covariate, at) or the decision service's event log (an SQLite\n"
            "path, a store directory, or postgresql://...), whose experiment arms and joined clicks are used.\n\n"
            "backdrop abtest plan --baseline-ctr 0.01 --lift 0.05: impressions per arm (and days at\n"
            "--daily-impressions) to detect the lift with the given power."
        ),
    )
    ab.add_argument("log", metavar="LOG|plan", help="impressions CSV/Parquet, event log, or the word plan")
    ab.add_argument("--control", help="control arm (default: control, original or A if present, else the first by name)")
    ab.add_argument("--planned", metavar="ARM=SHARE,...", help="planned traffic split for the SRM check (default: equal)")
    ab.add_argument("--alpha", type=float, default=0.05)
    ab.add_argument(
        "--metric",
        choices=("ctr", "conversion", "revenue"),
        default="ctr",
        help="ctr (clicks), conversion (impressions with a purchase event) or revenue (purchase value) per impression;"
        " from an impressions file, conversion and revenue read the click column as the value",
    )
    ab.add_argument("--html", type=Path, metavar="FILE", help="also write an HTML report with plots")
    ab.add_argument("--baseline-ctr", type=float, help="plan: the control's CTR")
    ab.add_argument("--lift", type=float, action="append", help="plan: relative lift to detect, e.g. 0.05 (repeatable)")
    ab.add_argument("--power", type=float, default=0.8, help="plan: probability of detecting the lift")
    ab.add_argument("--arms", type=int, default=2, help="plan: arms including the control (Bonferroni across comparisons)")
    ab.add_argument("--daily-impressions", type=float, help="plan: traffic per day across all arms")
    ab.add_argument("--json", action="store_true")

    st = sub.add_parser(
        "study",
        help="the paper's study end to end: a simulated audience served by the real decision service",
        formatter_class=_Formatter,
        description=(
            "Serve a synthetic audience (the simulator's click model over the store's products and styles)\n"
            "through `backdrop serve` over HTTP with four arms: the catalog image (control), a random\n"
            "generated style, the best single style, and the bandit (--policy) per (user, item, placement). Then analyse the\n"
            "service's own event log: the paper-style table with intervals, the ablations each isolating one\n"
            "step, CTR over time, regret against the oracle, and what off-policy evaluation on the random\n"
            "arm's log predicted. Writes DIR/report.html (first line: the clicks are simulated), study.json\n"
            "and the event log."
        ),
    )
    st.add_argument("--out", "-o", type=Path, default=Path("study-out"), help="output directory (must not hold a study)")
    st.add_argument("--store", type=Path, default=Path("demo-out/store"), help="creative store (from `make demo`)")
    st.add_argument("--impressions", type=_positive_int, default=40_000, help="impressions in all (split evenly over the 4 arms)")
    st.add_argument("--base-ctr", type=float, default=0.02, help="click model: the catalog image's CTR")
    st.add_argument(
        "--generated-lift", type=float, default=0.15, help="click model: random generated style vs catalog image (paper ~ +15%%)"
    )
    st.add_argument("--style-spread", type=float, default=0.10, help="click model: best single style vs random style")
    st.add_argument("--personal-spread", type=float, default=0.10, help="click model: best style per impression vs best single style")
    from ..bandit.policies import SERVABLE

    st.add_argument(
        "--policy",
        default="pooled-ucb",
        choices=[n for n in SERVABLE if n != "uniform"],
        help="the personalised arm's policy, as the service serves it",
    )
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--no-progress", action="store_true")
    st.add_argument("--json", action="store_true", help="print the result as JSON")

    co = sub.add_parser(
        "cost",
        help="GPU-hours, storage and serving cost of a catalog",
        formatter_class=_Formatter,
        description=(
            "images = products x placements x styles; GPU-hours = images x (1 + regenerations) / (images/s\n"
            "per GPU) / 3600; storage = images x files per image (the creative and its overlay variants) x bytes\n"
            "per creative (both measured from --store when given);\n"
            "serving = cores for the peak decisions/s at the benchmarked decisions/s per core. Every figure\n"
            "is printed with its source: measured, estimated or assumed. Without --products: the 10k / 1M /\n"
            "10M table of the README."
        ),
    )
    co.add_argument("--products", type=_positive_int, help="catalog size (default: --catalog's, else the 10k/1M/10M table)")
    co.add_argument(
        "--catalog",
        type=Path,
        metavar="CATALOG",
        help="count the products and the styles the style library gives each one's category from this catalog (CSV/JSON/feed)",
    )
    co.add_argument("--style-library", type=Path, metavar="YAML", help="with --catalog: the style library (default: the built-in one)")
    co.add_argument("--placements", type=_positive_int, help="ad placements per product (default: the placement file's)")
    co.add_argument(
        "--styles",
        type=float,
        help="styles per product and placement (default: measured from --store, else from --catalog, else 5, assumed)",
    )
    co.add_argument("--gpu-images-per-s", type=float, help="measured images/s per GPU (default: estimate from counted FLOPs)")
    co.add_argument("--gpu-hour-usd", type=float, default=3.0, help="price of a GPU-hour (assumed)")
    co.add_argument("--regeneration-rate", type=float, default=0.10, help="share of images the artifact gate regenerates")
    co.add_argument("--store", type=Path, help="measure bytes per creative and stored files per image from this store")
    co.add_argument(
        "--files-per-image",
        type=float,
        help="stored files per generated image: 1 plain creative + its overlay variants (default: measured from --store, else 1)",
    )
    co.add_argument("--decisions-per-day", type=float, help="decision-service traffic (default: 10 per product per day)")
    co.add_argument(
        "--decisions-per-s-per-core",
        type=float,
        help="serving throughput per core (default: the figure bench_serve.py measured, shipped in the package)",
    )
    co.add_argument("--json", action="store_true")

    ev = sub.add_parser(
        "evolve",
        help="which styles win per category (and audience), variants of the winners, styles to retire",
        formatter_class=_Formatter,
        description=(
            "Read the decision service's log for a store and estimate, per category, the click rate each\n"
            "style would have had shown to everyone (self-normalised inverse propensity weighting of the\n"
            "logged choices, 95% intervals; --by FIELD also per audience). The best --parents styles of\n"
            "each category (shown at least --min-impressions times) breed a variant each: palette,\n"
            "surface, podium or light changed (backdrop.styles.evolve), written with the rest of the\n"
            "style library to --out. Make their creatives with `backdrop generate --style-library OUT\n"
            "--styles VARIANTS`: they pass QA and review like any creative, and the service's learner\n"
            "(pooled-ucb) starts each from what it knows of its parent. Styles whose interval lies wholly\n"
            "below the best's are listed to retire; --retire takes them out of their category's rotation\n"
            "(the service drops them at its next store refresh; --unretire puts one back). `backdrop simulate\n"
            "--evolve` measures the loop."
        ),
    )
    ev.add_argument("--store", type=Path, required=True, metavar="STORE", help="the store (its products and categories)")
    ev.add_argument("--db", metavar="URL", help="event log: postgresql://... or an sqlite path (default: the store's)")
    ev.add_argument("--by", metavar="FIELD", help="also estimate per value of this user field (e.g. segment)")
    ev.add_argument("--min-impressions", type=_positive_int, default=300, help="impressions before a style is judged")
    ev.add_argument("--parents", type=int, default=2, help="winners per category that breed a variant")
    ev.add_argument("--style-library", type=Path, metavar="YAML", help="the library the store was made with (default: the packaged one)")
    ev.add_argument("--out", type=Path, metavar="YAML", help="the library with the variants (default: STORE/evolved-styles.yaml)")
    ev.add_argument("--seed", type=int, default=0, help="the variants' mutations")
    ev.add_argument(
        "--retire",
        action="store_true",
        help="take the styles to retire out of their category's rotation (the service drops them at its next store refresh; "
        "their creatives stay)",
    )
    ev.add_argument(
        "--unretire",
        action="append",
        metavar="CATEGORY=STYLE",
        help="put a retired style back into its category's rotation (repeatable); nothing else is done",
    )
    ev.add_argument("--json", action="store_true")

    return {"abtest": cmd_abtest, "study": cmd_study, "cost": cmd_cost, "evolve": cmd_evolve}


def cmd_evolve(args) -> int:
    import time

    import yaml

    from ..creative import rotation
    from ..creative.store import CreativeStore
    from ..experiments import evolve
    from ..serving.eventlog import open_event_log
    from ..styles import DEFAULT_LIBRARY_FILE, StyleLibrary

    if not args.store.is_dir():
        raise BackdropError(f"--store {args.store}: no such store directory")
    store = CreativeStore(args.store.resolve())
    try:
        if args.unretire:
            return _unretire(store, args.unretire)
        category_of = {p["product_id"]: p["category"] for p in store.products()}
        out_of_rotation = rotation.retired(store)
    finally:
        store.close()
    if not category_of:
        raise BackdropError(f"--store {args.store}: no products (run `backdrop generate` first)")
    log = open_event_log(existing_event_log(args.db or str(args.store)))
    try:
        rows = [row for batch in log.joined_batches(time.time()) for row in batch]
    finally:
        log.close()
    values = evolve.style_values(rows, category_of, by=args.by)
    plan = evolve.plan(values, min_impressions=args.min_impressions, parents=args.parents)
    library_path = args.style_library or DEFAULT_LIBRARY_FILE
    library = StyleLibrary.load(library_path)
    raw, bred = evolve.breed(yaml.safe_load(Path(library_path).read_text()), library, plan.winners, seed=args.seed)
    out = args.out or args.store / "evolved-styles.yaml"
    if bred:
        evolve.write_library(raw, out)
    retired_now = []
    if args.retire and plan.retire:
        store = CreativeStore(args.store.resolve())
        try:
            for cat, losers in plan.retire.items():
                best = plan.winners[cat][0]
                for v in losers:
                    why = (
                        f"{v.value:.2%} [{v.low:.2%}, {v.high:.2%}] below {best.style}'s {best.value:.2%} [{best.low:.2%}, {best.high:.2%}]"
                    )
                    rotation.retire(store, cat, v.style, why)
                    retired_now.append({"category": cat, "style": v.style, "why": why})
        finally:
            store.close()
    if args.json:
        extra = {"library": str(out) if bred else None, "decisions": len(rows), "retired_now": retired_now}
        print(json.dumps(evolve.to_dict(plan, bred) | extra | {"out_of_rotation": [list(k) for k in out_of_rotation]}))
        return 0
    _print_evolution(plan, bred, out, len(rows), args)
    for r in retired_now:
        print(f"retired {r['style']} from {r['category']}: {r['why']}")
    if plan.retire and not args.retire:
        print("(run with --retire to take the styles to retire out of rotation)")
    return 0


def _unretire(store, pairs: list[str]) -> int:
    from ..creative import rotation

    for pair in pairs:
        category, sep, style = pair.rpartition("=")
        if not sep or not category.strip() or not style.strip():
            raise BackdropError(f"--unretire {pair}: give CATEGORY=STYLE, e.g. 'Groceries > Juices=wood-table'")
        if rotation.unretire(store, category.strip(), style.strip()):
            print(f"{style.strip()} is back in {category.strip()}'s rotation")
        else:
            raise BackdropError(f"--unretire {pair}: {style.strip()} is not retired in {category.strip()}")
    return 0


def _print_evolution(plan, bred, out: Path, decisions: int, args) -> None:
    print(f"{decisions:,} logged decisions; click rate had each style been shown to everyone (SNIPS, 95% interval):")
    by_cat: dict[str, list] = {}
    for v in plan.values:
        by_cat.setdefault(v.category, []).append(v)
    for cat, vs in sorted(by_cat.items()):
        print(f"\n{cat}")
        for v in sorted(vs, key=lambda v: (v.audience, -v.value)):
            mark = " *" if v in plan.winners.get(cat, []) else " retire" if v in plan.retire.get(cat, []) else ""
            label = f"{v.style} [{v.audience}]" if v.audience else v.style
            print(f"  {label:<44} {v.value:7.2%}  [{v.low:.2%}, {v.high:.2%}]  shown {v.shown:,}{mark}")
    if not plan.winners:
        print(f"\nno style has {args.min_impressions:,} impressions in its category yet: nothing to breed or retire")
        return
    print("\n* winner (breeds a variant); retire: its interval lies wholly below the best's")
    if bred:
        names = ",".join(b["variant"] for b in bred)
        cats = " ".join(f"--category '{c}'" for c in sorted({b["products"] for b in bred}))
        print(f"\nwrote {out} with {len(bred)} variant(s):")
        for b in bred:
            print(f"  {b['variant']} ({b['category']}): {b['description']}")
        print(
            f"\nmake their creatives (QA and review as usual):\n  backdrop generate CATALOG --out {args.store} --style-library {out} "
            f"--styles {names} {cats}"
        )


def cmd_abtest(args) -> int:
    from ..experiments import abtest

    if args.log == "plan":
        if args.baseline_ctr is None or not args.lift:
            raise BackdropError("abtest plan needs --baseline-ctr and --lift (e.g. --baseline-ctr 0.01 --lift 0.05)")
        try:
            plans = [abtest.plan(args.baseline_ctr, lift, args.power, args.alpha, args.arms, args.daily_impressions) for lift in args.lift]
        except ValueError as e:
            raise BackdropError(str(e)) from None
        print(json.dumps(plans) if args.json else abtest.plan_markdown(plans))
        return 0
    imp, planned = _impressions(args.log, args.metric), planned_shares(args.planned)
    if args.metric != "ctr":
        result = abtest.analyze_values(imp, args.metric, control=args.control, alpha=args.alpha, planned_shares=planned)
        print(json.dumps(result) if args.json else abtest.values_markdown(result))
        if result["srm"].get("warning"):
            print(f"WARNING: {result['srm']['warning']}", file=sys.stderr)
        return 0
    try:
        result = abtest.analyze(imp, control=args.control, planned_shares=planned, alpha=args.alpha)
    except ValueError as e:
        raise BackdropError(f"{args.log}: {e}") from None
    ot = abtest.over_time(imp) if imp.at is not None else None
    if args.html:
        from ..experiments.report import write_abtest_report

        write_abtest_report(result, ot, args.html)
    print(json.dumps(result) if args.json else abtest.to_markdown(result))
    if result["srm"].get("warning"):
        print(f"WARNING: {result['srm']['warning']}", file=sys.stderr)
    return 0


def _impressions(source: str, metric: str = "ctr"):
    """Impressions from a CSV/Parquet file or the service's event log."""
    from ..experiments import abtest

    path = Path(source)
    if source.startswith(("postgresql://", "postgres://")) or path.is_dir() or path.suffix in (".sqlite", ".db"):
        from ..experiments.study import impressions_from_log

        source = existing_event_log(source)
        imp, _, inactive = impressions_from_log(source, metric)
        if inactive:
            print(f"{inactive} decision(s) made with activate=false and not activated: left out (never shown)", file=sys.stderr)
        if not len(imp):
            raise BackdropError(f"{source}: no decisions with an experiment arm (configure `experiment` in the service settings)")
        return imp
    if not path.is_file():
        raise BackdropError(f"{source}: no such file")
    return abtest.load_impressions(path)


def cmd_study(args) -> int:
    from pydantic import ValidationError

    from ..experiments.study import StudyConfig, run_study

    try:
        config = StudyConfig(
            impressions=args.impressions,
            base_ctr=args.base_ctr,
            generated_lift=args.generated_lift,
            style_spread=args.style_spread,
            personal_spread=args.personal_spread,
            policy=args.policy,
            seed=args.seed,
        )
    except ValidationError as e:
        first = e.errors()[0]
        raise BackdropError(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
    if not (args.store / "index.sqlite").is_file():
        raise BackdropError(f"{args.store}: not a creative store; run `make demo` (or `backdrop demo`) first")
    bar = None
    if not args.no_progress and not args.json:
        from tqdm import tqdm

        bar = tqdm(total=args.impressions, unit="imp", desc="serving the study", file=sys.stderr)
    try:
        result = run_study(args.store, args.out, config, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    for pid, why in sorted(result.get("left_out", {}).items()):
        print(f"backdrop study: {pid} left out of the audience: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, default=float))
        return 0
    print(result["note"])
    from ..experiments.abtest import to_markdown

    print(to_markdown(result["table"]))
    print("| ablation | lift [95% CI] | p | true lift | covered |")
    print("|---|---|---:|---:|---|")
    for a in result["ablations"]:
        print(
            f"| {a['ablation']} | {a['lift']:+.1%} [{a['ci_low']:+.1%}, {a['ci_high']:+.1%}] | {a['p']:.4f} | {a['true_lift']:+.1%} | {'yes' if a['covered'] else 'NO'} |"
        )
    print(f"\nreport: {args.out / 'report.html'} ({result['seconds']['total']} s, {result['impressions_per_s']} impressions/s)")
    return 0


def cmd_cost(args) -> int:
    from ..experiments import cost

    inputs: dict = {"gpu_hour_usd": args.gpu_hour_usd, "regeneration_rate": args.regeneration_rate}
    products = args.products
    if args.styles is not None:
        inputs["styles"] = args.styles
    elif args.store is not None and (per_slot := cost.scan_store(args.store).styles_per_slot):
        inputs["styles"] = per_slot
        inputs["styles_source"] = f"measured: generated styles per product and placement in {args.store}"
    if args.catalog is not None:
        mean, n, source = cost.styles_from_catalog(args.catalog, args.style_library)
        products = products or n
        if "styles" not in inputs:
            inputs["styles"], inputs["styles_source"] = mean, source
    for key in ("placements", "gpu_images_per_s", "decisions_per_s_per_core", "files_per_image"):
        if getattr(args, key) is not None:
            inputs[key] = getattr(args, key)
    if args.decisions_per_s_per_core is None:
        measured = cost.measured_serving()
        if measured is not None:
            inputs["decisions_per_s_per_core"], inputs["decisions_per_s_per_core_source"] = measured
    if args.gpu_images_per_s is None:
        measured = cost.measured_diffusion()
        if measured is not None:
            inputs["gpu_images_per_s"], inputs["gpu_images_per_s_source"] = measured
    if args.decisions_per_day is not None:
        inputs["decisions_per_day"] = args.decisions_per_day
    store = args.store
    if products is None:
        estimates = cost.table(store=store, **inputs)
        print(json.dumps([e.to_dict() for e in estimates]) if args.json else cost.table_markdown(estimates))
        return 0
    if "decisions_per_day" not in inputs:
        inputs["decisions_per_day"] = 10.0 * products
    e = cost.estimate(cost.CostInputs(products=products, **inputs), store=store)
    print(json.dumps(e.to_dict()) if args.json else e.to_markdown())
    return 0
