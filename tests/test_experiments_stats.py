"""The experiment statistics against statsmodels/scipy on the same numbers, plus simulations of
what the formulas promise (always-valid error control, CUPED variance reduction, coverage)."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps
from scipy.stats import norm

from backdrop.experiments.stats import (
    cuped,
    cuped_difference,
    detectable_lift,
    holm,
    msprt,
    msprt_path,
    relative_lift,
    sample_size_per_arm,
    srm_check,
    two_proportion_test,
    wilson_interval,
)

sm_prop = pytest.importorskip("statsmodels.stats.proportion")
sm_multitest = pytest.importorskip("statsmodels.stats.multitest")
sm_power = pytest.importorskip("statsmodels.stats.power")
sm_api = pytest.importorskip("statsmodels.api")

#: (clicks, impressions): small, zero-click, all-click and realistic ad volumes
PAIRS = [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (1, 250), (7, 1000), (150, 10_000), (12_345, 1_000_000)]
#: (c_t, n_t, c_c, n_c)
TWO_ARM = [
    (1, 20, 2, 20),
    (5, 100, 9, 110),
    (120, 10_000, 100, 10_000),
    (118, 9_700, 131, 10_250),
    (6_200, 500_000, 5_900, 499_000),
    (50, 1_000, 50, 1_000),
]


# --------------------------------------------------------------------------- intervals and tests


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_wilson_matches_statsmodels(alpha):
    clicks, n = np.array(PAIRS, dtype=float).T
    ours_low, ours_high = wilson_interval(clicks, n, alpha)
    ref_low, ref_high = sm_prop.proportion_confint(clicks, n, alpha=alpha, method="wilson")
    np.testing.assert_allclose(ours_low, ref_low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours_high, ref_high, rtol=1e-12, atol=1e-15)
    for (c, m), lo, hi in zip(PAIRS, ref_low, ref_high, strict=True):
        low, high = wilson_interval(c, m, alpha)
        assert isinstance(low, float)
        assert low == pytest.approx(lo, abs=1e-15) and high == pytest.approx(hi, abs=1e-15)


def test_wilson_no_impressions_is_nan():
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("c_t, n_t, c_c, n_c", TWO_ARM)
def test_relative_lift_matches_statsmodels_log_ratio(c_t, n_t, c_c, n_c):
    lift, low, high = relative_lift(c_t, n_t, c_c, n_c)
    ref_low, ref_high = sm_prop.confint_proportions_2indep(c_t, n_t, c_c, n_c, compare="ratio", method="log")
    assert lift == pytest.approx((c_t / n_t) / (c_c / n_c) - 1, rel=1e-12)
    assert low == pytest.approx(ref_low - 1, rel=1e-10, abs=1e-12)
    assert high == pytest.approx(ref_high - 1, rel=1e-10, abs=1e-12)
    assert low < lift < high


def test_relative_lift_zero_clicks_give_nan_not_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from dividing by zero either
        lift, low, high = relative_lift(0, 1000, 0, 1000)
        assert all(math.isnan(v) for v in (lift, low, high))
        lift, low, high = relative_lift(5, 1000, 0, 1000)
        assert all(math.isnan(v) for v in (lift, low, high))
        lift, low, high = relative_lift(0, 1000, 5, 1000)
        assert lift == -1 and math.isnan(low) and math.isnan(high)
        lift, low, high = relative_lift(3, 0, 5, 1000)
        assert math.isnan(lift)


def test_relative_lift_interval_covers_the_true_lift():
    # 4000 simulated experiments at a realistic CTR: the 95% interval should cover ~95% of the time
    rng = np.random.default_rng(7)
    p_c, true_lift, n = 0.02, 0.15, 20_000
    c_t = rng.binomial(n, p_c * (1 + true_lift), 4000)
    c_c = rng.binomial(n, p_c, 4000)
    _, low, high = relative_lift(c_t, n, c_c, n)
    coverage = np.mean((low <= true_lift) & (true_lift <= high))
    assert 0.93 <= coverage <= 0.97


@pytest.mark.parametrize("c_t, n_t, c_c, n_c", TWO_ARM)
def test_two_proportion_test_matches_statsmodels(c_t, n_t, c_c, n_c):
    z, p = two_proportion_test(c_t, n_t, c_c, n_c)
    ref_z, ref_p = sm_prop.proportions_ztest([c_t, c_c], [n_t, n_c])
    assert z == pytest.approx(ref_z, rel=1e-12, abs=1e-14)
    assert p == pytest.approx(ref_p, rel=1e-10)


def test_two_proportion_test_vectorised_and_degenerate():
    c_t, n_t, c_c, n_c = np.array(TWO_ARM, dtype=float).T
    z, p = two_proportion_test(c_t, n_t, c_c, n_c)
    for i, row in enumerate(TWO_ARM):
        assert (z[i], p[i]) == pytest.approx(two_proportion_test(*row))
    z, p = two_proportion_test(0, 100, 0, 100)
    assert math.isnan(z) and math.isnan(p)


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.1, 4), rng.uniform(0, 1, 3), [0.03, 0.03]])  # ties included
    rng.shuffle(p)
    ref = sm_multitest.multipletests(p, method="holm")[1]
    np.testing.assert_allclose(holm(p), ref, rtol=1e-14)


def test_holm_keeps_nan_out_of_the_family():
    adj = holm([0.01, np.nan, 0.04])
    assert math.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], sm_multitest.multipletests([0.01, 0.04], method="holm")[1])
    assert holm([]).size == 0


@pytest.mark.parametrize(
    "counts, shares",
    [([5000, 5100], None), ([5000, 4700, 5300], None), ([6100, 3900], [0.6, 0.4]), ([300, 150, 50], [6, 3, 1])],
)
def test_srm_matches_scipy_chisquare(counts, shares):
    counts = np.array(counts, dtype=float)
    s = np.ones(len(counts)) if shares is None else np.asarray(shares, dtype=float)
    ref = sps.chisquare(counts, f_exp=counts.sum() * s / s.sum())
    assert srm_check(counts, shares) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)


def test_srm_flags_a_skewed_split_and_rejects_misuse():
    _, p_ok = srm_check([50_100, 49_900])
    _, p_bad = srm_check([50_000, 48_500])  # 1.5% of one arm's impressions lost
    assert p_ok > 0.1 and p_bad < 1e-5
    assert srm_check([10, 5], [1, 0]) == (math.inf, 0.0)  # traffic to an arm planned at 0%
    with pytest.raises(ValueError, match="planned shares"):
        srm_check([1, 2, 3], [0.5, 0.5])


# --------------------------------------------------------------------------- mSPRT


def test_msprt_follows_the_mixture_likelihood_ratio():
    c_t, n_t, c_c, n_c, tau = 260, 10_000, 200, 10_000, 0.002
    p_t, p_c = c_t / n_t, c_c / n_c
    pooled = (c_t + c_c) / (n_t + n_c)
    v0 = pooled * (1 - pooled) * (1 / n_t + 1 / n_c)  # the p-value: the variance under the null
    lam = math.sqrt(v0 / (v0 + tau**2)) * math.exp(tau**2 * (p_t - p_c) ** 2 / (2 * v0 * (v0 + tau**2)))
    p, low, high = msprt(c_t, n_t, c_c, n_c, tau=tau)
    v = p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c  # the interval: per-arm variances
    assert p == pytest.approx(min(1.0, 1 / lam), rel=1e-12)

    # the interval is the test inverted: at either bound the shifted mixture ratio is exactly 1/alpha
    def lam_at(theta0):
        d = p_t - p_c - theta0
        return math.sqrt(v / (v + tau**2)) * math.exp(tau**2 * d**2 / (2 * v * (v + tau**2)))

    assert lam_at(low) == pytest.approx(1 / 0.05, rel=1e-9)
    assert lam_at(high) == pytest.approx(1 / 0.05, rel=1e-9)
    assert low < p_t - p_c < high


def test_msprt_path_is_not_fooled_by_early_looks_of_an_arm_that_starts_late():
    # all control traffic first, then all treatment, same CTR: early treatment looks have n_t of 1, 2, ...
    rng = np.random.default_rng(5)
    is_t = np.r_[np.zeros(5000, bool), np.ones(5000, bool)]
    click = rng.random(10_000) < 0.02
    n_t, n_c = np.cumsum(is_t), np.cumsum(~is_t)
    c_t, c_c = np.cumsum(click & is_t), np.cumsum(click & ~is_t)
    p, low, high = msprt_path(c_t, n_t, c_c, n_c)
    assert p[-1] > 0.05 and low[-1] < 0 < high[-1]


def test_msprt_interval_excludes_zero_iff_p_below_alpha():
    rng = np.random.default_rng(3)
    n = rng.integers(1_000, 100_000, 500)
    c_c = rng.binomial(n, 0.03)
    c_t = rng.binomial(n, 0.03 * rng.uniform(0.8, 1.3, 500))
    p, low, high = msprt(c_t, n, c_c, n, alpha=0.05)
    np.testing.assert_array_equal(p < 0.05, (low > 0) | (high < 0))


def test_msprt_degenerate_inputs():
    p, low, high = msprt(0, 1000, 0, 1000)
    assert p == 1.0 and math.isnan(low) and math.isnan(high)
    p, *_ = msprt(40_000, 100_000, 10_000, 100_000)  # huge effect: no overflow, p ~ 0
    assert 0 <= p < 1e-12


def test_msprt_path_is_running_min_and_running_intersection():
    rng = np.random.default_rng(0)
    n = 1000 * np.arange(1, 51)
    c_t = rng.binomial(1000, 0.05, 50).cumsum()
    c_c = rng.binomial(1000, 0.045, 50).cumsum()
    tau = 0.005
    p, low, high = msprt_path(c_t, n, c_c, n, tau=tau)
    p1, low1, high1 = msprt(c_t, n, c_c, n, tau=tau)
    np.testing.assert_allclose(p, np.minimum.accumulate(p1))
    np.testing.assert_allclose(low, np.maximum.accumulate(low1))
    np.testing.assert_allclose(high, np.minimum.accumulate(high1))
    assert np.all(np.diff(p) <= 0)


def test_msprt_controls_error_under_continuous_peeking_where_the_naive_z_test_does_not():
    """A/A tests peeked at 200 times: the always-valid p must stay below alpha in at most ~alpha of
    the runs; the fixed-horizon z-test read at every peek 'finds' an effect far more often."""
    rng = np.random.default_rng(2017)
    runs, looks, batch, ctr, alpha = 2000, 200, 500, 0.03, 0.05
    c_t = rng.binomial(batch, ctr, size=(runs, looks)).cumsum(axis=1)
    c_c = rng.binomial(batch, ctr, size=(runs, looks)).cumsum(axis=1)
    n = batch * np.arange(1, looks + 1)

    p, low, high = msprt_path(c_t, n, c_c, n, alpha=alpha)
    ever_msprt = np.mean(p[:, -1] < alpha)  # running min: "ever dropped below alpha"
    _, p_naive = two_proportion_test(c_t, n, c_c, n)
    ever_naive = np.mean((p_naive < alpha).any(axis=1))

    # tolerance: alpha + 3 binomial standard errors of the simulated rate (2000 runs)
    assert ever_msprt <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert ever_naive > 0.25 and ever_naive > 5 * ever_msprt
    # the always-valid interval of an A/A test excludes 0 exactly as often as p < alpha
    assert np.mean(((low > 0) | (high < 0))[:, -1]) == pytest.approx(ever_msprt)


def test_msprt_detects_a_real_effect():
    rng = np.random.default_rng(5)
    runs, looks, batch = 500, 100, 1000
    c_t = rng.binomial(batch, 0.033, size=(runs, looks)).cumsum(axis=1)  # +10% relative
    c_c = rng.binomial(batch, 0.030, size=(runs, looks)).cumsum(axis=1)
    n = batch * np.arange(1, looks + 1)
    p, _, _ = msprt_path(c_t, n, c_c, n)
    assert np.mean(p[:, -1] < 0.05) > 0.7


# --------------------------------------------------------------------------- CUPED


def _correlated(rng, n, rho, shift=0.0):
    x = rng.normal(0, 1, n)
    y = 1.0 + shift + rho * x + math.sqrt(1 - rho**2) * rng.normal(0, 1, n)
    return y, x


def test_cuped_variance_reduction_is_one_minus_corr_squared():
    rng = np.random.default_rng(11)
    rho = 0.6
    y, x = _correlated(rng, 200_000, rho)
    y_adj, theta = cuped(y, x)
    r = np.corrcoef(y, x)[0, 1]
    # exact on the sample...
    assert np.var(y_adj) / np.var(y) == pytest.approx(1 - r**2, rel=1e-10)
    assert theta == pytest.approx(np.cov(y, x)[0, 1] / np.var(x, ddof=1), rel=1e-10)
    assert np.mean(y_adj) == pytest.approx(np.mean(y), abs=1e-12)
    # ...and the population value 1 - rho² = 0.64 within sampling error
    assert np.var(y_adj) / np.var(y) == pytest.approx(1 - rho**2, abs=0.01)

    y_t, x_t = _correlated(rng, 50_000, rho, shift=0.02)
    y_c, x_c = _correlated(rng, 50_000, rho)
    res = cuped_difference(y_t, x_t, y_c, x_c)
    assert res.variance_reduction == pytest.approx(rho**2, abs=0.015)


def test_cuped_constant_covariate_changes_nothing():
    y = np.array([0.0, 1, 0, 0, 1])
    y_adj, theta = cuped(y, np.full(5, 0.3))
    assert theta == 0.0 and np.array_equal(y_adj, y)


def test_cuped_difference_is_unbiased_across_seeds():
    true_diff, seeds, n = 0.05, 300, 2000
    est, se = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        y_t, x_t = _correlated(rng, n, 0.7, shift=true_diff)
        y_c, x_c = _correlated(rng, n, 0.7)
        res = cuped_difference(y_t, x_t, y_c, x_c)
        est.append(res.diff)
        se.append(res.se)
    est, se = np.array(est), np.array(se)
    # mean of 300 estimates within 4 standard errors of that mean; the reported se is honest
    assert abs(est.mean() - true_diff) < 4 * est.std(ddof=1) / math.sqrt(seeds)
    assert se.mean() == pytest.approx(est.std(ddof=1), rel=0.1)


def test_cuped_difference_matches_ols_with_centred_covariate():
    """CUPED == OLS ``y ~ treatment + (x - mean x)`` on clicks with a pre-period CTR covariate.

    Tolerances: the coefficient within 2% of its standard error (CUPED's slope is the pooled one,
    OLS's the within-arm one), the HC0 standard error to 1% and the non-robust one to 2% (equal
    arm sizes and similar variances, so homoskedasticity nearly holds)."""
    rng = np.random.default_rng(42)
    n = 20_000
    pre = rng.beta(2, 60, 2 * n)  # users' pre-period CTR, mean ~3%
    treat = np.repeat([1.0, 0.0], n)
    y = rng.binomial(1, np.clip(pre * (1 + 0.1 * treat) * 1.0, 0, 1)).astype(float)
    res = cuped_difference(y[:n], pre[:n], y[n:], pre[n:])

    design = sm_api.add_constant(np.column_stack([treat, pre - pre.mean()]))
    fit = sm_api.OLS(y, design).fit()
    fit_hc0 = sm_api.OLS(y, design).fit(cov_type="HC0")
    assert res.diff == pytest.approx(fit.params[1], abs=0.02 * res.se)
    assert res.se == pytest.approx(fit_hc0.bse[1], rel=0.01)
    assert res.se == pytest.approx(fit.bse[1], rel=0.02)
    assert 0 < res.variance_reduction < 0.2
    assert res.low < res.diff < res.high and res.lift_low < res.lift < res.lift_high


def test_cuped_relative_lift_reduces_to_relative_lift_without_covariate():
    rng = np.random.default_rng(1)
    y_t = (rng.random(5000) < 0.05).astype(float)
    y_c = (rng.random(5000) < 0.04).astype(float)
    zeros = np.zeros(5000)
    res = cuped_difference(y_t, zeros, y_c, zeros)
    lift, low, high = relative_lift(y_t.sum(), 5000, y_c.sum(), 5000)
    assert res.lift == pytest.approx(lift, rel=1e-12)
    # s² uses ddof=1 where the binomial formula uses p(1-p): equal up to n/(n-1)
    assert res.lift_low == pytest.approx(low, rel=1e-3)
    assert res.lift_high == pytest.approx(high, rel=1e-3)


# --------------------------------------------------------------------------- planning


@pytest.mark.parametrize("baseline", [0.005, 0.01, 0.05, 0.3])
@pytest.mark.parametrize("lift", [0.05, 0.2, -0.1])
@pytest.mark.parametrize("alpha, power", [(0.05, 0.8), (0.01, 0.9)])
def test_arcsine_sample_size_matches_statsmodels(baseline, lift, alpha, power):
    h = sm_prop.proportion_effectsize(baseline * (1 + lift), baseline)
    ref = sm_power.NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=1.0)
    assert abs(sample_size_per_arm(baseline, lift, alpha, power, method="arcsine") - math.ceil(ref)) <= 1
    ref1 = sm_power.NormalIndPower().solve_power(effect_size=abs(h), alpha=alpha, power=power, ratio=1.0, alternative="larger")
    n1 = sample_size_per_arm(baseline, lift, alpha, power, two_sided=False, method="arcsine")
    assert abs(n1 - math.ceil(ref1)) <= 1


@pytest.mark.parametrize("baseline, lift", [(0.01, 0.05), (0.02, 0.1), (0.1, -0.2), (0.4, 0.3)])
def test_normal_sample_size_matches_the_textbook_formula(baseline, lift):
    p1, p2 = baseline, baseline * (1 + lift)
    var = p1 * (1 - p1) + p2 * (1 - p2)
    one_sided = (norm.ppf(0.95) + norm.ppf(0.8)) ** 2 * var / (p2 - p1) ** 2
    assert sample_size_per_arm(baseline, lift, two_sided=False, method="normal") == math.ceil(one_sided)

    two_sided = (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 * var / (p2 - p1) ** 2
    n = sample_size_per_arm(baseline, lift, method="normal")
    assert abs(n - math.ceil(two_sided)) <= max(1, 1e-4 * two_sided)

    # n is the smallest size whose two-sided power (both rejection tails) reaches 80%
    def power(m):
        s = abs(p2 - p1) / math.sqrt(var / m)
        return norm.sf(norm.isf(0.025) - s) + norm.cdf(-norm.isf(0.025) - s)

    assert power(n) >= 0.8 > power(n - 1)


@pytest.mark.parametrize("method", ["arcsine", "normal"])
@pytest.mark.parametrize("baseline, n", [(0.01, 10_000), (0.02, 250_000), (0.2, 1_500), (0.05, 40_000)])
def test_detectable_lift_round_trips(method, baseline, n):
    lift = detectable_lift(baseline, n, method=method)
    assert lift > 0
    assert sample_size_per_arm(baseline, lift, method=method) in (n, n + 1)
    # and the other way round: the lift a plan is sized for is just detectable with that plan
    planned = sample_size_per_arm(baseline, 0.1, method=method)
    assert detectable_lift(baseline, planned, method=method) == pytest.approx(0.1, rel=1e-4)
    assert detectable_lift(baseline, planned, method=method) <= 0.1


def test_paper_plan_cannot_detect_a_five_percent_lift():
    """The case from the paper: 1% CTR, +5% relative, 80% power, alpha 0.05 two-sided.

    It needs ~637k impressions per arm (arcsine 636,916; unpooled normal 637,006), while the
    10,000-impressions-per-arm plan only detects lifts of about +43% or more."""
    n_arcsine = sample_size_per_arm(0.01, 0.05, method="arcsine")
    n_normal = sample_size_per_arm(0.01, 0.05, method="normal")
    assert 630_000 <= n_arcsine <= 640_000 and 630_000 <= n_normal <= 640_000
    ref = sm_power.NormalIndPower().solve_power(effect_size=sm_prop.proportion_effectsize(0.0105, 0.01), alpha=0.05, power=0.8)
    assert abs(n_arcsine - math.ceil(ref)) <= 1
    assert n_arcsine / 10_000 > 60

    mde = detectable_lift(0.01, 10_000)
    assert 0.38 <= mde <= 0.48
    assert detectable_lift(0.01, 10_000, method="normal") == pytest.approx(mde, abs=0.01)


def test_planning_rejects_impossible_designs():
    with pytest.raises(ValueError):
        sample_size_per_arm(0.6, 1.0)  # target CTR 1.2
    with pytest.raises(ValueError):
        sample_size_per_arm(0.01, 0.0)
    with pytest.raises(ValueError, match="method"):
        sample_size_per_arm(0.01, 0.05, method="bayes")
    assert detectable_lift(0.01, 1) == math.inf
