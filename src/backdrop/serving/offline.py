"""Offline evaluation on the service's own event log: what would another policy have earned?

Progressive validation in log order: the candidate gives its probability of each offered style for
the logged context, then learns from the logged choice and reward (as it would have online). IPS,
SNIPS and DR (with a shrunk per-style CTR reward model) use the logged propensities, which are the
probabilities the served policy really had; the served policy's own CTR is the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping

import numpy as np
from pydantic import ValidationError

from ..bandit.arms import ORIGINAL
from ..bandit.evaluation import bootstrap_interval, estimate, shrunk_ctr_reward_model
from ..bandit.policies import Policy
from .eventlog import COMMIT_GRACE_S, EventLog
from .learner import train_offline  # noqa: F401 - re-exported: the learner's model, trained in one go
from .records import DecisionRecord
from .settings import PolicySettings

_FLOAT_PARAMS = {"alpha", "epsilon", "l2"}


def parse_policy_spec(spec: str) -> Callable[[int], Policy]:
    """``"linucb:alpha=0.5,epsilon=0.05"`` -> a factory ``n_features -> Policy``; ValueError with the reason."""
    name, _, rest = spec.partition(":")
    params: dict = {"name": name.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"'{part}' is not key=value")
        if key not in _FLOAT_PARAMS | {"seed"}:
            raise ValueError(f"unknown parameter '{key}'; use {', '.join(sorted(_FLOAT_PARAMS | {'seed'}))}")
        try:
            params[key] = int(value) if key == "seed" else float(value)
        except ValueError:
            raise ValueError(f"{key}={value!r} is not a number") from None
    params.setdefault("seed", 0)
    try:
        settings = PolicySettings.model_validate(params)
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
    return settings.make


#: the non-personalized bandit's name in ``evaluate log`` (``--policy bandit``)
CATEGORY_BANDIT = "bandit"


def category_bandit(category_of: Mapping[str, str]) -> tuple[Callable[[int], Policy], Callable[[DecisionRecord, str], Hashable]]:
    """The non-personalized bandit an A/B-testing retailer would run: Beta Thompson sampling per
    category x style, blind to who sees the ad; (its factory, its ``arm_key``) for :func:`evaluate_log`.
    An item the store does not know counts as its own category."""
    from ..bandit.policies import BetaTS

    def factory(n_features: int) -> Policy:
        return BetaTS(seed=0)

    def key(d: DecisionRecord, style: str) -> Hashable:
        return (category_of.get(d.item_id, d.item_id), style)

    return factory, key


def evaluate_log(
    log: EventLog,
    factory: Callable[[int], Policy],
    *,
    join_window_s: float,
    default_reward: float = 0.0,
    n_boot: int = 500,
    seed: int = 0,
    grace_s: float = COMMIT_GRACE_S,
    now: float | None = None,
    where: Callable[[DecisionRecord], bool] | None = None,
    arm_key: Callable[[DecisionRecord, str], Hashable] | None = None,
) -> list[dict]:
    """Records ``{policy, estimator, value, ci_low, ci_high, n}``: ``logged`` (the served CTR), then IPS/SNIPS/DR.

    Every activated decision with a choice of styles counts (``where`` narrows it, e.g. to one
    experiment arm); the catalog-image control and fallbacks offered no choice and are left out.
    ``arm_key(decision, style)`` names the arms the candidate learns (default: the style itself);
    the non-personalized bandit learns ``(category, style)`` (:func:`category_bandit`).
    """
    import time

    cutoff = (time.time() if now is None else now) - join_window_s - grace_s
    rows = [
        (d, default_reward if r is None else r)
        for batch in log.joined_batches(cutoff)
        for d, r in batch
        if d.fallback is None and d.arm != ORIGINAL and d.activate and (where is None or where(d))
    ]
    if not rows:
        return []
    arms = sorted({a for d, _ in rows for a in d.arms})
    col = {a: j for j, a in enumerate(arms)}
    X = np.array([d.context for d, _ in rows], dtype=np.float64)
    reward = np.array([r for _, r in rows], dtype=np.float64)
    action = np.array([col[d.arm] for d, _ in rows], dtype=np.intp)
    pscore = np.array([d.propensity for d, _ in rows], dtype=np.float64)

    policy = factory(X.shape[1])
    dist = np.zeros((len(rows), len(arms)))
    for i, (d, r) in enumerate(rows):
        offered = d.arms if arm_key is None else [arm_key(d, a) for a in d.arms]
        dist[i, [col[a] for a in d.arms]] = policy.probabilities(X[i], offered)
        policy.update(X[i], d.arm if arm_key is None else arm_key(d, d.arm), r)
    q = shrunk_ctr_reward_model(action, reward, len(arms))(X)
    # a style not offered in a row has probability 0 under both policies; q there is never weighted in
    low, high = bootstrap_interval(reward, n_boot=n_boot, seed=seed)
    records = [
        {"policy": "logged", "estimator": "on-policy", "value": float(reward.mean()), "ci_low": low, "ci_high": high, "n": len(rows)}
    ]
    for est in estimate(reward, action, pscore, dist, q, estimators=("ips", "snips", "dr"), n_boot=n_boot, seed=seed):
        records.append({"policy": policy.name} | est.to_dict())
    return records


def style_results(log: EventLog, placement: str | None = None, now: float | None = None) -> dict[tuple[str, str], tuple[int, float]]:
    """(item, style) -> (impressions, clicks) over every logged decision with a creative style (the
    catalog image and fallbacks left out), rewards summed as clicks; what ``export feed --results`` reads."""
    import time

    out: dict[tuple[str, str], list[float]] = {}
    for rows in log.joined_batches(created_before=time.time() if now is None else now):
        for record, reward in rows:
            if record.arm == ORIGINAL or record.fallback is not None or not record.activate:
                continue
            if placement is not None and record.placement != placement:
                continue
            acc = out.setdefault((record.item_id, record.arm), [0, 0.0])
            acc[0] += 1
            acc[1] += float(reward or 0.0)
    return {k: (int(n), c) for k, (n, c) in out.items()}
