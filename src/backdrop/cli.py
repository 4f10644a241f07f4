"""The `backdrop` command line: argument parsing and printing only; the work is in the library.

Exit codes: 0 success, 1 the data had problems (bad rows with --strict, nothing succeeded),
2 bad usage or configuration, 3 the environment failed the run (disk full, permissions, read-only
media: `generate` never reports those as success).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import BackdropError, EnvironmentFailure

DEMO_DIR = Path(__file__).resolve().parent / "data" / "demo"
DEMO_PLACEMENTS = ("square", "landscape", "story")
DEMO_STYLES_PER_PRODUCT = 5


def _csv_list(value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{value}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backdrop",
        formatter_class=_Formatter,
        description=(
            "Backdrop makes personalized product creatives for e-commerce ads: each catalog product is placed\n"
            "on every ad placement's canvas, a background is generated around it (the product's pixels stay\n"
            "exact), and creatives are stored content-addressed so nothing is generated twice.\n\n"
            "Start with `backdrop demo`, then `backdrop generate CATALOG --out STORE` on your own catalog."
        ),
    )
    parser.add_argument("--version", action="version", version=f"backdrop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    g = sub.add_parser(
        "generate",
        help="make creatives for every product of a catalog",
        formatter_class=_Formatter,
        description=(
            "Make the creatives of every product in CATALOG (CSV, JSONL or Parquet with product_id, title,\n"
            "category, image; optional description, attributes (JSON object), brand, color) into STORE.\n"
            "Bad rows are reported on stderr as FILE:ROW: FIELD: reason and skipped; the good rows go on.\n"
            "Creatives already in the store are skipped, so an interrupted run resumes where it stopped.\n\n"
            "Defaults: every placement of the placement file, every style of each product's category."
        ),
    )
    g.add_argument("catalog", type=Path, help="catalog file (.csv, .jsonl or .parquet); image paths are relative to it")
    g.add_argument("--out", "-o", type=Path, required=True, metavar="STORE", help="creative store directory (created if missing)")
    _add_generation_options(g)
    g.add_argument("--limit", type=_positive_int, help="only the first N good products")
    g.add_argument("--strict", action="store_true", help="exit 1 without generating anything if any row is bad")
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
        description="Write a static HTML contact sheet (product x style x placement thumbnails) of STORE.",
    )
    r.add_argument("store", type=Path, metavar="STORE")
    r.add_argument("--out", "-o", type=Path, default=Path("report.html"), help="HTML file; thumbnails go to <name>_files/")
    r.add_argument("--json", action="store_true")

    ev = sub.add_parser(
        "evaluate",
        help="off-policy evaluation of bandit policies on logged data",
        formatter_class=_Formatter,
        description="Estimate what a policy would have earned, from logs of another policy (IPS, SNIPS, DM, DR, replay).",
    )
    evsub = ev.add_subparsers(dest="source", metavar="SOURCE", required=True)
    eo = evsub.add_parser(
        "obd",
        help="the Open Bandit Dataset sample (real logs with propensities)",
        formatter_class=_Formatter,
        description=(
            "Evaluate LinUCB, LinTS, epsilon-greedy, uniform random and the best fixed arm on the Open Bandit\n"
            "Dataset sample (Saito et al. 2021, CC BY 4.0): each log's first half trains the policies, the\n"
            "second half is evaluated with IPS, SNIPS, DM and DR (and replay on the uniform-random logs),\n"
            "with bootstrap intervals. The sample is small (38-69 clicks per file): read the intervals, do\n"
            "not rank policies on it. Writes a CSV and a plot to --out."
        ),
    )
    eo.add_argument("--data", type=Path, required=True, metavar="DIR", help="OBD folder (with random/ and bts/)")
    eo.add_argument("--out", "-o", type=Path, default=Path("obd-eval"), help="folder for obd_estimates.csv and .png")
    eo.add_argument("--logs", type=_csv_list, default="random,bts", metavar="A,B", help="logging policies: random,bts")
    eo.add_argument("--campaigns", type=_csv_list, default="all,men,women", metavar="A,B", help="campaigns")
    eo.add_argument(
        "--policies", type=_csv_list, default="linucb,lints,epsilon-greedy,uniform,best-fixed-arm", metavar="A,B",
        help="evaluation policies",
    )
    eo.add_argument("--bootstrap", type=_positive_int, default=500, help="bootstrap replicates per interval")
    eo.add_argument("--seed", type=int, default=0)
    eo.add_argument("--json", action="store_true", help="print the records as a JSON list on stdout")

    sm = sub.add_parser(
        "simulate",
        help="simulate an ad audience and compare style-choosing policies",
        formatter_class=_Formatter,
        description=(
            "Run bandit policies on a synthetic audience (the demo catalog, its styles and placements) with\n"
            "logistic clicks and delayed, batched feedback; every policy sees the same impressions and click\n"
            "draws. Prints CTR, lift and cumulative regret against the oracle per policy and writes a plot.\n\n"
            "Presets: paper (default) = paper-like effects (+15% generated vs original, +10% best style vs\n"
            "average, +10% personalised vs best fixed style) at a 2% base CTR; telling styles apart at these\n"
            "effects takes ~10^5 impressions per style, so in 20k rounds the learners trail the best fixed\n"
            "style. strong = 10% base CTR, +20% style spread, +50% personal spread: learning shows within\n"
            "a few thousand rounds. The effect flags override the preset."
        ),
    )
    sm.add_argument("--rounds", type=_positive_int, default=20000)
    sm.add_argument("--preset", default="paper", choices=["paper", "strong"])
    sm.add_argument("--policies", type=_csv_list, default="linucb,lints,epsilon-greedy", metavar="A,B",
                    help="learners: linucb, lints, epsilon-greedy, ucb1")
    sm.add_argument("--baselines", type=_csv_list, default="original,uniform,best-fixed,oracle", metavar="A,B",
                    help="original (catalog image), uniform (random style), best-fixed (best single style), oracle")
    sm.add_argument("--base-ctr", type=float, help="CTR of the plain catalog image")
    sm.add_argument("--generated-lift", type=float, help="relative lift of a random generated style over the catalog image")
    sm.add_argument("--style-spread", type=float, help="relative lift of the best fixed style over a random style")
    sm.add_argument("--personal-spread", type=float, help="relative lift of each impression's best style over the best fixed style")
    sm.add_argument("--users", type=_positive_int, help="audience size")
    sm.add_argument("--delay", type=float, help="mean feedback delay, in rounds")
    sm.add_argument("--update-every", type=_positive_int, help="rounds between batched policy updates")
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--plot", type=Path, default=Path("simulate.png"), help="PNG: cumulative regret and CTR over time")
    sm.add_argument("--json", action="store_true", help="print the per-policy records as JSON on stdout")

    el = evsub.add_parser(
        "log",
        help="the decision service's own event log",
        formatter_class=_Formatter,
        description=(
            "What would another policy have earned on the decisions the service logged? Walks the log in order;\n"
            "the candidate scores each logged context (its probability of every offered style), then learns\n"
            "from the logged choice and reward, as it would have online. IPS, SNIPS and DR with bootstrap\n"
            "intervals, next to the served policy's own CTR. Decisions whose join window is still open are skipped."
        ),
    )
    el_db = el.add_mutually_exclusive_group(required=True)
    el_db.add_argument("--db", metavar="URL", help="event log: postgresql://... or an sqlite path")
    el_db.add_argument("--store", type=Path, metavar="STORE", help="use the store's embedded SQLite log")
    el.add_argument("--policy", action="append", metavar="SPEC", default=None,
                    help="candidate, e.g. linucb:alpha=0.5,epsilon=0.05 (repeatable; default: linucb:alpha=0.5 and uniform)")
    el.add_argument("--join-window", type=float, default=600.0, help="seconds a reward may take to arrive")
    el.add_argument("--default-reward", type=float, default=0.0)
    el.add_argument("--commit-grace", type=float, default=5.0, help="and this long more, for slow commits (as the learner)")
    el.add_argument("--bootstrap", type=_positive_int, default=500)
    el.add_argument("--seed", type=int, default=0)
    el.add_argument("--json", action="store_true")

    sv = sub.add_parser(
        "serve",
        help="run the decision service (HTTP)",
        formatter_class=_Formatter,
        description=(
            "Serve POST /v1/decide (which creative to show), POST /v1/feedback (clicks), GET /v1/creatives/KEY,\n"
            "/healthz, /readyz, /metrics and the OpenAPI schema at /openapi.json. Every decision is logged (with\n"
            "its propensity) before it is answered: in SQLite next to the store by default, or in PostgreSQL\n"
            "(--db postgresql://...) shared by several replicas. --learn also runs the learner in-process.\n"
            "The feedback and model endpoints need an API key: BACKDROP_API_KEY, --api-key-file FILE, or a\n"
            "generated one written to STORE/api-key (mode 600); --api-key KEY works but shows in `ps`.\n"
            "A store on read-only media is served as is (pass --db for the event log and a key)."
        ),
    )
    _add_service_options(sv)
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=_positive_int, default=1,
                    help="worker processes (each a replica sharing the event log; one per core is the usual choice)")
    sv.add_argument("--learn", action="store_true", help="run the learner in this process too")
    sv.add_argument("--learn-interval", type=float, default=5.0, help="seconds between learner passes")
    sv.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])

    ln = sub.add_parser(
        "learn",
        help="fold joined rewards into new model versions",
        formatter_class=_Formatter,
        description=(
            "Join logged decisions with their rewards once the join window has passed (no reward by then = the\n"
            "default reward), update the policy in batches and publish a new model version atomically; the\n"
            "offset lives in the database, so a crash and restart neither skips nor double-counts an event."
        ),
    )
    _add_service_options(ln)
    ln.add_argument("--once", action="store_true", help="one pass, then exit (prints the new version)")
    ln.add_argument("--interval", type=float, default=5.0, help="seconds between passes")
    ln.add_argument("--json", action="store_true")

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
            "generated style, the best single style, and LinUCB per (user, item, placement). Then analyse the\n"
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
    st.add_argument("--generated-lift", type=float, default=0.15, help="click model: random generated style vs catalog image (paper ~ +15%%)")
    st.add_argument("--style-spread", type=float, default=0.10, help="click model: best single style vs random style")
    st.add_argument("--personal-spread", type=float, default=0.10, help="click model: best style per impression vs best single style")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--no-progress", action="store_true")
    st.add_argument("--json", action="store_true", help="print the result as JSON")

    co = sub.add_parser(
        "cost",
        help="GPU-hours, storage and serving cost of a catalog",
        formatter_class=_Formatter,
        description=(
            "images = products x placements x styles; GPU-hours = images x (1 + regenerations) / (images/s\n"
            "per GPU) / 3600; storage = images x bytes per creative (measured from --store when given);\n"
            "serving = cores for the peak decisions/s at the benchmarked decisions/s per core. Every figure\n"
            "is printed with its source: measured, estimated or assumed. Without --products: the 10k / 1M /\n"
            "10M table of the README."
        ),
    )
    co.add_argument("--products", type=_positive_int, help="catalog size (default: the 10k/1M/10M table)")
    co.add_argument("--placements", type=_positive_int, help="ad placements per product (default: the placement file's)")
    co.add_argument("--styles", type=_positive_int, default=5, help="styles per product and placement")
    co.add_argument("--gpu-images-per-s", type=float, help="measured images/s per GPU (default: estimate from counted FLOPs)")
    co.add_argument("--gpu-hour-usd", type=float, default=3.0, help="price of a GPU-hour (assumed)")
    co.add_argument("--regeneration-rate", type=float, default=0.10, help="share of images the artifact gate regenerates")
    co.add_argument("--store", type=Path, help="measure bytes per creative from this store")
    co.add_argument("--decisions-per-day", type=float, help="decision-service traffic (default: 10 per product per day)")
    co.add_argument("--decisions-per-s-per-core", type=float, help="serving throughput per core (default: benchmarks/RESULTS.md)")
    co.add_argument("--json", action="store_true")

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
    so.add_argument("store", type=Path, metavar="STORE")
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
            "then write the HTML report. Running it again reuses the store."
        ),
    )
    d.add_argument("--out", "-o", type=Path, default=Path("demo-out"), help="output directory (store/ and report.html)")
    d.add_argument("--workers", type=_positive_int, help="worker processes (default: one per core)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument("--json", action="store_true")
    return parser


def _add_generation_options(p: argparse.ArgumentParser) -> None:
    from .generators import GENERATORS
    from .creative.store import FORMATS

    p.add_argument("--placements", type=_csv_list, metavar="A,B", help="placement names (default: all in the placement file)")
    p.add_argument("--placements-file", type=Path, metavar="YAML", help="placement definitions (default: the packaged ones)")
    p.add_argument("--styles", type=_csv_list, metavar="A,B", help="only these style names (default: every style of the category)")
    p.add_argument("--style-library", type=Path, metavar="YAML", help="style library (default: the packaged one)")
    p.add_argument("--generator", default="procedural", choices=GENERATORS, help="background generator")
    p.add_argument("--segmenter", default="auto", choices=["auto", "classical", "u2netp", "combined"], help="mask for images without alpha")
    p.add_argument("--seed", type=int, default=0, help="base seed; each creative derives its own from it")
    p.add_argument("--format", default="png", choices=sorted(FORMATS), help="creative file format (png/webp lossless)")
    p.add_argument("--workers", type=_positive_int, help="worker processes (default: one per core; 1 for diffusion)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="run on Ray Data: a local Ray (no ADDRESS) or a cluster (ray://host:10001 or host:6379)",
    )
    dg = p.add_argument_group("diffusion generator (--generator diffusion; needs the [diffusion] extra)")
    dg.add_argument("--model", metavar="DIR", help="diffusers folder (save_pretrained of an SD 1.5/2 or SDXL pipeline) or a hub id in the local HF cache")
    dg.add_argument("--controlnet", metavar="DIR", help="a separately saved ControlNetModel folder")
    dg.add_argument("--steps", type=_positive_int, default=20, help="denoising steps")
    dg.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
    dg.add_argument("--control", default="canny", choices=["canny", "mask", "none"], help="ControlNet image from the product")
    dg.add_argument("--controlnet-scale", type=float, default=0.8)
    dg.add_argument("--scheduler", default="default", choices=["default", "ddim", "dpm", "euler", "euler-a", "unipc", "lcm"])
    dg.add_argument("--batch-size", type=_positive_int, default=4, help="images per pipeline call")
    dg.add_argument("--device", default="auto", help="cuda, cuda:1, cpu (auto: cuda when available)")
    dg.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"], help="auto: float16 on CUDA, float32 on CPU")
    dg.add_argument("--compile", action="store_true", help="torch.compile the UNet (slow first batch, faster after)")
    dg.add_argument("--gate-attempts", type=_positive_int, default=3, help="seeds tried before the procedural fallback")
    dg.add_argument("--gate-max-expansion", type=float, default=0.15, help="max object expansion (share of the product's area)")
    dg.add_argument("--gate-min-iou", type=float, default=0.8, help="min IoU of the generated foreground with the product")
    dg.add_argument("--gate-max-halo", type=float, default=14.0, help="max Delta E of the ring around the product")


def _add_service_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, required=True, metavar="STORE", help="creative store (from backdrop generate / demo)")
    p.add_argument("--db", metavar="URL", help="event log: postgresql://... or an sqlite path (default: STORE/events.sqlite)")
    p.add_argument("--config", type=Path, metavar="YAML", help="service settings file (see README); flags override it")
    p.add_argument("--api-key", help="key for the write endpoints (visible in `ps`: prefer BACKDROP_API_KEY or --api-key-file)")
    p.add_argument("--api-key-file", type=Path, metavar="FILE", help="read the key for the write endpoints from FILE")
    p.add_argument("--policy", choices=["linucb", "lints", "epsilon-greedy", "hybrid-linucb", "uniform"], help="served policy (default linucb)")
    p.add_argument("--alpha", type=float, help="exploration width (LinUCB) / posterior scale (LinTS)")
    p.add_argument("--epsilon", type=float, help="uniform exploration mixed in (keeps logged propensities >= epsilon/K)")
    p.add_argument("--join-window", type=float, help="seconds a reward may take to arrive (default 600)")
    p.add_argument("--default-reward", type=float, help="reward of a decision without feedback (default 0)")
    p.add_argument("--serve-flagged", action="store_true", default=None,
                   help="also serve creatives the QA checks flagged (withheld by default; see backdrop report)")


def _service_settings(args):
    import os
    import secrets

    from .serving.settings import load_settings

    if args.api_key:
        print("backdrop: warning: --api-key on the command line is visible to every user in `ps`; "
              "use BACKDROP_API_KEY or --api-key-file", file=sys.stderr)
    key = args.api_key or os.environ.get("BACKDROP_API_KEY")
    if key is None and getattr(args, "api_key_file", None):
        try:
            key = args.api_key_file.read_text().strip()
        except OSError as e:
            raise BackdropError(f"{args.api_key_file}: cannot read the API key: {e.strerror}") from e
        if not key:
            raise BackdropError(f"{args.api_key_file}: the API key file is empty")
    settings = load_settings(
        args.config,
        store=args.store,
        db=args.db,
        api_key=key,
        join_window_s=args.join_window,
        default_reward=args.default_reward,
        serve_flagged=getattr(args, "serve_flagged", None),
        **{"policy.name": args.policy, "policy.alpha": args.alpha, "policy.epsilon": args.epsilon},
    )
    if not (settings.store / "index.sqlite").is_file():
        raise BackdropError(f"{settings.store}: not a creative store; run `backdrop demo` or `backdrop generate` first")
    writable = os.access(settings.store, os.W_OK) and _dir_writable(settings.store)
    if settings.db is None and not writable:
        raise BackdropError(
            f"{settings.store} is read-only, so the event log cannot live next to it: pass --db (an SQLite path or postgresql://...)"
        )
    if settings.api_key is None:
        path = settings.store / "api-key"
        if not path.exists():
            if not writable:
                raise BackdropError(f"{settings.store} is read-only: give the API key by BACKDROP_API_KEY or --api-key-file")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        from pydantic import SecretStr

        settings = settings.model_copy(update={"api_key": SecretStr(path.read_text().strip())})
        print(f"API key for /v1/feedback and /v1/models: in {path}", file=sys.stderr)
    return settings


def _dir_writable(path: Path) -> bool:
    """Whether files can be created in ``path`` (a read-only mount says no even to root)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {
            "generate": cmd_generate,
            "segment": cmd_segment,
            "report": cmd_report,
            "demo": cmd_demo,
            "evaluate": cmd_evaluate,
            "simulate": cmd_simulate,
            "serve": cmd_serve,
            "learn": cmd_learn,
            "abtest": cmd_abtest,
            "study": cmd_study,
            "cost": cmd_cost,
            "styles": cmd_styles,
            "store": cmd_store,
        }[args.command](args)
    except EnvironmentFailure as e:
        print(f"backdrop {args.command}: error: {e}", file=sys.stderr)
        return 3
    except BackdropError as e:
        print(f"backdrop {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"backdrop {args.command}: interrupted; finished work is kept, run again to resume", file=sys.stderr)
        return 130


def _pipeline_config(args, placement_names=None, max_styles=None):
    from .errors import ConfigError
    from .imaging.layout import load_placement_set
    from .creative.pipeline import PipelineConfig
    from .styles import StyleLibrary

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
    if args.styles:
        known = set(library.all_styles())
        unknown = [s for s in args.styles if s not in known]
        if unknown:
            raise ConfigError(f"unknown style(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    options, gate = {}, {}
    if args.generator == "diffusion":
        if not getattr(args, "model", None):
            raise ConfigError("--generator diffusion needs --model DIR (a diffusers folder or a hub id in the local HF cache)")
        from .generators.diffusion import resolve_model_dir

        resolve_model_dir(args.model)  # fail now, not in every worker
        if args.controlnet:
            resolve_model_dir(args.controlnet)
        options = dict(
            model=args.model, controlnet=args.controlnet, steps=args.steps, guidance_scale=args.guidance,
            control=args.control, controlnet_scale=args.controlnet_scale, scheduler=args.scheduler,
            batch_size=args.batch_size, device=args.device, dtype=args.dtype, compile=args.compile,
        )
        gate = dict(
            max_attempts=args.gate_attempts, max_expansion=args.gate_max_expansion,
            min_iou=args.gate_min_iou, max_halo=args.gate_max_halo,
        )
    return PipelineConfig(
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
    )


def cmd_generate(args) -> int:
    from .creative.local import run_local
    from .creative.catalog import load_catalog

    config = _pipeline_config(args)
    catalog = load_catalog(args.catalog)
    for err in catalog.errors:
        print(err, file=sys.stderr)
    if args.strict and catalog.errors:
        print(f"backdrop generate: {len(catalog.errors)} bad row(s) in {args.catalog} (--strict): nothing generated", file=sys.stderr)
        _print_summary(args, {"generated": 0, "skipped": 0, "failed": 0, "flagged": 0, "errors": [e.to_dict() for e in catalog.errors]})
        return 1
    if not catalog.products:
        print(f"backdrop generate: no usable product in {args.catalog}", file=sys.stderr)
        _print_summary(args, {"generated": 0, "skipped": 0, "failed": 0, "flagged": 0, "errors": [e.to_dict() for e in catalog.errors]})
        return 1
    products = catalog.products[: args.limit] if args.limit else catalog.products
    from .creative.local import default_categories

    for path, n in sorted(default_categories(products, config).items()):
        print(
            f"backdrop generate: category '{path}' ({n} product{'s' if n != 1 else ''}) matches no style category; "
            "it gets the default styles (add a keyword for it to the style library; `backdrop styles --category` explains)",
            file=sys.stderr,
        )
    from .creative.pipeline import missing_styles

    for category, (missing, have, n) in sorted(missing_styles(products, config).items()):
        print(
            f"backdrop generate: --styles: style category '{category}' ({n} product{'s' if n != 1 else ''}) has no "
            f"{', '.join(repr(m) for m in missing)}; its styles: {', '.join(have)}",
            file=sys.stderr,
        )
    if args.ray:
        from .creative.ray import run_ray

        summary = run_ray(products, config, args.out, address=None if args.ray == "local" else args.ray,
                          progress=not args.no_progress)
    else:
        workers = args.workers or (1 if config.generator == "diffusion" else None)
        summary = run_local(products, config, args.out, workers=workers, progress=not args.no_progress)
    for err in summary.errors:
        print(err, file=sys.stderr)
    summary.errors = catalog.errors + summary.errors
    out = summary.to_dict()
    _print_summary(args, out, store=args.out)
    if summary.environment:  # the machine, not the catalog: never a success
        n = sum(summary.environment.values())
        why = "; ".join(f"{reason} ({count})" for reason, count in summary.environment.items())
        print(f"backdrop generate: {n} creative(s) failed because of the environment, not the data: {why}; "
              f"fix it and run again (what was written is kept)", file=sys.stderr)
        return 3
    if summary.generated + summary.skipped == 0:
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
    from .creative.store import repair_store, verify_store

    report = repair_store(args.store) if args.action == "repair" else verify_store(args.store)
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
    from .styles import StyleLibrary

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
        for c in cats:
            print(f"\n{c['category']}: {', '.join(c['styles'])}")
            if c["keywords"]:
                print(f"  keywords: {', '.join(c['keywords'])}")
            if c["google"]:
                print(f"  google: {'; '.join(c['google'])}")
        return 0
    match = library.match(args.category or "", google_category=args.google_category, product_type=args.product_type)
    out = match.to_dict() | {"suits": {s.name: s.suits for s in match.styles}}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{args.category or '(no category)'} -> {match.category}  [{match.rule}: {match.why}]")
    for s in match.styles:
        print(f"  {s.name:18s} suits {s.suits:9s} {s.description}")
    return 0


def cmd_segment(args) -> int:
    import numpy as np
    from PIL import Image

    from .creative.catalog import check_image, load_image
    from .imaging.mask import alpha_is_meaningful, get_segmenter, object_alpha

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
    from .creative.report import write_contact_sheet
    from .creative.store import CreativeStore

    store = CreativeStore(args.store, readonly=True)
    path = write_contact_sheet(store, args.out)
    n = len(store)
    if args.json:
        print(json.dumps({"report": str(path), "creatives": n}))
    else:
        print(f"wrote {path} ({n} creatives); open it in a browser: file://{path.resolve()}")
    return 0


def cmd_evaluate(args) -> int:
    if args.source == "log":
        return _evaluate_log(args)
    from .bandit import obd

    for name, values, known in (
        ("logs", args.logs, obd.LOGS),
        ("campaigns", args.campaigns, obd.CAMPAIGNS),
        ("policies", args.policies, obd.POLICY_NAMES),
    ):
        unknown = [v for v in values if v not in known]
        if unknown:
            raise BackdropError(f"--{name}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    if not (args.data / "random").is_dir() and not (args.data / "bts").is_dir():
        raise BackdropError(f"--data {args.data}: not the Open Bandit Dataset folder (expected random/ and bts/ inside)")
    records = obd.evaluate_obd(
        args.data,
        logs=args.logs,
        campaigns=args.campaigns,
        policies=args.policies,
        n_boot=args.bootstrap,
        seed=args.seed,
        progress=lambda lg, c: print(f"evaluated {lg}/{c}", file=sys.stderr, flush=True),
    )
    csv_path = obd.write_csv(records, args.out / "obd_estimates.csv")
    png_path = obd.plot(records, args.out / "obd_estimates.png")
    if args.json:
        print(json.dumps(records))
    else:
        print(obd.to_markdown(records))
        print(f"\nwrote {csv_path} and {png_path}")
        print("The sample holds 38-69 clicks per file: the intervals, not the point values, are the result.")
    return 0


def _evaluate_log(args) -> int:
    from .serving import offline
    from .serving.eventlog import open_event_log

    url = args.db or f"sqlite:///{(args.store / 'events.sqlite').resolve()}"
    specs = args.policy or ["linucb:alpha=0.5", "uniform"]
    log = open_event_log(url)
    try:
        records = []
        for spec in specs:
            try:
                factory = offline.parse_policy_spec(spec)
            except ValueError as e:
                raise BackdropError(f"--policy {spec}: {e}") from None
            for r in offline.evaluate_log(
                log, factory, join_window_s=args.join_window, default_reward=args.default_reward,
                n_boot=args.bootstrap, seed=args.seed, grace_s=args.commit_grace,
            ):
                r = dict(r)
                if r["policy"] != "logged":
                    r["policy"] = spec
                if r not in records:
                    records.append(r)
    finally:
        log.close()
    if args.json:
        print(json.dumps(records))
    else:
        print("| policy | estimator | value | 95% interval | n |")
        print("|---|---|---:|---|---:|")
        for r in records:
            print(f"| {r['policy']} | {r['estimator']} | {r['value']:.4f} | [{r['ci_low']:.4f}, {r['ci_high']:.4f}] | {r['n']} |")
    return 0


def cmd_serve(args) -> int:
    import os
    import threading

    import uvicorn

    from .serving.app import create_app
    from .serving.http import HEADER_TIMEOUT_ENV

    settings = _service_settings(args)
    if args.learn and settings.learner_max_lag_s is None:
        settings = settings.model_copy(update={"learner_max_lag_s": 10 * args.learn_interval + 60.0})
    os.environ[HEADER_TIMEOUT_ENV] = str(settings.limits.header_timeout_s)
    stop = threading.Event()
    settings_file = None
    if args.workers == 1:
        app = create_app(settings, learn_interval_s=args.learn_interval if args.learn else None)
    else:  # worker processes build their own app from the settings (a file only this user can read)
        import tempfile

        from .serving.app import SETTINGS_FILE_ENV
        from .serving.eventlog import open_event_log

        # the key travels by the environment the workers inherit, never in a file a crash could leave behind
        data = settings.model_dump(mode="json") | {"api_key": None}
        if settings.api_key is not None:
            os.environ["BACKDROP_API_KEY"] = settings.api_key.get_secret_value()
        fd, settings_file = tempfile.mkstemp(prefix="backdrop-serve-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.environ[SETTINGS_FILE_ENV] = settings_file
        app = "backdrop.serving.app:app_from_settings_file"
        if args.learn:  # the learner runs in this (parent) process; the workers' readiness watches its lag
            log = open_event_log(settings.db_url)
            log.migrate()
            learner = _learner(settings, log)
            threading.Thread(target=learner.run_forever, args=(args.learn_interval, stop), name="backdrop-learner", daemon=True).start()
    workers = f", {args.workers} worker processes" if args.workers > 1 else ""
    print(f"serving {settings.store} on http://{args.host}:{args.port}{workers} (event log: {_redact(settings.db_url)})", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                    workers=args.workers if args.workers > 1 else None, factory=args.workers > 1,
                    http="backdrop.serving.http:HeaderTimeoutProtocol")
    finally:
        stop.set()
        if settings_file is not None:
            Path(settings_file).unlink(missing_ok=True)
    return 0


def _redact(url: str) -> str:
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _learner(settings, log):
    from .serving.learner import Learner

    n = settings.features.n_features
    return Learner(
        log, lambda: settings.policy.make(n), join_window_s=settings.join_window_s,
        default_reward=settings.default_reward, grace_s=settings.commit_grace_s,
    )


def cmd_learn(args) -> int:
    import threading

    from .serving.eventlog import open_event_log

    settings = _service_settings(args)
    log = open_event_log(settings.db_url)
    log.migrate()
    learner = _learner(settings, log)
    try:
        if args.once:
            record = learner.run_once()
            out = {"published": record is not None, "version": record.version if record else log.latest_version(),
                   "learner_offset": record.learner_offset if record else None}
            print(json.dumps(out) if args.json else (f"published model version {out['version']}" if record else "nothing new to learn"))
            return 0
        print(f"learning from {_redact(settings.db_url)} every {args.interval} s (Ctrl-C to stop)", file=sys.stderr)
        learner.run_forever(args.interval, threading.Event())
    finally:
        log.close()
    return 0


def cmd_abtest(args) -> int:
    from .experiments import abtest

    if args.log == "plan":
        if args.baseline_ctr is None or not args.lift:
            raise BackdropError("abtest plan needs --baseline-ctr and --lift (e.g. --baseline-ctr 0.01 --lift 0.05)")
        try:
            plans = [abtest.plan(args.baseline_ctr, lift, args.power, args.alpha, args.arms, args.daily_impressions) for lift in args.lift]
        except ValueError as e:
            raise BackdropError(str(e)) from None
        print(json.dumps(plans) if args.json else abtest.plan_markdown(plans))
        return 0
    imp, planned = _impressions(args.log), None
    if args.planned:
        planned = {}
        for part in args.planned.split(","):
            arm, _, share = part.partition("=")
            try:
                planned[arm.strip()] = float(share)
            except ValueError:
                raise BackdropError(f"--planned {args.planned}: '{part}' is not ARM=SHARE") from None
    try:
        result = abtest.analyze(imp, control=args.control, planned_shares=planned, alpha=args.alpha)
    except ValueError as e:
        raise BackdropError(f"{args.log}: {e}") from None
    ot = abtest.over_time(imp) if imp.at is not None else None
    if args.html:
        from .experiments.report import write_abtest_report

        write_abtest_report(result, ot, args.html)
    print(json.dumps(result) if args.json else abtest.to_markdown(result))
    if result["srm"].get("warning"):
        print(f"WARNING: {result['srm']['warning']}", file=sys.stderr)
    return 0


def _impressions(source: str):
    """Impressions from a CSV/Parquet file or the service's event log."""
    from .experiments import abtest

    path = Path(source)
    if source.startswith(("postgresql://", "postgres://")) or path.is_dir() or path.suffix in (".sqlite", ".db"):
        from .experiments.study import impressions_from_log

        if path.is_dir():
            path = path / "events.sqlite"
            if not path.is_file():
                raise BackdropError(f"{source}: no events.sqlite in this directory (is it a store the service ran on?)")
            source = str(path)
        elif not source.startswith("postgres") and not path.is_file():
            raise BackdropError(f"{source}: no such event log")
        imp, _ = impressions_from_log(source)
        if not len(imp):
            raise BackdropError(f"{source}: no decisions with an experiment arm (configure `experiment` in the service settings)")
        return imp
    if not path.is_file():
        raise BackdropError(f"{source}: no such file")
    return abtest.load_impressions(path)


def cmd_study(args) -> int:
    from pydantic import ValidationError

    from .experiments.study import StudyConfig, run_study

    try:
        config = StudyConfig(impressions=args.impressions, base_ctr=args.base_ctr, generated_lift=args.generated_lift,
                             style_spread=args.style_spread, personal_spread=args.personal_spread, seed=args.seed)
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
    if args.json:
        print(json.dumps(result, default=float))
        return 0
    print(result["note"])
    from .experiments.abtest import to_markdown

    print(to_markdown(result["table"]))
    print("| ablation | lift [95% CI] | p | true lift | covered |")
    print("|---|---|---:|---:|---|")
    for a in result["ablations"]:
        print(f"| {a['ablation']} | {a['lift']:+.1%} [{a['ci_low']:+.1%}, {a['ci_high']:+.1%}] | {a['p']:.4f} | {a['true_lift']:+.1%} | {'yes' if a['covered'] else 'NO'} |")
    print(f"\nreport: {args.out / 'report.html'} ({result['seconds']['total']} s, {result['impressions_per_s']} impressions/s)")
    return 0


def cmd_cost(args) -> int:
    from .experiments import cost

    inputs = {"styles": args.styles, "gpu_hour_usd": args.gpu_hour_usd, "regeneration_rate": args.regeneration_rate}
    for key in ("placements", "gpu_images_per_s", "decisions_per_s_per_core"):
        if getattr(args, key) is not None:
            inputs[key] = getattr(args, key)
    if args.decisions_per_s_per_core is None:
        measured = _measured_decisions_per_core()
        if measured is not None:
            inputs["decisions_per_s_per_core"], inputs["decisions_per_s_per_core_source"] = measured
    if args.decisions_per_day is not None:
        inputs["decisions_per_day"] = args.decisions_per_day
    store = args.store
    if args.products is None:
        estimates = cost.table(store=store, **inputs)
        print(json.dumps([e.to_dict() for e in estimates]) if args.json else cost.table_markdown(estimates))
        return 0
    if "decisions_per_day" not in inputs:
        inputs["decisions_per_day"] = 10.0 * args.products
    e = cost.estimate(cost.CostInputs(products=args.products, **inputs), store=store)
    print(json.dumps(e.to_dict()) if args.json else e.to_markdown())
    return 0


def _measured_decisions_per_core():
    """(decisions/s per core, source) from benchmarks/RESULTS.md's bench_serve section, if it is there."""
    import re

    results = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"
    try:
        text = results.read_text()
    except OSError:
        return None
    m = re.search(r"decisions/s per core: \*\*([\d,.]+)\*\*", text)
    if not m:
        return None
    return float(m.group(1).replace(",", "")), "measured by benchmarks/bench_serve.py (closed loop, one SQLite replica)"


def cmd_simulate(args) -> int:
    from pydantic import ValidationError

    from .bandit import simulator
    from .errors import ConfigError

    overrides = {
        k: v
        for k, v in {
            "base_ctr": args.base_ctr,
            "generated_lift": args.generated_lift,
            "style_spread": args.style_spread,
            "personal_spread": args.personal_spread,
            "n_users": args.users,
            "delay_mean": args.delay,
            "update_every": args.update_every,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    unknown = [b for b in args.baselines if b not in simulator.BASELINES]
    if unknown:
        raise ConfigError(f"--baselines: unknown {', '.join(unknown)}; known: {', '.join(simulator.BASELINES)}")
    try:
        config = simulator.preset(args.preset, **overrides)
        policies = simulator.policy_factories(args.policies)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    except ValueError as e:
        raise ConfigError(str(e)) from None
    result = simulator.simulate(
        policies, config, n_rounds=args.rounds, baselines=args.baselines,
        progress=lambda name, sec: print(f"simulated {name} in {sec:.1f} s", file=sys.stderr, flush=True),
    )
    plot = result.plot(args.plot)
    if args.json:
        print(json.dumps(result.to_dict(curves=False)))
    else:
        print(result.to_markdown())
        print(f"\nwrote {plot}")
    return 0


def cmd_demo(args) -> int:
    import time

    from .creative.local import run_local
    from .creative.catalog import load_catalog
    from .creative.report import write_contact_sheet
    from .creative.store import CreativeStore

    t0 = time.perf_counter()
    ns = argparse.Namespace(
        placements=None, placements_file=None, styles=None, style_library=None, generator="procedural",
        segmenter="auto", seed=args.seed, format="png",
    )
    config = _pipeline_config(ns, placement_names=DEMO_PLACEMENTS, max_styles=DEMO_STYLES_PER_PRODUCT)
    catalog = load_catalog(DEMO_DIR / "products.csv")
    for err in catalog.errors:
        print(err, file=sys.stderr)
    store_dir = args.out / "store"
    summary = run_local(catalog.products, config, store_dir, workers=args.workers, progress=not args.no_progress)
    for err in summary.errors:
        print(err, file=sys.stderr)
    report = write_contact_sheet(CreativeStore(store_dir, readonly=True), args.out / "report.html", title="Backdrop demo")
    elapsed = time.perf_counter() - t0
    out = summary.to_dict() | {"report": str(report), "store": str(store_dir), "products": len(catalog.products), "seconds": round(elapsed, 2)}
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"demo: {len(catalog.products)} products x {len(DEMO_PLACEMENTS)} placements x {DEMO_STYLES_PER_PRODUCT} styles: "
            f"generated {summary.generated}, skipped {summary.skipped}, failed {summary.failed}, "
            f"flagged by QA {summary.flagged} in {elapsed:.1f} s"
        )
        print(f"open the report: file://{report.resolve()}")
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
