"""Quality bake-off: multiclass datasets as contextual bandit problems (Bietti, Agarwal & Langford 2021).

Each example ``(x, y)`` of a K-class dataset is one round: the policy sees ``x`` and the arms
``0..K-1`` (the class labels, as ints), picks one, and gets reward 1 when it picked ``y`` and 0
otherwise -- only for the arm it picked (bandit feedback). Every policy is run online over the same
random order of the examples (one pass), and scored by its **progressive mean reward**: the mean
of the rewards it collected while learning, i.e. the progressive-validation accuracy that
"A Contextual Bandit Bake-off" (JMLR 2021) reports as (1 - loss).

Datasets (``datasets()``; features standardised to zero mean / unit variance, then a constant
bias column appended, so ``d`` below counts it):

===============  =====  ====  ===  ================================================================
name                 n     d    K  source
===============  =====  ====  ===  ================================================================
digits            1797    65   10  ``sklearn.datasets.load_digits`` (8x8 images)
wine               178    14    3  ``sklearn.datasets.load_wine``
breast_cancer      569    31    2  ``sklearn.datasets.load_breast_cancer``
iris               150     5    3  ``sklearn.datasets.load_iris``
synth5            4000    21    5  ``make_classification`` (10 informative of 20, 2 clusters/class)
synth10           5000    41   10  ``make_classification`` (16 informative of 40, 1 cluster/class)
synth20           6000    33   20  ``make_classification`` (20 informative of 32, 1 cluster/class)
===============  =====  ====  ===  ================================================================

A *policy factory* is ``factory(n_features, n_arms, seed)`` (called positionally) returning an
object with ``choose(x, arms)`` -- which returns either a :class:`~backdrop.bandit.Decision` or the
arm itself -- and ``update(x, arm, reward)``. backdrop's policies fit directly
(``lambda d, k, s: LinUCB(n_features=d, seed=s)``); other libraries through adapters
(``benchmarks/peers.py``).

Only numpy is needed at import; scikit-learn is imported when ``datasets()`` is called.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

#: name -> (n, d incl. bias, K, description); ``datasets()`` builds exactly these.
DATASETS: dict[str, tuple[int, int, int, str]] = {
    "digits": (1797, 65, 10, "sklearn load_digits"),
    "wine": (178, 14, 3, "sklearn load_wine"),
    "breast_cancer": (569, 31, 2, "sklearn load_breast_cancer"),
    "iris": (150, 5, 3, "sklearn load_iris"),
    "synth5": (4000, 21, 5, "make_classification, 10 informative of 20 features, 2 clusters/class"),
    "synth10": (5000, 41, 10, "make_classification, 16 informative of 40 features, 1 cluster/class"),
    "synth20": (6000, 33, 20, "make_classification, 20 informative of 32 features, 1 cluster/class"),
}

# fixed generator seeds: the generated datasets are the same whatever ``seed`` the streams use
_SYNTH = {
    "synth5": {
        "n_samples": 4000,
        "n_features": 20,
        "n_informative": 10,
        "n_redundant": 4,
        "n_classes": 5,
        "n_clusters_per_class": 2,
        "class_sep": 1.0,
        "random_state": 105,
    },
    "synth10": {
        "n_samples": 5000,
        "n_features": 40,
        "n_informative": 16,
        "n_redundant": 8,
        "n_classes": 10,
        "n_clusters_per_class": 1,
        "class_sep": 1.2,
        "random_state": 110,
    },
    "synth20": {
        "n_samples": 6000,
        "n_features": 32,
        "n_informative": 20,
        "n_redundant": 4,
        "n_classes": 20,
        "n_clusters_per_class": 1,
        "class_sep": 1.5,
        "random_state": 120,
    },
}


class OnlinePolicy(Protocol):
    """What a policy factory returns: ``choose(x, arms)`` (a Decision or the arm) and ``update(x, arm, reward)``."""

    def choose(self, x: np.ndarray, arms: list[int], /) -> Any: ...

    def update(self, x: np.ndarray, arm: Any, reward: float, /) -> object: ...


PolicyFactory = Callable[[int, int, int], OnlinePolicy]


def _load(name: str):
    from sklearn import datasets as skd

    if name in _SYNTH:
        return skd.make_classification(**_SYNTH[name])
    loader = {
        "digits": skd.load_digits,
        "wine": skd.load_wine,
        "breast_cancer": skd.load_breast_cancer,
        "iris": skd.load_iris,
    }.get(name)
    if loader is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return loader(return_X_y=True)


def to_bandit(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Standardise features (constant columns stay 0), append a bias column, map labels to 0..K-1."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (n, d) with one label per row, got {X.shape} and {len(y)} labels")
    sd = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    Z = np.hstack([Z, np.ones((len(Z), 1))])
    _, labels = np.unique(np.asarray(y), return_inverse=True)
    return np.ascontiguousarray(Z), labels.astype(np.int64)


def datasets(names: Iterable[str] | None = None, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (X, y)}`` for the bake-off: X (n, d) float64 standardised + bias, y int labels 0..K-1.

    The data themselves are fixed (the generated ones use fixed seeds); ``seed`` only matters for
    the order, which :func:`stream` draws -- it is accepted here for symmetry and ignored.
    """
    del seed
    out = {}
    for name in DATASETS if names is None else names:
        X, y = _load(name)
        out[name] = to_bandit(X, y)
    return out


