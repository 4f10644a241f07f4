"""The closed loop on the simulator: winning styles breed variants, losing ones retire, and what it is worth.

Every ``every`` rounds, in each category, the styles with the best click rates so far (a Beta
posterior on the feedback delivered) breed a variant each (``STYLE__sN``: a new arm, named so that
a learner that knows lineage, ``PooledUCB``, starts it from its parent), and the styles whose 95%
interval lies wholly below the best style's leave the rotation. A variant's quality is its parent's
times ``correlation`` plus fresh noise (in the unit of the style effect, so correlation 0.7 and a
parent one sd above its category's average make a child expected 0.7 sd above it, with sd 0.71
around that); its personal tastes are its parent's. With ``settings=None`` the same impressions
and clicks are served from the original styles only: the loop's worth is the difference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from ...styles.evolve import VARIANT_OF
from ..features import FeatureEncoder
from ..policies import Policy
from ..threads import small_matrices
from .clicks import ClickModel
from .config import SimulationConfig
from .feedback import DelayedFeedback, sample_delays
from .population import Population
from .runner import build_policy
from .seeds import rng_stream


@dataclass(frozen=True)
class EvolutionSettings:
    """When and how the loop breeds and retires."""

    every: int = 10_000  # rounds between steps
    parents: int = 2  # winners per category bred at each step
    correlation: float = 0.7  # of a variant's quality with its parent's
    min_impressions: int = 300  # delivered impressions before a style is judged, in its category
    retire: bool = True
    max_arms: int = 12  # active styles per category at most

    def __post_init__(self):
        if self.every < 1 or self.parents < 0 or not 0 <= self.correlation <= 1 or self.max_arms < 2:
            raise ValueError("need every >= 1, parents >= 0, 0 <= correlation <= 1 and max_arms >= 2")


@dataclass
class LoopRun:
    """One run: the expected reward per round and what each step bred and retired."""

    p: np.ndarray
    steps: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def run_loop(
    factory: Callable[..., Policy],
    click_model: ClickModel,
    n_rounds: int,
    seed: int,
    settings: EvolutionSettings | None,
    encoder: FeatureEncoder | None = None,
    update_every: int | None = None,
    delay_mean: float | None = None,
) -> LoopRun:
    """Serve ``n_rounds`` impressions with the policy ``factory(n_features=..., seed=...)`` makes, the loop
    on (``settings``) or off (None). Impressions, click draws and delays are those of :func:`simulate`
    with the same seed (common random numbers)."""
    with small_matrices():
        return _run(factory, click_model, n_rounds, seed, settings, encoder, update_every, delay_mean)


def _run(factory, cm, n, seed, settings, encoder, update_every, delay_mean) -> LoopRun:
    t0 = time.perf_counter()
    pop, config = cm.population, cm.config
    update_every = update_every or config.update_every
    delay_mean = config.delay_mean if delay_mean is None else delay_mean
    encoder = encoder or pop.encoder()
    batch = pop.sample_impressions(n, rng_stream(seed, "run", "impressions"))
    u_click = rng_stream(seed, "run", "clicks").random(n)
    delays = sample_delays(n, delay_mean, rng_stream(seed, "run", "delays"))
    _, P, _ = cm.probabilities(batch)
    logit_p = special.logit(np.clip(P, 1e-12, 1 - 1e-12))
    X = encoder.encode_many(pop.contexts(batch))
    cat, sets = pop.product_category[batch.product], pop.product_set[batch.product]
    keys = cat * len(pop.style_sets) + sets
    # per (category, style set): the arms in rotation, and per arm its root column and its quality m
    active: dict[int, list[str]] = {}
    root: dict[int, dict[str, int]] = {}
    quality: dict[int, dict[str, float]] = {}
    for key in np.unique(keys).tolist():
        c, g = divmod(key, len(pop.style_sets))
        styles = pop.style_sets[g]
        active[key] = list(styles)
        root[key] = {s: k for k, s in enumerate(styles)}
        quality[key] = {s: float(cm.m[c, pop.arm_base[pop.style_index[s]]]) for s in styles}
    stats: dict[tuple[int, str], list[float]] = {}  # (key, arm) -> [delivered impressions, clicks]
    policy = build_policy(factory, encoder, seed)
    queue = DelayedFeedback()
    shown: list[str] = [""] * n
    p = np.empty(n)
    run = LoopRun(p)
    for start in range(0, n, update_every):
        stop = min(start + update_every, n)
        if settings is not None and start and start % settings.every < update_every:
            run.steps.append(_step(start, active, root, quality, stats, settings, seed, pop, cm))
        block = keys[start:stop]
        for key in np.unique(block).tolist():
            rows = start + np.flatnonzero(block == key)
            arms = tuple(active[key])
            cols = np.array([root[key][a] for a in arms])
            shift = cm.k_style * (np.array([quality[key][a] for a in arms]) - np.array([quality[key][_root_name(a)] for a in arms]))
            probs = special.expit(logit_p[rows][:, cols] + shift)
            chosen = np.asarray(_indices(policy.choose_many(X[rows], arms)))
            p[rows] = probs[np.arange(len(rows)), chosen]
            for t, k in zip(rows.tolist(), chosen.tolist(), strict=True):
                shown[t] = arms[k]
        for t in range(start, stop):
            queue.push(t + int(delays[t]), t)
        due = queue.pop_due(stop - 1)
        if due:
            idx = np.array(due, dtype=np.intp)
            rewards = (u_click[idx] < p[idx]).astype(np.float64)
            arms_due = [shown[t] for t in due]
            policy.update_many(X[idx], arms_due, rewards)
            for t, arm, r in zip(due, arms_due, rewards.tolist(), strict=True):
                s = stats.setdefault((int(keys[t]), arm), [0.0, 0.0])
                s[0] += 1
                s[1] += r
    run.seconds = time.perf_counter() - t0
    return run


def _indices(decisions) -> np.ndarray:
    got = getattr(decisions, "indices", None)
    return got if got is not None else np.array([d.index for d in decisions])


def _root_name(arm: str) -> str:
    return arm.split(VARIANT_OF, 1)[0]


def _step(round_, active, root, quality, stats, settings: EvolutionSettings, seed, pop, cm) -> dict:
    """Judge every category's styles on their delivered feedback; breed the best, retire the hopeless."""
    bred, retired = [], []
    for key, arms in active.items():
        judged = []
        for a in arms:
            n_a, c_a = stats.get((key, a), (0.0, 0.0))
            if n_a >= settings.min_impressions:
                alpha, beta = 1 + c_a, 1 + n_a - c_a
                mean = alpha / (alpha + beta)
                sd = math.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1)))
                judged.append((mean, sd, a))
        if not judged:
            continue
        judged.sort(reverse=True)
        best_low = judged[0][0] - 1.96 * judged[0][1]
        if settings.retire:
            for mean, sd, a in judged[1:]:
                if mean + 1.96 * sd < best_low and len(arms) > 2:
                    arms.remove(a)
                    retired.append({"key": key, "arm": a, "quality": quality[key][a]})
        for _, _, parent in judged[: settings.parents]:
            if len(arms) >= settings.max_arms or parent not in arms:
                continue
            child = f"{parent}{VARIANT_OF}s{round_ // settings.every}"
            z = rng_stream(seed, "evolve", key, child).normal()
            q = settings.correlation * quality[key][parent] + math.sqrt(1 - settings.correlation**2) * z
            quality[key][child] = q
            root[key][child] = root[key][_root_name(parent)]
            arms.append(child)
            bred.append({"key": key, "arm": child, "parent": parent, "quality": q, "parent_quality": quality[key][parent]})
    return {"round": round_, "bred": bred, "retired": retired}


