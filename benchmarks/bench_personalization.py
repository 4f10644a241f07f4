"""Personalization at realistic traffic: the learners against fair baselines, across worlds and seeds,
and what any learner could do with that much data.

    python benchmarks/bench_personalization.py [--quick] [--no-write]

Three parts, each on the simulator (``backdrop.bandit.simulator``; expected CTR, so no click noise):

1. **Worlds x seeds at 100k rounds**: the default policy (PooledUCB) and LinUCB against the catalog
   image, a random style, the non-personalized bandit (Thompson sampling per category x style) and the
   best single style in hindsight, over the run and its last 50k rounds; mean +- sd over seeds, in the
   paper world and in worlds where quality or tastes are shared (``PRESETS``).
2. **300k rounds, paper world**: the same lifts over rounds 250k-300k.
3. **What the data allows** (paper world): two estimators fitted on *uniformly random* traffic
   (the most informative data a learner could get for free, no exploration cost) and evaluated
   greedily on fresh impressions against the best single style, at 25k-300k impressions:
   PooledUCB's own model, and a near-Bayes-optimal one *told the world's structure and effect
   variances* (one-hot category x style, segment x style, segment x category x style, placement x
   category x style, device and age x style, product; ridge with the true prior variances). A
   learner's *cumulative* lift at N rounds averages this curve from 0 to N, minus what its
   exploration costs, so the curve at N bounds what a run of N rounds can show.

5. **HybridLinUCB as the service builds it** (``--only hybrid`` runs just this): the library's style
   attributes as arm features, a shared block over the bias and the declared user fields
   (``bandit.policies.sharing``), against the default learner, in the paper and attribute-tastes worlds.

4. **The closed loop** (``--only loop`` runs just this): every 10k rounds each category's best styles
   breed a variant and hopeless ones retire (``simulator.evolution``); the default learner with the
   loop against itself without it, on the same impressions and clicks, per seed, in the paper and
   shared worlds, at variant-parent quality correlations 0.7 and 0.4; mean and 95% t-interval.

BLAS runs on one thread (``bandit.threads``; small matrices run ~10x slower with more on this box).
Writes the ``bench_personalization`` and ``bench_closed_loop`` sections of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import update_section
from backdrop.bandit.policies import PooledUCB
from backdrop.bandit.simulator import ClickModel, Population, preset, simulate
from backdrop.bandit.simulator.results import summarize, summary_markdown
from backdrop.bandit.simulator.runner import POLICY_FACTORIES
from backdrop.bandit.threads import small_matrices

WORLDS = ("paper", "shared-quality", "attribute-tastes", "shared")
POLICIES = ("pooled-ucb", "linucb")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def worlds_table(rounds: int, seeds: list[int], worlds=WORLDS, policies=POLICIES) -> tuple[str, dict]:
    out, raw = [], {}
    for world in worlds:
        results = []
        for seed in seeds:
            t = time.perf_counter()
            cm = ClickModel(Population(preset(world, seed=seed)))
            results.append(simulate({p: POLICY_FACTORIES[p] for p in policies}, click_model=cm, n_rounds=rounds, seed=seed))
            log(f"{world} seed {seed}: {time.perf_counter() - t:.0f} s")
        rows = summarize(results)
        raw[world] = rows
        out.append(f"**{world}** ({rounds:,} rounds, seeds {', '.join(map(str, seeds))})\n\n{summary_markdown(rows, results[0].window)}\n")
    return "\n".join(out), raw


# -- what the data allows ---------------------------------------------------------------------------


def _uniform_log(cm: ClickModel, n: int, rng: np.random.Generator):
    pop = cm.population
    batch = pop.sample_impressions(n, rng)
    _, P, S = cm.probabilities(batch)
    k = (rng.random(n) * (~np.isnan(P)).sum(axis=1)).astype(np.intp)
    rows = np.arange(n)
    reward = (rng.random(n) < P[rows, k]).astype(np.float64)
    return batch, S[rows, k], reward


def _structure(pop, batch) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """One-hot columns of every term the click model has (what the told estimator is given)."""
    u, i, pl = batch.user, batch.product, batch.placement
    c, seg = pop.product_category[i], pop.user_segment[u]
    nc, ns, npl = len(pop.categories), len(pop.segments), len(pop.placements)
    n = len(u)

    def onehot(idx, k):
        m = np.zeros((n, k))
        m[np.arange(n), idx] = 1.0
        return m

    blocks = [
        ("bias", np.ones((n, 1))),
        ("category", onehot(c, nc)),
        ("segment", onehot(seg, ns)),
        ("segment_category", onehot(seg * nc + c, ns * nc)),
        ("placement_category", onehot(pl * nc + c, npl * nc)),
        ("device", onehot(pop.categorical["device"][u], len(pop.config.fields["device"].values))),
        ("age", pop.numeric["age"][u][:, None]),
        ("segment_category_placement", onehot((seg * nc + c) * npl + pl, ns * nc * npl)),
        ("product", onehot(i, len(pop.products))),
    ]
    return np.hstack([b for _, b in blocks]), [(name, b.shape[1]) for name, b in blocks]


def _true_prior_sd(cm: ClickModel) -> dict[str, float]:
    """The sd of each term's effect on the click rate (logit sd x dp/dlogit at the mean rate)."""
    w, p = cm._w, cm.config.base_ctr * 1.15  # about the generated creatives' rate
    slope = p * (1 - p)
    field = {k: v[0] for k, v in cm.T_field.items()}
    return {
        "bias": cm.k_style * slope / 2,
        "category": cm.k_style * slope,
        "segment": cm.k_personal * w["segment"] * slope,
        "segment_category": cm.k_personal * w["segment_category"] * slope,
        "placement_category": cm.k_personal * w["placement_category"] * slope,
        "device": cm.k_personal * field.get("device", 0.0) * slope,
        "age": cm.k_personal * field.get("age", 0.0) * slope,
        "segment_category_placement": cm.k_personal * w["segment_category_placement"] * slope,
        "product": 1e-6,  # the same for every style: nothing to learn per style
    }


