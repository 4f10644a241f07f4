"""PooledTS: arms that borrow strength from each other (hierarchical Bayes), Thompson sampling on top.

The reward model of arm a in context x is ``x . (beta + delta_a)``:

* ``beta`` is shared by every arm, fitted on all feedback: what the context is worth whatever
  creative is shown (the category's, the placement's, the audience's base rate).
* ``delta_a`` is the arm's deviation from it, with a Gaussian prior ``N(0, tau_j^2)`` per feature
  block j (the bias: how much better the style is everywhere; the user fields: personal taste; the
  hashed tokens: category x style, placement x category, segment x category). An arm that was never
  shown predicts the base rate, not zero, so it is neither feared nor chased.
* The prior variances ``tau_j^2`` are learnt from the arms themselves (empirical Bayes: an EM
  step per update), so a block that carries no signal in this audience shrinks to nothing and
  costs nothing, and a block that does is let free.
* The click noise is Bernoulli: ``sigma^2 = p (1 - p)`` at the observed mean reward, so priors and
  exploration are on the scale of the click rate instead of on a unit scale that swamps
  effects of 0.002 in CTR.

Exploration is Thompson sampling of each offered arm's score, ``N(x . theta_a, alpha^2 sigma^2
x' P_a^-1 x)`` (``P_a`` the arm's posterior precision in units of the noise), mixed with
``epsilon`` uniform exploration so every logged propensity is at least ``epsilon / K``. The
propensity of the chosen arm is its exact probability of winning (quadrature), not a sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from .base import _BREAKS, Decision, DecisionBatch, _shared_arms
from .linear import _RidgeArms, gaussian_argmax_probabilities

_GL6_T, _GL6_W = np.polynomial.legendre.leggauss(6)

#: EM steps for the prior variances per update, from ``prior_sd`` (a fixed start keeps the model a
#: function of the data, not of how it was batched)
EM_STEPS = 1


class PooledTS(_RidgeArms):
    """Hierarchical Thompson sampling over arms that share a base model (see the module docstring).

    * ``blocks``: sizes of the feature blocks that get a prior variance each (they sum to
      ``n_features``); default one block for the bias and one for the rest. The service and the
      simulator pass the encoder's layout (bias, user fields, hashed tokens).
    * ``prior_sd``: the initial prior sd of a deviation, relative to the base rate (0.3: a style
      is believed to be within about +-30 % of the base rate before any feedback); the data
      then sets it (``learn_prior``).
    * ``base_rate``: the reward rate assumed before feedback arrives (the noise scale).
    * ``alpha``: the posterior scale of the sampled scores (1: plain Thompson sampling; the
      default 0.1 explores less, which at click rates of a few per cent pays: measured across
      seeds and worlds in ``benchmarks/bench_personalization.py``).
    * ``epsilon``: uniform exploration mixed in (propensity floor epsilon / K).
    """

    name = "pooled-ts"

    def __init__(
        self,
        *,
        n_features: int,
        blocks: Sequence[int] | None = None,
        prior_sd: float = 0.3,
        base_rate: float = 0.02,
        alpha: float = 0.1,
        epsilon: float = 0.05,
        learn_prior: bool = True,
        seed: int | None = None,
        dtype: str = "float64",
    ):
        super().__init__(n_features=n_features, l2=1.0, refactor_every=1, dtype=dtype, seed=seed)
        blocks = [1, n_features - 1] if blocks is None else [int(b) for b in blocks]
        if min(blocks) < 1 or sum(blocks) != n_features:
            raise ValueError(f"blocks must be positive sizes summing to n_features={n_features}, got {blocks}")
        if prior_sd <= 0 or not 0 < base_rate < 1 or alpha <= 0 or not 0 <= epsilon <= 1:
            raise ValueError("need prior_sd > 0, 0 < base_rate < 1, alpha > 0 and 0 <= epsilon <= 1")
        self.blocks = blocks
        self._d = n_features
        self._block_of = np.repeat(np.arange(len(blocks)), blocks)
        self.prior_sd, self.base_rate = float(prior_sd), float(base_rate)
        self.alpha, self.epsilon, self.learn_prior = float(alpha), float(epsilon), bool(learn_prior)
        #: prior variance of a deviation per block, relative to the squared mean reward (effects are
        #: relative: +10 % at a 2 % CTR is 0.002, at a 10 % CTR 0.01)
        self.rel_tau2 = np.full(len(blocks), self.prior_sd**2)
        self.reward_sum = 0.0
        self.n_rewards = 0
        d = n_features
        self.beta: np.ndarray = np.zeros(d)
        self._gram = np.zeros((d, d))  # sum over all arms of X'X, and of X'r: the shared model's data
        self._xr = np.zeros(d)

    def params(self) -> dict:
        p = super().params()
        for k in ("l2", "refactor_every"):
            p.pop(k)
        return p | {
            "blocks": self.blocks,
            "prior_sd": self.prior_sd,
            "base_rate": self.base_rate,
            "alpha": self.alpha,
            "epsilon": self.epsilon,
            "learn_prior": self.learn_prior,
        }

    # -- the model ------------------------------------------------------------------------------

    @property
    def mean_reward(self) -> float:
        """The observed mean reward, starting from ``base_rate`` (worth 100 observations)."""
        n0 = 100.0
        return max((self.reward_sum + n0 * self.base_rate) / (self.n_rewards + n0), 1e-6)

    @property
    def noise(self) -> float:
        """sigma^2: Bernoulli variance at the observed mean reward (the base rate until feedback)."""
        p = min(self.mean_reward, 0.5)
        return max(p * (1 - p), 1e-6)

    @property
    def tau2(self) -> np.ndarray:
        """Prior variance of a deviation per block, in reward units."""
        return self.rel_tau2 * self.mean_reward**2

    def _l2(self) -> np.ndarray:
        """Per-feature prior precision in units of the noise: sigma^2 / tau_j^2."""
        return self.noise / self.tau2[self._block_of]

    def _cold(self, i: int) -> None:
        self.A[i] = 0  # A holds the arm's Gram matrix X'X (no prior: the prior changes)
        self.b[i] = 0
        self.A_inv[i] = np.diag(1.0 / self._l2())
        self.theta[i] = self.beta

    def _update(self, x, i: int, reward: float) -> None:
        self._update_many(x[None, :], np.array([i]), np.array([reward]))

    def _update_many(self, X, rows, rewards) -> None:
        X = np.asarray(X, np.float64)
        order = np.argsort(rows, kind="stable")
        bounds = np.flatnonzero(np.diff(rows[order])) + 1
        for grp in np.split(order, bounds):
            i = int(rows[grp[0]])
            Xi = X[grp]
            G = Xi.T @ Xi
            xr = Xi.T @ rewards[grp]
            self.A[i] += G
            self.b[i] += xr
            self._gram += G
            self._xr += xr
            self.counts[i] += len(grp)
        self.reward_sum += float(rewards.sum())
        self.n_rewards += len(rewards)
        self._fit()

    def _fit(self) -> None:
        """The priors and the posteriors from the sufficient statistics alone, so the model is the same
        however the feedback was batched (``update_many`` is ``update`` row by row): EM steps for
        the prior variances always start from ``prior_sd``."""
        self.rel_tau2 = np.full(len(self.blocks), self.prior_sd**2)
        for _ in range(EM_STEPS if self.learn_prior else 0):
            self._refit()
            self._em_step()
        self._refit()

    def _refit(self) -> None:
        """beta on all data, then each arm's posterior around it under the current priors."""
        n = len(self.arm_ids)
        if not n:
            return
        noise = self.noise
        # the shared model: a weak prior (sd: the mean reward itself) on every coefficient
        P0 = self._gram + np.diag(np.full(self._d, noise / self.mean_reward**2))
        self.beta = np.linalg.solve(P0, self._xr)
        P = self.A[:n] + np.diag(self._l2())[None]
        L_inv = np.linalg.solve(np.linalg.cholesky(P), np.eye(self._d))
        self.A_inv[:n] = np.swapaxes(L_inv, 1, 2) @ L_inv
        resid = self.b[:n] - self.A[:n] @ self.beta
        self.theta[:n] = self.beta + np.einsum("kij,kj->ki", self.A_inv[:n], resid)

    def _em_step(self) -> None:
        """One EM step for the prior variances: tau_j^2 = mean over the arms with data and the block's
        features of E[delta^2] (posterior mean squared plus posterior variance)."""
        n = len(self.arm_ids)
        seen = self.counts[:n] > 0
        if not seen.any():
            return
        delta = self.theta[:n][seen] - self.beta
        post = delta**2 + self.noise * np.diagonal(self.A_inv[:n][seen], axis1=1, axis2=2)
        by_block = np.bincount(self._block_of, weights=post.mean(axis=0), minlength=len(self.blocks))
        self.rel_tau2 = np.maximum(by_block / np.array(self.blocks) / self.mean_reward**2, 1e-6)

    def _refactor(self, i: int) -> None:
        self._fit()

    # -- choosing -------------------------------------------------------------------------------

    def _moments(self, X: np.ndarray, idx) -> tuple[np.ndarray, np.ndarray]:
        """(n, K) score means and sds (posterior of x . theta_a, times alpha)."""
        theta = self.theta[idx]
        A_inv = self.A_inv[idx]
        K, d = A_inv.shape[0], A_inv.shape[1]
        means = X @ theta.T
        var = np.einsum("nkd,nd->nk", (X @ A_inv.reshape(K * d, d).T).reshape(len(X), K, d), X)
        np.maximum(var, 0.0, out=var)
        return means, self.alpha * np.sqrt(self.noise * var)

    def _distribution(self, x, arms):
        means, sds = self._means_widths(x, arms)
        probs = gaussian_argmax_probabilities(means, sds * self.alpha * math.sqrt(self.noise))
        if self.epsilon:
            probs = (1 - self.epsilon) * probs + self.epsilon / len(probs)
        return means, probs

    def choose(self, x, arms) -> Decision:
        arms = tuple(arms)
        means, sds = self._means_widths(self._check_x(x), arms)
        sds *= self.alpha * math.sqrt(self.noise)
        sampled = means + sds * self.rng.standard_normal(len(arms))
        k = int(sampled.argmax())
        if self.epsilon and self.rng.random() < self.epsilon:
            k = int(self.rng.integers(len(arms)))
        probs = gaussian_argmax_probabilities(means, sds)
        probs = (1 - self.epsilon) * probs + self.epsilon / len(arms)
        return Decision(arms[k], float(max(probs[k], 1e-300)), sampled, probs, arms)

    def choose_many(self, X, arms) -> Sequence[Decision]:
        X = np.asarray(X, dtype=np.float64)
        shared = _shared_arms(X, arms)
        if shared is None:
            return super().choose_many(X, arms)
        n, K = len(X), len(shared)
        means, sds = self._moments(X, self._indices(shared))
        sampled = means + sds * self.rng.standard_normal((n, K))
        k = sampled.argmax(axis=1)
        if self.epsilon:
            explore = self.rng.random(n) < self.epsilon
            k = np.where(explore, self.rng.integers(0, K, n), k)
        epsilon = self.epsilon

        def propensities() -> tuple[np.ndarray, np.ndarray]:
            # each row's chosen arm's probability; the whole distribution of a context: probabilities()
            propensity = np.maximum((1 - epsilon) * win_probability(means, sds, k) + epsilon / K, 1e-300)
            probs = np.full((n, K), np.nan)
            probs[np.arange(n), k] = propensity
            return propensity, probs

        return DecisionBatch(shared, k, None, sampled, None, lazy=propensities)

    def _state(self) -> dict:
        return super()._state() | {"moments": np.array([self.reward_sum, self.n_rewards], float)}

    def _set_state(self, arrays) -> None:
        n = len(self.arm_ids)
        self.A[:n], self.b[:n], self.counts[:n] = arrays["arm_A"], arrays["arm_b"], arrays["arm_counts"]
        self.reward_sum, self.n_rewards = float(arrays["moments"][0]), int(arrays["moments"][1])
        self._gram = self.A[:n].sum(axis=0)
        self._xr = self.b[:n].sum(axis=0)
        self._fit()


