"""Every arm against the control: CTRs, lifts, tests, Holm, SRM, the always-valid p-value, CUPED."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ...errors import BackdropError
from .. import stats
from .impressions import Impressions

#: default control arm names, in order of preference (case-insensitive)
CONTROL_NAMES = ("control", "original", "a")
#: SRM p-value below which the result carries a warning (the usual, deliberately strict threshold)
SRM_ALPHA = 0.001
#: most looks the always-valid p-value is evaluated at along the time-ordered log
MAX_LOOKS = 2000


def choose_control(arms: Iterable[str], control: str | None = None) -> str:
    """The control arm: ``control`` if given (must exist), else the first arm named ``control``,
    ``original`` or ``A`` (case-insensitive, in that order of preference), else the first arm in
    alphabetical order."""
    arms = sorted(arms)
    if control is not None:
        if control not in arms:
            raise BackdropError(f"control arm '{control}' not in the data; arms: {', '.join(arms)}")
        return control
    by_lower = {a.lower(): a for a in reversed(arms)}
    for name in CONTROL_NAMES:
        if name in by_lower:
            return by_lower[name]
    return arms[0]


def _counts(imp: Impressions, arms: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arm index per impression, impressions and clicks per arm (in ``arms`` order)."""
    index = {a: i for i, a in enumerate(arms)}
    idx = np.fromiter((index[a] for a in imp.arm), dtype=np.intp, count=len(imp))
    n = np.bincount(idx, minlength=len(arms)).astype(float)
    clicks = np.bincount(idx, weights=imp.click, minlength=len(arms))
    return idx, n, clicks


def _always_valid(imp: Impressions, idx: np.ndarray, t: int, c: int, tau, alpha: float, deff=(1.0, 1.0)) -> tuple[float, float, float]:
    """mSPRT p and CI for arm t vs arm c: the running min over the time-ordered log if timestamps
    exist (up to MAX_LOOKS looks; fewer looks only make it more conservative), else one look.
    ``deff``: the arms' design effects (clustered / binomial variance); counts are divided by them
    (effective sample sizes), so per-user assignment does not make the test overconfident."""
    mask = (idx == t) | (idx == c)
    clicks, is_t = imp.click[mask], idx[mask] == t
    d_t, d_c = (max(float(d), 1.0) if np.isfinite(d) else 1.0 for d in deff)
    if imp.at is None:
        p, low, high = stats.msprt(clicks[is_t].sum() / d_t, is_t.sum() / d_t, clicks[~is_t].sum() / d_c, (~is_t).sum() / d_c, tau, alpha)
        return p, low, high
    order = np.argsort(imp.at[mask], kind="stable")
    clicks, is_t = clicks[order], is_t[order]
    n_t, n_c = np.cumsum(is_t) / d_t, np.cumsum(~is_t) / d_c
    c_t, c_c = np.cumsum(clicks * is_t) / d_t, np.cumsum(clicks * ~is_t) / d_c
    looks = np.unique(np.linspace(0, len(clicks) - 1, min(len(clicks), MAX_LOOKS)).astype(np.intp))
    p, low, high = stats.msprt_path(c_t[looks], n_t[looks], c_c[looks], n_c[looks], tau=tau, alpha=alpha)
    return float(p[-1]), float(low[-1]), float(high[-1])


def _by_unit(imp: Impressions, idx: np.ndarray, k: int, alpha: float) -> dict:
    """Per arm: the CTR's delta-method variance over users, its interval, users, design effect."""
    from scipy.stats import norm

    unit = imp.unit
    assert unit is not None, "clustered statistics need imp.unit"
    zq = norm.ppf(1 - alpha / 2)
    out: dict[str, Any] = {key: np.zeros(k) for key in ("ctr", "var", "low", "high", "units", "design_effect")}
    seen: dict[str, int] = {}
    shared = 0
    for i in range(k):
        m = idx == i
        users, inverse = np.unique(unit[m], return_inverse=True)
        y = np.bincount(inverse, weights=imp.click[m], minlength=len(users))
        n = np.bincount(inverse, minlength=len(users)).astype(float)
        ctr, var = stats.ratio_delta(y, n)
        binomial = ctr * (1 - ctr) / n.sum() if n.sum() else float("nan")
        out["ctr"][i], out["var"][i], out["units"][i] = ctr, var, len(users)
        out["low"][i], out["high"][i] = ctr - zq * np.sqrt(var), ctr + zq * np.sqrt(var)
        out["design_effect"][i] = var / binomial if binomial > 0 else float("nan")
        for u in users:
            shared += seen.setdefault(u, i) != i
    out["shared_units"] = shared
    return out


