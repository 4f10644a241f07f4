"""Safe rollout (apprentice mode): serve what the retailer shows today, learn beside it, take over
only when the evidence says the policy is better.

While the phase is ``baseline`` the service shows the baseline (the catalog image, or one fixed
style) to all impressions but an exploration share, which gets a uniformly random candidate; every
decision is logged with its true propensity, ``(1 - e) [a = baseline] + e / K``. A decide whose
``styles`` leave the baseline out has no baseline to serve: the policy chooses among the styles asked
for and is logged with its own propensity (the catalog image is never served outside them). The
learner folds every decision, and before folding each pass it scores the model it has so far on the
new decisions (progressive validation: a decision is never scored by a model that learned from it):
per decision the inverse-propensity terms of the policy, ``pi(a|x) / p * r``, and of the baseline,
``[a = baseline] / p * r``. Only the rollout's own decisions (logged as ``apprentice``) are scored:
their propensities are the rule's, at least ``e / K`` for every candidate. Personalizer ranks and
the decisions the policy made itself say nothing about the baseline and are left out (after the
switch, the estimates keep the evidence the switch was made on).

The running sums give both values and their paired difference with a confidence sequence, an
interval valid at every number of decisions at once, so the learner may look after every pass (see
:func:`mixture_boundary`). When the difference's lower bound is above zero (and ``min_decisions``
were scored), the learner records the switch with the model version it publishes; every replica
reads it with the model and serves the policy from then on. The switch is logged and is in the
metrics.

>>> s = RolloutStats()
>>> s.add([0.0, 2.0, 0.0, 2.0], [1.0, 0.0, 1.0, 0.0])
>>> s.summary(RolloutSettings())["policy_value"], s.summary(RolloutSettings())["baseline_value"]
(1.0, 0.5)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..bandit.arms import ORIGINAL

BASELINE, POLICY = "baseline", "policy"
#: the confidence sequence is tightest at this many times ``min_decisions``: switches on real lifts
#: come later than the first allowed look (simulated: 20% sooner than tightest at ``min_decisions``)
TIGHTEST_AT = 10
#: the ``policy`` logged for decisions made by the rollout's baseline-or-explore rule
APPRENTICE = "apprentice"


class RolloutSettings(BaseModel):
    """A safe rollout: the baseline served until the policy's lower bound beats it."""

    model_config = ConfigDict(extra="forbid")

    #: what the retailer shows today: ``original`` (the catalog image) or a style name (an item
    #: without that style is shown its catalog image)
    baseline: str = ORIGINAL
    #: share of impressions given a uniformly random candidate while the baseline is served
    exploration: float = Field(default=0.1, gt=0, le=1)
    #: auto: switch when the evidence says so; never: only report (an operator switches by config)
    switch: Literal["auto", "never"] = "auto"
    #: decisions scored before a switch is considered (the confidence sequence is tightest at
    #: ``TIGHTEST_AT`` times this)
    min_decisions: int = Field(default=1000, ge=1)
    #: two-sided confidence of the intervals, valid over every look at once; a false switch (the
    #: difference's lower bound above zero when the policy is no better) has probability at most
    #: (1 - confidence) / 2
    confidence: float = Field(default=0.95, gt=0.5, lt=1)

    def baseline_arm(self, arms: list[str]) -> str | None:
        """The baseline among a decision's candidates (the catalog image standing in for a style the
        item lacks), or None when the decision did not offer it."""
        if self.baseline in arms:
            return self.baseline
        return ORIGINAL if ORIGINAL in arms else None

    def candidates(self, styles: list[str], asked: list[str] | None = None) -> list[str]:
        """A decision's candidates: the stored ``styles`` (those the request ``asked`` for), with the
        catalog image when it is the baseline or stands in for it. A request that names its styles
        gets the catalog image only when it names ``original`` too."""
        if asked is not None and ORIGINAL not in asked:
            return list(styles)
        if self.baseline == ORIGINAL or self.baseline not in styles:
            return [*styles, ORIGINAL]
        return list(styles)

    def baseline_or_explore(self, arms: list[str], rng: np.random.Generator) -> tuple[str, float] | None:
        """The rollout's choice while the baseline is served and its true propensity; None when the
        baseline is not among ``arms`` (the request's styles left it out): there is nothing to
        protect, and the policy chooses."""
        base = self.baseline_arm(arms)
        if base is None:
            return None
        e, k = self.exploration, len(arms)
        style = arms[int(rng.integers(k))] if rng.random() < e else base
        return style, (1 - e) * (style == base) + e / k


