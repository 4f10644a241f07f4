"""The bandit commands: evaluate (obd, log) and simulate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import BackdropError
from ._common import Formatter as _Formatter
from ._common import csv_list as _csv_list
from ._common import existing_event_log
from ._common import positive_int as _positive_int

#: ``bandit.simulator``'s presets and learners, spelled out so that ``--help`` does not load numpy
#: (a test checks they match)
SIM_PRESETS = ["paper", "strong", "shared-quality", "attribute-tastes", "shared"]
SIM_POLICIES = ["pooled-ucb", "linucb", "hybrid-linucb", "lints", "epsilon-greedy", "ucb1"]


def register(sub) -> dict:
    """Add this group's commands to ``sub``; returns command -> handler."""
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
        "--policies",
        type=_csv_list,
        default="linucb,lints,epsilon-greedy,uniform,best-fixed-arm",
        metavar="A,B",
        help="evaluation policies",
    )
    eo.add_argument("--bootstrap", type=_positive_int, default=500, help="bootstrap replicates per interval")
    eo.add_argument("--seed", type=int, default=0)
    eo.add_argument("--json", action="store_true", help="print the records as a JSON list on stdout")

    el = evsub.add_parser(
        "log",
        help="the decision service's own event log",
        formatter_class=_Formatter,
        description=(
            "What would another policy have earned on the decisions the service logged? Walks the log in order;\n"
            "the candidate scores each logged context (its probability of every offered style), then learns\n"
            "from the logged choice and reward, as it would have online. IPS, SNIPS and DR with bootstrap\n"
            "intervals, next to the served policy's own CTR. Decisions whose join window is still open are skipped.\n"
            "With --store the non-personalized bandit (a retailer's per-category A/B winner-picking) is one of\n"
            "the candidates: what personalization adds is the difference."
        ),
    )
    el_db = el.add_mutually_exclusive_group(required=True)
    el_db.add_argument("--db", metavar="URL", help="event log: postgresql://... or an sqlite path")
    el_db.add_argument("--store", type=Path, metavar="STORE", help="use the store's embedded SQLite log")
    el.add_argument(
        "--policy",
        action="append",
        metavar="SPEC",
        default=None,
        help="candidate, e.g. linucb:alpha=0.5,epsilon=0.05, or bandit: the non-personalized bandit (Thompson sampling "
        "per category x style; needs --store) (repeatable; default: pooled-ucb, with --store bandit, and uniform)",
    )
    el.add_argument("--join-window", type=float, default=600.0, help="seconds a reward may take to arrive")
    el.add_argument("--default-reward", type=float, default=0.0)
    el.add_argument("--commit-grace", type=float, default=5.0, help="and this long more, for slow commits (as the learner)")
    el.add_argument("--bootstrap", type=_positive_int, default=500)
    el.add_argument("--seed", type=int, default=0)
    el.add_argument("--json", action="store_true")

    sm = sub.add_parser(
        "simulate",
        help="simulate an ad audience and compare style-choosing policies",
        formatter_class=_Formatter,
        description=(
            "Run bandit policies on a synthetic audience (the demo catalog, its styles and placements) with\n"
            "logistic clicks and delayed, batched feedback; every policy sees the same impressions and click\n"
            "draws. Prints each policy's expected CTR against the catalog image, a random style, a\n"
            "non-personalized bandit (Thompson sampling per category x style: what an A/B-testing retailer\n"
            "would run) and the best single style in hindsight, over the whole run and over its last 50k\n"
            "rounds, and writes a plot. With --seeds, one run per seed and the mean +- sd over them.\n\n"
            "Worlds (--preset): paper (default) = the paper's effects (+15% generated vs catalog image, +10%\n"
            "best style vs a random one, +10% each impression's best style vs the best single style) at a 2%\n"
            "CTR, every category ranking its styles independently; shared-quality = a style's quality 70%\n"
            "the same in every category (half of it carried by its attributes: scene, surface, palette,\n"
            "podium, light); attribute-tastes = segments and placements with tastes for attributes; shared =\n"
            "both; strong = 10% CTR, +20% style spread, +50% personal spread (learning shows in a few\n"
            "thousand rounds). The effect flags override the preset.\n\n"
            "At the paper's effects telling two styles apart takes ~10^5 impressions, so every learner trails\n"
            "the best single style for the first 100k-300k rounds: benchmarks/RESULTS.md has the figures and\n"
            "what any learner could do with that much data."
        ),
    )
    sm.add_argument("--rounds", type=_positive_int, default=20000)
    sm.add_argument("--preset", default="paper", choices=SIM_PRESETS)
    sm.add_argument(
        "--policies",
        type=_csv_list,
        default=",".join(SIM_POLICIES[:2]),
        metavar="A,B",
        help=f"learners: {', '.join(SIM_POLICIES)}",
    )
    sm.add_argument(
        "--baselines",
        type=_csv_list,
        default="original,uniform,bandit,best-fixed,oracle",
        metavar="A,B",
        help="original (catalog image), uniform (random style), bandit (non-personalized Thompson sampling per "
        "category x style), best-fixed (best single style in hindsight), oracle",
    )
    sm.add_argument("--base-ctr", type=float, help="CTR of the plain catalog image")
    sm.add_argument("--generated-lift", type=float, help="relative lift of a random generated style over the catalog image")
    sm.add_argument("--style-spread", type=float, help="relative lift of the best fixed style over a random style")
    sm.add_argument("--personal-spread", type=float, help="relative lift of each impression's best style over the best fixed style")
    sm.add_argument("--users", type=_positive_int, help="audience size")
    sm.add_argument("--delay", type=float, help="mean feedback delay, in rounds")
    sm.add_argument("--update-every", type=_positive_int, help="rounds between batched policy updates")
    sm.add_argument("--seed", type=int, default=0, help="the world's and the run's seed")
    sm.add_argument(
        "--seeds", type=_csv_list, metavar="A,B", help="several worlds and runs, one per seed (e.g. 1,2,3): mean +- sd over them"
    )
    sm.add_argument(
        "--evolve",
        type=_positive_int,
        metavar="ROUNDS",
        help="the closed loop: every ROUNDS rounds each category's best styles (so far) breed a variant and hopeless ones "
        "retire; prints what the loop adds to the first --policies learner (same impressions and clicks without it), per seed "
        "and with a 95%% interval over --seeds",
    )
    sm.add_argument("--plot", type=Path, default=Path("simulate.png"), help="PNG: cumulative regret and CTR over time")
    sm.add_argument("--json", action="store_true", help="print the per-policy records as JSON on stdout")

    return {"evaluate": cmd_evaluate, "simulate": cmd_simulate}