def stream(X, y, seed: int) -> np.ndarray:
    """The order in which the examples are shown: a permutation of ``range(len(y))`` for ``seed``."""
    return np.random.default_rng(seed).permutation(len(y))


def run_online(
    policy_factory: PolicyFactory,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    *,
    n_arms: int | None = None,
    max_events: int | None = None,
    curve_points: int = 20,
    final_fraction: float = 0.1,
) -> dict:
    """Run one policy online over the stream for ``seed``; reward 1 iff the chosen arm is the label.

    Returns ``reward`` (progressive mean reward over the whole stream), ``final`` (mean reward over
    the last ``final_fraction`` of it: what the policy has learnt by the end), ``curve`` (the
    progressive mean at ``curve_points`` evenly spaced points, as ``[(t, mean), ...]``), ``n``
    and ``seconds`` (wall time of the loop).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    K = int(n_arms if n_arms is not None else y.max() + 1)
    order = stream(X, y, seed)
    if max_events is not None:
        order = order[:max_events]
    n = len(order)
    if n == 0:
        raise ValueError("empty stream")
    policy = policy_factory(X.shape[1], K, seed)
    arms = list(range(K))
    rewards = np.empty(n)
    Xs, ys = X[order], y[order]
    choose, update = policy.choose, policy.update
    t0 = time.perf_counter()
    for t in range(n):
        x = Xs[t]
        d = choose(x, arms)
        arm = getattr(d, "arm", d)
        r = 1.0 if int(arm) == ys[t] else 0.0
        update(x, arm, r)
        rewards[t] = r
    seconds = time.perf_counter() - t0
    cum = np.cumsum(rewards)
    pts = np.unique(np.linspace(1, n, max(1, curve_points)).round().astype(int))
    tail = max(1, math.ceil(final_fraction * n))
    return {
        "reward": float(cum[-1] / n),
        "final": float(rewards[-tail:].mean()),
        "curve": [(int(p), float(cum[p - 1] / p)) for p in pts],
        "n": n,
        "seconds": seconds,
    }


def bakeoff(
    policies: Mapping[str, PolicyFactory],
    names: Iterable[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    max_events: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Every policy on every dataset and seed (same streams for all policies).

    One row per (dataset, policy): ``dataset, policy, n, d, K, mean, sd`` (over seeds, of the
    progressive mean reward), ``final`` (mean over seeds of the last-10% reward), ``rewards`` (per
    seed), ``seconds`` (total). Pass ``data`` to reuse datasets already built.
    """
    data = dict(data) if data is not None else datasets(names)
    if names is not None:
        data = {k: data[k] for k in names}
    rows = []
    for dname, (X, y) in data.items():
        K = int(y.max() + 1)
        for pname, factory in policies.items():
            runs = [run_online(factory, X, y, s, n_arms=K, max_events=max_events) for s in seeds]
            r = np.array([run["reward"] for run in runs])
            rows.append(
                {
                    "dataset": dname,
                    "policy": pname,
                    "n": runs[0]["n"],
                    "d": X.shape[1],
                    "K": K,
                    "mean": float(r.mean()),
                    "sd": float(r.std(ddof=1)) if len(r) > 1 else 0.0,
                    "final": float(np.mean([run["final"] for run in runs])),
                    "rewards": r.tolist(),
                    "seconds": float(sum(run["seconds"] for run in runs)),
                }
            )
            if progress:
                progress(f"{dname:14s} {pname:28s} {r.mean():.4f} ± {rows[-1]['sd']:.4f}")
    return rows


def to_markdown(rows: Sequence[dict], *, digits: int = 3) -> str:
    """One table row per dataset, one column per policy: progressive mean reward ``mean ± sd``.

    The best mean of each row is bold (every policy within 1e-9 of it). Also a last row with
    each policy's number of datasets where it is best or within one sd (of the best) of it.
    """
    if not rows:
        return "_no results_\n"
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["dataset"], r["policy"]): r for r in rows}
    head = "| dataset | n | d | K | " + " | ".join(policies) + " |"
    sep = "|---|---:|---:|---:|" + "---:|" * len(policies)
    lines = [head, sep]
    near = dict.fromkeys(policies, 0)
    for name in names:
        present = [cell[(name, p)] for p in policies if (name, p) in cell]
        best = max(r["mean"] for r in present)
        best_sd = max(r["sd"] for r in present if r["mean"] >= best - 1e-9)
        first = present[0]
        out = [name, str(first["n"]), str(first["d"]), str(first["K"])]
        for p in policies:
            r = cell.get((name, p))
            if r is None:
                out.append("")
                continue
            s = f"{r['mean']:.{digits}f} ± {r['sd']:.{digits}f}"
            if r["mean"] >= best - 1e-9:
                s = f"**{s}**"
            if r["mean"] >= best - max(best_sd, 1e-9):
                near[p] += 1
            out.append(s)
        lines.append("| " + " | ".join(out) + " |")
    lines.append("| best or within 1 sd of best | | | | " + " | ".join(f"{near[p]} / {len(names)}" for p in policies) + " |")
    return "\n".join(lines) + "\n"