def _greedy_value(cm, test, P_test, scores_fn) -> float:
    pop = cm.population
    groups = pop.product_set[test.product]
    choice = np.empty(len(groups), dtype=np.intp)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        choice[idx] = scores_fn(idx, pop.style_sets[g]).argmax(axis=1)
    best = cm._positions_of_table()[groups]
    rows = np.arange(len(groups))
    return float(P_test[rows, choice].mean() / P_test[rows, best].mean() - 1)


def learnable(seed: int, sizes: list[int]) -> dict[str, list[float]]:
    """Greedy lift over the best single style of the two estimators, fitted on ``sizes`` uniform impressions."""
    cm = ClickModel(Population(preset("paper", seed=seed)))
    pop = cm.population
    enc = pop.encoder()
    rng = np.random.default_rng(1000 + seed)
    test = pop.sample_impressions(20_000, rng)
    _, P_test, _ = cm.probabilities(test)
    X_test = enc.encode_many(pop.contexts(test))
    Z_test, layout = _structure(pop, test)
    batch, arm_ids, reward = _uniform_log(cm, max(sizes), rng)
    X = enc.encode_many(pop.contexts(batch))
    Z, _ = _structure(pop, batch)
    arms = [pop.style_names[a] for a in arm_ids]
    sd = _true_prior_sd(cm)
    prior_var = np.concatenate([[sd[name] ** 2] * k for name, k in layout])
    noise = reward.mean() * (1 - reward.mean())
    out: dict[str, list[float]] = {"PooledUCB model": [], "told the structure": []}
    pooled = PooledUCB(n_features=enc.n_features, blocks=enc.blocks, seed=seed)
    done = 0
    for n in sizes:
        for s in range(done, n, 5000):
            e = min(s + 5000, n)
            pooled.update_many(X[s:e], arms[s:e], reward[s:e])
        done = n

        def pooled_scores(idx, styles):
            rows = pooled._indices(styles)
            return X_test[idx] @ pooled.theta[rows].T

        out["PooledUCB model"].append(_greedy_value(cm, test, P_test, pooled_scores))
        # the told estimator: a shared ridge on all terms, each style's deviation with the true variances
        Zn, rn, an = Z[:n], reward[:n], arm_ids[:n]
        beta = np.linalg.solve(Zn.T @ Zn + np.eye(Z.shape[1]) * noise / 0.02**2, Zn.T @ rn)
        theta = np.tile(beta, (len(pop.style_names), 1))
        for a in np.unique(an):
            m = an == a
            Za = Zn[m]
            theta[a] = beta + np.linalg.solve(Za.T @ Za + np.diag(noise / prior_var), Za.T @ (rn[m] - Za @ beta))

        def told_scores(idx, styles, theta=theta):
            return Z_test[idx] @ theta[[pop.style_index[s] for s in styles]].T

        out["told the structure"].append(_greedy_value(cm, test, P_test, told_scores))
        log(f"learnable seed {seed} n={n:,}: {out['PooledUCB model'][-1]:+.2%} / {out['told the structure'][-1]:+.2%}")
    return out


