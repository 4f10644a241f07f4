"""Policies that do not learn: uniform, one fixed arm, and a fixed style per offered set."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .base import (
    Policy,
    _arm_from_json,
    _arm_to_json,
)


class Uniform(Policy):
    """Every offered arm with probability 1/K."""

    name = "uniform"
    contextual = False

    def _distribution(self, x, arms):
        k = len(arms)
        return np.zeros(k), np.full(k, 1.0 / k)

    def _update(self, x, i, reward) -> None:
        pass


class FixedArm(Policy):
    """Always ``arm`` (propensity 1); uniform over the offered arms when ``arm`` is not among them."""

    name = "fixed"
    contextual = False

    def __init__(self, *, arm, n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        self.arm = _arm_from_json(arm)

    def params(self) -> dict:
        return super().params() | {"arm": _arm_to_json(self.arm)}

    def _distribution(self, x, arms):
        k = len(arms)
        if self.arm in arms:
            probs = np.zeros(k)
            probs[arms.index(self.arm)] = 1.0
            return probs.copy(), probs
        return np.zeros(k), np.full(k, 1.0 / k)

    def _update(self, x, i, reward) -> None:
        pass


class FixedStyle(Policy):
    """Always the same style for the same offered style set: ``table[set]``, else the first offered.

    ``table``: a mapping (or pairs) from a collection of style names to the style to show.

    The offered set identifies the category's style list, so this is "a fixed style per
    category". With an empty table it shows each category's first library style (its default).
    Arms are matched as sets, so the order in which they are offered does not matter.
    """

    name = "fixed-per-set"  # not "fixed-style": that is the experiment arm's label in the event log
    contextual = False

    def __init__(self, *, table=None, n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        pairs = table.items() if isinstance(table, Mapping) else (table or [])
        self.table = {frozenset(arms): arm for arms, arm in pairs}

    def params(self) -> dict:
        return super().params() | {"table": [[sorted(arms, key=str), arm] for arms, arm in self.table.items()]}

    def _distribution(self, x, arms):
        k = len(arms)
        arm = self.table.get(frozenset(arms))
        j = arms.index(arm) if arm in arms else 0
        probs = np.zeros(k)
        probs[j] = 1.0
        return probs.copy(), probs

    def _update(self, x, i, reward) -> None:
        pass
