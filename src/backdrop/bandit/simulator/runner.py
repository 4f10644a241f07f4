"""Runs policies and baselines on the same impressions and click draws."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np

from ..features import FeatureEncoder
from ..policies import BetaTS, DecisionBatch, HybridLinUCB, Policy, PooledUCB, Uniform, make_policy
from ..policies.sharing import hybrid_sharing
from ..threads import small_matrices
from .clicks import ClickModel
from .config import SimulationConfig
from .feedback import DelayedFeedback, sample_delays
from .population import Population
from .results import PolicyRun, SimulationResult
from .seeds import rng_stream, stable_seed

PolicyFactory = Callable[..., Policy]

#: baselines computed from the click model rather than learnt
BASELINES = ("original", "uniform", "bandit", "best-fixed", "oracle")
DEFAULT_BASELINES = ("original", "uniform", "bandit", "best-fixed", "oracle")


#: learning policies by short name, with settings suited to click rewards of a few per cent
#: (LinUCB's alpha=1 explores for far longer than a 20k-round run at these rates)
def _pooled_ucb(*, n_features: int, seed: int | None = None, encoder: FeatureEncoder | None = None, **kw) -> Policy:
    """PooledUCB with a prior per part of the encoder's vector (bias, user fields, hashed tokens)."""
    return PooledUCB(n_features=n_features, seed=seed, blocks=encoder.blocks if encoder is not None else None, **kw)


def _hybrid_linucb(*, n_features: int, seed: int | None = None, encoder: FeatureEncoder | None = None, **kw) -> Policy:
    """HybridLinUCB sharing through the library's style attributes, as the service builds it."""
    sharing = hybrid_sharing(None, n_features, encoder.blocks if encoder is not None else None)
    return HybridLinUCB(n_features=n_features, seed=seed, alpha=0.1, epsilon=0.05, **sharing | kw)


POLICY_FACTORIES: dict[str, PolicyFactory] = {
    "pooled-ucb": _pooled_ucb,
    "linucb": partial(make_policy, "linucb", alpha=0.1, epsilon=0.05),
    "hybrid-linucb": _hybrid_linucb,
    "lints": partial(make_policy, "lints", alpha=0.03),
    "epsilon-greedy": partial(make_policy, "epsilon-greedy", epsilon=0.05),
    "ucb1": partial(make_policy, "ucb1", alpha=0.1),
}
DEFAULT_POLICIES = ("pooled-ucb", "linucb")


def policy_factories(names: Sequence[str]) -> dict[str, PolicyFactory]:
    """Factories for names from :data:`POLICY_FACTORIES` (learners) -- for a CLI ``--policies`` list."""
    out = {}
    for n in names:
        if n not in POLICY_FACTORIES:
            raise ValueError(f"unknown policy {n!r}; choose from {', '.join(POLICY_FACTORIES)} (baselines: {', '.join(BASELINES)})")
        out[n] = POLICY_FACTORIES[n]
    return out


