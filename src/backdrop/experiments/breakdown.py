"""CTR per arm within groups (a category, a placement), with intervals and the lift over a control.

A pure function over counts, the same statistics :mod:`backdrop.experiments.abtest` reports
(Wilson intervals for a CTR, the log-ratio interval for a relative lift), so the console's results
page and ``backdrop abtest`` agree on every figure they share.

>>> rows = breakdown([("all", "original", 1000, 20), ("all", "studio", 1000, 30)], control="original")
>>> [(r["arm"], r["n"], r["clicks"], round(r["ctr"], 3)) for r in rows]
[('original', 1000, 20, 0.02), ('studio', 1000, 30, 0.03)]
>>> round(rows[1]["lift"], 2), rows[1]["lift_low"] < 0 < rows[1]["lift_high"]
(0.5, True)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from . import stats


def breakdown(counts: Iterable[tuple[str, str, int, int]], control: str, alpha: float = 0.05) -> list[dict]:
    """``counts``: (group, arm, impressions, clicks), a group/arm pair may repeat (they are summed).

    One row per (group, arm), groups in order of impressions, the control first in each group, then
    the arms by impressions: ``group, arm, n, clicks, ctr, ctr_low, ctr_high, share`` (of the group's
    impressions) and, when the group has the control and the row is not it, ``lift, lift_low,
    lift_high`` (None otherwise)."""
    n: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    c: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for group, arm, impressions, clicks in counts:
        n[group][arm] += int(impressions)
        c[group][arm] += int(clicks)
    out: list[dict] = []
    for group in sorted(n, key=lambda g: (-sum(n[g].values()), g)):
        arms = sorted(n[group], key=lambda a: (a != control, -n[group][a], a))
        ns = np.array([n[group][a] for a in arms], dtype=float)
        cs = np.array([c[group][a] for a in arms], dtype=float)
        low, high = stats.wilson_interval(cs, ns, alpha)
        has_control = arms[0] == control
        total = ns.sum()
        for i, arm in enumerate(arms):
            row = {
                "group": group,
                "arm": arm,
                "n": int(ns[i]),
                "clicks": int(cs[i]),
                "ctr": float(cs[i] / ns[i]) if ns[i] else None,
                "ctr_low": float(low[i]),
                "ctr_high": float(high[i]),
                "share": float(ns[i] / total) if total else None,
                "control": arm == control,
                "lift": None,
                "lift_low": None,
                "lift_high": None,
            }
            if has_control and i > 0 and ns[0] and cs[0]:
                lift, lo, hi = stats.relative_lift(cs[i], ns[i], cs[0], ns[0], alpha)
                row.update(lift=_finite(lift), lift_low=_finite(lo), lift_high=_finite(hi))
            out.append(row)
    return out


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