def mixture_boundary(n, alpha: float, tightest_at: float):
    """Robbins' one-sided normal-mixture boundary ``b(n)``: a standard Brownian motion ever crosses
    it with probability at most ``alpha``, ``P(exists n >= 0: W(n) >= b(n)) <= alpha``.

    ``b(n)`` solves ``M(b, n) = 1 / alpha`` for the mixture over ``lambda >= 0`` (a half-normal of
    precision ``rho``) of ``exp(lambda W(n) - lambda^2 n / 2)``, a nonnegative martingale,

        M(s, n) = 2 sqrt(rho / (n + rho)) exp(s^2 / (2 (n + rho))) Phi(s / sqrt(n + rho)),

    and Ville's inequality bounds the chance it ever reaches ``1 / alpha``. ``rho`` makes ``b`` tightest
    near ``tightest_at`` (Howard, Ramdas, McAuliffe and Sekhon, "Time-uniform, nonparametric,
    nonasymptotic confidence sequences", Annals of Statistics 49(2), 2021, arXiv:1810.08240: the
    one-sided normal mixture and its ``rho``). It grows like ``sqrt(n log n)``, where a fixed-sample
    bound grows like ``sqrt(n)``: the price of looking as often as one likes. Works on arrays.

    >>> round(float(mixture_boundary(100, 0.05, 100)), 4)  # confseq's reference value: 27.66071
    27.6607
    """
    from scipy.special import log_ndtr

    n = np.asarray(n, dtype=np.float64)
    la = math.log(1 / (2 * alpha))
    rho = tightest_at / (2 * la + math.log(1 + 2 * la))
    vr = n + rho
    # the two-sided boundaries at 2 alpha and at alpha bracket the root (1/2 <= Phi <= 1); bisect
    lo = np.sqrt(vr * (np.log(vr / rho) + 2 * la))
    hi = np.sqrt(vr * (np.log(vr / rho) + 2 * math.log(1 / alpha)))
    target = math.log(1 / alpha) - 0.5 * np.log(4 * rho / vr)
    for _ in range(50):
        mid = (lo + hi) / 2
        above = mid * mid / (2 * vr) + log_ndtr(mid / np.sqrt(vr)) >= target
        lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
    return hi


@dataclass
class RolloutStats:
    """Running sums of the per-decision IPS terms of the policy (``p``), the baseline (``b``) and
    their difference (``d``). :meth:`summary` and :func:`switch_due` also take array fields, one
    rollout per element (simulations); :meth:`add` adds one rollout's terms."""

    n: int = 0
    sum_p: float = 0.0
    sq_p: float = 0.0
    sum_b: float = 0.0
    sq_b: float = 0.0
    sum_d: float = 0.0
    sq_d: float = 0.0

    def add(self, policy_terms, baseline_terms) -> None:
        p, b = np.asarray(policy_terms, dtype=float), np.asarray(baseline_terms, dtype=float)
        d = p - b
        self.n += len(p)
        self.sum_p += float(p.sum())
        self.sq_p += float((p * p).sum())
        self.sum_b += float(b.sum())
        self.sq_b += float((b * b).sum())
        self.sum_d += float(d.sum())
        self.sq_d += float((d * d).sum())

    def summary(self, settings: RolloutSettings) -> dict:
        """Each value with its confidence sequence at ``settings.confidence``: the mean of the terms
        ``+- sd * b(n) / n``, ``sd`` their sample standard deviation and ``b`` the
        :func:`mixture_boundary` at ``(1 - confidence) / 2`` on each side, tightest at
        ``TIGHTEST_AT * min_decisions``.

        The terms of a decision are a martingale difference around their value: the policy scoring
        it learned only from earlier decisions, and its propensity is the one it was logged with.
        With the variance estimated, the normal mixture holds asymptotically, as the time-uniform
        central limit theorem of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas ("Time-uniform
        central limit theory and asymptotic confidence sequences", Annals of Statistics, 2024,
        arXiv:2103.06476) makes precise; it needs no bound on the rewards (revenue has none).
        ``min_decisions`` keeps the first, least normal sums from deciding anything; at equal CTRs
        the simulated false switch rate stays well under (1 - confidence) / 2 (tests/test_rollout.py)."""
        out: dict = {"n": self.n, "confidence": settings.confidence}
        n = np.asarray(self.n, dtype=np.float64)
        if not np.any(n > 0):
            for name in ("policy", "baseline", "difference"):
                out |= {f"{name}_value": None, f"{name}_low": None, f"{name}_high": None}
            return out
        m = np.maximum(n, 1.0)
        scale = mixture_boundary(m, (1 - settings.confidence) / 2, TIGHTEST_AT * settings.min_decisions) / m
        for name, s, sq in (("policy", self.sum_p, self.sq_p), ("baseline", self.sum_b, self.sq_b), ("difference", self.sum_d, self.sq_d)):
            mean = np.asarray(s, dtype=np.float64) / m
            sd = np.sqrt(np.maximum(np.asarray(sq) / m - mean * mean, 0.0) * m / np.maximum(m - 1, 1.0))
            half = sd * scale
            out |= {f"{name}_value": _out(mean), f"{name}_low": _out(mean - half), f"{name}_high": _out(mean + half)}
        return out


