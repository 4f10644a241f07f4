"""Context-free policies on per-arm counts: UCB1 and Beta Thompson sampling."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .base import (
    Decision,
    DecisionBatch,
    Policy,
    _mix,
    _shared_arms,
)


class _CountingArms(Policy):
    contextual = False

    def __init__(self, *, n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        self.pulls = np.zeros(0)
        self.reward_sum = np.zeros(0)

    def _grow(self, capacity: int) -> None:
        if capacity > len(self.pulls):
            new = max(capacity, 2 * len(self.pulls), 8)
            for name in ("pulls", "reward_sum"):
                old = getattr(self, name)
                arr = np.zeros(new)
                arr[: len(old)] = old
                setattr(self, name, arr)
            self._sets.clear()

    def _update(self, x, i: int, reward: float) -> None:
        self.pulls[i] += 1
        self.reward_sum[i] += reward

    def _update_many(self, X, rows, rewards) -> None:
        np.add.at(self.pulls, rows, 1.0)
        np.add.at(self.reward_sum, rows, rewards)

    def _state(self) -> dict:
        return {"arm_pulls": self.pulls, "arm_reward_sum": self.reward_sum}

    def _set_state(self, arrays) -> None:
        n = len(self.arm_ids)
        if arrays["arm_pulls"].shape != (n,):
            raise ValueError("arm count does not match the state")
        self.pulls[:n] = arrays["arm_pulls"]
        self.reward_sum[:n] = arrays["arm_reward_sum"]


class UCB1(_CountingArms):
    """UCB1 (Auer et al. 2002): mean + alpha * sqrt(2 ln N / n_a); untried arms first; epsilon mix."""

    name = "ucb1"

    def __init__(self, *, alpha: float = 1.0, epsilon: float = 0.05, n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        self.alpha, self.epsilon = float(alpha), float(epsilon)

    def params(self) -> dict:
        return super().params() | {"alpha": self.alpha, "epsilon": self.epsilon}

    def _distribution(self, x, arms):
        idx = self._indices(arms)
        n = self.pulls[idx]
        total = max(n.sum(), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(
                n > 0, self.reward_sum[idx] / np.maximum(n, 1) + self.alpha * np.sqrt(2 * math.log(total) / np.maximum(n, 1)), np.inf
            )
        finite = np.where(np.isinf(scores), 1.0, 0.0) if np.isinf(scores).any() else scores
        return scores, _mix(finite, self.epsilon)


class BetaTS(_CountingArms):
    """Beta-Bernoulli Thompson sampling (context-free); rewards in [0, 1] count as fractional successes."""

    name = "beta-ts"

    def __init__(self, *, prior: tuple[float, float] = (1.0, 1.0), n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        self.prior = (float(prior[0]), float(prior[1]))

    def params(self) -> dict:
        return super().params() | {"prior": list(self.prior)}

    def _ab(self, arms):
        idx = self._indices(arms)
        a = self.prior[0] + self.reward_sum[idx]
        b = self.prior[1] + self.pulls[idx] - self.reward_sum[idx]
        return a, np.maximum(b, 1e-9)

    def _update(self, x, i: int, reward: float) -> None:
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"BetaTS rewards must be in [0, 1], got {reward}")
        super()._update(x, i, reward)

    def _update_many(self, X, rows, rewards) -> None:
        if np.any((rewards < 0) | (rewards > 1)):
            raise ValueError("BetaTS rewards must be in [0, 1]")
        super()._update_many(X, rows, rewards)

    def _distribution(self, x, arms):
        a, b = self._ab(arms)
        return a / (a + b), beta_argmax_probabilities(a, b)

    def choose_many(self, X, arms):
        shared = _shared_arms(np.asarray(X), arms)
        if shared is None:
            return super().choose_many(X, arms)
        # one state for every row (no update in between): one quadrature, one draw per row and arm
        a, b = self._ab(shared)
        sampled = self.rng.beta(a, b, size=(len(X), len(shared)))
        k = sampled.argmax(axis=1)
        probs = np.broadcast_to(beta_argmax_probabilities(a, b), sampled.shape)
        return DecisionBatch(shared, k, np.maximum(probs[np.arange(len(k)), k], 1e-300), sampled, probs)

    def choose(self, x, arms) -> Decision:
        arms = tuple(arms)
        a, b = self._ab(arms)
        sampled = self.rng.beta(a, b)
        k = int(np.argmax(sampled))
        probs = beta_argmax_probabilities(a, b)
        return Decision(arms[k], float(max(probs[k], 1e-300)), sampled, probs, arms)


_GL_T, _GL_W = np.polynomial.legendre.leggauss(48)


def beta_argmax_probabilities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(arm has the largest of independent Beta(a, b) draws), by quadrature.

    P_a = integral of pdf_a(p) * prod_{c != a} cdf_c(p) dp, with Gauss-Legendre nodes placed over
    arm a's own bulk (mean +- 10 sd, clipped to [0, 1]), so peaked posteriors are resolved.
    """
    k = len(a)
    if k == 1:
        return np.ones(1)
    mean = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    lo = np.clip(mean - 10 * sd, 0.0, 1.0)
    hi = np.clip(mean + 10 * sd, 0.0, 1.0)
    half = (hi - lo) / 2
    p = np.clip(lo[:, None] + half[:, None] * (_GL_T[None, :] + 1), 1e-12, 1 - 1e-12)  # (k, nodes)
    log_pdf = (a[:, None] - 1) * np.log(p) + (b[:, None] - 1) * np.log1p(-p) - special.betaln(a, b)[:, None]
    cdf = special.betainc(a[None, :, None], b[None, :, None], p[:, None, :])  # (k, k, nodes)
    log_cdf = np.log(np.clip(cdf, 1e-300, 1.0))
    log_cdf[np.arange(k), np.arange(k), :] = 0.0
    probs = (np.exp(log_pdf + log_cdf.sum(axis=1)) * _GL_W[None, :]).sum(axis=1) * half
    s = probs.sum()
    return probs / s if s > 0 else np.full(k, 1.0 / k)
