"""Statistics for A/B/n tests of click-through rates: intervals, tests, sequential tests, CUPED, planning.

Every function is a pure numpy/scipy function of counts (or of impression-level arrays for CUPED);
the tests check each against statsmodels/scipy on the same numbers. Conventions:

* ``c_t, n_t`` clicks and impressions of the treatment arm, ``c_c, n_c`` of the control arm;
  ``p = c / n`` the observed CTR.
* ``alpha`` is the two-sided level: intervals are ``1 - alpha``, ``z = Phi^-1(1 - alpha/2)``.
* Degenerate inputs (no impressions, no clicks) give ``nan``, never an exception; API misuse
  (negative counts, a share vector of the wrong length) raises ``ValueError``.

Functions accept scalars or numpy arrays (broadcast elementwise) unless stated; scalar inputs
give Python floats back.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import optimize
from scipy.stats import chi2 as chi2_dist
from scipy.stats import norm

#: default mSPRT mixing scale, relative to the pooled CTR (see :func:`msprt`)
TAU_RELATIVE = 0.1


def _z(alpha: float) -> float:
    return float(norm.isf(alpha / 2))


def _out(x):
    """0-d arrays -> float, so scalar calls read naturally; arrays pass through."""
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def _div(a, b):
    """a / b with nan where b == 0 (no warnings)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    out = np.full(a.shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out


# --------------------------------------------------------------------------- intervals and tests


def wilson_interval(clicks, n, alpha: float = 0.05):
    """Wilson score interval for a binomial proportion.

    center = (p + z²/2n) / (1 + z²/n),  half = z sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n),
    clipped to [0, 1]. Wilson (1927), JASA 22:209; Brown, Cai & DasGupta (2001), Stat. Sci. 16:101.
    Equals ``statsmodels.stats.proportion.proportion_confint(method="wilson")``. ``n == 0`` -> nan.

    >>> low, high = wilson_interval(50, 1000)
    >>> round(low, 4), round(high, 4)
    (0.0381, 0.0653)
    """
    clicks = np.asarray(clicks, dtype=float)
    n = np.asarray(n, dtype=float)
    z = _z(alpha)
    p = _div(clicks, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1 + z * z / n
        center = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return _out(np.clip(center - half, 0, 1)), _out(np.clip(center + half, 0, 1))


def relative_lift(c_t, n_t, c_c, n_c, alpha: float = 0.05):
    """Relative lift ``p_t / p_c - 1`` with a delta-method interval on the log ratio.

    Var(log(p_t/p_c)) ~= (1-p_t)/c_t + (1-p_c)/c_c = 1/c_t - 1/n_t + 1/c_c - 1/n_c
    (Katz et al. 1978, Biometrics 34:469), interval ``exp(log r ± z·se) - 1``. The log scale keeps
    the interval asymmetric and above -100%, which the plain delta method on the ratio does not.
    Equals ``confint_proportions_2indep(compare="ratio", method="log") - 1`` in statsmodels.

    Zero clicks: ``c_c == 0`` -> lift, low, high all nan; ``c_t == 0 < c_c`` -> lift = -1 with a
    nan interval (the log ratio is -inf).
    """
    c_t, n_t, c_c, n_c = (np.asarray(a, dtype=float) for a in (c_t, n_t, c_c, n_c))
    ratio = _div(_div(c_t, n_t), _div(c_c, n_c))
    ok = (c_t > 0) & (c_c > 0) & (n_t > 0) & (n_c > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(np.where(ok, 1 / c_t - 1 / n_t + 1 / c_c - 1 / n_c, np.nan))
        log_r = np.where(ok, np.log(ratio), np.nan)
    z = _z(alpha)
    return _out(ratio - 1), _out(np.exp(log_r - z * se) - 1), _out(np.exp(log_r + z * se) - 1)


def two_proportion_test(c_t, n_t, c_c, n_c):
    """Pooled two-proportion z-test, two-sided: ``(z, p_value)``.

    p = (c_t + c_c) / (n_t + n_c),  z = (p_t - p_c) / sqrt(p (1-p) (1/n_t + 1/n_c)),
    p_value = 2 (1 - Phi(|z|)). Equals ``statsmodels.stats.proportion.proportions_ztest`` on
    ``count=[c_t, c_c], nobs=[n_t, n_c]``. No clicks at all (or all clicks) -> nan, nan.
    """
    c_t, n_t, c_c, n_c = (np.asarray(a, dtype=float) for a in (c_t, n_t, c_c, n_c))
    pooled = _div(c_t + c_c, n_t + n_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    z = _div(_div(c_t, n_t) - _div(c_c, n_c), se)
    return _out(z), _out(2 * norm.sf(np.abs(z)))


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (family-wise error rate), in the input order.

    Sorted ascending p_(1) <= ... <= p_(m):  adj_(i) = min(1, max_{j<=i} (m - j + 1) p_(j)).
    Equals ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``. nan entries (a
    comparison that could not be tested) stay nan and do not count towards m.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def srm_check(counts, planned_shares=None) -> tuple[float, float]:
    """Sample-ratio-mismatch test: chi-square goodness of fit of arm counts against the planned split.

    E_i = N s_i / sum(s),  chi2 = sum (O_i - E_i)² / E_i,  df = k - 1
    (Kohavi et al., "Trustworthy Online Controlled Experiments", 2020, ch. 21; Fabijan et al.,
    KDD 2019). Equals ``scipy.stats.chisquare(counts, f_exp=N * shares)``. ``planned_shares``
    defaults to an equal split; shares need not sum to 1.
    """
    o = np.asarray(counts, dtype=float).ravel()
    s = np.full(o.size, 1.0) if planned_shares is None else np.asarray(planned_shares, dtype=float).ravel()
    if s.size != o.size:
        raise ValueError(f"{o.size} counts but {s.size} planned shares")
    if o.size < 2:
        raise ValueError("the SRM check needs at least two arms")
    if np.any(o < 0) or np.any(s < 0) or s.sum() <= 0:
        raise ValueError("counts and planned shares must be >= 0 (and some share > 0)")
    e = o.sum() * s / s.sum()
    if o.sum() == 0:
        return math.nan, math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        # an arm planned at 0% that received traffic is an infinite mismatch; 0 of 0 contributes nothing
        terms = np.where(e > 0, (o - e) ** 2 / e, np.where(o > 0, np.inf, 0.0))
    stat = float(terms.sum())
    return stat, float(chi2_dist.sf(stat, o.size - 1))


# --------------------------------------------------------------------------- sequential testing (mSPRT)


#: looks before each arm has this many impressions are skipped (the normal approximation needs them)
MIN_LOOK = 100


def _msprt_arrays(c_t, n_t, c_c, n_c, tau, alpha):
    c_t, n_t, c_c, n_c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (c_t, n_t, c_c, n_c)))
    p_t, p_c = _div(c_t, n_t), _div(c_c, n_c)
    theta = p_t - p_c
    # p uses the pooled rate (the variance under the null): the plug-in per-arm rates make V ~ 0 at
    # early looks with a handful of impressions in one arm (p_t = 0 or 1), faking an overwhelming
    # Lambda. The interval (the test inverted at theta0 != 0) uses the per-arm rates.
    pooled = _div(c_t + c_c, n_t + n_c)
    early = (n_t < MIN_LOOK) | (n_c < MIN_LOOK)
    with np.errstate(divide="ignore", invalid="ignore"):
        v0 = np.where(early, np.nan, pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
        v1 = np.where(early, np.nan, p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    if tau is None:
        tau = TAU_RELATIVE * pooled
    t2 = np.broadcast_to(np.asarray(tau, dtype=float) ** 2, v0.shape)
    good_t2 = np.isfinite(t2) & (t2 > 0)
    ok0 = np.isfinite(v0) & (v0 > 0) & good_t2
    ok1 = np.isfinite(v1) & (v1 > 0) & good_t2
    v0_, v1_ = np.where(ok0, v0, 1.0), np.where(ok1, v1, 1.0)
    t2_ = np.where(good_t2, t2, 1.0)
    th0 = np.where(ok0, theta, 0.0)
    # log Lambda, so large effects do not overflow exp()
    log_lam = 0.5 * np.log(v0_ / (v0_ + t2_)) + t2_ * th0**2 / (2 * v0_ * (v0_ + t2_))
    p = np.where(ok0, np.minimum(1.0, np.exp(-log_lam)), 1.0)
    half = np.sqrt(v1_ * (v1_ + t2_) / t2_ * (2 * np.log(1 / alpha) + np.log((v1_ + t2_) / v1_)))
    low = np.where(ok1, theta - half, np.nan)
    high = np.where(ok1, theta + half, np.nan)
    return p, low, high


def msprt(c_t, n_t, c_c, n_c, tau=None, alpha: float = 0.05):
    """Always-valid p-value and confidence interval for ``theta = p_t - p_c`` (normal-mixture SPRT).

    Johari, Koomen, Pekelis & Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests"
    (2017, Operations Research 2022), the statistic behind Optimizely's Stats Engine. With
    theta_hat = p_t - p_c,  V = p(1-p)(1/n_t + 1/n_c) with the pooled rate p (the null's variance; the
    interval uses the per-arm p_t(1-p_t)/n_t + p_c(1-p_c)/n_c) and a N(0, tau²) mixture over theta:

        Lambda = sqrt(V / (V + tau²)) · exp(tau² theta_hat² / (2 V (V + tau²)))
        p      = min(1, 1 / Lambda)
        CI     = theta_hat ± sqrt( V (V + tau²) / tau² · (2 log(1/alpha) + log((V + tau²) / V)) )

    The CI is exactly the set of theta_0 the same test would not reject, so it excludes 0 iff
    p < alpha. Valid at any (data-dependent) stopping time: peek as often as you like. At one look
    this is a single point; over a sequence of looks use :func:`msprt_path`, which takes the running
    minimum p and the running intersection of intervals (that is what makes them always valid).

    ``tau`` (the mixing standard deviation, on the absolute-difference scale) defaults to
    ``TAU_RELATIVE = 0.1`` times the pooled CTR, i.e. a prior that effects are of the order of
    ±10% relative — the size creative tests chase (a few % to a few tens of %). The mSPRT detects
    effects of the order of tau fastest, and Johari et al. recommend matching tau to the effects
    seen in past experiments. The pooled CTR is (asymptotically) independent of theta_hat under the null, so deriving tau
    from it does not spend the error budget; for strict validity pass ``tau = planned_lift ·
    baseline_ctr`` fixed before the test starts. V == 0 (no clicks yet) -> p = 1, CI nan.
    """
    p, low, high = _msprt_arrays(c_t, n_t, c_c, n_c, tau, alpha)
    return _out(p), _out(low), _out(high)


def msprt_path(clicks_t_cum, n_t_cum, clicks_c_cum, n_c_cum, tau=None, alpha: float = 0.05):
    """Always-valid p-values and intervals along a sequence of looks: ``(p, low, high)`` arrays.

    Inputs are cumulative counts at each look, time on the last axis (leading axes are independent
    experiments, so a whole simulation is one call). ``p[..., t] = min_{s<=t} p_s`` and
    ``[low, high][..., t] = ∩_{s<=t} CI_s`` (Johari et al. 2017); see :func:`msprt` for p_s and
    CI_s. ``tau`` defaults to ``TAU_RELATIVE`` times the pooled CTR at the *last* look, held fixed
    along the path. With rare sign flips of a genuinely non-zero effect the intersection can be
    empty (low > high); that is itself evidence against every theta.
    """
    c_t, n_t, c_c, n_c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (clicks_t_cum, n_t_cum, clicks_c_cum, n_c_cum)))
    if tau is None:
        tau = TAU_RELATIVE * _div(c_t[..., -1] + c_c[..., -1], n_t[..., -1] + n_c[..., -1])[..., None]
    p, low, high = _msprt_arrays(c_t, n_t, c_c, n_c, tau, alpha)
    # fmax/fmin skip the nan bounds of looks before any click
    return (
        np.minimum.accumulate(p, axis=-1),
        np.fmax.accumulate(low, axis=-1),
        np.fmin.accumulate(high, axis=-1),
    )


# --------------------------------------------------------------------------- CUPED


def cuped(y, x, x_mean=None) -> tuple[np.ndarray, float]:
    """CUPED adjustment with a pre-period covariate: ``(y_adj, theta)``.

    theta = cov(y, x) / var(x),  y_adj = y - theta (x - mean(x)).
    Deng, Xu, Kohavi & Walker, "Improving the Sensitivity of Online Controlled Experiments by
    Utilizing Pre-Experiment Data" (WSDM 2013). var(y_adj) = var(y) (1 - corr(y, x)²). Pass the
    pooled data of all arms being compared (one theta for all, so the adjustment is the same
    function of x in every arm and the difference stays unbiased); ``x_mean`` overrides the centre.
    A constant covariate gives theta = 0.
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if y.shape != x.shape:
        raise ValueError(f"y and x differ in shape: {y.shape} vs {x.shape}")
    xm = float(np.mean(x)) if x_mean is None else float(x_mean)
    var_x = float(np.var(x))
    theta = float(np.mean((y - y.mean()) * (x - x.mean())) / var_x) if var_x > 0 else 0.0
    return y - theta * (x - xm), theta


class CupedDiff(NamedTuple):
    """Result of :func:`cuped_difference` (``._asdict()`` for JSON)."""

    diff: float
    se: float
    low: float
    high: float
    lift: float
    lift_low: float
    lift_high: float
    theta: float
    variance_reduction: float


def cuped_difference(y_t, x_t, y_c, x_c, alpha: float = 0.05) -> CupedDiff:
    """CUPED-adjusted difference of means between a treatment and a control arm.

    theta from the pooled arms (:func:`cuped`), then with m_a, s²_a the mean and variance (ddof=1)
    of y_adj in arm a:

        diff = m_t - m_c,   se = sqrt(s²_t / n_t + s²_c / n_c),   CI = diff ± z se
        lift = m_t / m_c - 1 with Var(log(m_t/m_c)) ~= s²_t/(n_t m_t²) + s²_c/(n_c m_c²)

    (the log-ratio delta method of :func:`relative_lift`, which it reduces to for 0/1 y without a
    covariate). ``variance_reduction = 1 - se² / se_raw²``, the share of the variance of the
    difference removed by the adjustment (≈ corr(y, x)²). The estimate equals the OLS coefficient of
    the treatment dummy in ``y ~ treatment + (x - mean x)`` up to the slope being pooled rather
    than within-arm, and ``se`` its HC0 (heteroskedasticity-robust) standard error up to O(1/n).
    """
    y_t, x_t, y_c, x_c = (np.asarray(a, dtype=float).ravel() for a in (y_t, x_t, y_c, x_c))
    n_t, n_c = y_t.size, y_c.size
    if n_t < 2 or n_c < 2:
        nan = math.nan
        return CupedDiff(nan, nan, nan, nan, nan, nan, nan, nan, nan)
    y_adj, theta = cuped(np.concatenate([y_t, y_c]), np.concatenate([x_t, x_c]))
    a_t, a_c = y_adj[:n_t], y_adj[n_t:]
    m_t, m_c = float(a_t.mean()), float(a_c.mean())
    v_t, v_c = float(a_t.var(ddof=1)), float(a_c.var(ddof=1))
    se = math.sqrt(v_t / n_t + v_c / n_c)
    se_raw = math.sqrt(float(y_t.var(ddof=1)) / n_t + float(y_c.var(ddof=1)) / n_c)
    z = _z(alpha)
    diff = m_t - m_c
    if m_t > 0 and m_c > 0:
        se_log = math.sqrt(v_t / (n_t * m_t**2) + v_c / (n_c * m_c**2))
        log_r = math.log(m_t / m_c)
        lift, lift_low, lift_high = m_t / m_c - 1, math.expm1(log_r - z * se_log), math.expm1(log_r + z * se_log)
    else:
        lift = m_t / m_c - 1 if m_c > 0 else math.nan
        lift_low = lift_high = math.nan
    return CupedDiff(
        diff=diff,
        se=se,
        low=diff - z * se,
        high=diff + z * se,
        lift=lift,
        lift_low=lift_low,
        lift_high=lift_high,
        theta=theta,
        variance_reduction=1 - se**2 / se_raw**2 if se_raw > 0 else math.nan,
    )


# --------------------------------------------------------------------------- planning

METHODS = ("arcsine", "normal")


def _effect_per_sqrt_n(p1: float, p2: float, method: str) -> float:
    """k such that the test statistic has mean k·sqrt(n) at n impressions per arm."""
    if method == "arcsine":
        # Cohen's h = 2 asin(sqrt p2) - 2 asin(sqrt p1); statistic h sqrt(n/2) (statsmodels' NormalIndPower)
        return abs(2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))) / math.sqrt(2)
    if method == "normal":
        return abs(p2 - p1) / math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    raise ValueError(f"method must be one of {METHODS}, not {method!r}")


def _check_design(baseline_ctr: float, alpha: float, power: float) -> None:
    if not 0 < baseline_ctr < 1:
        raise ValueError(f"baseline CTR must be in (0, 1), got {baseline_ctr}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not alpha < power < 1:
        raise ValueError(f"power must be in (alpha, 1), got {power}")


def _n_per_arm(k: float, alpha: float, power: float, two_sided: bool) -> float:
    """Impressions per arm (real-valued) for standardized effect k; power counts both rejection tails."""
    z_a = float(norm.isf(alpha / 2 if two_sided else alpha))
    n0 = ((z_a + float(norm.isf(1 - power))) / k) ** 2
    if not two_sided:
        return n0

    def excess(n: float) -> float:
        s = k * math.sqrt(n)
        return float(norm.sf(z_a - s) + norm.cdf(-z_a - s)) - power

    # n0 ignores the far tail, so power(n0) >= target and the exact root lies in (0, n0]
    if excess(n0) <= 0:
        return n0
    return float(optimize.brentq(excess, 1e-12, n0, xtol=1e-9, rtol=1e-14))


def sample_size_per_arm(
    baseline_ctr: float,
    relative_lift: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    method: str = "arcsine",
) -> int:
    """Impressions per arm to detect ``p2 = baseline (1 + lift)`` against ``p1 = baseline``, rounded up.

    With z_a = Phi^-1(1 - alpha/2) (two-sided) or Phi^-1(1 - alpha), z_b = Phi^-1(power):

    * ``"arcsine"`` (Cohen 1988, §6): h = 2 asin(sqrt p2) - 2 asin(sqrt p1),  n = 2 (z_a + z_b)² / h².
      Same as ``NormalIndPower().solve_power(proportion_effectsize(p2, p1), ...)`` in statsmodels.
    * ``"normal"`` (unpooled Wald, e.g. Chow, Shao & Wang 2008, §4.2):
      n = (z_a + z_b)² (p1(1-p1) + p2(1-p2)) / (p2 - p1)².

    Two-sided, the power also counts the far rejection region (as statsmodels does); it shifts n by
    well under 0.01% against the closed forms above, which are exact one-sided.

    >>> sample_size_per_arm(0.01, 0.15)  # a 1% CTR, +15% relative (the paper's lift from backgrounds)
    74105
    """
    _check_design(baseline_ctr, alpha, power)
    p2 = baseline_ctr * (1 + relative_lift)
    if relative_lift == 0 or not 0 < p2 < 1:
        raise ValueError(f"baseline {baseline_ctr} with lift {relative_lift:+} gives CTR {p2}; need a non-zero lift and 0 < CTR < 1")
    k = _effect_per_sqrt_n(baseline_ctr, p2, method)
    # guard the ceil against float noise (e.g. 100.00000000001 -> 101)
    return math.ceil(_n_per_arm(k, alpha, power, two_sided) - 1e-9)


def detectable_lift(
    baseline_ctr: float,
    n_per_arm: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    method: str = "arcsine",
) -> float:
    """Minimum detectable (positive) relative lift at ``n_per_arm`` impressions per arm.

    Inverse of :func:`sample_size_per_arm` (before rounding), found by Brent's method on the lift;
    the required n falls monotonically as the lift grows. ``inf`` when even a CTR of 1 would not
    reach the power (tiny n).
    """
    _check_design(baseline_ctr, alpha, power)
    if n_per_arm <= 0:
        raise ValueError(f"n_per_arm must be > 0, got {n_per_arm}")
    _effect_per_sqrt_n(baseline_ctr, baseline_ctr, method)  # validates method

    def gap(lift: float) -> float:
        k = _effect_per_sqrt_n(baseline_ctr, baseline_ctr * (1 + lift), method)
        return _n_per_arm(k, alpha, power, two_sided) - n_per_arm

    hi = (1 - baseline_ctr) / baseline_ctr * (1 - 1e-12)
    if gap(hi) > 0:
        return math.inf
    lo = hi * 1e-9
    if gap(lo) <= 0:
        return lo
    return float(optimize.brentq(gap, lo, hi, xtol=1e-12, rtol=1e-12))


# --------------------------------------------------------------------------- ratio metrics over units


def ratio_delta(y_units, n_units) -> tuple[float, float]:
    """A ratio metric (CTR = sum clicks / sum impressions) over randomisation units, and its variance.

    When users, not impressions, are assigned to arms, a user's impressions are correlated and the
    binomial variance understates the CTR's; the delta method over units (Deng, Knoblich & Lu,
    "Applying the Delta Method in Metric Analytics", KDD 2018) gives, with k units, means Y, N:

        var(R) = (s_Y² - 2 R s_YN + R² s_N²) / (k N̄²),     R = ΣY / ΣN
    """
    y = np.asarray(y_units, dtype=float)
    n = np.asarray(n_units, dtype=float)
    k = len(y)
    if k < 2 or n.sum() <= 0:
        return (float(y.sum() / n.sum()) if n.sum() > 0 else float("nan")), float("nan")
    r = y.sum() / n.sum()
    cov = np.cov(y, n, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (k * n.mean() ** 2)
    return float(r), float(max(var, 0.0))