def learnable_table(seeds: list[int], sizes: list[int]) -> str:
    curves = [learnable(s, sizes) for s in seeds]
    head = "| estimator, fitted on uniform traffic | " + " | ".join(f"{n // 1000}k" for n in sizes) + " |"
    lines = [head, "|---|" + "--:|" * len(sizes)]
    for name in curves[0]:
        vals = np.array([c[name] for c in curves])
        cells = [f"{m:+.1%} ± {s:.1%}" for m, s in zip(vals.mean(axis=0), vals.std(axis=0, ddof=1), strict=True)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loop_section(rounds: int, seeds: list[int]) -> str:
    from backdrop.bandit.simulator.evolution import EvolutionSettings, compare

    lines = [
        "| world | correlation | loop on vs off, whole run | last half | variants bred per run | better than their parent | retired per run |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    t0 = time.perf_counter()
    for world in ("paper", "shared"):
        for corr in (0.7, 0.4):
            out = compare(POLICY_FACTORIES["pooled-ucb"], preset(world), rounds, seeds, EvolutionSettings(every=10_000, correlation=corr))
            runs = out["runs"]
            cells = [f"{v['mean']:+.2%} [{v['ci_low']:+.2%}, {v['ci_high']:+.2%}]" for v in (out["lift"], out["lift_last_half"])]
            bred = np.mean([r["bred"] for r in runs])
            better = np.mean([r["bred_better_than_parent"] / max(r["bred"], 1) for r in runs])
            retired = np.mean([r["retired"] for r in runs])
            lines.append(f"| {world} | {corr} | {cells[0]} | {cells[1]} | {bred:.0f} | {better:.0%} | {retired:.0f} |")
            log(f"loop {world} corr {corr}: {out['lift']['mean']:+.2%}")
    return f"""## The closed loop on the simulator (`bench_personalization.py --only loop`)

`backdrop simulate --evolve 10000`: every 10k rounds, in each category, the two styles with the best
click rate so far (Beta posterior of the delivered feedback, at least 300 impressions) breed a variant
each (quality = correlation x the parent's + noise, in the unit of the style effect; the parent's
tastes), and styles whose 95% interval lies wholly below the best's retire (at most 12 in rotation,
at least 2). The default learner (`pooled-ucb`, which starts a variant from half its parent's edge)
with the loop against itself without it, on the same impressions and clicks: the lift of expected
CTR, mean and 95% t-interval over seeds {", ".join(map(str, seeds))}, {rounds:,} rounds each. Run time {time.perf_counter() - t0:.0f} s.

{chr(10).join(lines)}
"""


def hybrid_section(rounds: int, seeds: list[int]) -> str:
    t0 = time.perf_counter()
    table, _ = worlds_table(rounds, seeds, worlds=("paper", "attribute-tastes"), policies=("pooled-ucb", "hybrid-linucb"))
    return f"""## HybridLinUCB over the style library's attributes (`bench_personalization.py --only hybrid`)

`--policy hybrid-linucb` as the service builds it (`bandit.policies.sharing.hybrid_sharing`): every arm
described by its style's attributes (scene, surface, palette, podium, light, season; the overlay), the
shared block kron(attributes, bias and declared user fields), each arm's own model over the whole
context; alpha 0.1, epsilon 0.05, l2 1. Against the default learner on the same impressions and clicks,
lifts as in the section above (mean ± sd over seeds). BLAS on one thread. Run time {time.perf_counter() - t0:.0f} s.

{table}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20k/60k rounds, 2 seeds, small curves (~2 min)")
    ap.add_argument("--only", choices=["learners", "loop", "hybrid"], help="one section (default: learners and loop)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    if args.only == "hybrid":
        with small_matrices():
            md = hybrid_section(20_000 if args.quick else 100_000, [1, 2] if args.quick else [1, 2, 3])
        print(md)
        if not args.no_write:
            update_section("bench_hybrid", md)
        return 0
    if args.only != "learners":
        with small_matrices():
            md = loop_section(20_000 if args.quick else 100_000, [1, 2] if args.quick else [1, 2, 3, 4, 5])
        print(md)
        if not args.no_write:
            update_section("bench_closed_loop", md)
        if args.only == "loop":
            return 0
    rounds, long_rounds = (20_000, 60_000) if args.quick else (100_000, 300_000)
    seeds = [1, 2] if args.quick else [1, 2, 3]
    sizes = [5_000, 10_000, 20_000] if args.quick else [25_000, 50_000, 100_000, 200_000, 300_000]
    t0 = time.perf_counter()
    with small_matrices():
        worlds, _ = worlds_table(rounds, seeds)
        long, _ = worlds_table(long_rounds, seeds, worlds=("paper",))
        bound = learnable_table(seeds, sizes)
        t = time.perf_counter()
        cm = ClickModel(Population(preset("paper")))
        simulate({p: POLICY_FACTORIES[p] for p in POLICIES}, click_model=cm, n_rounds=100_000)
        sim_s = time.perf_counter() - t
    md = f"""## Personalization at realistic traffic (`bench_personalization.py`)

Simulator worlds (`backdrop simulate --preset ...`), expected CTR (no click noise); each cell is the mean ± sd
over seeds of the policy's lift against a reference: a random style, the non-personalized bandit
(Beta Thompson sampling per category x style), the best single style per category in hindsight; the
last two columns over the run's last 50k rounds only. Policies: `pooled-ucb` (the service's default,
`bandit.PooledUCB`) and `linucb` (alpha 0.1, epsilon 0.05, l2 1: the default before issue 29). BLAS on
one thread. Run time {time.perf_counter() - t0:.0f} s.

### Worlds x seeds

{worlds}

### Long runs (the window is rounds {long_rounds - min(50_000, long_rounds // 2):,}-{long_rounds:,})

{long}

### What the data allows (paper world)

Greedy lift over the best single style of two estimators fitted on uniformly random traffic (no
exploration cost), mean ± sd over seeds {", ".join(map(str, seeds))}. A learner's cumulative lift over N rounds
averages such a curve from 0 to N and pays for its exploration on top, so at the paper's effects no
learner can be level with the best single style over the first 100k rounds.

{bound}

`backdrop simulate --preset paper --rounds 100000` (5 baselines, pooled-ucb and linucb, seed 0):
{sim_s:.1f} s of simulation (target < 30 s).
"""
    print(md)
    if not args.no_write:
        update_section("bench_personalization", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