def win_probability(means: np.ndarray, sds: np.ndarray, k: np.ndarray, intervals: int = 24) -> np.ndarray:
    """Row-wise P(arm k has the largest of independent N(means, sds^2) draws), by quadrature.

    The integral over arm k's score s of pdf_k(s) * prod_{b != k} cdf_b(s), on composite
    Gauss-Legendre intervals whose edges are every arm's mean +- multiples of its sd (thinned to
    ``intervals``), so a narrow arm's step is resolved as well as a wide arm's bulk. Matches
    :func:`gaussian_argmax_probabilities` to ~1e-3.
    """
    n, K = means.shape
    if K == 1:
        return np.ones(n)
    sds = np.maximum(sds, 1e-12)
    out = np.empty(n)
    rows_all = np.arange(n)
    block = 2048
    for start in range(0, n, block):
        sl = slice(start, min(start + block, n))
        mu, sd, kk = means[sl], sds[sl], k[sl]
        m = len(mu)
        rows = rows_all[:m]
        edges = np.sort((mu[:, :, None] + sd[:, :, None] * _BREAKS[None, None, :]).reshape(m, -1), axis=1)
        pick = np.round(np.linspace(0, edges.shape[1] - 1, intervals + 1)).astype(np.intp)
        edges = edges[:, pick]
        mid, half = (edges[:, 1:] + edges[:, :-1]) / 2, (edges[:, 1:] - edges[:, :-1]) / 2
        s = (mid[:, :, None] + half[:, :, None] * _GL6_T[None, None, :]).reshape(m, -1)  # (m, nodes)
        w = (half[:, :, None] * _GL6_W[None, None, :]).reshape(m, -1)
        z = (s[:, :, None] - mu[:, None, :]) / sd[:, None, :]  # (m, nodes, K)
        zk = z[rows, :, kk]
        cdf = special.ndtr(z)
        cdf[rows, :, kk] = 1.0
        dens = np.exp(-0.5 * zk * zk) * cdf.prod(axis=2) / (np.sqrt(2 * np.pi) * sd[rows, kk][:, None])
        out[sl] = np.clip((w * dens).sum(axis=1), 0.0, 1.0)
    return out
