"""Offline (off-policy) evaluation: replay, IPS, SNIPS, direct method, doubly robust; bootstrap intervals.

The estimators are pure functions of logged bandit feedback, with OBP's conventions:

* ``reward`` (n,), ``action`` (n,) integer index of the logged arm, ``pscore`` (n,) the logging
  policy's propensity of that arm;
* ``action_dist`` (n, K): the evaluation policy's probability of every arm for each logged context;
* ``estimated_rewards`` (n, K): a reward model q(x, a) for the direct method and doubly robust.

IPS   = mean(r * w),  w = pi(a|x) / p(a|x)                                  (Horvitz-Thompson)
SNIPS = sum(r * w) / sum(w)                                                 (self-normalised)
DM    = mean(sum_a pi(a|x) q(x, a))
DR    = mean(sum_a pi(a|x) q(x, a) + w * (r - q(x, a_logged)))              (Dudik et al. 2011)

``replay`` is Li et al. (2011): on uniformly-random logs, run the policy through the log and keep
only the rounds where it picks the logged arm; the mean reward of those rounds is an unbiased
estimate of the policy's online CTR (the policy learns from the kept rounds, as it would online).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("ips", "snips", "dm", "dr")


def _weights(action: np.ndarray, pscore: np.ndarray, action_dist: np.ndarray) -> np.ndarray:
    if np.any(pscore <= 0):
        raise ValueError("every logged propensity must be > 0 (a logging policy that could not choose the arm)")
    return action_dist[np.arange(len(action)), action] / pscore


def ips(reward, action, pscore, action_dist) -> float:
    """Inverse propensity scoring: unbiased when every action the evaluated policy takes was possible.

    >>> reward, action, pscore = np.array([1.0, 0.0, 1.0, 0.0]), np.array([0, 1, 0, 1]), np.full(4, 0.5)
    >>> always_first = np.tile([1.0, 0.0], (4, 1))  # the evaluated policy's P(arm) per logged row
    >>> ips(reward, action, pscore, always_first), snips(reward, action, pscore, always_first)
    (1.0, 1.0)
    """
    return float(np.mean(reward * _weights(action, pscore, action_dist)))


def snips(reward, action, pscore, action_dist) -> float:
    """Self-normalised IPS: a little bias for much less variance when weights are large."""
    w = _weights(action, pscore, action_dist)
    return float(np.sum(reward * w) / np.sum(w))


def dm(action_dist, estimated_rewards) -> float:
    return float(np.mean(np.sum(action_dist * estimated_rewards, axis=1)))


def dr(reward, action, pscore, action_dist, estimated_rewards) -> float:
    w = _weights(action, pscore, action_dist)
    q_logged = estimated_rewards[np.arange(len(action)), action]
    return float(np.mean(np.sum(action_dist * estimated_rewards, axis=1) + w * (reward - q_logged)))


def _terms(name: str, reward, action, pscore, action_dist, estimated_rewards) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row numerator (and denominator for ratio estimators), so bootstrap replicates are cheap."""
    if name == "ips":
        return reward * _weights(action, pscore, action_dist), None
    if name == "snips":
        w = _weights(action, pscore, action_dist)
        return reward * w, w
    if estimated_rewards is None:
        raise ValueError(f"{name} needs estimated_rewards (a reward model)")
    direct = np.sum(action_dist * estimated_rewards, axis=1)
    if name == "dm":
        return direct, None
    if name == "dr":
        w = _weights(action, pscore, action_dist)
        q_logged = estimated_rewards[np.arange(len(action)), action]
        return direct + w * (reward - q_logged), None
    raise ValueError(f"unknown estimator '{name}'; choose from {', '.join(ESTIMATORS)}")