def _clustered_comparisons(cl: dict, others: np.ndarray, alpha: float):
    """Lift (log-ratio delta method) and z-test of each arm against arm 0 from clustered variances."""
    from scipy.stats import norm

    zq = norm.ppf(1 - alpha / 2)
    r_t, v_t, r_c, v_c = cl["ctr"][others], cl["var"][others], cl["ctr"][0], cl["var"][0]
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = r_t / r_c - 1
        se_log = np.sqrt(v_t / r_t**2 + v_c / r_c**2)
        lift_low = np.exp(np.log(r_t / r_c) - zq * se_log) - 1
        lift_high = np.exp(np.log(r_t / r_c) + zq * se_log) - 1
        z = (r_t - r_c) / np.sqrt(v_t + v_c)
    p = 2 * norm.sf(np.abs(z))
    return lift, lift_low, lift_high, z, p


def compare(imp: Impressions, treatment: str, control: str, alpha: float = 0.05) -> dict:
    """One arm against another (any pair, not only against the control): lift, interval, p-value.

    The same statistics as :func:`analyze`: per-user delta method when ``imp.unit`` is given,
    else the log-ratio interval and the pooled two-proportion test.
    """
    pair = [control, treatment]
    missing = [a for a in pair if a not in set(imp.arm.tolist())]
    if missing:
        raise BackdropError(f"{imp.source}: no impressions of arm(s) {', '.join(missing)}")
    mask = np.isin(imp.arm, pair)
    idx = (imp.arm[mask] == treatment).astype(np.intp)
    sub = Impressions(arm=imp.arm[mask], click=imp.click[mask], source=imp.source, unit=None if imp.unit is None else imp.unit[mask])
    if sub.unit is not None:
        lift, low, high, _, p = (float(v[0]) for v in _clustered_comparisons(_by_unit(sub, idx, 2, alpha), np.array([1]), alpha))
    else:
        n = np.bincount(idx, minlength=2).astype(float)
        c = np.bincount(idx, weights=sub.click, minlength=2)
        lift, low, high = stats.relative_lift(c[1], n[1], c[0], n[0], alpha)
        _, p = stats.two_proportion_test(c[1], n[1], c[0], n[0])
    return {"lift": lift, "ci_low": low, "ci_high": high, "p": p}


def _srm_block(arms: list[str], n: np.ndarray, planned_shares: Mapping[str, float] | None) -> dict:
    if planned_shares is None:
        shares = np.full(len(arms), 1.0 / len(arms))
    else:
        unknown = sorted(set(planned_shares) - set(arms))
        missing = sorted(set(arms) - set(planned_shares))
        if missing:
            raise BackdropError(f"planned_shares lacks arm(s) {', '.join(missing)}; give a share for every arm: {', '.join(arms)}")
        if unknown:
            # planned arms that got no impressions at all are part of the mismatch
            arms = arms + unknown
            n = np.concatenate([n, np.zeros(len(unknown))])
        shares = np.array([float(planned_shares[a]) for a in arms])
        if np.any(shares < 0) or shares.sum() <= 0:
            raise BackdropError(f"planned_shares must be >= 0 and not all 0, got {dict(planned_shares)}")
        shares = shares / shares.sum()
    chi2, p = stats.srm_check(n, shares)
    observed = n / n.sum()
    warning = None
    if p < SRM_ALPHA:
        split = ", ".join(f"{a} {o:.2%} (planned {s:.2%})" for a, o, s in zip(arms, observed, shares, strict=True))
        warning = (
            f"SAMPLE RATIO MISMATCH (chi2 = {chi2:.1f}, p = {p:.2g}): the arms did not get the planned split "
            f"[{split}]. Assignment or logging is broken (an arm that fails to render or redirect, bot "
            "filtering that hits one arm, a changed split mid-test...), so the arms are not comparable and "
            "the lifts and p-values below cannot be trusted. Find and fix the cause before reading them."
        )
    return {
        "chi2": chi2,
        "p": p,
        "planned_shares": dict(zip(arms, shares.tolist(), strict=True)),
        "observed_shares": dict(zip(arms, observed.tolist(), strict=True)),
        "warning": warning,
    }


