"""Bandit policies with one small API and exact propensities.

Every policy has::

    choose(x, arms) -> Decision(arm, propensity, scores, probabilities)
    update(x, arm, reward)
    choose_many(X, arms) -> sequence of Decision   # arms: one list for all rows, or one list per row
    update_many(X, arms, rewards)                  # same model as calling update() row by row
    probabilities(x, arms) -> np.ndarray           # the policy's action distribution over ``arms``
    save(path) / load(path)                        # one versioned file, written atomically

Arms are hashable ids (str, int, tuples of those) and may differ from call to call: an arm seen
for the first time starts cold. ``propensity`` is the probability that the policy chose that arm
given ``x`` and ``arms``:

* **LinUCB / HybridLinUCB / UCB1** are deterministic given their state, so they mix in explicit
  exploration: with probability ``epsilon`` (default 0.05) a uniformly random arm, otherwise the
  arm with the highest upper confidence bound (ties split evenly). Propensity =
  ``(1 - epsilon) / n_best * [arm is a best arm] + epsilon / K``: always > 0 when ``epsilon > 0``.
* **EpsilonGreedy** is the same with the greedy (mean) score instead of the bound.
* **LinTS**: the sampled score of each arm is Gaussian, N(theta_a.x, v^2 x'A_a^-1 x), so the
  probability that an arm wins is computed by quadrature, not estimated by sampling.
* **BetaTS**: likewise with Beta posteriors (quadrature over [0, 1]).
* **PooledUCB**: arms that share a base model and learn their priors from each other (empirical
  Bayes), an upper bound in posterior sds, and the same epsilon mix as LinUCB.
* **Uniform**: 1/K. **FixedArm**: 1 for its arm (uniform over ``arms`` when its arm is not offered).
"""

from __future__ import annotations

from .base import (
    FORMAT,
    FORMAT_VERSION,
    Decision,
    DecisionBatch,
    ModelFileError,
    Policy,
)
from .counting import UCB1, BetaTS, beta_argmax_probabilities
from .fixed import FixedArm, FixedStyle, Uniform
from .linear import (
    EpsilonGreedy,
    HybridLinUCB,
    LinTS,
    LinUCB,
    gaussian_argmax_probabilities,
)
from .pooled import PooledUCB
from .registry import POLICIES, REGISTRY, SERVABLE, make_policy

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "POLICIES",
    "REGISTRY",
    "SERVABLE",
    "UCB1",
    "BetaTS",
    "Decision",
    "DecisionBatch",
    "EpsilonGreedy",
    "FixedArm",
    "FixedStyle",
    "HybridLinUCB",
    "LinTS",
    "LinUCB",
    "ModelFileError",
    "Policy",
    "PooledUCB",
    "Uniform",
    "beta_argmax_probabilities",
    "gaussian_argmax_probabilities",
    "make_policy",
]