def cmd_evaluate(args) -> int:
    if args.source == "log":
        return _evaluate_log(args)
    from ..bandit import obd

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


def _categories(store: Path) -> dict[str, str]:
    from ..creative.store import CreativeStore

    st = CreativeStore(store.resolve(), readonly=True)
    try:
        return {p["product_id"]: p["category"] for p in st.products()}
    finally:
        st.close()


def _evaluate_log(args) -> int:
    from ..serving import offline
    from ..serving.eventlog import open_event_log

    url = existing_event_log(args.db or str(args.store))
    bandit = offline.CATEGORY_BANDIT
    specs = args.policy or ["pooled-ucb", *([bandit] if args.store else []), "uniform"]
    category_of = _categories(args.store) if args.store and bandit in specs else None
    log = open_event_log(url)
    try:
        records = []
        for spec in specs:
            arm_key = None
            if spec == bandit:
                if category_of is None:
                    raise BackdropError(f"--policy {bandit}: needs --store (the products' categories), not --db")
                factory, arm_key = offline.category_bandit(category_of)
            else:
                try:
                    factory = offline.parse_policy_spec(spec)
                except ValueError as e:
                    raise BackdropError(f"--policy {spec}: {e}") from None
            for r in offline.evaluate_log(
                log,
                factory,
                join_window_s=args.join_window,
                default_reward=args.default_reward,
                n_boot=args.bootstrap,
                seed=args.seed,
                grace_s=args.commit_grace,
                arm_key=arm_key,
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


def cmd_simulate(args) -> int:
    from pydantic import ValidationError

    from ..bandit import simulator
    from ..errors import ConfigError

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

    def progress(name: str, sec: float) -> None:
        print(f"simulated {name} in {sec:.1f} s", file=sys.stderr, flush=True)

    if args.evolve:
        return _simulate_evolution(args, config, policies)
    if args.seeds:
        return _simulate_seeds(args, config, policies, progress)
    result = simulator.simulate(policies, config, n_rounds=args.rounds, baselines=args.baselines, progress=progress)
    plot = result.plot(args.plot)
    if args.json:
        print(json.dumps(result.to_dict(curves=False)))
    else:
        print(result.to_markdown())
        print(f"\nwrote {plot}")
    return 0


def _seeds(args) -> list[int]:
    from ..errors import ConfigError

    if not args.seeds:
        return [args.seed]
    try:
        return [int(s) for s in args.seeds]
    except ValueError:
        raise ConfigError(f"--seeds: give whole numbers separated by commas, got {','.join(args.seeds)}") from None


def _simulate_evolution(args, config, policies) -> int:
    from ..bandit.simulator.evolution import EvolutionSettings, compare

    name, factory = next(iter(policies.items()))
    seeds = _seeds(args)
    print(f"{name}, the loop on and off, {len(seeds)} seed(s) x {args.rounds:,} rounds ...", file=sys.stderr, flush=True)
    out = compare(factory, config, args.rounds, seeds, EvolutionSettings(every=args.evolve))
    if args.json:
        print(json.dumps({"policy": name} | out))
        return 0
    print("| seed | loop on vs off | last half | variants bred | better than their parent | styles retired |\n|--:|--:|--:|--:|--:|--:|")
    for r in out["runs"]:
        print(
            f"| {r['seed']} | {r['lift']:+.2%} | {r['lift_last_half']:+.2%} | {r['bred']} | {r['bred_better_than_parent']} | {r['retired']} |"
        )
    for key, label in (("lift", "over the run"), ("lift_last_half", "over its last half")):
        v = out[key]
        interval = f", 95% interval [{v['ci_low']:+.2%}, {v['ci_high']:+.2%}]" if len(seeds) > 1 else " (one seed: no interval)"
        print(f"\n{name} with the loop {label}: {v['mean']:+.2%} expected CTR{interval}")
    return 0


def _simulate_seeds(args, config, policies, progress) -> int:
    """One world and run per seed; the mean +- sd table (the plot is the first seed's)."""
    from ..bandit import simulator
    from ..bandit.simulator.results import summarize, summary_markdown

    seeds = _seeds(args)
    results = []
    for seed in seeds:
        print(f"seed {seed}:", file=sys.stderr, flush=True)
        world = simulator.SimulationConfig(**(config.model_dump() | {"seed": seed}))
        results.append(simulator.simulate(policies, world, n_rounds=args.rounds, baselines=args.baselines, progress=progress))
    plot = results[0].plot(args.plot, title=f"seed {seeds[0]}")
    rows = summarize(results)
    if args.json:
        print(json.dumps({"rounds": args.rounds, "seeds": seeds, "window": results[0].window, "policies": rows}))
    else:
        print(summary_markdown(rows, results[0].window))
        print(f"\nmean ± sd over seeds {', '.join(map(str, seeds))}; wrote {plot} (seed {seeds[0]})")
    return 0