def analyze(
    imp: Impressions,
    control: str | None = None,
    planned_shares: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    tau: float | None = None,
) -> dict:
    """Compare every arm with the control; a JSON-serialisable dict (nan/inf become ``None``).

    ``control``: see :func:`choose_control`. ``planned_shares``: arm -> planned traffic share
    (normalised; default equal split). ``tau``: mSPRT mixing scale on the absolute CTR difference
    (default 0.1 × the pooled CTR of each comparison, see :func:`stats.msprt`). ``click`` must be 0/1.

    Keys: ``source, alpha, control, impressions, clicks, arms`` (list, control first, then
    alphabetical; per arm ``arm, control, n, clicks, ctr, ctr_low, ctr_high`` and for the others
    ``lift, lift_low, lift_high, z, p, p_holm, always_valid_p, always_valid_diff_low/high, tau,
    significant`` where significant means ``p_holm < alpha``), ``srm`` (``chi2, p, planned_shares,
    observed_shares, warning``) and ``cuped`` (``None`` without a covariate, else per arm the
    fields of :class:`stats.CupedDiff`).
    """
    if len(imp) == 0:
        raise BackdropError(f"{imp.source}: no impressions to analyze")
    if not np.all((imp.click == 0) | (imp.click == 1)):
        bad = imp.click[(imp.click != 0) & (imp.click != 1)][0]
        raise BackdropError(
            f"{imp.source}: click must be 0 or 1 for a click-through-rate analysis, found {bad:g}; "
            "convert rewards to clicks (reward > 0 -> 1) first"
        )
    names = sorted(set(imp.arm.tolist()))
    if len(names) < 2:
        raise BackdropError(f"{imp.source}: only one arm ({names[0]}); an experiment needs at least two")
    control = choose_control(names, control)
    arms = [control] + [a for a in names if a != control]
    idx, n, clicks = _counts(imp, arms)

    low, high = stats.wilson_interval(clicks, n, alpha)
    clustered = _by_unit(imp, idx, len(arms), alpha) if imp.unit is not None else None
    if clustered is not None:
        low, high = clustered["low"], clustered["high"]
    rows = [
        {
            "arm": a,
            "control": a == control,
            "n": int(n[i]),
            "clicks": int(clicks[i]),
            "ctr": clicks[i] / n[i],
            "ctr_low": low[i],
            "ctr_high": high[i],
        }
        for i, a in enumerate(arms)
    ]
    others = np.arange(1, len(arms))
    if clustered is None:
        lift, lift_low, lift_high = stats.relative_lift(clicks[others], n[others], clicks[0], n[0], alpha)
        z, p = stats.two_proportion_test(clicks[others], n[others], clicks[0], n[0])
        deff = np.ones(len(arms))
    else:
        lift, lift_low, lift_high, z, p = _clustered_comparisons(clustered, others, alpha)
        deff = clustered["design_effect"]
        for i, row in enumerate(rows):
            row.update(units=int(clustered["units"][i]), design_effect=float(deff[i]))
    p_holm = stats.holm(p)
    for j, i in enumerate(others.tolist()):
        pooled = (clicks[i] + clicks[0]) / (n[i] + n[0])
        tau_i = stats.TAU_RELATIVE * pooled if tau is None else tau
        av_p, av_low, av_high = _always_valid(imp, idx, i, 0, tau_i, alpha, (deff[i], deff[0]))
        rows[i].update(
            lift=lift[j],
            lift_low=lift_low[j],
            lift_high=lift_high[j],
            z=z[j],
            p=p[j],
            p_holm=p_holm[j],
            always_valid_p=av_p,
            always_valid_diff_low=av_low,
            always_valid_diff_high=av_high,
            tau=tau_i,
            significant=bool(p_holm[j] < alpha),
        )

    cuped = None
    if imp.covariate is not None:
        cuped = {}
        y_c, x_c = imp.click[idx == 0], imp.covariate[idx == 0]
        for i in others.tolist():
            res = stats.cuped_difference(imp.click[idx == i], imp.covariate[idx == i], y_c, x_c, alpha)
            cuped[arms[i]] = res._asdict()

    result: dict[str, Any] = {
        "source": imp.source,
        "alpha": alpha,
        "control": control,
        "impressions": int(n.sum()),
        "clicks": int(clicks.sum()),
        "arms": rows,
        "srm": _srm_block(arms, clustered["units"] if clustered is not None else n, planned_shares),
        "cuped": cuped,
        "unit": "impression" if clustered is None else "user",
        "variance": "binomial (Wilson intervals, pooled z-test)"
        if clustered is None
        else ("delta method over users (arms are assigned per user; SRM counts users)"),
    }
    if clustered is not None and clustered["shared_units"]:
        result["srm"]["warning"] = (result["srm"]["warning"] or "") + (
            f" {clustered['shared_units']} user(s) appear in more than one arm: assignment is not sticky."
        ).strip()
    return _clean(result)


