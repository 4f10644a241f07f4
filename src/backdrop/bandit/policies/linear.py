"""Contextual policies on per-arm ridge regressions: LinUCB, LinTS, EpsilonGreedy, and HybridLinUCB with shared features."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import special

from ...styles.evolve import parent_of
from .base import (
    _BREAKS,
    Decision,
    DecisionBatch,
    Policy,
    _arm_from_json,
    _arm_to_json,
    _mix,
    _mix_rows,
    _mix_sample,
    _sample_rows,
    _shared_arms,
)


def _ger(dtype):
    """In-place M += a * u v' for a C-contiguous symmetric-update target (BLAS ger on M's transpose)."""
    from scipy.linalg import blas

    ger = blas.dger if dtype == np.float64 else blas.sger

    def update(a: float, u: np.ndarray, M: np.ndarray) -> None:
        ger(a, u, u, a=M.T, overwrite_a=1)

    return update


class _RidgeArms(Policy):
    """Per-arm ridge regression state: A = l2*I + sum x x', b = sum r x, A^-1 by Sherman-Morrison.

    A is kept too, and every ``refactor_every`` rank-1 updates of an arm its inverse and theta are
    recomputed from A and b (Cholesky), so rounding drift stays bounded however long it runs.
    """

    def __init__(
        self,
        *,
        n_features: int,
        l2: float = 1.0,
        refactor_every: int = 512,
        dtype: str = "float64",
        seed: int | None = None,
    ):
        if not n_features or n_features < 1:
            raise ValueError("n_features must be a positive integer")
        if l2 <= 0:
            raise ValueError("l2 must be > 0")
        if refactor_every < 1:
            raise ValueError("refactor_every must be >= 1")
        if dtype not in ("float64", "float32"):
            raise ValueError("dtype must be 'float64' or 'float32'")
        super().__init__(n_features=n_features, seed=seed)
        self.l2 = float(l2)
        self.refactor_every = int(refactor_every)
        self.dtype = np.dtype(dtype).type
        d = n_features
        self._cap = 0
        self.A = np.zeros((0, d, d), self.dtype)
        self.A_inv = np.zeros((0, d, d), self.dtype)
        self.b = np.zeros((0, d), self.dtype)
        self.theta = np.zeros((0, d), self.dtype)
        self.counts = np.zeros(0, np.int64)
        self._since = np.zeros(0, np.int64)
        self._eye = np.eye(d, dtype=self.dtype)
        self._ger = _ger(self.dtype)

    def params(self) -> dict:
        return super().params() | {
            "l2": self.l2,
            "refactor_every": self.refactor_every,
            "dtype": np.dtype(self.dtype).name,
        }

    def _grow(self, capacity: int) -> None:
        if capacity <= self._cap:
            return
        new = max(capacity, 2 * self._cap, 8)
        d = self.n_features

        def grow(a, shape):
            out = np.zeros((new, *shape), a.dtype)
            out[: len(a)] = a
            return out

        self.A = grow(self.A, (d, d))
        self.A_inv = grow(self.A_inv, (d, d))
        self.b = grow(self.b, (d,))
        self.theta = grow(self.theta, (d,))
        self.counts = grow(self.counts, ())
        self._since = grow(self._since, ())
        self._cap = new
        self._sets.clear()  # slices into the old arrays stay valid, but be safe

    def _cold(self, i: int) -> None:
        self.A[i] = self._eye * self.l2
        self.A_inv[i] = self._eye / self.l2
        self.b[i] = 0
        self.theta[i] = 0

    def _update(self, x, i: int, reward: float) -> None:
        A_inv = self.A_inv[i]
        u = A_inv.dot(x)  # ndarray.dot: BLAS gemv like @, with less per-call overhead
        denom = 1.0 + float(x.dot(u))
        theta = self.theta[i]
        # Sherman-Morrison on A^-1, and theta' = A'^-1 b' = theta + (r - x.theta) A^-1 x / (1 + x'A^-1 x)
        theta += ((reward - float(x.dot(theta))) / denom) * u
        self._ger(-1.0 / denom, u, A_inv)
        b = self.b[i]
        b += reward * x
        self._ger(1.0, x, self.A[i])  # A itself: exact sums, the source of every refactorisation
        self.counts[i] += 1
        j = int(self._since[i]) + 1
        self._since[i] = j
        if j >= self.refactor_every:
            self._refactor(i)

    def _update_many(self, X, rows, rewards) -> None:
        order = np.argsort(rows, kind="stable")
        rows_s = rows[order]
        bounds = np.flatnonzero(np.diff(rows_s)) + 1
        for grp in np.split(order, bounds):
            i = int(rows[grp[0]])
            Xi = X[grp]
            self.A[i] += Xi.T @ Xi
            self.b[i] += Xi.T @ rewards[grp].astype(self.dtype)
            self.counts[i] += len(grp)
            self._refactor(i)

    def _refactor(self, i: int) -> None:
        self._since[i] = 0
        A = self.A[i].astype(np.float64)
        L = np.linalg.cholesky(A)
        L_inv = np.linalg.solve(L, np.eye(len(A)))
        A_inv = L_inv.T @ L_inv
        self.A_inv[i] = A_inv
        self.theta[i] = A_inv @ self.b[i].astype(np.float64)

    def _state(self) -> dict:
        return {"arm_A": self.A, "arm_b": self.b, "arm_counts": self.counts}

    def _set_state(self, arrays) -> None:
        n = len(self.arm_ids)
        d = self.n_features
        A, b, counts = arrays["arm_A"], arrays["arm_b"], arrays["arm_counts"]
        if A.shape != (n, d, d) or b.shape != (n, d) or counts.shape != (n,):
            raise ValueError(f"state shapes {A.shape}, {b.shape}, {counts.shape} do not match {n} arms x {d} features")
        self.A[:n] = A
        self.b[:n] = b
        self.counts[:n] = counts
        for i in range(n):
            self._refactor(i)

    def _means_widths(self, x, arms: tuple) -> tuple[np.ndarray, np.ndarray]:
        idx = self._indices(arms)
        if isinstance(idx, slice):
            means = self.theta[idx].dot(x)
            widths = (self.A_inv[idx] @ x).dot(x)  # x' A_a^-1 x for every arm: one stacked matvec, one gemv
        else:
            # arms scattered in the state: A_inv[idx] would copy K d x d matrices (655 KB at K=20, d=64)
            # per call; the matvec over the contiguous span that holds them is cheaper while it is short
            lo, hi = int(idx.min()), int(idx.max()) + 1
            if hi - lo <= 4 * len(idx):
                rel = idx - lo
                means = self.theta[lo:hi].dot(x)[rel]
                widths = (self.A_inv[lo:hi] @ x)[rel].dot(x)
            else:
                means = self.theta[idx].dot(x)
                widths = (self.A_inv[idx] @ x).dot(x)
        np.maximum(widths, 0.0, out=widths)
        np.sqrt(widths, out=widths)
        return means, widths

    def coef(self, arm) -> np.ndarray:
        """The arm's ridge coefficients (theta)."""
        return self.theta[self.arm_index[arm]].copy()