def bootstrap_interval(
    numerator: np.ndarray,
    denominator: np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(numerator) (or sum(num)/sum(den)) over rows resampled with replacement."""
    n = len(numerator)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    chunk = max(1, min(n_boot, 4_000_000 // n))
    for lo in range(0, n_boot, chunk):
        m = min(chunk, n_boot - lo)
        idx = rng.integers(0, n, size=(m, n))
        num = numerator[idx].sum(axis=1)
        stats[lo : lo + m] = num / denominator[idx].sum(axis=1) if denominator is not None else num / n
    lo_q, hi_q = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo_q), float(hi_q)


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict:
        return {"estimator": self.estimator, "value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}


def estimate(
    reward,
    action,
    pscore,
    action_dist,
    estimated_rewards=None,
    *,
    estimators: Sequence[str] = ESTIMATORS,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[Estimate]:
    """Every requested estimator's value with a (1 - alpha) bootstrap interval."""
    reward = np.asarray(reward, dtype=np.float64)
    action = np.asarray(action, dtype=np.intp)
    pscore = np.asarray(pscore, dtype=np.float64)
    action_dist = np.asarray(action_dist, dtype=np.float64)
    if action_dist.ndim != 2 or action_dist.shape[0] != len(reward) or not len(action) == len(pscore) == len(reward):
        raise ValueError("reward, action, pscore and action_dist must describe the same rows")
    out = []
    for name in estimators:
        if name in ("dm", "dr") and estimated_rewards is None:
            continue
        num, den = _terms(name, reward, action, pscore, action_dist, estimated_rewards)
        value = float(num.sum() / den.sum()) if den is not None else float(num.mean())
        low, high = bootstrap_interval(num, den, n_boot=n_boot, alpha=alpha, seed=seed)
        out.append(Estimate(name, value, low, high, len(reward)))
    return out


@dataclass(frozen=True)
class ReplayResult:
    value: float
    ci_low: float
    ci_high: float
    matched: int
    rounds: int


def replay(
    policy,
    X: np.ndarray,
    action: Sequence[int] | np.ndarray,
    reward: Sequence[float] | np.ndarray,
    arms: Sequence,
    *,
    learn: bool = True,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> ReplayResult:
    """Li et al. (2011) replay on uniformly-random logs; ``policy`` learns from the kept rounds when ``learn``."""
    arms = tuple(arms)
    kept = []
    for i in range(len(action)):
        decision = policy.choose(X[i], arms)
        if decision.arm == arms[int(action[i])]:
            kept.append(float(reward[i]))
            if learn:
                policy.update(X[i], decision.arm, float(reward[i]))
    kept_arr = np.asarray(kept)
    if not len(kept_arr):
        return ReplayResult(float("nan"), float("nan"), float("nan"), 0, len(action))
    low, high = bootstrap_interval(kept_arr, n_boot=n_boot, alpha=alpha, seed=seed)
    return ReplayResult(float(kept_arr.mean()), low, high, len(kept_arr), len(action))


def action_distribution(policy, X: np.ndarray, arms: Sequence) -> np.ndarray:
    """(n, K): the policy's probability of each arm for each context (its choice rule frozen)."""
    arms = tuple(arms)
    return np.stack([policy.probabilities(x, arms) for x in X]) if len(X) else np.zeros((0, len(arms)))


def shrunk_ctr_reward_model(
    action_train: np.ndarray, reward_train: np.ndarray, n_arms: int, *, prior_rounds: float = 50.0
) -> Callable[[np.ndarray], np.ndarray]:
    """q(x, a) = the arm's training CTR shrunk toward the overall CTR by ``prior_rounds`` pseudo-rounds.

    Context-free on purpose: with a few dozen clicks per log a contextual reward model overfits
    (its direct-method estimates land an order of magnitude off), while DR only needs q to be
    roughly right to cut IPS's variance.
    """
    overall = float(np.mean(reward_train)) if len(reward_train) else 0.0
    clicks = np.bincount(action_train, weights=reward_train, minlength=n_arms)
    shown = np.bincount(action_train, minlength=n_arms)
    q = (clicks + prior_rounds * overall) / (shown + prior_rounds)

    def predict(X: np.ndarray) -> np.ndarray:
        return np.broadcast_to(q, (len(X), n_arms)).copy()

    return predict