def _out(x):
    """A summary's number: a float (JSON, logs) for one rollout, the array for many."""
    return float(x) if np.ndim(x) == 0 else x


def switch_due(stats: RolloutStats, settings: RolloutSettings):
    """Whether the evidence says the policy beats the baseline: ``min_decisions`` scored and the
    difference's lower bound above zero (elementwise for array sums)."""
    if not np.any(np.asarray(stats.n) > 0):
        return False
    due = (np.asarray(stats.n) >= settings.min_decisions) & (np.asarray(stats.summary(settings)["difference_low"]) > 0)
    return bool(due) if np.ndim(due) == 0 else due


@dataclass
class RolloutState:
    """What a model version records of the rollout: the phase, the evidence, and the switch."""

    phase: str = BASELINE
    stats: RolloutStats = field(default_factory=RolloutStats)
    #: when and on what evidence the policy took over (None: not yet)
    switched: dict | None = None

    @classmethod
    def from_json(cls, text: str | None) -> RolloutState:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(phase=data["phase"], stats=RolloutStats(**data["stats"]), switched=data.get("switched"))

    def to_json(self) -> str:
        return json.dumps({"phase": self.phase, "stats": asdict(self.stats), "switched": self.switched}, sort_keys=True)


def score(policy, rows: list, settings: RolloutSettings, default_reward: float) -> tuple[list[float], list[float]]:
    """The IPS terms of ``policy`` and of the baseline on learnable, activated decisions ``[(d, r)]``.

    Only the rollout's own decisions count (``policy`` logged as ``apprentice``, the baseline among
    their candidates): their propensities are the baseline-or-explore rule's. Everything else is left
    out of both: a Personalizer rank (logged under the served policy's name; its actions are the
    client's ids, even one spelled like the baseline), a decision the policy made itself (after the
    switch, or for a request whose ``styles`` left the baseline out)."""
    terms_p: list[float] = []
    terms_b: list[float] = []
    for d, r in rows:
        arms = list(d.arms)
        base = settings.baseline_arm(arms)
        if d.policy != APPRENTICE or base is None:
            continue
        reward = default_reward if r is None else r
        probs = policy.probabilities(np.asarray(d.context, dtype=np.float64), arms)
        terms_p.append(float(probs[arms.index(d.arm)]) / d.propensity * reward)
        terms_b.append((d.arm == base) / d.propensity * reward)
    return terms_p, terms_b


def advance(state: RolloutState, terms: tuple[list[float], list[float]], settings: RolloutSettings, version: int) -> RolloutState:
    """Add a pass's terms; switch to the policy when its lower bound beats the baseline (``switch: auto``).

    Called after every pass: the bound is a confidence sequence, so these repeated looks do not add
    to its error (:meth:`RolloutStats.summary`)."""
    state.stats.add(*terms)
    if state.phase == BASELINE and settings.switch == "auto" and switch_due(state.stats, settings):
        state.phase = POLICY
        state.switched = {"model_version": version, "at": time.time()} | state.stats.summary(settings)
    return state