class LinUCB(_RidgeArms):
    """Disjoint LinUCB (Li et al. 2010, Algorithm 1) with an epsilon exploration mix for propensities.

    score_a = theta_a . x + alpha * sqrt(x' A_a^-1 x); ``epsilon`` (default 0.05) of the time a
    uniformly random arm is shown instead, so every logged propensity is >= epsilon / K.

    >>> import numpy as np
    >>> policy = LinUCB(n_features=3, alpha=0.5, epsilon=0.1, seed=0)
    >>> x, styles = np.array([1.0, 0.0, 1.0]), ["studio", "outdoor", "color-pop"]
    >>> policy.probabilities(x, styles).round(3).tolist()  # nothing learned yet: a tie
    [0.333, 0.333, 0.333]
    >>> for _ in range(20):
    ...     policy.update(x, "outdoor", 1.0)
    ...     policy.update(x, "studio", 0.0)
    >>> decision = policy.choose(x, styles)
    >>> decision.arm, round(decision.propensity, 3)  # 1 - epsilon + epsilon / K: what the log records
    ('outdoor', 0.933)
    >>> LinUCB.from_bytes(policy.to_bytes()).probabilities(x, styles).round(3).tolist()
    [0.033, 0.933, 0.033]
    """

    name = "linucb"

    def __init__(self, *, n_features: int, alpha: float = 1.0, epsilon: float = 0.05, **kw):
        super().__init__(n_features=n_features, **kw)
        if alpha < 0:
            raise ValueError("alpha must be >= 0")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError("epsilon must be in [0, 1]")
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)

    def params(self) -> dict:
        return super().params() | {"alpha": self.alpha, "epsilon": self.epsilon}

    def _scores(self, x, arms: tuple) -> np.ndarray:
        means, widths = self._means_widths(x, arms)
        widths *= self._width_scale()  # in place: scores = means + alpha * widths
        widths += means
        return widths

    def _width_scale(self) -> float:
        """What ``sqrt(x' A^-1 x)`` is multiplied by in the bound: ``alpha`` (a subclass may rescale it)."""
        return self.alpha

    def _distribution(self, x, arms):
        scores = self._scores(x, arms)
        return scores, _mix(scores, self.epsilon)

    def choose(self, x, arms: Sequence) -> Decision:
        # the generic choose (distribution, then cumsum sampling) with the mix and the draw fused
        arms = tuple(arms)
        scores = self._scores(self._check_x(x), arms)
        probs, k = _mix_sample(scores, self.epsilon, self.rng.random())
        return Decision(arms[k], float(probs[k]), scores, probs, arms)

    def choose_many(self, X, arms) -> Sequence[Decision]:
        X = np.asarray(X, dtype=self.dtype)
        shared = _shared_arms(X, arms)
        if shared is None:
            return super().choose_many(X, arms)
        idx = self._indices(shared)
        scores = self._scores_rows(X, idx)
        probs, best = _mix_rows(scores, self.epsilon, with_best=True)
        ks = _sample_rows(probs, best, self.epsilon, self.rng.random(len(X)))
        # the same draw per row as choose() would make: one uniform each, from the same stream
        return DecisionBatch(shared, ks, probs[np.arange(len(X)), ks], scores, probs)

    def _scores_rows(self, X: np.ndarray, idx) -> np.ndarray:
        """(n, K) UCB scores: means X theta' plus alpha sqrt(x' A_a^-1 x), in row blocks.

        All arms' A^-1 stacked as one (K*d, d) matrix: a block of X times its transpose is one gemm
        giving x' A_a^-1 for every arm a and row x (A^-1 is symmetric up to rounding); the
        quadratic forms are then one contiguous multiply-and-sum over d (einsum).
        """
        A_inv = self.A_inv[idx]
        K, d = A_inv.shape[0], A_inv.shape[1]
        stacked_t = A_inv.reshape(K * d, d).T
        n = len(X)
        scores = X @ self.theta[idx].T
        widths = np.empty((n, K), dtype=scores.dtype)
        block = max(32, min(256, (1 << 21) // (K * d)))  # temporaries <= 16 MiB
        for start in range(0, n, block):
            Xb = X[start : start + block]
            R = (Xb @ stacked_t).reshape(len(Xb), K, d)
            np.einsum("nkd,nd->nk", R, Xb, out=widths[start : start + block])
        np.maximum(widths, 0.0, out=widths)
        np.sqrt(widths, out=widths)
        widths *= self._width_scale()
        scores += widths
        return scores


class EpsilonGreedy(_RidgeArms):
    """Per-arm ridge regression, greedy on the predicted reward, a uniform arm with probability epsilon."""

    name = "epsilon-greedy"

    def __init__(self, *, n_features: int, epsilon: float = 0.1, **kw):
        super().__init__(n_features=n_features, **kw)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError("epsilon must be in [0, 1]")
        self.epsilon = float(epsilon)

    def params(self) -> dict:
        return super().params() | {"epsilon": self.epsilon}

    def _distribution(self, x, arms):
        idx = self._indices(arms)
        scores = self.theta[idx] @ x
        return scores, _mix(scores, self.epsilon)


_GL6_T, _GL6_W = np.polynomial.legendre.leggauss(6)


@lru_cache(maxsize=64)
def _thinning(n_edges: int, intervals: int) -> np.ndarray:
    """Indices of ``intervals + 1`` edges spread evenly over ``n_edges`` sorted ones (ends kept)."""
    return np.round(np.linspace(0, n_edges - 1, intervals + 1)).astype(np.intp)


def gaussian_argmax_probabilities(mu: np.ndarray, sigma: np.ndarray, max_intervals: int = 40) -> np.ndarray:
    """P(arm a has the largest of independent N(mu_b, sigma_b^2) draws), for every a (sums to 1).

    P_a = integral of pdf_a(s) * prod_{b != a} cdf_b(s) ds, by composite Gauss-Legendre over
    intervals whose ends are the arms' means +- multiples of their sds (thinned to at most
    ``max_intervals`` when there are many arms), so wide and narrow arms are both resolved.
    Accurate to ~1e-3 (tests compare with 10^5-10^6 draws).
    """
    k = len(mu)
    if k == 1:
        return np.ones(1)
    sigma = np.maximum(sigma, 1e-12)
    edges = np.sort((mu[:, None] + sigma[:, None] * _BREAKS[None, :]).ravel())  # equal edges: empty intervals
    if len(edges) > max_intervals + 1:
        edges = edges[_thinning(len(edges), max_intervals)]
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    s = (mid[:, None] + half[:, None] * _GL6_T[None, :]).ravel()
    w = (half[:, None] * _GL6_W[None, :]).ravel()
    z = (s[:, None] - mu[None, :]) / sigma[None, :]  # (nodes, k)
    cdf = special.ndtr(z)
    pdf = np.exp(-0.5 * z * z) / sigma[None, :]
    prod = cdf.prod(axis=1, keepdims=True)
    others = prod / np.maximum(cdf, 1e-300)  # where cdf_a underflows, prod is 0 as well
    p = w @ (pdf * others)
    total = p.sum()
    return p / total if total > 0 else np.full(k, 1.0 / k)


class LinTS(_RidgeArms):
    """Linear Thompson sampling: each arm's score is drawn from N(theta_a.x, v^2 x'A_a^-1 x).

    Sampling theta_a ~ N(theta_a, v^2 A_a^-1) and scoring x.theta_a gives exactly that score
    distribution, so only a scalar per arm is drawn. ``alpha`` is v, the posterior scale.
    The propensity is the exact probability of winning (quadrature), optionally mixed with
    ``epsilon`` uniform exploration.
    """

    name = "lints"

    def __init__(self, *, n_features: int, alpha: float = 0.3, epsilon: float = 0.0, **kw):
        super().__init__(n_features=n_features, **kw)
        if alpha <= 0:
            raise ValueError("alpha (posterior scale v) must be > 0")
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)

    def params(self) -> dict:
        return super().params() | {"alpha": self.alpha, "epsilon": self.epsilon}

    def _distribution(self, x, arms):
        means, widths = self._means_widths(x, arms)
        probs = gaussian_argmax_probabilities(means, self.alpha * widths)
        if self.epsilon:
            probs = (1 - self.epsilon) * probs + self.epsilon / len(probs)
        return means, probs

    def choose(self, x, arms) -> Decision:
        arms = tuple(arms)
        x = self._check_x(x)
        means, widths = self._means_widths(x, arms)
        if self.epsilon and self.rng.random() < self.epsilon:
            k = int(self.rng.integers(len(arms)))
            sampled = means
        else:
            sampled = means + self.alpha * widths * self.rng.standard_normal(len(arms))
            k = int(np.argmax(sampled))
        probs = gaussian_argmax_probabilities(means, self.alpha * widths)
        if self.epsilon:
            probs = (1 - self.epsilon) * probs + self.epsilon / len(probs)
        return Decision(arms[k], float(max(probs[k], 1e-300)), sampled, probs, arms)


class HybridLinUCB(Policy):
    """Hybrid LinUCB (Li et al. 2010, Algorithm 2): a shared model over z plus a model per arm over x.

    ``arm_features`` maps an arm to a vector describing it (e.g. a style's scene kind, palette and
    surface); the shared features are z = kron(arm_features[a], x), so what is learnt about a
    feature of one style transfers to every style that has it, and a new style starts warm.
    Without ``arm_features`` z = x for every arm (a shared model of the context's baseline); an
    arm missing from a given ``arm_features`` has its parent's vector when it is a bred variant
    (``PARENT__vTAG``, :mod:`backdrop.styles.evolve`), else z = 0 (nothing shared).
    ``shared_dims``: only the first ``shared_dims`` context features enter z (the bias and the
    declared user fields, ``FeatureEncoder.blocks``), so the shared block has k = m * shared_dims
    features instead of m * d: what attributes are worth, and to whom, is shared; each arm's own
    model still sees the whole context.
    The epsilon mix for propensities is as in :class:`LinUCB`.

    An update costs O(k^2) for k shared features instead of an O(k^3) inverse: with u = A_i^-1 x,
    c = 1 + x'u and w = z - B_i'u (before the event), Algorithm 2's net change is A0 += w w'/c,
    b0 += w (r - u'b_i)/c (its rank-2 Woodbury form in span{z, B_i'u} collapses to this rank-1
    Schur-complement update), so A0^-1 and beta follow by Sherman-Morrison, as each A_i^-1 does.
    A0 and the A_i are kept as exact sums and re-inverted every ``refactor_every`` updates.
    """

    name = "hybrid-linucb"

    def __init__(
        self,
        *,
        n_features: int,
        alpha: float = 1.0,
        epsilon: float = 0.05,
        arm_features: dict | None = None,
        shared_dims: int | None = None,
        l2: float = 1.0,
        refactor_every: int = 512,
        seed: int | None = None,
    ):
        if refactor_every < 1:
            raise ValueError("refactor_every must be >= 1")
        if shared_dims is not None and not 1 <= shared_dims <= n_features:
            raise ValueError(f"shared_dims must be between 1 and n_features ({n_features}), got {shared_dims}")
        super().__init__(n_features=n_features, seed=seed)
        self.alpha, self.epsilon, self.l2 = float(alpha), float(epsilon), float(l2)
        self.refactor_every = int(refactor_every)
        pairs = arm_features.items() if isinstance(arm_features, dict) else (arm_features or [])
        self.arm_features = {_arm_from_json(k): np.asarray(v, np.float64) for k, v in pairs}
        dims = {len(v) for v in self.arm_features.values()} or {1}
        if len(dims) != 1:
            raise ValueError("all arm feature vectors must have the same length")
        self.m = dims.pop()
        self.shared_dims = int(shared_dims) if shared_dims is not None else n_features
        d, k = n_features, self.m * self.shared_dims
        self.k = k
        self.A0: np.ndarray = np.eye(k) * self.l2
        self.A0_inv: np.ndarray = np.eye(k) / self.l2
        self.b0: np.ndarray = np.zeros(k)
        self.beta: np.ndarray = np.zeros(k)
        self._since0 = 0
        self.A: list[np.ndarray] = []
        self.A_inv: list[np.ndarray] = []
        self.B: list[np.ndarray] = []
        self.bv: list[np.ndarray] = []
        self._since: list[int] = []
        self._d = d
        self._ger = _ger(np.float64)

    def params(self) -> dict:
        return super().params() | {
            "alpha": self.alpha,
            "epsilon": self.epsilon,
            "l2": self.l2,
            "refactor_every": self.refactor_every,
            "shared_dims": self.shared_dims,
            "arm_features": [[_arm_to_json(a), v.tolist()] for a, v in self.arm_features.items()] or None,
        }

    def _cold(self, i: int) -> None:
        d = self._d
        self.A.append(np.eye(d) * self.l2)
        self.A_inv.append(np.eye(d) / self.l2)
        self.B.append(np.zeros((d, self.k)))
        self.bv.append(np.zeros(d))
        self._since.append(0)

    def _z(self, x, arm) -> np.ndarray:
        if not self.arm_features:
            return x[: self.shared_dims]
        f = self.arm_features.get(arm)
        while f is None and isinstance(arm, str) and (arm := parent_of(arm)) is not None:
            f = self.arm_features.get(arm)
        if f is None:  # an arm nobody described shares nothing
            return np.zeros(self.k)
        return np.kron(f, x[: self.shared_dims])

    def _distribution(self, x, arms):
        scores = np.empty(len(arms))
        A0i, beta = self.A0_inv, self.beta
        for j, arm in enumerate(arms):
            i = self._index(arm)
            z = self._z(x, arm)
            Ai, B = self.A_inv[i], self.B[i]
            theta = Ai @ (self.bv[i] - B @ beta)
            Aix = Ai @ x
            A0iz = A0i @ z
            BtAix = B.T @ Aix
            s = z @ A0iz - 2.0 * A0iz @ BtAix + x @ Aix + BtAix @ (A0i @ BtAix)
            scores[j] = z @ beta + x @ theta + self.alpha * math.sqrt(max(s, 0.0))
        return scores, _mix(scores, self.epsilon)

    def _update(self, x, i: int, reward: float) -> None:
        z = self._z(x, self.arm_ids[i])
        Ai, B, b = self.A_inv[i], self.B[i], self.bv[i]
        u = Ai @ x
        c = 1.0 + float(x @ u)
        w = z - B.T @ u
        e = reward - float(u @ b)
        g = self.A0_inv @ w
        denom = c + float(w @ g)
        self.beta += ((e - float(w @ self.beta)) / denom) * g
        self._ger(-1.0 / denom, g, self.A0_inv)
        self._ger(1.0 / c, w, self.A0)
        self.b0 += (e / c) * w
        Ai -= np.outer(u, u / c)
        self.A[i] += np.outer(x, x)
        B += np.outer(x, z)
        b += reward * x
        self._since[i] += 1
        if self._since[i] >= self.refactor_every:
            self._since[i] = 0
            self.A_inv[i] = np.linalg.inv(self.A[i])
        self._since0 += 1
        if self._since0 >= self.refactor_every:
            self._refactor_shared()

    def _refactor_shared(self) -> None:
        self._since0 = 0
        self.A0_inv = np.ascontiguousarray(np.linalg.inv(self.A0))
        self.beta = self.A0_inv @ self.b0

    def coef(self, arm) -> tuple[np.ndarray, np.ndarray]:
        """(beta, theta_arm): the shared and the arm's coefficients."""
        i = self.arm_index[arm]
        theta = self.A_inv[i] @ (self.bv[i] - self.B[i] @ self.beta)
        return self.beta.copy(), theta

    def _state(self) -> dict:
        n = len(self.arm_ids)
        d = self._d
        return {
            "A0": self.A0,
            "b0": self.b0,
            "arm_A": np.array(self.A).reshape(n, d, d),
            "arm_B": np.array(self.B).reshape(n, d, self.k),
            "arm_b": np.array(self.bv).reshape(n, d),
        }

    def _set_state(self, arrays) -> None:
        n = len(self.arm_ids)
        self.A0 = np.array(arrays["A0"], dtype=np.float64, order="C")
        self.b0 = np.array(arrays["b0"], dtype=np.float64)
        if arrays["arm_A"].shape[0] != n:
            raise ValueError("arm count does not match the state")
        self.A = [a.copy() for a in arrays["arm_A"]]
        self.A_inv = [np.linalg.inv(a) for a in self.A]
        self.B = [a.copy() for a in arrays["arm_B"]]
        self.bv = [a.copy() for a in arrays["arm_b"]]
        self._since = [0] * n
        self._refactor_shared()
