import numpy as np
import pytest

from backdrop.bandit import (
    POLICIES,
    UCB1,
    BetaTS,
    EpsilonGreedy,
    FixedArm,
    HybridLinUCB,
    LinTS,
    LinUCB,
    ModelFileError,
    Policy,
    Uniform,
)
from backdrop.bandit.policies import beta_argmax_probabilities, gaussian_argmax_probabilities

D = 8


def _ridge(X, r, l2=1.0):
    return np.linalg.solve(l2 * np.eye(X.shape[1]) + X.T @ X, X.T @ r)


def _stream(n, d=D, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    arms = [f"a{i}" for i in range(k)]
    chosen = [arms[i] for i in rng.integers(k, size=n)]
    rewards = rng.normal(size=n) + X[:, 0]
    return X, chosen, rewards, arms


@pytest.mark.parametrize("cls", [LinUCB, LinTS, EpsilonGreedy])
def test_sherman_morrison_matches_closed_form_ridge_after_thousands_of_updates(cls):
    X, chosen, r, arms = _stream(6000, k=3)
    p = cls(n_features=D, seed=1, refactor_every=100_000)  # no refactorisation: pure rank-1 updates
    q = cls(n_features=D, seed=1)  # with periodic refactorisation
    for x, a, y in zip(X, chosen, r, strict=True):
        p.update(x, a, y)
        q.update(x, a, y)
    for a in arms:
        m = np.array([c == a for c in chosen])
        exact = _ridge(X[m], r[m])
        assert np.abs(p.coef(a) - exact).max() < 1e-8
        assert np.abs(q.coef(a) - exact).max() < 1e-10
        i = q.arm_index[a]
        assert np.abs(q.A_inv[i] @ q.A[i] - np.eye(D)).max() < 1e-10


def _assert_solves_the_joint_ridge(p, X, chosen, r, arms, feats, shared):
    """Each arm's coefficients are the joint ridge's (l2 = 1 on every coefficient) over the design
    [kron(f_a, x[:shared]) | x in arm a's block]."""
    k = len(next(iter(feats.values()))) * shared
    Z = np.zeros((len(X), k + len(arms) * D))
    for n, (x, a) in enumerate(zip(X, chosen, strict=True)):
        Z[n, :k] = np.kron(feats[a], x[:shared])
        j = arms.index(a)
        Z[n, k + j * D : k + (j + 1) * D] = x
    w = _ridge(Z, r)
    for j, a in enumerate(arms):
        beta, theta = p.coef(a)
        assert np.abs(beta - w[:k]).max() < 1e-8
        assert np.abs(theta - w[k + j * D : k + (j + 1) * D]).max() < 1e-8


def test_hybrid_linucb_equals_the_joint_ridge_solution():
    X, chosen, r, arms = _stream(1500, k=3, seed=2)
    feats = {"a0": [1.0, 0.0], "a1": [0.0, 1.0], "a2": [1.0, 1.0]}
    p = HybridLinUCB(n_features=D, arm_features=feats, seed=0)
    for x, a, y in zip(X, chosen, r, strict=True):
        p.update(x, a, y)
    _assert_solves_the_joint_ridge(p, X, chosen, r, arms, feats, shared=D)


def test_hybrid_linucb_shares_only_the_first_shared_dims_features_and_still_solves_the_joint_ridge():
    X, chosen, r, arms = _stream(1200, k=3, seed=4)
    feats = {"a0": [1.0, 0.0], "a1": [0.0, 1.0], "a2": [1.0, 1.0]}
    s = 3
    p = HybridLinUCB(n_features=D, arm_features=feats, shared_dims=s, seed=0)
    assert p.k == 2 * s
    p.update_many(X, chosen, r)
    _assert_solves_the_joint_ridge(p, X, chosen, r, arms, feats, shared=s)
    assert Policy.from_bytes(p.to_bytes()).shared_dims == s
    for bad in (0, D + 1):
        with pytest.raises(ValueError, match="shared_dims"):
            HybridLinUCB(n_features=D, shared_dims=bad)


def test_hybrid_linucb_starts_a_bred_variant_from_its_parent_s_attributes():
    feats = {"good": [1.0, 1.0, 0.0], "plain": [1.0, 0.0, 1.0]}
    p = HybridLinUCB(n_features=2, arm_features=feats, shared_dims=1, alpha=0.0, epsilon=0.0, seed=0)
    x = np.array([1.0, 0.5])
    for n in range(400):
        p.update(x, "good", float(n % 3 == 0))  # clicks a third of the time
        p.update(x, "plain", 0.0)
    # neither variant was ever served: the one bred from "good" (overlay kept) starts from its attributes
    assert p.choose(x, ["plain__v1a2b", "good__v9f3c"]).arm == "good__v9f3c"


@pytest.mark.parametrize("cls", [LinUCB, LinTS, EpsilonGreedy, HybridLinUCB, UCB1, BetaTS])
def test_batched_updates_give_the_same_model_as_one_by_one(cls):
    X, chosen, r, arms = _stream(900, k=4, seed=3)
    r01 = (r > 0.5).astype(float)
    kw = {} if cls in (UCB1, BetaTS) else {"n_features": D}
    a, b = cls(seed=0, **kw), cls(seed=0, **kw)
    for x, arm, y in zip(X, chosen, r01, strict=True):
        a.update(x, arm, y)
    for lo in range(0, 900, 128):  # delayed feedback arriving in batches
        b.update_many(X[lo : lo + 128], chosen[lo : lo + 128], r01[lo : lo + 128])
    probe = np.random.default_rng(9).normal(size=(20, D))
    for x in probe:
        assert np.allclose(a.probabilities(x, arms), b.probabilities(x, arms), atol=1e-9)
        assert np.allclose(a._distribution(a._check_x(x), tuple(arms))[0], b._distribution(b._check_x(x), tuple(arms))[0], atol=1e-9)


def _empirical(policy, x, arms, n=12000):
    counts = dict.fromkeys(arms, 0)
    for _ in range(n):
        counts[policy.choose(x, arms).arm] += 1
    return np.array([counts[a] / n for a in arms])


@pytest.mark.parametrize(
    "policy",
    [
        LinUCB(n_features=D, alpha=0.5, epsilon=0.2, seed=0),
        EpsilonGreedy(n_features=D, epsilon=0.3, seed=0),
        LinTS(n_features=D, alpha=0.5, seed=0),
        LinTS(n_features=D, alpha=0.5, epsilon=0.1, seed=0),
        HybridLinUCB(n_features=D, alpha=0.5, epsilon=0.2, seed=0),
        UCB1(epsilon=0.2, seed=0),
        BetaTS(seed=0),
        Uniform(seed=0),
    ],
    ids=lambda p: repr(p)[:40],
)
def test_propensities_are_the_real_choice_probabilities(policy):
    X, chosen, r, arms = _stream(400, k=5, seed=4)
    policy.update_many(X, chosen, (r > 0.3).astype(float))
    x = X[0]
    probs = policy.probabilities(x, arms)
    assert probs.min() > 0 and abs(probs.sum() - 1) < 1e-9
    emp = _empirical(policy, x, arms)
    assert np.abs(emp - probs).max() < 0.018  # 4 standard errors at n = 12000
    d = policy.choose(x, arms)
    assert d.propensity == pytest.approx(probs[arms.index(d.arm)], rel=1e-6)
    assert d.arms == tuple(arms) and len(d.scores) == len(arms)


def test_deterministic_ucb_mixes_exploration_and_splits_ties():
    p = LinUCB(n_features=D, alpha=1.0, epsilon=0.1, seed=0)
    arms = ["a", "b", "c", "d"]
    x = np.ones(D)
    # all cold: a four-way tie
    assert np.allclose(p.probabilities(x, arms), 0.25)
    p.update(x, "a", 5.0)
    probs = p.probabilities(x, arms)
    assert probs[0] == pytest.approx(0.9 + 0.025) and np.allclose(probs[1:], 0.025)
    # without exploration the other arms would have propensity 0
    assert LinUCB(n_features=D, epsilon=0.0).probabilities(x, ["a"]).tolist() == [1.0]


def test_arms_may_differ_per_call_and_new_arms_start_cold():
    p = LinUCB(n_features=D, alpha=0.0, epsilon=0.0, seed=0)
    x = np.ones(D) / np.sqrt(D)
    for _ in range(30):
        p.update(x, "old", 1.0)
    assert p.choose(x, ["old", "other"]).arm == "old"
    d = p.choose(x, ["new1", "new2"])  # never seen: cold, tie
    assert d.propensity == pytest.approx(0.5) and np.allclose(d.scores, 0)
    decisions = p.choose_many(np.stack([x, x]), [["old", "new1"], ["new2", "new3", "old"]])
    assert [dd.arm for dd in decisions] == ["old", "old"]
    assert decisions[1].arms == ("new2", "new3", "old")
    with pytest.raises(ValueError, match="distinct"):
        p.choose(x, ["a", "a"])
    with pytest.raises(ValueError, match="empty"):
        p.choose(x, [])
    with pytest.raises(ValueError, match="shape"):
        p.choose(np.ones(D + 1), ["a"])
    with pytest.raises(ValueError, match="finite"):
        p.update(x, "a", float("nan"))


def test_choose_many_matches_choose_for_linucb():
    X, chosen, r, arms = _stream(300, k=6, seed=5)
    p = LinUCB(n_features=D, alpha=0.7, epsilon=0.1, seed=0)
    p.update_many(X, chosen, r)
    batch = p.choose_many(X[:50], arms)
    for x, d in zip(X[:50], batch, strict=True):
        probs = p.probabilities(x, arms)
        assert np.allclose(d.probabilities, probs)
        assert d.propensity == pytest.approx(probs[arms.index(d.arm)])


def test_fixed_arm_and_uniform():
    f = FixedArm(arm="b")
    assert f.choose(np.zeros(3), ["a", "b"]).arm == "b"
    assert f.choose(np.zeros(3), ["a", "b"]).propensity == 1.0
    d = f.choose(np.zeros(3), ["x", "y"])
    assert d.propensity == 0.5
    assert Uniform().probabilities(None, ["a", "b", "c", "d"]).tolist() == [0.25] * 4


def test_argmax_probability_quadrature_is_accurate():
    rng = np.random.default_rng(0)
    mu, sd = np.array([0.1, 0.3, 0.25, -0.2]), np.array([0.2, 0.05, 0.3, 0.5])
    draws = rng.normal(mu, sd, size=(400_000, 4)).argmax(1)
    emp = np.bincount(draws, minlength=4) / len(draws)
    assert np.abs(gaussian_argmax_probabilities(mu, sd) - emp).max() < 3e-3
    a, b = np.array([3.0, 30.0, 300.0]), np.array([20.0, 170.0, 1700.0])
    draws = rng.beta(a, b, size=(400_000, 3)).argmax(1)
    emp = np.bincount(draws, minlength=3) / len(draws)
    assert np.abs(beta_argmax_probabilities(a, b) - emp).max() < 3e-3


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_save_load_roundtrip(tmp_path, name):
    cls = POLICIES[name]
    kw = {"n_features": D}
    if cls is FixedArm:
        kw["arm"] = ("a", 1)
    if cls is HybridLinUCB:
        kw["arm_features"] = {"a0": [1.0, 0.0], ("t", 2): [0.0, 1.0]}
    p = cls(seed=3, **kw)
    X, chosen, r, _ = _stream(200, k=3, seed=6)
    arms = ["a0", ("t", 2), 7]
    chosen = [arms[i % 3] for i in range(200)]
    p.update_many(X, chosen, (r > 0).astype(float))
    path = p.save(tmp_path / "m.bandit")
    q = Policy.load(path)
    assert type(q) is cls and q.params() == p.params() and q.arm_ids == p.arm_ids
    for x in X[:10]:
        assert np.allclose(p.probabilities(x, arms), q.probabilities(x, arms), atol=1e-12)
    # the random stream continues where it was
    assert [p.choose(x, arms).arm for x in X[:20]] == [q.choose(x, arms).arm for x in X[:20]]
    assert not list(tmp_path.glob("*.tmp"))


def test_load_rejects_corrupt_foreign_and_future_files(tmp_path):
    p = LinUCB(n_features=D)
    p.update(np.ones(D), "a", 1.0)
    path = p.save(tmp_path / "m.bandit")
    data = path.read_bytes()
    (tmp_path / "trunc.bandit").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        Policy.load(tmp_path / "trunc.bandit")
    (tmp_path / "x.bandit").write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable"):
        Policy.load(tmp_path / "x.bandit")
    with pytest.raises(ModelFileError, match="not found"):
        Policy.load(tmp_path / "missing.bandit")
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(files["meta.json"])
    meta["version"] = 99
    with zipfile.ZipFile(tmp_path / "v99.bandit", "w") as z:
        for n, b in files.items():
            z.writestr(n, json.dumps(meta) if n == "meta.json" else b)
    with pytest.raises(ModelFileError, match="version 99 is not supported"):
        Policy.load(tmp_path / "v99.bandit")


def test_float32_option_tracks_float64():
    X, chosen, r, arms = _stream(2000, k=3, seed=7)
    a = LinUCB(n_features=D, seed=0)
    b = LinUCB(n_features=D, seed=0, dtype="float32")
    for x, arm, y in zip(X, chosen, r, strict=True):
        a.update(x, arm, y)
        b.update(x, arm, y)
    for arm in arms:
        assert np.abs(a.coef(arm) - b.coef(arm)).max() < 1e-3
    assert b.A_inv.dtype == np.float32


_HYB_FEATS = {"h0": [1.0, 0.0, 0.5], "h1": [0.0, 1.0, 0.0], "h2": [1.0, 1.0, 1.0], "h3": [-0.5, 0.0, 2.0]}


def _hybrid_inverse_error(p):
    exact = np.linalg.inv(p.A0)
    return np.abs(p.A0_inv - exact).max() / np.abs(exact).max()


def test_hybrid_linucb_rank_one_updates_keep_the_shared_inverse_exact():
    d = 6
    rng = np.random.default_rng(11)
    arms = [*_HYB_FEATS, "bare"]  # "bare" has no arm features: z = 0
    p = HybridLinUCB(n_features=d, arm_features=_HYB_FEATS, alpha=0.8, epsilon=0.1, refactor_every=10**6, seed=5)
    q = HybridLinUCB(n_features=d, arm_features=_HYB_FEATS, alpha=0.8, epsilon=0.1, refactor_every=1, seed=5)
    for _ in range(2000):
        x = rng.normal(size=d)
        dp, dq = p.choose(x, arms), q.choose(x, arms)
        assert dp.arm == dq.arm
        assert np.allclose(dp.scores, dq.scores, rtol=1e-8, atol=1e-10)
        y = float(x[0] + _HYB_FEATS.get(dp.arm, [0.0])[0] + rng.normal())
        p.update(x, dp.arm, y)
        q.update(x, dq.arm, y)
    assert _hybrid_inverse_error(p) < 1e-8
    assert np.abs(p.beta - q.beta).max() <= 1e-8 * np.abs(q.beta).max()
    for a in arms:
        assert np.allclose(p.coef(a)[1], q.coef(a)[1], rtol=1e-8, atol=1e-10)


def test_hybrid_linucb_cold_arm_and_featureless_arm_updates_stay_exact():
    d = 6
    rng = np.random.default_rng(12)
    p = HybridLinUCB(n_features=d, arm_features=_HYB_FEATS, refactor_every=10**6)
    q = HybridLinUCB(n_features=d, arm_features=_HYB_FEATS, refactor_every=1)
    events = [("h0", rng.normal(size=d))]  # a cold arm on a cold model: B_i = 0, so v = 0
    events += [("h1", rng.normal(size=d)) for _ in range(30)]
    events += [("h2", rng.normal(size=d))]  # a cold arm on a trained shared model
    events += [("bare", rng.normal(size=d)) for _ in range(30)]  # z = 0
    for arm, x in events:
        p.update(x, arm, float(x.sum()))
        q.update(x, arm, float(x.sum()))
        assert _hybrid_inverse_error(p) < 1e-12
        assert np.allclose(p.beta, q.beta, rtol=1e-10, atol=1e-12)
        assert np.allclose(p.coef(arm)[1], q.coef(arm)[1], rtol=1e-10, atol=1e-12)


def test_hybrid_linucb_update_inverts_the_shared_matrix_only_on_refactor_steps(monkeypatch):
    d, k = 6, 18
    inverted = []
    inv = np.linalg.inv

    def counting_inv(a):
        inverted.append(np.shape(a))
        return inv(a)

    X = np.random.default_rng(13).normal(size=(100, d))
    arms = list(_HYB_FEATS)
    for every, expected in ((1000, 0), (10, 10)):
        p = HybridLinUCB(n_features=d, arm_features=_HYB_FEATS, refactor_every=every)
        inverted.clear()
        monkeypatch.setattr(np.linalg, "inv", counting_inv)
        for n, x in enumerate(X):
            p.update(x, arms[n % len(arms)], 1.0)
        monkeypatch.setattr(np.linalg, "inv", inv)
        assert inverted.count((k, k)) == expected
        assert _hybrid_inverse_error(p) < 1e-10


def test_hybrid_linucb_refactor_every_is_saved_validated_and_defaulted_for_older_files():
    import json
    import zipfile
    from io import BytesIO

    with pytest.raises(ValueError, match="refactor_every"):
        HybridLinUCB(n_features=D, refactor_every=0)
    X, chosen, r, arms = _stream(50, k=3, seed=14)
    p = HybridLinUCB(n_features=D, refactor_every=64, seed=0)
    p.update_many(X, chosen, r)
    assert Policy.from_bytes(p.to_bytes()).refactor_every == 64
    with zipfile.ZipFile(BytesIO(p.to_bytes())) as z:
        files = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(files["meta.json"])
    del meta["params"]["refactor_every"]  # a model saved before the parameter existed
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, b in files.items():
            z.writestr(n, json.dumps(meta) if n == "meta.json" else b)
    q = Policy.from_bytes(out.getvalue())
    assert isinstance(q, HybridLinUCB) and q.refactor_every == 512
    for x in X[:5]:
        assert np.allclose(p.probabilities(x, arms), q.probabilities(x, arms), atol=1e-12)
