"""The bake-off harness: multiclass datasets as bandit problems, run online, scored progressively."""

import numpy as np
import pytest

from backdrop.bandit import EpsilonGreedy, LinUCB, Uniform
from backdrop.testing.bakeoff import (
    DATASETS,
    bakeoff,
    datasets,
    run_online,
    stream,
    to_bandit,
    to_markdown,
)


@pytest.fixture(scope="module")
def data():
    return datasets(["digits", "iris", "wine", "synth5"])


class _Always:
    """Picks the same class every time: its reward is the frequency of that class in the stream."""

    def __init__(self, arm):
        self.arm = arm
        self.updates = []

    def choose(self, x, arms):
        assert list(arms) == list(range(len(arms)))  # the arms are the class labels 0..K-1
        return self.arm

    def update(self, x, arm, reward):
        self.updates.append((arm, reward))


def test_datasets_are_standardised_with_a_bias_and_labels_as_arms(data):
    for name, (X, y) in data.items():
        n, d, K, _ = DATASETS[name]
        assert X.shape == (n, d) and X.dtype == np.float64 and y.shape == (n,)
        assert np.all(X[:, -1] == 1.0)  # bias column
        body = X[:, :-1]
        assert np.allclose(body.mean(axis=0), 0, atol=1e-9)
        sd = body.std(axis=0)
        assert np.allclose(sd[sd > 0], 1)
        assert sorted(np.unique(y).tolist()) == list(range(K))
    # labels of any kind become 0..K-1
    X, y = to_bandit(np.arange(12.0).reshape(6, 2), ["b", "a", "c", "a", "b", "c"])
    assert y.tolist() == [1, 0, 2, 0, 1, 2] and X.shape == (6, 3)


def test_reward_is_one_exactly_when_the_chosen_class_is_right(data):
    X, y = data["iris"]
    holder = {}

    def factory(d, k, seed):
        assert (d, k) == (X.shape[1], 3)
        holder["p"] = _Always(2)
        return holder["p"]

    res = run_online(factory, X, y, seed=3)
    order = stream(X, y, 3)
    expected = (y[order] == 2).astype(float)
    assert [r for _, r in holder["p"].updates] == expected.tolist()
    assert res["reward"] == pytest.approx(expected.mean())
    assert res["n"] == len(y) and res["curve"][-1] == (len(y), pytest.approx(expected.mean()))
    assert res["final"] == pytest.approx(expected[-15:].mean())


def test_linucb_learns_digits_well_above_uniform_and_pure_exploration(data):
    X, y = data["digits"]
    lin = run_online(lambda d, k, s: LinUCB(n_features=d, alpha=0.1, seed=s), X, y, seed=0, max_events=900)
    explore = run_online(lambda d, k, s: EpsilonGreedy(n_features=d, epsilon=1.0, seed=s), X, y, seed=0, max_events=900)
    uni = run_online(lambda d, k, s: Uniform(seed=s), X, y, seed=0, max_events=900)
    assert uni["reward"] < 0.2 and explore["reward"] < 0.2  # 1/K = 0.1
    assert lin["reward"] > 0.55
    assert lin["final"] > lin["reward"]  # it is still learning: the last 10% beat the average
    assert lin["reward"] > explore["reward"] + 0.35


def test_runs_are_deterministic_for_a_seed(data):
    X, y = data["wine"]
    f = lambda d, k, s: LinUCB(n_features=d, alpha=0.3, seed=s)
    a, b, _c = (run_online(f, X, y, seed=s) for s in (5, 5, 6))
    assert a["reward"] == b["reward"] and a["curve"] == b["curve"]
    assert not np.array_equal(stream(X, y, 5), stream(X, y, 6))
    assert sorted(stream(X, y, 5).tolist()) == list(range(len(y)))


def test_bakeoff_rows_and_markdown_have_a_row_per_dataset(data):
    pols = {
        "linucb": lambda d, k, s: LinUCB(n_features=d, alpha=0.1, seed=s),
        "uniform": lambda d, k, s: Uniform(seed=s),
    }
    names = ["iris", "wine", "synth5"]
    rows = bakeoff(pols, names=names, seeds=(0, 1), data=data, max_events=300)
    assert len(rows) == len(names) * len(pols)
    for r in rows:
        assert len(r["rewards"]) == 2 and r["sd"] >= 0 and r["n"] <= 300
    by = {(r["dataset"], r["policy"]): r["mean"] for r in rows}
    assert all(by[(n, "linucb")] > by[(n, "uniform")] for n in names)
    md = to_markdown(rows)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| dataset |") and "linucb" in lines[0] and "uniform" in lines[0]
    body = [line for line in lines[2:] if not line.startswith("| best")]
    assert [line.split("|")[1].strip() for line in body] == names
    assert "**" in body[0]  # the best of each row is bold
