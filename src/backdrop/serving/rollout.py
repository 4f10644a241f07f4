"""Safe rollout (apprentice mode): serve what the retailer shows today, learn beside it, take over
only when the evidence says the policy is better.

While the phase is ``baseline`` the service shows the baseline (the catalog image, or one fixed
style) to all impressions but an exploration share, which gets a uniformly random candidate; every
decision is logged with its true propensity, ``(1 - e) [a = baseline] + e / K``. The learner folds
them all, and before folding each pass it scores the model it has so far on the new decisions
(progressive validation: a decision is never scored by a model that learned from it): per decision
the inverse-propensity terms of the policy, ``pi(a|x) / p * r``, and of the baseline,
``[a = baseline] / p * r``. Their running sums give both values and the paired difference with a
normal interval. When the difference's lower bound is above zero (and enough decisions were
scored), the learner records the switch with the model version it publishes; every replica reads
it with the model and serves the policy from then on. The switch is logged and is in the metrics.

>>> s = RolloutStats()
>>> s.add([0.0, 2.0, 0.0, 2.0], [1.0, 0.0, 1.0, 0.0])
>>> s.summary(0.95)["policy_value"], s.summary(0.95)["baseline_value"]
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
    #: decisions scored before a switch is considered (a guard against an early lucky streak)
    min_decisions: int = Field(default=1000, ge=1)
    #: two-sided confidence of the intervals (the switch needs the difference's lower bound > 0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)

    def baseline_arm(self, arms: list[str]) -> str:
        """The baseline among a decision's candidates."""
        return self.baseline if self.baseline in arms else ORIGINAL

    def candidates(self, styles: list[str]) -> list[str]:
        """The stored styles, with the catalog image when it is the baseline (or stands in for it)."""
        if self.baseline == ORIGINAL or self.baseline not in styles:
            return [*styles, ORIGINAL]
        return list(styles)


@dataclass
class RolloutStats:
    """Running sums of the per-decision IPS terms of the policy (``p``), the baseline (``b``) and
    their difference (``d``)."""

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

    def summary(self, confidence: float) -> dict:
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + confidence / 2))
        out: dict = {"n": self.n, "confidence": confidence}
        for name, s, sq in (("policy", self.sum_p, self.sq_p), ("baseline", self.sum_b, self.sq_b), ("difference", self.sum_d, self.sq_d)):
            if self.n == 0:
                out |= {f"{name}_value": None, f"{name}_low": None, f"{name}_high": None}
                continue
            mean = s / self.n
            var = max(sq / self.n - mean * mean, 0.0) / max(self.n - 1, 1)
            half = z * math.sqrt(var)
            out |= {f"{name}_value": mean, f"{name}_low": mean - half, f"{name}_high": mean + half}
        return out


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

    Decisions that did not offer the baseline (a Personalizer rank, a style-filtered request) say
    nothing about the baseline's value and are left out of both."""
    terms_p: list[float] = []
    terms_b: list[float] = []
    for d, r in rows:
        arms = list(d.arms)
        base = settings.baseline_arm(arms)
        if base not in arms:
            continue
        reward = default_reward if r is None else r
        probs = policy.probabilities(np.asarray(d.context, dtype=np.float64), arms)
        terms_p.append(float(probs[arms.index(d.arm)]) / d.propensity * reward)
        terms_b.append((d.arm == base) / d.propensity * reward)
    return terms_p, terms_b


def advance(state: RolloutState, terms: tuple[list[float], list[float]], settings: RolloutSettings, version: int) -> RolloutState:
    """Add a pass's terms; switch to the policy when its lower bound beats the baseline (``switch: auto``)."""
    state.stats.add(*terms)
    if state.phase == BASELINE and settings.switch == "auto" and state.stats.n >= settings.min_decisions:
        summary = state.stats.summary(settings.confidence)
        if summary["difference_low"] is not None and summary["difference_low"] > 0:
            state.phase = POLICY
            state.switched = {"model_version": version, "at": time.time()} | summary
    return state
