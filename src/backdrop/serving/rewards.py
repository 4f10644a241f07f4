"""Outcomes and the reward they add up to: typed events joined to a decision, and the deployment's
reward function (a rule set once per deployment and recorded with every model version it trained).

An outcome is what the ad server saw after an impression: a ``click``, an ``add_to_cart``, a
``purchase`` with a value and a currency, or a name of its own. ``POST /v1/feedback`` (a number) is
kept as the event ``feedback`` with that value. :meth:`RewardFunction.reward` turns a decision's
outcomes into one number for the learner; ``None`` means "no outcome", and the deployment's
``default_reward`` applies.

>>> f = RewardFunction(rule="weighted", weights={"click": 1, "add_to_cart": 3, "purchase": 10})
>>> f.reward([Outcome("click"), Outcome("click"), Outcome("purchase", 25.0, "EUR")])
11.0
>>> RewardFunction(rule="sum-values", currency="EUR").reward([Outcome("purchase", 25.0, "EUR"), Outcome("purchase", 5.5, "EUR")])
30.5
>>> RewardFunction(rule="first-click").reward([Outcome("click"), Outcome("click")])
1.0
>>> RewardFunction().reward([]) is None
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: what an event's ``type`` may be: a lowercase name (the built-in ones, or one of the retailer's own)
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
CLICK, ADD_TO_CART, PURCHASE, FEEDBACK = "click", "add_to_cart", "purchase", "feedback"


@dataclass(frozen=True)
class Outcome:
    """One event joined to a decision (``value``/``currency`` where it carries an amount)."""

    type: str
    value: float | None = None
    currency: str | None = None


class RewardFunction(BaseModel):
    """How a decision's outcomes add up to its reward.

    - ``feedback`` (the default, as before events existed): the ``/v1/feedback`` value if one was
      sent, else 1 for a click event, else no outcome.
    - ``first-click``: 1 if the impression was clicked at all (a click event, or feedback > 0).
    - ``sum-values``: the sum of the values of ``value_events`` (purchases: revenue), plus feedback.
    - ``weighted``: the sum of ``weights[type]`` over the events (a purchase worth 10 clicks), with
      feedback counting its value times ``weights["feedback"]`` (1 when not given).

    ``cap`` bounds the reward on both sides, to [-cap, cap]: a rare huge order, or a refund of one,
    must not swamp the learner.

    >>> RewardFunction(rule="sum-values", cap=100).reward([Outcome("purchase", -1e9)])
    -100.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["feedback", "first-click", "sum-values", "weighted"] = "feedback"
    weights: dict[str, float] = Field(default_factory=lambda: {CLICK: 1.0})
    value_events: list[str] = Field(default_factory=lambda: [PURCHASE])
    #: ISO 4217 code: events carrying a value in another currency are refused when they arrive
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    cap: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _finite(self):
        for name, w in self.weights.items():
            if not math.isfinite(w):
                raise ValueError(f"weights.{name}: must be a finite number")
        return self

    def reward(self, outcomes: list[Outcome]) -> float | None:
        """The reward of one decision's outcomes; None when nothing happened (the default reward applies)."""
        if not outcomes:
            return None
        feedback = [o.value or 0.0 for o in outcomes if o.type == FEEDBACK]
        clicked = any(o.type == CLICK for o in outcomes)
        if self.rule == "feedback":
            value = feedback[0] if feedback else (1.0 if clicked else None)
        elif self.rule == "first-click":
            value = 1.0 if clicked or any(v > 0 for v in feedback) else 0.0
        elif self.rule == "sum-values":
            wanted = set(self.value_events)
            value = sum(o.value or 0.0 for o in outcomes if o.type in wanted) + sum(feedback)
        else:
            value = sum(
                self.weights.get(FEEDBACK, 1.0) * (o.value or 0.0) if o.type == FEEDBACK else self.weights.get(o.type, 0.0)
                for o in outcomes
            )
        if value is None:
            return None
        return max(-self.cap, min(value, self.cap)) if self.cap is not None else float(value)

    def check(self, type_: str, value: float | None, currency: str | None) -> str | None:
        """Why an incoming event cannot count under this function (None: it can)."""
        if value is not None and self.currency is not None and currency is not None and currency != self.currency:
            return f"currency {currency}: this deployment's rewards are in {self.currency}; convert the value first"
        if value is not None and currency is None and self.currency is not None and type_ in self.value_events:
            return f"a {type_} value needs its currency ({self.currency})"
        return None

    def describe(self) -> str:
        """The function as recorded with each model version (JSON, keys sorted)."""
        return json.dumps(self.model_dump(), sort_keys=True)
