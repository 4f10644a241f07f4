"""PooledUCB: arms that borrow strength from each other (hierarchical Bayes), an upper bound on top.

The reward model of arm a in context x is ``x . (beta + delta_a)``:

* ``beta`` is shared by every arm, fitted on all feedback: what the context is worth whatever
  creative is shown (the category's, the placement's, the audience's base rate).
* ``delta_a`` is the arm's deviation from it, with a Gaussian prior ``N(0, tau_j^2)`` per feature
  block j (the bias: how much better the style is everywhere; the user fields: personal taste; the
  hashed tokens: category x style, placement x category, segment x category). An arm that was never
  shown predicts the base rate, not zero, so it is neither feared nor chased.
* The prior variances ``tau_j^2`` are learnt from the arms themselves (empirical Bayes: an EM
  step from ``prior_sd`` on all the data, at every update), so a block that carries no signal in
  this audience shrinks towards nothing and a block that does is let free.
* The click noise is Bernoulli: ``sigma^2 = p (1 - p)`` at the observed mean reward, so priors and
  exploration are on the scale of the click rate instead of on a unit scale that swamps
  effects of 0.002 in CTR.

Exploration is optimism: each offered arm scores its posterior mean plus ``alpha`` posterior sds,
``x . theta_a + alpha sigma sqrt(x' P_a^-1 x)`` (``P_a`` the arm's posterior precision in units of
the noise), and ``epsilon`` of the time a uniformly random arm is shown instead, so every logged
propensity is exact and at least ``epsilon / K``. Thompson sampling on the same posterior was tried
first: at a 2 % CTR its draws decide which styles get their first few hundred impressions, and two
runs on one world that differed only in the sampler's seed ended 3.3 points apart at 100k rounds;
the bound's runs differ only in the epsilon draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...styles.evolve import VARIANT_OF, parent_of
from .linear import LinUCB

#: EM steps for the prior variances per update, from ``prior_sd`` (a fixed start keeps the model a
#: function of the data, not of how it was batched)
EM_STEPS = 1


class PooledUCB(LinUCB):
    """Hierarchical Bayes over arms that share a base model, an upper confidence bound on top (see the module docstring).

    * ``blocks``: sizes of the feature blocks that get a prior variance each (they sum to
      ``n_features``); default one block for the bias and one for the rest. The service and the
      simulator pass the encoder's layout (bias, user fields, hashed tokens).
    * ``prior_sd``: the initial prior sd of a deviation, relative to the base rate (0.3: a style
      is believed to be within about +-30 % of the base rate before any feedback); the data
      then sets it (``learn_prior``).
    * ``base_rate``: the reward rate assumed before feedback arrives (the noise scale).
    * ``alpha``: how many posterior sds of optimism (0.7: on five paper worlds at 100k rounds it was
      -4.4% +- 0.3% of the best single style, 0.5 -5.2% +- 0.5%, 1.0 -4.7% +- 0.6%;
      ``benchmarks/bench_personalization.py`` measures the default across worlds).
    * ``epsilon``: uniform exploration mixed in (propensity floor epsilon / K).
    * ``inherit``: a variant bred from a style (``STYLE__vTAG``, :mod:`backdrop.styles.evolve`)
      starts from this share of its parent's deviation instead of from the base rate (0: none).
    """

    name = "pooled-ucb"

    def __init__(
        self,
        *,
        n_features: int,
        blocks: Sequence[int] | None = None,
        prior_sd: float = 0.3,
        base_rate: float = 0.02,
        alpha: float = 0.7,
        epsilon: float = 0.05,
        learn_prior: bool = True,
        inherit: float = 0.5,
        seed: int | None = None,
        dtype: str = "float64",
    ):
        # LinUCB's bound and epsilon mix, on this posterior (``_width_scale``); l2 and refactor_every are unused
        super().__init__(n_features=n_features, alpha=alpha, epsilon=epsilon, l2=1.0, refactor_every=1, dtype=dtype, seed=seed)
        blocks = [1, n_features - 1] if blocks is None else [int(b) for b in blocks]
        if min(blocks) < 1 or sum(blocks) != n_features:
            raise ValueError(f"blocks must be positive sizes summing to n_features={n_features}, got {blocks}")
        if prior_sd <= 0 or not 0 < base_rate < 1 or alpha <= 0 or not 0 <= epsilon <= 1 or not 0 <= inherit <= 1:
            raise ValueError("need prior_sd > 0, 0 < base_rate < 1, alpha > 0, 0 <= epsilon <= 1 and 0 <= inherit <= 1")
        self.inherit = float(inherit)
        self.blocks = blocks
        self._d = n_features
        self._block_of = np.repeat(np.arange(len(blocks)), blocks)
        self.prior_sd, self.base_rate = float(prior_sd), float(base_rate)
        self.learn_prior = bool(learn_prior)
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
            "inherit": self.inherit,
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
        self._inherit([i])  # a variant of a known style starts from what is known of it

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
        self._inherit()

    def _inherit(self, arms=None) -> None:
        """A variant's deviation has its parent's (times ``inherit``) as its prior mean, not zero:
        theta_c += P_c^-1 Lambda (inherit * delta_parent); parents before their children."""
        if not self.inherit:
            return
        l2 = self._l2()
        for i, j in self._lineage(arms):
            self.theta[i] += self.A_inv[i] @ (l2 * self.inherit * (self.theta[j] - self.beta))

    def _lineage(self, arms=None) -> list[tuple[int, int]]:
        """(arm row, parent row) of every arm (or of ``arms``) whose parent is known, shallowest first."""
        pairs = []
        for i in range(len(self.arm_ids)) if arms is None else arms:
            parent = parent_of(self.arm_ids[i]) if isinstance(self.arm_ids[i], str) else None
            j = self.arm_index.get(parent) if parent else None
            if j is not None:
                pairs.append((self.arm_ids[i].count(VARIANT_OF), i, j))
        return [(i, j) for _, i, j in sorted(pairs)]

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

    def _width_scale(self) -> float:
        # A^-1 here is the posterior covariance in units of the noise: sigma sqrt(x' A^-1 x) is the posterior sd
        return self.alpha * math.sqrt(self.noise)

    def _state(self) -> dict:
        return super()._state() | {"moments": np.array([self.reward_sum, self.n_rewards], float)}

    def _set_state(self, arrays) -> None:
        n = len(self.arm_ids)
        self.A[:n], self.b[:n], self.counts[:n] = arrays["arm_A"], arrays["arm_b"], arrays["arm_counts"]
        self.reward_sum, self.n_rewards = float(arrays["moments"][0]), int(arrays["moments"][1])
        self._gram = self.A[:n].sum(axis=0)
        self._xr = self.b[:n].sum(axis=0)
        self._fit()
