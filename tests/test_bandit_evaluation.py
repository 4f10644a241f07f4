import json
import warnings

import numpy as np
import pytest

from backdrop.bandit import LinTS, LinUCB, Uniform
from backdrop.bandit.evaluation import (
    action_distribution,
    bootstrap_interval,
    dm,
    dr,
    estimate,
    ips,
    replay,
    shrunk_ctr_reward_model,
    snips,
)
from backdrop.bandit.features import FeatureEncoder
from backdrop.bandit.obd import encode, evaluate_file, load_obd
from conftest import OBD, need


@pytest.fixture(scope="module")
def obd_random():
    need(OBD.is_dir(), f"Open Bandit Dataset sample at {OBD}")
    return load_obd(OBD, "random", "men")


def _policy_and_data(data, policy_cls, **kw):
    enc = FeatureEncoder(n_features=16, segment_field=None)
    X = encode(data, enc)
    half = len(data) // 2
    policy = policy_cls(n_features=16, seed=0, **kw)
    policy.update_many(X[:half], list(data.action[:half]), data.reward[:half])
    arms = list(range(data.n_actions))
    dist = action_distribution(policy, X[half:], arms)
    q = shrunk_ctr_reward_model(data.action[:half], data.reward[:half], data.n_actions)(X[half:])
    te = slice(half, None)
    return dist, q, data.reward[te], data.action[te], data.pscore[te], data.position[te]


@pytest.mark.parametrize("logs", ["random", "bts"])
@pytest.mark.parametrize("policy_cls,kw", [(LinUCB, {"alpha": 0.5}), (LinTS, {"alpha": 0.1})])
def test_our_estimators_equal_obp_on_the_same_data(logs, policy_cls, kw):
    obp_ope = pytest.importorskip("obp.ope", reason="obp==0.4.1 is a test dependency (make test installs it)")
    need(OBD.is_dir(), f"Open Bandit Dataset sample at {OBD}")
    data = load_obd(OBD, logs, "women")
    dist, q, r, a, p, pos = _policy_and_data(data, policy_cls, **kw)
    # OBP wants (n, K, len_list): our context includes the position, so each row's distribution
    # is the one at its own position; OBP reads only that slot, the others repeat it.
    dist3 = np.repeat(dist[:, :, None], 3, axis=2)
    q3 = np.repeat(q[:, :, None], 3, axis=2)
    common = dict(reward=r, action=a, position=pos - 1, pscore=p, action_dist=dist3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = {
            "ips": ips(r, a, p, dist),
            "snips": snips(r, a, p, dist),
            "dm": dm(dist, q),
            "dr": dr(r, a, p, dist, q),
        }
        theirs = {
            "ips": obp_ope.InverseProbabilityWeighting().estimate_policy_value(**common),
            "snips": obp_ope.SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**common),
            "dm": obp_ope.DirectMethod().estimate_policy_value(position=pos - 1, action_dist=dist3, estimated_rewards_by_reg_model=q3),
            "dr": obp_ope.DoublyRobust().estimate_policy_value(**common, estimated_rewards_by_reg_model=q3),
        }
    for name in ours:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-10, abs=1e-13), name
    # and the estimate() wrapper gives the same values
    got = {e.estimator: e.value for e in estimate(r, a, p, dist, q, n_boot=50)}
    assert got == pytest.approx(ours, rel=1e-12)


def test_estimators_recover_a_known_policy_value_on_synthetic_logs():
    rng = np.random.default_rng(0)
    n, K = 40000, 4
    true_ctr = np.array([0.05, 0.10, 0.20, 0.02])
    logging = np.array([0.4, 0.3, 0.1, 0.2])
    a = rng.choice(K, size=n, p=logging)
    r = (rng.random(n) < true_ctr[a]).astype(float)
    target = np.tile([0.1, 0.2, 0.6, 0.1], (n, 1))
    truth = float(target[0] @ true_ctr)
    q = np.tile(true_ctr * 0.8, (n, 1))  # a biased reward model: DM is off, DR is not
    for e in estimate(r, a, logging[a], target, q, n_boot=300):
        if e.estimator == "dm":
            assert abs(e.value - 0.8 * truth) < 1e-9
        else:
            assert e.ci_low <= truth <= e.ci_high, e
            assert abs(e.value - truth) < 0.01


def test_bootstrap_interval_covers_and_shrinks():
    rng = np.random.default_rng(1)
    x = (rng.random(5000) < 0.1).astype(float)
    lo, hi = bootstrap_interval(x, n_boot=500, seed=0)
    assert lo < 0.1 < hi and hi - lo < 0.02
    lo2, hi2 = bootstrap_interval(x[:500], n_boot=500, seed=0)
    assert hi2 - lo2 > 2 * (hi - lo)


def test_replay_matches_only_the_logged_arm_and_is_unbiased_for_a_fixed_policy():
    rng = np.random.default_rng(2)
    n, K = 30000, 3
    a = rng.integers(0, K, n)  # uniform-random logging
    ctr = np.array([0.1, 0.3, 0.5])
    r = (rng.random(n) < ctr[a]).astype(float)
    X = np.ones((n, 2))
    res = replay(Uniform(seed=0), X, a, r, [0, 1, 2], learn=False, n_boot=200)
    assert abs(res.matched - n / 3) < 0.03 * n
    assert res.ci_low <= ctr.mean() <= res.ci_high
    learner = LinUCB(n_features=2, alpha=0.1, epsilon=0.05, seed=0)
    res2 = replay(learner, X, a, r, [0, 1, 2], n_boot=200)
    assert res2.value > 0.45  # it learns to pick the 0.5 arm


def test_weights_need_positive_propensities():
    with pytest.raises(ValueError, match="> 0"):
        ips(np.ones(2), np.array([0, 1]), np.array([0.5, 0.0]), np.full((2, 2), 0.5))


def test_evaluate_file_records_schema(obd_random):
    records = evaluate_file(obd_random, policies=("uniform", "linucb"), n_boot=50)
    assert {tuple(sorted(r)) for r in records} == {
        tuple(sorted(("policy", "estimator", "logs", "campaign", "value", "ci_low", "ci_high", "n")))
    }
    json.dumps(records)
    est = {(r["policy"], r["estimator"]) for r in records}
    assert ("linucb", "replay") in est and ("logging-policy", "on-policy") in est
    uni = {r["estimator"]: r for r in records if r["policy"] == "uniform"}
    ref = next(r for r in records if r["policy"] == "logging-policy")
    # the logging policy IS uniform on these logs: IPS of uniform equals the on-policy CTR exactly
    assert uni["ips"]["value"] == pytest.approx(ref["value"], rel=1e-12)
    for r in records:
        if r["value"] == r["value"]:
            assert r["ci_low"] <= r["value"] + 1e-12 and r["value"] <= r["ci_high"] + 1e-12


def test_rows_that_do_not_line_up_are_refused():
    from backdrop.bandit.evaluation import estimate

    n, k = 6, 3
    ok = dict(reward=np.zeros(n), action=np.zeros(n, int), pscore=np.full(n, 0.5), action_dist=np.full((n, k), 1 / k))
    estimate(**ok, n_boot=10)
    for bad in ({"pscore": np.full(n - 1, 0.5)}, {"action": np.zeros(n + 1, int)}, {"action_dist": np.full((n - 2, k), 1 / k)}):
        with pytest.raises(ValueError, match="same rows"):
            estimate(**(ok | bad), n_boot=10)
