"""How many impressions an experiment needs, and what lift it can detect."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from .. import stats


def plan(
    baseline_ctr: float,
    lift: float,
    power: float = 0.8,
    alpha: float = 0.05,
    arms: int = 2,
    daily_impressions: float | None = None,
    method: str = "arcsine",
) -> dict:
    """Impressions needed to detect a relative ``lift`` over ``baseline_ctr`` with every arm.

    With ``arms`` arms there are ``arms - 1`` comparisons against the control; each is planned at
    the Bonferroni level ``alpha / (arms - 1)``. :func:`analyze` adjusts with Holm, which rejects
    whenever Bonferroni does, so the plan is (slightly) conservative. Per-arm size from
    :func:`stats.sample_size_per_arm` (two-sided); ``days`` = total / daily traffic, rounded up.
    """
    if arms < 2:
        raise ValueError(f"an experiment needs at least 2 arms, got {arms}")
    comparisons = arms - 1
    alpha_each = alpha / comparisons
    per_arm = stats.sample_size_per_arm(baseline_ctr, lift, alpha=alpha_each, power=power, method=method)
    total = per_arm * arms
    days = None
    if daily_impressions is not None:
        if daily_impressions <= 0:
            raise ValueError(f"daily_impressions must be > 0, got {daily_impressions}")
        days = math.ceil(total / daily_impressions)
    return {
        "baseline_ctr": baseline_ctr,
        "lift": lift,
        "target_ctr": baseline_ctr * (1 + lift),
        "power": power,
        "alpha": alpha,
        "arms": arms,
        "comparisons": comparisons,
        "alpha_per_comparison": alpha_each,
        "method": method,
        "impressions_per_arm": per_arm,
        "impressions_total": total,
        "daily_impressions": daily_impressions,
        "days": days,
    }


def plan_table(
    baselines: Iterable[float],
    lifts: Iterable[float],
    power: float = 0.8,
    alpha: float = 0.05,
    arms: int = 2,
    daily_impressions: float | None = None,
    method: str = "arcsine",
) -> list[dict]:
    """:func:`plan` for every (baseline, lift) pair, baseline-major."""
    lifts = list(lifts)
    return [plan(b, lf, power, alpha, arms, daily_impressions, method) for b in baselines for lf in lifts]


def plan_markdown(plans: dict | Sequence[dict]) -> str:
    """A table of one :func:`plan` result or a :func:`plan_table` grid."""
    rows = [plans] if isinstance(plans, Mapping) else list(plans)
    if not rows:
        return ""
    first = rows[0]
    head = (
        f"{first['arms']} arms, power {first['power']:.0%}, two-sided alpha {first['alpha']:g}"
        + (
            f" split over {first['comparisons']} comparisons (Bonferroni: {first['alpha_per_comparison']:.3g} each)"
            if first["comparisons"] > 1
            else ""
        )
        + f", {first['method']} formula"
    )
    days = any(r["days"] is not None for r in rows)
    lines = [
        head,
        "",
        "| baseline CTR | lift | target CTR | impressions per arm | total impressions |" + (" days |" if days else ""),
        "|---:|---:|---:|---:|---:|" + ("---:|" if days else ""),
    ]
    for r in rows:
        line = (
            f"| {r['baseline_ctr']:.2%} | {r['lift'] * 100:+g}% | {r['target_ctr']:.3%} | {r['impressions_per_arm']:,} "
            f"| {r['impressions_total']:,} |"
        )
        if days:
            line += f" {r['days']:,} |" if r["days"] is not None else " – |"
        lines.append(line)
    return "\n".join(lines) + "\n"