def simulate(
    policies: Mapping[str, PolicyFactory | Policy] | None = None,
    config: SimulationConfig | None = None,
    n_rounds: int = 20000,
    seed: int | None = None,
    encoder: FeatureEncoder | None = None,
    *,
    click_model: ClickModel | None = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    delay_mean: float | None = None,
    update_every: int | None = None,
    n_checkpoints: int = 200,
    progress: Callable[[str, float], None] | None = None,
) -> SimulationResult:
    """Run every policy on the same ``n_rounds`` impressions and click draws.

    * ``policies``: name -> a :class:`Policy` (used as is, and updated) or a factory called as
      ``factory(n_features=..., seed=...)`` (policy classes and ``functools.partial`` of them
      work). Default: :data:`DEFAULT_POLICIES` from :data:`POLICY_FACTORIES`.
    * ``config``: the audience (default :class:`SimulationConfig`); ``click_model`` reuses an
      already-built world instead (its config wins).
    * ``seed``: the run's streams (impressions, clicks, delays, policy seeds); default
      ``config.seed``. The world (users, tastes) depends on ``config.seed`` only.
    * ``encoder``: default ``population.encoder()`` (64 features, the population's fields).
    * ``delay_mean`` / ``update_every``: override the config's feedback settings (they do not
      change the world, so a built ``click_model`` can be reused with other delays).
    * ``progress(name, seconds)``: called after the setup and after each policy.
    * ``baselines``: any of ``"original"`` (catalog image), ``"uniform"`` (a random offered
      style; the :class:`Uniform` policy), ``"best-fixed"`` (:class:`FixedStyle` with the click
      model's table), ``"oracle"``.

    Common random numbers: round t's impression, its click uniform U_t (click = U_t < p) and its
    feedback delay are the same for every policy. Policies choose through ``choose_many`` on the
    rounds between two deliveries (their state does not change in between, so this is the same
    as choosing round by round) and learn through ``update_many`` every
    ``config.update_every`` rounds, with the feedback whose delay has elapsed.
    """
    with small_matrices():  # the policies' algebra is on small matrices: one BLAS thread (bandit.threads)
        t_start = time.perf_counter()
        if click_model is None:
            click_model = ClickModel(Population(config))
        config = click_model.config
        feedback = {k: v for k, v in (("delay_mean", delay_mean), ("update_every", update_every)) if v is not None}
        if feedback:
            config = SimulationConfig(**(config.model_dump() | feedback))
        pop = click_model.population
        seed = config.seed if seed is None else int(seed)
        n = int(n_rounds)
        if n < 1:
            raise ValueError("n_rounds must be >= 1")
        unknown = [b for b in baselines if b not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
        if policies is None:
            policies = policy_factories(DEFAULT_POLICIES)
        clash = [p for p in policies if p in baselines]
        if clash:
            raise ValueError(f"policy name(s) {', '.join(clash)} clash with baselines")
        encoder = encoder or pop.encoder()

        batch = pop.sample_impressions(n, rng_stream(seed, "run", "impressions"))
        u_click = rng_stream(seed, "run", "clicks").random(n)
        delays = sample_delays(n, config.delay_mean, rng_stream(seed, "run", "delays"))
        p0, P, _ = click_model.probabilities(batch)
        oracle_k = np.nanargmax(P, axis=1)
        rows = np.arange(n)
        oracle_p = P[rows, oracle_k]
        groups = pop.product_set[batch.product]
        X = encoder.encode_many(pop.contexts(batch))
        if progress:
            progress("setup", time.perf_counter() - t_start)

        runs: dict[str, PolicyRun] = {}

        def add_baseline(name: str, k: np.ndarray | None) -> None:
            t0 = time.perf_counter()
            p = p0 if k is None else P[rows, k]
            runs[name] = PolicyRun(
                name,
                "baseline",
                p,
                (u_click < p).astype(np.int8),
                np.full(n, -1) if k is None else k,
                seconds=time.perf_counter() - t0,
            )

        def run(name: str, policy: Policy, kind: str, arm_sets=pop.style_sets, keys=groups) -> None:
            runs[name] = _run_policy(name, policy, arm_sets, keys, X, P, u_click, delays, config.update_every, kind)
            if progress:
                progress(name, runs[name].seconds)

        for b in baselines:
            if b == "original":
                add_baseline(b, None)
            elif b == "oracle":
                add_baseline(b, oracle_k)
            elif b == "uniform":
                run(b, Uniform(seed=stable_seed(seed, b)), "baseline")
            elif b == "bandit":
                keys, cells = _category_cells(pop, batch)
                run(b, BetaTS(seed=stable_seed(seed, b)), "baseline", cells, keys)
            elif b == "best-fixed":
                run(b, click_model.best_fixed_policy(), "baseline")
            if progress and b in ("original", "oracle"):
                progress(b, runs[b].seconds)
        for name, spec in policies.items():
            run(name, spec if isinstance(spec, Policy) else build_policy(spec, encoder, stable_seed(seed, name)), "policy")

        k = max(1, min(int(n_checkpoints), n))
        checkpoints = np.unique(np.linspace(1, n, k).round().astype(np.int64))
        return SimulationResult(
            config=config,
            n_rounds=n,
            seed=seed,
            oracle_p=oracle_p,
            runs=runs,
            checkpoints=checkpoints,
            calibration=click_model.calibration,
            seconds=time.perf_counter() - t_start,
        )


def build_policy(factory: PolicyFactory, encoder: FeatureEncoder, seed: int) -> Policy:
    """``factory(n_features=..., seed=...)``, and ``encoder=`` too when the factory takes it."""
    try:
        takes_encoder = "encoder" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_encoder = False
    extra = {"encoder": encoder} if takes_encoder else {}
    return factory(n_features=encoder.n_features, seed=seed, **extra)


def _category_cells(pop: Population, batch) -> tuple[np.ndarray, dict[int, tuple]]:
    """Per round a key of its (category, style set), and per key the arms (category, style): what a
    non-personalized bandit learns, one arm per category x style, blind to who sees the ad."""
    cat = pop.product_category[batch.product]
    sets = pop.product_set[batch.product]
    keys = cat * len(pop.style_sets) + sets
    cells = {}
    for key in np.unique(keys).tolist():
        c, g = divmod(key, len(pop.style_sets))
        path = ">".join(pop.categories[c])
        cells[key] = tuple((path, style) for style in pop.style_sets[g])
    return keys, cells


def _run_policy(name, policy, arm_sets, groups, X, P, u_click, delays, update_every, kind) -> PolicyRun:
    """Run one policy; round t offers ``arm_sets[groups[t]]`` (columns of ``P`` in that order)."""
    t0 = time.perf_counter()
    n = len(groups)
    choice = np.empty(n, dtype=np.intp)
    queue = DelayedFeedback()
    delivered = 0
    for start in range(0, n, update_every):
        stop = min(start + update_every, n)
        block_groups = groups[start:stop]
        for g in np.unique(block_groups):
            idx = start + np.flatnonzero(block_groups == g)
            arms = arm_sets[g]
            decisions = policy.choose_many(X[idx], arms)
            choice[idx] = decisions.indices if isinstance(decisions, DecisionBatch) else [d.index for d in decisions]
        for t in range(start, stop):
            queue.push(t + int(delays[t]), t)
        due_list = queue.pop_due(stop - 1)
        if due_list:
            due = np.array(due_list, dtype=np.intp)
            arms = [arm_sets[groups[t]][choice[t]] for t in due]
            rewards = (u_click[due] < P[due, choice[due]]).astype(np.float64)
            policy.update_many(X[due], arms, rewards)
            delivered += len(due)
    p = P[np.arange(n), choice]
    return PolicyRun(
        name=name,
        kind=kind,
        p=p,
        clicks=(u_click < p).astype(np.int8),
        choice=choice,
        updates=delivered,
        in_flight=len(queue),
        seconds=time.perf_counter() - t0,
    )