def _clean(obj):
    """numpy scalars -> Python, nan/inf -> None, recursively (strict-JSON safe)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def over_time(imp: Impressions, bins: int = 20) -> dict:
    """Per-arm impressions, clicks and CTR in ``bins`` equal-width time bins (needs ``at``).

    Returns ``{"edges": [bins + 1 times], "arms": {arm: {"n", "clicks", "ctr", "cumulative_ctr"}}}``
    (lists of length ``bins``; CTR is ``None`` in a bin without impressions) for a plot.
    """
    if imp.at is None:
        raise BackdropError(f"{imp.source}: over-time CTR needs timestamps (an 'at' or 'timestamp' column)")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    start, end = float(imp.at.min()), float(imp.at.max())
    if end <= start:
        end = start + 1.0
    edges = np.linspace(start, end, bins + 1)
    b = np.clip(np.searchsorted(edges, imp.at, side="right") - 1, 0, bins - 1)
    out = {}
    for a in sorted(set(imp.arm.tolist())):
        m = imp.arm == a
        n = np.bincount(b[m], minlength=bins).astype(float)
        c = np.bincount(b[m], weights=imp.click[m], minlength=bins)
        out[a] = {
            "n": n.astype(int).tolist(),
            "clicks": c.tolist(),
            "ctr": stats._div(c, n).tolist(),
            "cumulative_ctr": stats._div(np.cumsum(c), np.cumsum(n)).tolist(),
        }
    return _clean({"edges": edges.tolist(), "arms": out})


#: the outcome metrics of a log besides CTR: what each measures per impression
METRICS = {
    "ctr": "clicks per impression",
    "conversion": "impressions followed by a purchase, per impression",
    "revenue": "purchase value per impression",
}


def analyze_values(
    imp: Impressions,
    metric: str = "revenue",
    control: str | None = None,
    alpha: float = 0.05,
    planned_shares: Mapping[str, float] | None = None,
) -> dict:
    """Every arm against the control on a per-impression value (conversion 0/1, revenue), with
    delta-method intervals: the mean per impression as a ratio over users (``imp.unit``; each
    impression is its own unit without one), the lift's log-ratio interval, the z-test, Holm.

    ``click`` holds the value of each impression. Keys: ``source, metric, alpha, control,
    impressions, total, unit, srm, arms`` (``srm`` as in :func:`analyze`, on users when assigned per
    user; per arm ``arm, control, n, units, total, mean, mean_low,
    mean_high`` and for the others ``lift, lift_low, lift_high, z, p, p_holm, significant``).

    >>> imp = Impressions(arm=["a"] * 4 + ["b"] * 4, click=[0, 10, 0, 0, 0, 10, 10, 0])
    >>> r = analyze_values(imp, control="a")
    >>> [(row["arm"], row["mean"]) for row in r["arms"]], r["arms"][1]["lift"]
    ([('a', 2.5), ('b', 5.0)], 1.0)
    """
    if len(imp) == 0:
        raise BackdropError(f"{imp.source}: no impressions to analyze")
    names = sorted(set(imp.arm.tolist()))
    if len(names) < 2:
        raise BackdropError(f"{imp.source}: only one arm ({names[0]}); an experiment needs at least two")
    control = choose_control(names, control)
    arms = [control] + [a for a in names if a != control]
    per_user = imp.unit is not None
    if not per_user:
        imp = Impressions(arm=imp.arm, click=imp.click, at=imp.at, source=imp.source, unit=np.arange(len(imp)).astype(str))
    idx, n, total = _counts(imp, arms)
    cl = _by_unit(imp, idx, len(arms), alpha)
    others = np.arange(1, len(arms))
    lift, lift_low, lift_high, z, p = _clustered_comparisons(cl, others, alpha)
    p_holm = stats.holm(p)
    rows = []
    for i, a in enumerate(arms):
        row = {"arm": a, "control": a == control, "n": int(n[i]), "units": int(cl["units"][i]), "total": float(total[i])}
        row |= {"mean": cl["ctr"][i], "mean_low": cl["low"][i], "mean_high": cl["high"][i]}
        if i:
            j = i - 1
            row |= {"lift": lift[j], "lift_low": lift_low[j], "lift_high": lift_high[j], "z": z[j], "p": p[j], "p_holm": p_holm[j]}
            row["significant"] = bool(p_holm[j] < alpha)
        rows.append(row)
    return _clean(
        {
            "source": imp.source,
            "metric": metric,
            "measures": METRICS.get(metric, metric),
            "alpha": alpha,
            "control": control,
            "impressions": int(n.sum()),
            "total": float(total.sum()),
            "unit": "user" if per_user else "impression",
            "variance": "delta method over " + ("users (arms are assigned per user)" if per_user else "impressions"),
            "srm": _srm_block(arms, cl["units"] if per_user else n, planned_shares),
            "arms": rows,
        }
    )
