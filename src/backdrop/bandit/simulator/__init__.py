"""A synthetic ad audience to test style-choosing policies against: users, impressions, clicks.

Three reusable pieces and a runner:

* :class:`SimulationConfig` -- the audience and its effect sizes, in interpretable units.
* :class:`Population` -- users (feature dicts), the catalog, its style sets and the placements;
  ``sample_impression(rng)`` / ``sample_impressions(n, rng)`` draw who sees which product where.
* :class:`ClickModel` -- the true click probability of an impression shown with a style (or with
  the plain catalog image, ``"original"``), the oracle, and the "best fixed style" table.
* :func:`simulate` -- runs policies on the same impressions and click draws, with delayed,
  batched feedback, and returns a :class:`SimulationResult` (table, JSON records, plot).

The click model (logit of the click probability of user u, product i, placement l, style s)::

    logit p = beta0 + cat[c] + place[l] + product[i] + user[u]                   (base; "original")
            + [s is a generated creative] * (gamma + k_style * m[c, s] + k_personal * h(u, c, l, s))

* ``cat``, ``product``, ``user`` are Gaussian log-odds effects (sd ``category_sd``, ``product_sd``,
  ``user_sd``); ``place[l] = log(1 + placement_lift[l])`` (an odds multiplier, about a CTR
  multiplier at these rates). They move every creative of an impression alike, so they add noise
  but no regret.
* ``m[c, s]``: how good style s is for category c on average (unit sd, centred over the
  category's styles).
* ``h``: the *personal* taste -- a weighted sum (weights in :class:`TasteWeights`) of
  segment x style, segment x category x style, placement x category x style,
  segment x category x placement x style, every other user field x style (categorical values,
  numeric slopes) and an optional per-user idiosyncratic taste; centred over the offered styles of
  each impression and then over the population for every (category, style), so that it decides
  *who* prefers which style but leaves each category's average style ranking to ``m``.
* **Variants of a style** (an overlay: the arm ``"studio-sweep+price"`` is the scene of
  ``studio-sweep`` with a price drawn on it; :class:`Population` takes a product's arms as the store
  holds them, ``arms=``): such an arm keeps its style's appeal and adds its variant's, in both
  terms: ``m[c, s+v] = m[c, s] + o[c, v]`` with ``o ~ N(0, variant_sd)`` per (category, variant)
  (a price tag helps some categories and hurts others), and ``h(u, c, l, s+v) = h(u, c, l, s) +
  variant_taste * T[segment, v]`` (segments differ in how much a price or a sale badge draws them).
  A plain style is unchanged, and a population without variants draws exactly what it drew before
  variants existed. The calibration then treats every arm alike: the uniform random arm, the best
  fixed arm and the oracle are over all of a product's arms, overlays included.

**Calibration.** Every random effect is drawn from ``config.seed``; then the four scalars
``beta0, gamma, k_style, k_personal`` are solved for (root finding, coordinate sweeps until the
relative errors are below 1e-6) on the exact click probabilities of ``calibration_samples``
impressions from the population -- no clicks are drawn -- so that:

* the catalog image's CTR is ``base_ctr``;
* a generated creative of a uniformly random style beats it by ``generated_lift``;
* the best fixed style per style set (``ClickModel.best_fixed``) beats the random style by
  ``style_spread``;
* the per-impression best style (the oracle) beats the best fixed style by ``personal_spread``.

:meth:`ClickModel.effects` measures these on any other sample; they match to within the Monte Carlo
error of the 20k calibration sample (measured about 0.002 in lift at the defaults; the tests allow
0.01, and 2 % relative on the base CTR).

**Why base_ctr 0.02, and what a run can show.** Display-ad CTRs are nearer 1 %, as in the paper,
but telling two styles apart takes about ``8 p / d^2`` impressions each (two standard errors of
the difference d of their CTRs p): ~300k each at 1 % and a 5 % lift. 2 % halves that, but at the paper-like defaults (+15 % generated, +10 % style spread,
+10 % personal spread) it is still far more than a 20k-round run: measured, LinUCB
(alpha 0.1, epsilon 0.05) is 6 % below the best fixed style over rounds 0-20k, 2 % below over
50k-100k and level only after ~200k rounds (the personalisation *is* learnable: a per-arm linear
model on the default 64 features, fitted on the true probabilities, gets 97 % of the oracle's
+10 %). The ``strong`` preset (``PRESETS``: base CTR 10 %, style spread +20 %, personal spread
+50 %) shows learning within a few thousand rounds. Set ``base_ctr=0.01`` for realism.

**Delayed feedback.** The outcome (click or not) of round t reaches the policy at round
``t + floor(Exponential(delay_mean))``, and policies are updated only every ``update_every``
rounds with everything that has arrived by then (``update_many``), as a deployed model is
retrained in batches. Feedback still in flight when the run ends is not delivered:
``updates + in_flight == rounds`` for every learning policy.
"""

from __future__ import annotations

from ..arms import ORIGINAL
from ..policies import FixedStyle
from .clicks import ClickModel, build
from .config import (
    PRESETS,
    CategoricalSpec,
    NumericSpec,
    SimulationConfig,
    TasteWeights,
    preset,
)
from .feedback import DelayedFeedback, sample_delays
from .population import Impression, ImpressionBatch, Population, split_arm
from .results import PolicyRun, SimulationResult
from .runner import (
    BASELINES,
    DEFAULT_BASELINES,
    DEFAULT_POLICIES,
    POLICY_FACTORIES,
    policy_factories,
    simulate,
)

__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "DEFAULT_POLICIES",
    "ORIGINAL",
    "POLICY_FACTORIES",
    "PRESETS",
    "CategoricalSpec",
    "ClickModel",
    "DelayedFeedback",
    "FixedStyle",
    "Impression",
    "ImpressionBatch",
    "NumericSpec",
    "PolicyRun",
    "Population",
    "SimulationConfig",
    "SimulationResult",
    "TasteWeights",
    "build",
    "policy_factories",
    "preset",
    "sample_delays",
    "simulate",
    "split_arm",
]
