"""PooledUCB: arms that share a base model and learn their priors from each other."""

from __future__ import annotations

import numpy as np
import pytest

from backdrop.bandit.policies import PooledUCB, make_policy

D = 6


def _data(n=3000, seed=0, rates=(0.05, 0.05, 0.08)):
    """Bias + 5 noise features; arm k clicks at rates[k] whatever the context."""
    rng = np.random.default_rng(seed)
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, D - 1))])
    arms = [f"a{i}" for i in range(len(rates))]
    chosen = rng.integers(0, len(arms), n)
    r = (rng.random(n) < np.asarray(rates)[chosen]).astype(float)
    return X, [arms[k] for k in chosen], r, arms


def test_posterior_is_the_shared_model_plus_each_arms_shrunk_deviation():
    X, chosen, r, arms = _data()
    p = PooledUCB(n_features=D, blocks=[1, D - 1], learn_prior=False, seed=0)
    for s in range(0, len(r), 500):
        p.update_many(X[s : s + 500], chosen[s : s + 500], r[s : s + 500])
    noise = p.mean_reward * (1 - p.mean_reward)
    beta = np.linalg.solve(X.T @ X + np.eye(D) * noise / p.mean_reward**2, X.T @ r)
    l2 = noise / p.tau2[[0] + [1] * (D - 1)]
    for arm in arms:
        m = np.array([c == arm for c in chosen])
        Xa, ra = X[m], r[m]
        theta = beta + np.linalg.solve(Xa.T @ Xa + np.diag(l2), Xa.T @ (ra - Xa @ beta))
        assert np.allclose(p.coef(arm), theta, rtol=1e-8, atol=1e-12)


def test_an_arm_never_shown_predicts_the_base_rate_not_zero():
    X, chosen, r, _ = _data()
    p = PooledUCB(n_features=D, seed=0)
    p.update_many(X, chosen, r)
    x = X[0]
    means, _ = p._means_widths(p._check_x(x), ("a0", "new"))
    assert means[1] == pytest.approx(x @ p.beta)
    assert means[1] == pytest.approx(r.mean(), abs=0.01)  # about the observed rate, where a ridge from 0 says ~0


def test_empirical_bayes_frees_the_block_with_signal_and_shrinks_the_one_without():
    # the arms differ by a constant (the bias block carries it); the other features carry nothing
    X, chosen, r, _ = _data(n=40_000, rates=(0.03, 0.05, 0.08))
    p = PooledUCB(n_features=D, blocks=[1, D - 1], prior_sd=0.3, seed=0)
    for s in range(0, len(r), 1000):
        p.update_many(X[s : s + 1000], chosen[s : s + 1000], r[s : s + 1000])
    bias_sd, rest_sd = np.sqrt(p.rel_tau2)
    assert bias_sd > 0.25  # the arms really are +-40 % apart
    assert rest_sd < 0.1  # started at 0.3; no feature carries anything


def test_the_prior_is_relative_to_the_click_rate():
    """The same relative effects at a 2 % and a 20 % rate give the same relative prior."""
    sds = []
    for scale in (1.0, 10.0):
        X, chosen, r, _ = _data(n=20_000, rates=(0.02 * scale, 0.02 * scale, 0.03 * scale), seed=1)
        p = PooledUCB(n_features=D, blocks=[1, D - 1], seed=0)
        for s in range(0, len(r), 1000):
            p.update_many(X[s : s + 1000], chosen[s : s + 1000], r[s : s + 1000])
        sds.append(np.sqrt(p.rel_tau2[0]))
    assert sds[0] == pytest.approx(sds[1], rel=0.5)


def test_the_bound_is_the_posterior_mean_plus_alpha_sds_and_propensities_are_exact():
    X, chosen, r, arms = _data(n=2000, rates=(0.05, 0.06, 0.07))
    p = PooledUCB(n_features=D, alpha=0.7, epsilon=0.1, seed=0)
    p.update_many(X, chosen, r)
    x = X[3]
    means, widths = p._means_widths(p._check_x(x), tuple(arms))
    scores, probs = p._distribution(p._check_x(x), tuple(arms))
    sd = np.sqrt(p.noise) * widths  # the posterior sd of x . theta_a
    assert np.allclose(scores, means + 0.7 * sd)
    best = int(np.argmax(scores))
    assert probs[best] == pytest.approx(0.9 + 0.1 / 3) and probs.sum() == pytest.approx(1.0)
    batch = p.choose_many(np.repeat(x[None, :], 20_000, axis=0), arms)
    assert np.allclose(batch.propensity, probs[batch.indices])
    freq = np.bincount(batch.indices, minlength=3) / len(batch)
    assert np.abs(freq - probs).max() < 0.01  # 20k draws: sd <= 0.0035
    d = p.choose(x, arms)
    assert d.propensity == pytest.approx(probs[arms.index(d.arm)])


def test_it_finds_the_better_arm_and_keeps_exploring_at_epsilon():
    rng = np.random.default_rng(2)
    p = make_policy("pooled-ucb", n_features=D, seed=1)
    rates = {"a0": 0.04, "a1": 0.06}
    picks = []
    for _ in range(200):
        X = np.hstack([np.ones((100, 1)), rng.normal(size=(100, D - 1))])
        batch = p.choose_many(X, ["a0", "a1"])
        arms = batch.chosen
        p.update_many(X, arms, np.array([rng.random() < rates[a] for a in arms], float))
        picks += arms
    late = picks[-5000:]
    assert late.count("a1") / len(late) > 0.85
    assert late.count("a0") > 0  # epsilon keeps every arm's propensity >= epsilon / K


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="blocks"):
        PooledUCB(n_features=D, blocks=[1, 2])
    with pytest.raises(ValueError, match="prior_sd"):
        PooledUCB(n_features=D, prior_sd=0)


def test_a_variant_starts_from_its_parents_deviation_and_an_unknown_style_from_the_base():
    X, chosen, r, _ = _data(n=20_000, rates=(0.03, 0.03, 0.06))
    p = PooledUCB(n_features=D, blocks=[1, D - 1], inherit=0.5, seed=0)
    p.update_many(X, chosen, r)
    x = X[0]
    scores, _ = p._means_widths(p._check_x(x), ("a2", "a2__v1f2e", "a2__v1f2e__v0c3d", "new"))
    parent = scores[0] - x @ p.beta
    assert scores[1] - x @ p.beta == pytest.approx(0.5 * parent, rel=1e-6)  # half its parent's edge
    assert scores[2] - x @ p.beta == pytest.approx(0.25 * parent, rel=1e-6)  # a grandchild: half of that
    assert scores[3] == pytest.approx(x @ p.beta)  # no parent: the base rate
    # once the variant has its own feedback it moves away from the inherited start
    worse = np.zeros(3000)
    p.update_many(X[:3000], ["a2__v1f2e"] * 3000, worse)
    assert p._means_widths(p._check_x(x), ("a2__v1f2e",))[0][0] < x @ p.beta
