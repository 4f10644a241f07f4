"""For whom a style works, and whether personalization beats the best single style, from a log.

Pure functions over logged decisions (what the console's results page reads from the event log):

* :func:`context_breakdown`: CTR per style within each value of each context field the decisions
  carried (a declared user field such as device or segment, numeric fields in thirds, the
  placement), with Wilson intervals, the lift over the catalog image where it was shown, and
  whether the group's best style is ahead of the next one beyond the intervals.
* :func:`lift_over_best_style`: the served policy's click rate (on-policy, from its own decisions)
  against the best single style per category estimated off-policy from the logged propensities
  (self-normalised IPS over every styled decision), with a bootstrap interval that repeats the
  choice of the best style in each resample; said plainly when the data is too thin.

>>> rows = [Decision("Shoes", "feed", "a", 0.5, True, float(i % 4 == 0), {"device": "ios"}) for i in range(400)]
>>> rows += [Decision("Shoes", "feed", "b", 0.5, True, float(i % 20 == 0), {"device": "ios"}) for i in range(400)]
>>> rows += [Decision("Shoes", "feed", "b", 0.5, True, 0.0, {"device": "android"}) for i in range(10)]
>>> device = context_breakdown(rows)[0]
>>> device["field"], [(r["group"], r["arm"], r["n"], r["clicks"]) for r in device["rows"]]
('device', [('device=ios', 'a', 400, 100), ('device=ios', 'b', 400, 20), ('device=android', 'b', 10, 0)])
>>> device["leaders"][0]["arm"], device["leaders"][0]["ahead"], device["leaders"][1]["arm"]
('a', True, None)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..bandit.arms import ORIGINAL
from .breakdown import breakdown

#: a context field with more distinct values than this is not broken down (an id, free text)
MAX_VALUES = 8
#: below this many clicks in all, an estimate is not worth reading as one
MIN_CLICKS = 100
#: a style with fewer impressions in a group is neither named its leader nor its best single style
MIN_IMPRESSIONS = 100
#: the styles a group's table shows (the most served; the leader always)
SHOWN_PER_GROUP = 6
#: importance weights are clipped here: a click on a style shown with probability 0.006 would
#: otherwise count 160 times (clipped IPS; a little bias for much less variance)
MAX_WEIGHT = 50.0


@dataclass(frozen=True)
class Decision:
    """One logged, shown decision: what the breakdowns need of it."""

    category: str
    placement: str
    arm: str
    propensity: float
    #: made by the served policy (not an experiment's control, fixed or random arm)
    by_policy: bool
    reward: float
    user: dict = field(default_factory=dict)


def _groups(rows: Sequence[Decision], max_values: int) -> dict[str, Callable[[Decision], str | None]]:
    """Per context field, how a decision is grouped: categorical values as they are (at most
    ``max_values`` of them), numbers in thirds of what was logged, and the placement."""
    values: dict[str, set] = defaultdict(set)
    numbers: dict[str, list[float]] = defaultdict(list)
    for d in rows:
        for k, v in d.user.items():
            if isinstance(v, bool | str):
                values[k].add(str(v))
            elif isinstance(v, int | float):
                numbers[k].append(float(v))
    out: dict[str, Callable[[Decision], str | None]] = {}

    def value(d: Decision, k: str) -> str | None:
        return None if k not in d.user else f"{k}={d.user[k]}"

    for k in sorted(values):
        if 2 <= len(values[k]) <= max_values and k not in numbers:
            out[k] = partial(value, k=k)
    for k in sorted(numbers):
        xs = np.array(numbers[k])
        if k in values or len(np.unique(xs)) < 3:
            continue
        lo, hi = (float(q) for q in np.quantile(xs, [1 / 3, 2 / 3]))

        def third(d: Decision, k=k, lo=lo, hi=hi) -> str | None:
            v = d.user.get(k)
            if not isinstance(v, int | float) or isinstance(v, bool):
                return None
            return f"{k} < {lo:g}" if v < lo else f"{k} ≥ {hi:g}" if v >= hi else f"{lo:g} ≤ {k} < {hi:g}"

        out[k] = third
    out["placement"] = lambda d: f"placement={d.placement}"
    return out


def context_breakdown(rows: Sequence[Decision], max_values: int = MAX_VALUES, alpha: float = 0.05) -> list[dict]:
    """Per context field, ``{field, rows, hidden, leaders}``: ``rows`` as :func:`~.breakdown.breakdown`
    (group "field=value", arm, n, clicks, CTR with its interval, lift over the catalog image), for
    the catalog image and the :data:`SHOWN_PER_GROUP` most served styles of each group (``hidden``:
    how many rows were left out); per group its leader among the styles with at least
    :data:`MIN_IMPRESSIONS` impressions: ``{group, arm, ctr, n, runner_up, ahead}``, ``ahead`` when
    the leader's interval lies wholly above the runner-up's (``arm`` None: no style has enough)."""
    out = []
    for name, key in _groups(rows, max_values).items():
        counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for d in rows:
            g = key(d)
            if g is not None:
                c = counts[(g, d.arm)]
                c[0] += 1
                c[1] += int(d.reward > 0)
        table = breakdown(((g, a, n, k) for (g, a), (n, k) in counts.items()), control=ORIGINAL, alpha=alpha)
        leaders, shown = [], []
        for g in dict.fromkeys(r["group"] for r in table):
            group = [r for r in table if r["group"] == g]
            styled = sorted((r for r in group if r["arm"] != ORIGINAL and r["n"] >= MIN_IMPRESSIONS), key=lambda r: -r["ctr"])
            best, second = (styled[0] if styled else None), (styled[1] if len(styled) > 1 else None)
            leaders.append(
                {
                    "group": g,
                    "arm": str(best["arm"]) if best else None,
                    "ctr": best["ctr"] if best else None,
                    "n": best["n"] if best else 0,
                    "runner_up": str(second["arm"]) if second else None,
                    "ahead": bool(best and second and best["ctr_low"] > second["ctr_high"]),
                }
            )
            most = [r for r in group if r["arm"] != ORIGINAL][:SHOWN_PER_GROUP]  # breakdown orders by impressions
            keep = {id(r) for r in most} | {id(r) for r in group if r["arm"] == ORIGINAL or r is best}
            shown += [r for r in group if id(r) in keep]
        out.append({"field": name, "rows": shown, "hidden": len(table) - len(shown), "leaders": leaders})
    return out


def lift_over_best_style(rows: Sequence[Decision], n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> dict:
    """The served policy's CTR over the best single style per category's, off-policy.

    ``{policy_ctr, best_style_ctr, lift, lift_low, lift_high, decisions, policy_decisions, clicks,
    best, enough, verdict}``. A style's CTR in a category is the self-normalised IPS estimate over
    every styled decision that showed it (the logged propensities weigh each, clipped at
    :data:`MAX_WEIGHT`). Picking the best of
    many styles on the same data that values it would flatter it (the winner's curse), so the value
    is cross-fitted: the best style per category (among those shown at least
    :data:`MIN_IMPRESSIONS` / 2 times in a half) is picked on one random half of the decisions and
    valued on the other, both ways round, averaged over 10 random splits; the bootstrap repeats it
    with one split per resample. ``best``: each category's
    pick on all the data, with its CTR there. ``enough`` is False (and ``verdict`` says so) with
    fewer than :data:`MIN_CLICKS` clicks or no decision of the policy.
    """
    styled = [d for d in rows if d.arm != ORIGINAL and d.propensity > 0]
    mine = np.array([d.by_policy for d in styled], dtype=bool)
    out: dict = {"decisions": len(styled), "policy_decisions": int(mine.sum()), "clicks": int(sum(d.reward > 0 for d in styled))}
    empty: dict = {"policy_ctr": None, "best_style_ctr": None, "lift": None, "lift_low": None, "lift_high": None, "best": {}}
    if not styled or not mine.any():
        return out | empty | {"enough": False, "verdict": "no decision of the served policy yet: nothing to compare"}
    cats = sorted({d.category for d in styled})
    cells = sorted({(d.category, d.arm) for d in styled})
    cell = {c: i for i, c in enumerate(cells)}
    cat = {c: i for i, c in enumerate(cats)}
    idx = np.array([cell[(d.category, d.arm)] for d in styled])
    cat_of_cell = np.array([cat[c] for c, _ in cells])
    cat_idx = np.array([cat[d.category] for d in styled])
    w = np.minimum(1.0 / np.array([d.propensity for d in styled]), MAX_WEIGHT)
    r = np.array([d.reward for d in styled], dtype=float)

    def values(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per cell, its SNIPS CTR (nan: never shown) and how often it was shown, in ``sample``."""
        num = np.bincount(idx[sample], weights=w[sample] * r[sample], minlength=len(cells))
        den = np.bincount(idx[sample], weights=w[sample], minlength=len(cells))
        return np.where(den > 0, num / np.maximum(den, 1e-300), np.nan), np.bincount(idx[sample], minlength=len(cells))

    def picks(value: np.ndarray, shown: np.ndarray, support: int) -> np.ndarray:
        """Per category, its best cell among those shown ``support`` times (else its most shown one)."""
        out = np.full(len(cats), -1)
        for c in range(len(cats)):
            mine_ = np.flatnonzero(cat_of_cell == c)
            ok = mine_[(shown[mine_] >= support) & ~np.isnan(value[mine_])]
            if len(ok):
                out[c] = ok[np.argmax(value[ok])]
            elif shown[mine_].any():
                out[c] = mine_[np.argmax(shown[mine_])]
        return out

    def best_style_ctr(sample: np.ndarray, rng: np.random.Generator) -> float:
        halves = np.array_split(rng.permutation(sample), 2)
        share = np.bincount(cat_idx[sample], minlength=len(cats)).astype(float)
        total, weight = 0.0, 0.0
        for pick_on, value_on in (halves, halves[::-1]):
            chosen = picks(*values(pick_on), MIN_IMPRESSIONS // 2)
            value, _ = values(value_on)
            for c in range(len(cats)):
                if chosen[c] >= 0 and not np.isnan(value[chosen[c]]):
                    total += share[c] * value[chosen[c]]
                    weight += share[c]
        return total / weight if weight else float("nan")

    def policy_ctr(sample: np.ndarray) -> float:
        own = sample[mine[sample]]
        return float(r[own].mean()) if len(own) else float("nan")

    rng = np.random.default_rng(seed)
    everything = np.arange(len(styled))
    p_ctr = policy_ctr(everything)
    splits = [b for b in (best_style_ctr(everything, rng) for _ in range(10)) if np.isfinite(b)]
    b_ctr = float(np.mean(splits)) if splits else float("nan")  # over splits: one split's luck is not the estimate
    lifts = []
    for _ in range(n_boot):
        sample = rng.integers(0, len(styled), len(styled))
        p, b = policy_ctr(sample), best_style_ctr(sample, rng)
        if b > 0 and np.isfinite(p):
            lifts.append(p / b - 1)
    lift = p_ctr / b_ctr - 1 if b_ctr > 0 else None
    low, high = (float(q) for q in np.quantile(lifts, [alpha / 2, 1 - alpha / 2])) if len(lifts) > 10 else (None, None)
    value, shown = values(everything)
    best = {
        cats[c]: {"style": str(cells[i][1]), "ctr": float(value[i]), "shown": int(shown[i])}
        for c, i in enumerate(picks(value, shown, MIN_IMPRESSIONS))
        if i >= 0
    }
    enough = out["clicks"] >= MIN_CLICKS and lift is not None and low is not None
    if not enough:
        verdict = f"too thin to tell: {out['clicks']} clicks, at least {MIN_CLICKS} are needed before the comparison means anything"
    elif low is not None and low > 0:
        verdict = "personalization pays: the policy beats the best single style beyond the interval"
    elif high is not None and high < 0:
        verdict = "personalization does not pay yet: the best single style per category would do better"
    else:
        verdict = "not yet distinguishable from the best single style per category"
    return out | {
        "policy_ctr": p_ctr,
        "best_style_ctr": float(b_ctr) if np.isfinite(b_ctr) else None,  # no split valued its pick: no figure (JSON has no NaN)
        "lift": None if lift is None else float(lift),
        "lift_low": low,
        "lift_high": high,
        "best": best,
        "enough": enough,
        "verdict": verdict,
    }