def compare(
    factory: Callable[..., Policy],
    config: SimulationConfig,
    n_rounds: int,
    seeds: list[int],
    settings: EvolutionSettings,
) -> dict:
    """The loop on against off, per seed on that seed's world and draws: the lift of expected CTR over
    the run and its last half, with mean, sd and a 95% t-interval over the seeds, and the steps' tallies."""
    from scipy import stats as st

    per_seed = []
    for seed in seeds:
        cm = ClickModel(Population(config.model_copy(update={"seed": seed})))
        on = run_loop(factory, cm, n_rounds, seed, settings)
        off = run_loop(factory, cm, n_rounds, seed, None)
        half = n_rounds // 2
        bred = [b for s in on.steps for b in s["bred"]]
        per_seed.append(
            {
                "seed": seed,
                "lift": float(on.p.mean() / off.p.mean() - 1),
                "lift_last_half": float(on.p[half:].mean() / off.p[half:].mean() - 1),
                "bred": len(bred),
                "bred_better_than_parent": sum(b["quality"] > b["parent_quality"] for b in bred),
                "retired": sum(len(s["retired"]) for s in on.steps),
                "seconds": on.seconds + off.seconds,
            }
        )
    out: dict = {"rounds": n_rounds, "seeds": seeds, "settings": settings.__dict__, "runs": per_seed}
    for key in ("lift", "lift_last_half"):
        v = np.array([r[key] for r in per_seed])
        sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        half_width = float(st.t.ppf(0.975, len(v) - 1) * sd / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        out[key] = {"mean": float(v.mean()), "sd": sd, "ci_low": float(v.mean() - half_width), "ci_high": float(v.mean() + half_width)}
    return out
