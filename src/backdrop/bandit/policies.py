"""Bandit policies with one small API and exact propensities.

Every policy has::

    choose(x, arms) -> Decision(arm, propensity, scores, probabilities)
    update(x, arm, reward)
    choose_many(X, arms) -> sequence of Decision   # arms: one list for all rows, or one list per row
    update_many(X, arms, rewards)                  # same model as calling update() row by row
    probabilities(x, arms) -> np.ndarray           # the policy's action distribution over ``arms``
    save(path) / load(path)                        # one versioned file, written atomically

Arms are hashable ids (str, int, tuples of those) and may differ from call to call: an arm seen
for the first time starts cold. ``propensity`` is the probability that the policy chose that arm
given ``x`` and ``arms``:

* **LinUCB / HybridLinUCB / UCB1** are deterministic given their state, so they mix in explicit
  exploration: with probability ``epsilon`` (default 0.05) a uniformly random arm, otherwise the
  arm with the highest upper confidence bound (ties split evenly). Propensity =
  ``(1 - epsilon) / n_best * [arm is a best arm] + epsilon / K``: always > 0 when ``epsilon > 0``.
* **EpsilonGreedy** is the same with the greedy (mean) score instead of the bound.
* **LinTS**: the sampled score of each arm is Gaussian, N(theta_a.x, v^2 x'A_a^-1 x), so the
  probability that an arm wins is computed by quadrature, not estimated by sampling.
* **BetaTS**: likewise with Beta posteriors (quadrature over [0, 1]).
* **Uniform**: 1/K. **FixedArm**: 1 for its arm (uniform over ``arms`` when its arm is not offered).
"""

from __future__ import annotations

import inspect
import io
import json
import math
import zipfile
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special

from ..files import write_atomic

FORMAT = "backdrop-bandit"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that cannot be loaded: corrupt, not a model, or of another version."""


@dataclass(frozen=True, init=False)
class Decision:
    arm: Hashable
    propensity: float
    scores: np.ndarray  # the policy's score per offered arm, aligned with ``arms``
    probabilities: np.ndarray  # the action distribution over ``arms``
    arms: tuple

    def __init__(self, arm: Hashable, propensity: float, scores: np.ndarray, probabilities: np.ndarray, arms: tuple):
        # the generated frozen __init__ makes five object.__setattr__ calls (~2x slower); one
        # Decision per choose (and per row of choose_many) makes that matter. Still frozen.
        d = self.__dict__
        d["arm"] = arm
        d["propensity"] = propensity
        d["scores"] = scores
        d["probabilities"] = probabilities
        d["arms"] = arms

    @property
    def index(self) -> int:
        return self.arms.index(self.arm)


class DecisionBatch(Sequence):
    """What ``choose_many`` returns on its fast path: a sequence of :class:`Decision`, built on access.

    Bulk users read the arrays directly: ``index`` (chosen arm's position in ``arms``),
    ``propensity`` (n,), ``scores`` and ``probabilities`` (n, K).
    """

    __slots__ = ("arms", "index", "probabilities", "propensity", "scores")

    def __init__(self, arms: tuple, index: np.ndarray, propensity: np.ndarray, scores: np.ndarray, probabilities: np.ndarray):
        self.arms, self.index, self.propensity = arms, index, propensity
        self.scores, self.probabilities = scores, probabilities

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        k = int(self.index[i])
        return Decision(self.arms[k], float(self.propensity[i]), self.scores[i], self.probabilities[i], self.arms)

    @property
    def chosen(self) -> list:
        """The chosen arm ids, in row order."""
        arms = self.arms
        return [arms[k] for k in self.index.tolist()]


# -- arm ids <-> JSON (for model files) -------------------------------------------------------


def _arm_to_json(arm):
    if isinstance(arm, (str, int, float, bool)) or arm is None:
        return arm
    if isinstance(arm, tuple):
        return {"tuple": [_arm_to_json(a) for a in arm]}
    if isinstance(arm, (np.integer,)):
        return int(arm)
    raise TypeError(f"arm id {arm!r} cannot be saved: use str, int, float, bool or tuples of those")


def _arm_from_json(v):
    if isinstance(v, dict):
        return tuple(_arm_from_json(a) for a in v["tuple"])
    return v


def _normal_arm(arm):
    return int(arm) if isinstance(arm, np.integer) else arm


class Policy:
    """Base class: arm bookkeeping, persistence, the batched API in terms of the single one."""

    name = "policy"
    contextual = True

    def __init__(self, *, n_features: int | None = None, seed: int | None = None):
        self.n_features = n_features
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.arm_ids: list = []
        self.arm_index: dict = {}
        self._sets: dict[tuple, np.ndarray | slice] = {}
        self.n_updates = 0

    # -- arms ---------------------------------------------------------------------------------

    def _grow(self, capacity: int) -> None:
        """Make room for ``capacity`` arms in the stacked state arrays (subclasses)."""

    def _cold(self, i: int) -> None:
        """Initialise the state of new arm ``i`` (subclasses)."""

    def _index(self, arm) -> int:
        i = self.arm_index.get(arm)
        if i is None:
            arm = _normal_arm(arm)
            i = self.arm_index.get(arm)
            if i is None:
                i = len(self.arm_ids)
                self._grow(i + 1)
                self.arm_ids.append(arm)
                self.arm_index[arm] = i
                self._cold(i)
        return i

    def _indices(self, arms: Sequence) -> np.ndarray | slice:
        """Row indices of ``arms`` in the state arrays; a slice (no copy) when they are contiguous."""
        key = arms if isinstance(arms, tuple) else tuple(arms)
        idx = self._sets.get(key)
        if idx is None:
            if not key:
                raise ValueError("arms must not be empty")
            if len(set(key)) != len(key):
                raise ValueError("arms must be distinct")
            rows = np.array([self._index(a) for a in key], dtype=np.intp)
            if np.all(np.diff(rows) == 1):
                idx = slice(int(rows[0]), int(rows[-1]) + 1)
            else:
                idx = rows
            if len(self._sets) > 4096:
                self._sets.clear()
            self._sets[key] = idx
        return idx

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        if not self.contextual:
            return x
        x = np.asarray(x, dtype=self.dtype)
        if x.shape != (self.n_features,):
            raise ValueError(f"x must have shape ({self.n_features},), got {x.shape}")
        return x

    dtype = np.float64

    # -- API ----------------------------------------------------------------------------------

    def probabilities(self, x, arms: Sequence) -> np.ndarray:
        return self._distribution(self._check_x(x), tuple(arms))[1]

    def choose(self, x, arms: Sequence) -> Decision:
        arms = tuple(arms)
        scores, probs = self._distribution(self._check_x(x), arms)
        k = self._sample(probs)
        return Decision(arms[k], float(probs[k]), scores, probs, arms)

    def _sample(self, probs: np.ndarray) -> int:
        cum = probs.cumsum()
        k = int(cum.searchsorted(self.rng.random() * cum[-1], side="right"))
        return min(k, len(probs) - 1)

    def choose_many(self, X, arms) -> Sequence[Decision]:
        X = np.asarray(X, dtype=self.dtype)
        per_row = _per_row_arms(arms, len(X))
        return [self.choose(X[i], per_row[i]) for i in range(len(X))]

    def update(self, x, arm, reward: float) -> None:
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        self._update(self._check_x(x), self._index(arm), reward)
        self.n_updates += 1

    def update_many(self, X, arms: Sequence, rewards: Sequence[float]) -> None:
        X = np.asarray(X, dtype=self.dtype)
        rewards = np.asarray(rewards, dtype=np.float64)
        if not (len(X) == len(arms) == len(rewards)):
            raise ValueError(f"X, arms and rewards differ in length: {len(X)}, {len(arms)}, {len(rewards)}")
        if not np.all(np.isfinite(rewards)):
            raise ValueError("rewards must be finite")
        if self.contextual and X.ndim == 2 and X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns, got {X.shape[1]}")
        rows = np.array([self._index(a) for a in arms], dtype=np.intp)
        self._update_many(X, rows, rewards)
        self.n_updates += len(rewards)

    def _update_many(self, X, rows, rewards) -> None:
        for i in range(len(rows)):
            self._update(X[i], int(rows[i]), float(rewards[i]))

    def _distribution(self, x, arms: tuple) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _update(self, x, i: int, reward: float) -> None:
        raise NotImplementedError

    # -- persistence --------------------------------------------------------------------------

    def params(self) -> dict:
        """Constructor keywords (JSON-able)."""
        return {"n_features": self.n_features, "seed": self.seed}

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    def to_bytes(self) -> bytes:
        """The model as one versioned zip (metadata JSON + arrays; no pickle): what :meth:`save` writes."""
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "policy": type(self).__name__,
            "params": self.params(),
            "arms": [_arm_to_json(a) for a in self.arm_ids],
            "n_updates": self.n_updates,
            "rng": self.rng.bit_generator.state,
        }
        n = len(self.arm_ids)
        arrays = {k: np.ascontiguousarray(v[:n] if v.ndim and k.startswith("arm_") else v) for k, v in self._state().items()}
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("meta.json", json.dumps(meta, default=_json_default))
            for name, arr in arrays.items():
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                z.writestr(f"{name}.npy", buf.getvalue())
        return out.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` atomically (temp file + rename)."""
        return write_atomic(path, self.to_bytes())

    @staticmethod
    def load(path: str | Path) -> Policy:
        """Load any policy saved by :meth:`save`; raises :class:`ModelFileError` with the reason."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"{path}: model file not found") from None
        except OSError as e:
            raise ModelFileError(f"{path}: cannot read: {e}") from e
        return Policy.from_bytes(data, source=str(path))

    @staticmethod
    def from_bytes(data: bytes, source: str = "<bytes>") -> Policy:
        """The policy in ``data`` (from :meth:`to_bytes`); raises :class:`ModelFileError` with the reason."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                meta = json.loads(z.read("meta.json"))
                arrays = {
                    n[:-4]: np.load(io.BytesIO(z.read(n)), allow_pickle=False) for n in z.namelist() if n.endswith(".npy")
                }
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
            raise ModelFileError(f"{source}: not a readable backdrop model file (corrupt or truncated: {e})") from e
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{source}: not a backdrop bandit model (format {meta.get('format')!r})")
        if meta.get("version") != FORMAT_VERSION:
            raise ModelFileError(
                f"{source}: model file version {meta.get('version')} is not supported by this backdrop "
                f"(reads version {FORMAT_VERSION}); retrain or convert it"
            )
        cls = POLICIES.get(meta.get("policy"))
        if cls is None:
            raise ModelFileError(f"{source}: unknown policy {meta.get('policy')!r}")
        try:
            policy = cls(**meta["params"])
            for arm in meta["arms"]:
                policy._index(_arm_from_json(arm))
            policy._set_state(arrays)
            policy.n_updates = int(meta["n_updates"])
            policy.rng.bit_generator.state = meta["rng"]
        except (KeyError, ValueError, TypeError) as e:
            raise ModelFileError(f"{source}: inconsistent model file: {e}") from e
        return policy

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    raise TypeError(f"not JSON serialisable: {o!r}")


def _per_row_arms(arms, n: int) -> list[tuple]:
    if len(arms) and isinstance(arms[0], (list, tuple)) and not (isinstance(arms, tuple) and n != len(arms)):
        if len(arms) != n:
            raise ValueError(f"arms per row: expected {n} lists, got {len(arms)}")
        return [tuple(a) for a in arms]
    shared = tuple(arms)
    return [shared] * n


def _mix(scores: np.ndarray, epsilon: float) -> np.ndarray:
    """Epsilon-mix over the argmax set: (1-eps)/n_best on the best arms, eps/K on every arm."""
    return _mix_sample(scores, epsilon, None)[0]


_FLOOR: dict[tuple[int, float], np.ndarray] = {}


def _mix_sample(scores: np.ndarray, epsilon: float, u: float | None) -> tuple[np.ndarray, int]:
    """``_mix(scores, epsilon)`` and, given one uniform draw ``u`` in [0, 1), an arm drawn from it.

    u < epsilon: arm ``floor(u / epsilon * K)`` (uniform over all arms); otherwise one of the best
    arms, ``(u - epsilon) / (1 - epsilon)`` picking among ties in order -- so P(arm) is exactly the
    mixed probability, from a single draw and without a cumulative sum.
    """
    k = len(scores)
    j = int(scores.argmax())
    top = float(scores[j])
    best = scores >= top - 1e-12 * max(1.0, abs(top))
    n_best = int(np.count_nonzero(best))
    base = _FLOOR.get((k, epsilon))
    if base is None:
        if len(_FLOOR) > 256:
            _FLOOR.clear()
        base = _FLOOR[(k, epsilon)] = np.full(k, epsilon / k)
    probs = base.copy()  # copying a cached eps/K vector is ~5x cheaper than np.full
    if n_best == 1:
        probs[j] += 1.0 - epsilon
    else:
        probs[best] += (1.0 - epsilon) / n_best  # n_best == 0 (NaN scores) raises ZeroDivisionError
    if u is None:
        return probs, -1
    if u < epsilon:
        return probs, min(int(u / epsilon * k), k - 1)
    if n_best == 1:
        return probs, j
    ties = np.flatnonzero(best)
    return probs, int(ties[min(int((u - epsilon) / (1.0 - epsilon) * n_best), n_best - 1)])


def _mix_rows(scores: np.ndarray, epsilon: float, with_best: bool = False):
    k = scores.shape[1]
    top = scores.max(axis=1, keepdims=True)
    best = scores >= top - 1e-12 * np.maximum(1.0, np.abs(top))
    probs = epsilon / k + best * ((1.0 - epsilon) / best.sum(axis=1, keepdims=True))
    return (probs, best) if with_best else probs


def _sample_rows(probs: np.ndarray, best: np.ndarray, epsilon: float, u: np.ndarray) -> np.ndarray:
    """Row-wise :func:`_mix_sample`: the arm each row's uniform ``u`` picks (same rule, same result)."""
    n, k = probs.shape
    n_best = best.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        explore = np.minimum((u / epsilon * k).astype(np.intp), k - 1) if epsilon > 0 else np.zeros(n, np.intp)
        rank = np.minimum(((u - epsilon) / (1.0 - epsilon) * n_best).astype(np.intp), n_best - 1) if epsilon < 1 else explore
    # the rank-th best arm of each row: the first column where the running count of best arms exceeds rank
    exploit = (np.cumsum(best, axis=1) > rank[:, None]).argmax(axis=1)
    return np.where(u < epsilon, explore, exploit)


# -- ridge-regression arms (LinUCB, LinTS, EpsilonGreedy) ------------------------------------


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
        means = self.theta[idx].dot(x)
        widths = (self.A_inv[idx] @ x).dot(x)  # x' A_a^-1 x for every arm: one stacked matvec, one gemv
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
        widths *= self.alpha  # in place: scores = means + alpha * widths
        widths += means
        return widths

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
        per_row = _per_row_arms(arms, len(X))
        if not len(X):
            return []
        shared = per_row[0]
        if not all(a is shared or a == shared for a in per_row):
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
        widths *= self.alpha
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
_BREAKS = np.array([-7.0, -4.0, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 4.0, 7.0])


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
    edges = np.unique((mu[:, None] + sigma[:, None] * _BREAKS[None, :]).ravel())
    if len(edges) > max_intervals + 1:
        edges = edges[np.round(np.linspace(0, len(edges) - 1, max_intervals + 1)).astype(np.intp)]
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    s = (mid[:, None] + half[:, None] * _GL6_T[None, :]).ravel()
    w = (half[:, None] * _GL6_W[None, :]).ravel()
    z = (s[:, None] - mu[None, :]) / sigma[None, :]  # (nodes, k)
    cdf = special.ndtr(z)
    pdf = np.exp(-0.5 * z * z) / sigma[None, :]
    prod = cdf.prod(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        others = np.where(cdf > 0, prod / cdf, 0.0)  # where cdf_a underflows, pdf_a is ~0 too
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
    arm missing from a given ``arm_features`` has z = 0 (nothing shared).
    The epsilon mix for propensities is as in :class:`LinUCB`.
    """

    name = "hybrid-linucb"

    def __init__(
        self,
        *,
        n_features: int,
        alpha: float = 1.0,
        epsilon: float = 0.05,
        arm_features: dict | None = None,
        l2: float = 1.0,
        seed: int | None = None,
    ):
        super().__init__(n_features=n_features, seed=seed)
        self.alpha, self.epsilon, self.l2 = float(alpha), float(epsilon), float(l2)
        pairs = arm_features.items() if isinstance(arm_features, dict) else (arm_features or [])
        self.arm_features = {_arm_from_json(k): np.asarray(v, np.float64) for k, v in pairs}
        dims = {len(v) for v in self.arm_features.values()} or {1}
        if len(dims) != 1:
            raise ValueError("all arm feature vectors must have the same length")
        self.m = dims.pop()
        d, k = n_features, self.m * n_features
        self.k = k
        self.A0 = np.eye(k) * self.l2
        self.A0_inv = np.eye(k) / self.l2
        self.b0 = np.zeros(k)
        self.beta = np.zeros(k)
        self.A: list[np.ndarray] = []
        self.A_inv: list[np.ndarray] = []
        self.B: list[np.ndarray] = []
        self.bv: list[np.ndarray] = []
        self._d = d

    def params(self) -> dict:
        return super().params() | {
            "alpha": self.alpha,
            "epsilon": self.epsilon,
            "l2": self.l2,
            "arm_features": [[_arm_to_json(a), v.tolist()] for a, v in self.arm_features.items()] or None,
        }

    def _cold(self, i: int) -> None:
        d = self._d
        self.A.append(np.eye(d) * self.l2)
        self.A_inv.append(np.eye(d) / self.l2)
        self.B.append(np.zeros((d, self.k)))
        self.bv.append(np.zeros(d))

    def _z(self, x, arm) -> np.ndarray:
        if not self.arm_features:
            return x
        f = self.arm_features.get(arm)
        if f is None:  # an arm nobody described shares nothing
            return np.zeros(self.k)
        return np.kron(f, x)

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
        arm = self.arm_ids[i]
        z = self._z(x, arm)
        Ai, B, b = self.A_inv[i], self.B[i], self.bv[i]
        BtAi = B.T @ Ai
        self.A0 += BtAi @ B
        self.b0 += BtAi @ b
        self.A[i] += np.outer(x, x)
        u = Ai @ x
        Ai -= np.outer(u, u / (1.0 + x @ u))
        B += np.outer(x, z)
        b += reward * x
        BtAi = B.T @ Ai
        self.A0 += np.outer(z, z) - BtAi @ B
        self.b0 += reward * z - BtAi @ b
        self.A0_inv = np.linalg.inv(self.A0)
        self.beta = self.A0_inv @ self.b0
        if self.n_updates % 512 == 511:
            self.A_inv[i] = np.linalg.inv(self.A[i])

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
        self.A0, self.b0 = arrays["A0"].copy(), arrays["b0"].copy()
        if arrays["arm_A"].shape[0] != n:
            raise ValueError("arm count does not match the state")
        self.A = [a.copy() for a in arrays["arm_A"]]
        self.A_inv = [np.linalg.inv(a) for a in self.A]
        self.B = [a.copy() for a in arrays["arm_B"]]
        self.bv = [a.copy() for a in arrays["arm_b"]]
        self.A0_inv = np.linalg.inv(self.A0)
        self.beta = self.A0_inv @ self.b0


# -- context-free policies --------------------------------------------------------------------


class _CountingArms(Policy):
    contextual = False

    def __init__(self, *, n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        self.pulls = np.zeros(0)
        self.reward_sum = np.zeros(0)

    def _grow(self, capacity: int) -> None:
        if capacity > len(self.pulls):
            new = max(capacity, 2 * len(self.pulls), 8)
            for name in ("pulls", "reward_sum"):
                old = getattr(self, name)
                arr = np.zeros(new)
                arr[: len(old)] = old
                setattr(self, name, arr)
            self._sets.clear()

    def _update(self, x, i: int, reward: float) -> None:
        self.pulls[i] += 1
        self.reward_sum[i] += reward

    def _update_many(self, X, rows, rewards) -> None:
        np.add.at(self.pulls, rows, 1.0)
        np.add.at(self.reward_sum, rows, rewards)

    def _state(self) -> dict:
        return {"arm_pulls": self.pulls, "arm_reward_sum": self.reward_sum}

    def _set_state(self, arrays) -> None:
        n = len(self.arm_ids)
        if arrays["arm_pulls"].shape != (n,):
            raise ValueError("arm count does not match the state")
        self.pulls[:n] = arrays["arm_pulls"]
        self.reward_sum[:n] = arrays["arm_reward_sum"]


class UCB1(_CountingArms):
    """UCB1 (Auer et al. 2002): mean + alpha * sqrt(2 ln N / n_a); untried arms first; epsilon mix."""

    name = "ucb1"

    def __init__(self, *, alpha: float = 1.0, epsilon: float = 0.05, n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        self.alpha, self.epsilon = float(alpha), float(epsilon)

    def params(self) -> dict:
        return super().params() | {"alpha": self.alpha, "epsilon": self.epsilon}

    def _distribution(self, x, arms):
        idx = self._indices(arms)
        n = self.pulls[idx]
        total = max(n.sum(), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(n > 0, self.reward_sum[idx] / np.maximum(n, 1) + self.alpha * np.sqrt(2 * math.log(total) / np.maximum(n, 1)), np.inf)
        finite = np.where(np.isinf(scores), 1.0, 0.0) if np.isinf(scores).any() else scores
        return scores, _mix(finite, self.epsilon)


class BetaTS(_CountingArms):
    """Beta-Bernoulli Thompson sampling (context-free); rewards in [0, 1] count as fractional successes."""

    name = "beta-ts"

    def __init__(self, *, prior: tuple[float, float] = (1.0, 1.0), n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        self.prior = (float(prior[0]), float(prior[1]))

    def params(self) -> dict:
        return super().params() | {"prior": list(self.prior)}

    def _ab(self, arms):
        idx = self._indices(arms)
        a = self.prior[0] + self.reward_sum[idx]
        b = self.prior[1] + self.pulls[idx] - self.reward_sum[idx]
        return a, np.maximum(b, 1e-9)

    def _update(self, x, i: int, reward: float) -> None:
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"BetaTS rewards must be in [0, 1], got {reward}")
        super()._update(x, i, reward)

    def _update_many(self, X, rows, rewards) -> None:
        if np.any((rewards < 0) | (rewards > 1)):
            raise ValueError("BetaTS rewards must be in [0, 1]")
        super()._update_many(X, rows, rewards)

    def _distribution(self, x, arms):
        a, b = self._ab(arms)
        return a / (a + b), beta_argmax_probabilities(a, b)

    def choose(self, x, arms) -> Decision:
        arms = tuple(arms)
        a, b = self._ab(arms)
        sampled = self.rng.beta(a, b)
        k = int(np.argmax(sampled))
        probs = beta_argmax_probabilities(a, b)
        return Decision(arms[k], float(max(probs[k], 1e-300)), sampled, probs, arms)


_GL_T, _GL_W = np.polynomial.legendre.leggauss(48)


def beta_argmax_probabilities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(arm has the largest of independent Beta(a, b) draws), by quadrature.

    P_a = integral of pdf_a(p) * prod_{c != a} cdf_c(p) dp, with Gauss-Legendre nodes placed over
    arm a's own bulk (mean +- 10 sd, clipped to [0, 1]), so peaked posteriors are resolved.
    """
    k = len(a)
    if k == 1:
        return np.ones(1)
    mean = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    lo = np.clip(mean - 10 * sd, 0.0, 1.0)
    hi = np.clip(mean + 10 * sd, 0.0, 1.0)
    half = (hi - lo) / 2
    p = np.clip(lo[:, None] + half[:, None] * (_GL_T[None, :] + 1), 1e-12, 1 - 1e-12)  # (k, nodes)
    log_pdf = (a[:, None] - 1) * np.log(p) + (b[:, None] - 1) * np.log1p(-p) - special.betaln(a, b)[:, None]
    cdf = special.betainc(a[None, :, None], b[None, :, None], p[:, None, :])  # (k, k, nodes)
    log_cdf = np.log(np.clip(cdf, 1e-300, 1.0))
    log_cdf[np.arange(k), np.arange(k), :] = 0.0
    probs = (np.exp(log_pdf + log_cdf.sum(axis=1)) * _GL_W[None, :]).sum(axis=1) * half
    s = probs.sum()
    return probs / s if s > 0 else np.full(k, 1.0 / k)


class Uniform(Policy):
    """Every offered arm with probability 1/K."""

    name = "uniform"
    contextual = False

    def _distribution(self, x, arms):
        k = len(arms)
        return np.zeros(k), np.full(k, 1.0 / k)

    def _update(self, x, i, reward) -> None:
        pass


class FixedArm(Policy):
    """Always ``arm`` (propensity 1); uniform over the offered arms when ``arm`` is not among them."""

    name = "fixed"
    contextual = False

    def __init__(self, *, arm, n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        self.arm = _arm_from_json(arm)

    def params(self) -> dict:
        return super().params() | {"arm": _arm_to_json(self.arm)}

    def _distribution(self, x, arms):
        k = len(arms)
        if self.arm in arms:
            probs = np.zeros(k)
            probs[arms.index(self.arm)] = 1.0
            return probs.copy(), probs
        return np.zeros(k), np.full(k, 1.0 / k)

    def _update(self, x, i, reward) -> None:
        pass


# -- a fixed style per offered set (servable: it needs only the offered arms) ----------------------


class FixedStyle(Policy):
    """Always the same style for the same offered style set: ``table[set]``, else the first offered.

    ``table``: a mapping (or pairs) from a collection of style names to the style to show.

    The offered set identifies the category's style list, so this is "a fixed style per
    category". With an empty table it shows each category's first library style (its default).
    Arms are matched as sets, so the order in which they are offered does not matter.
    """

    name = "fixed-per-set"  # not "fixed-style": that is the experiment arm's label in the event log
    contextual = False

    def __init__(self, *, table=None, n_features: int | None = None, seed: int | None = None):
        super().__init__(n_features=n_features, seed=seed)
        pairs = table.items() if isinstance(table, Mapping) else (table or [])
        self.table = {frozenset(arms): arm for arms, arm in pairs}

    def params(self) -> dict:
        return super().params() | {"table": [[sorted(arms, key=str), arm] for arms, arm in self.table.items()]}

    def _distribution(self, x, arms):
        k = len(arms)
        arm = self.table.get(frozenset(arms))
        j = arms.index(arm) if arm in arms else 0
        probs = np.zeros(k)
        probs[j] = 1.0
        return probs.copy(), probs

    def _update(self, x, i, reward) -> None:
        pass


#: every policy class by class name (what a model file records)
POLICIES: dict[str, type[Policy]] = {
    cls.__name__: cls for cls in (LinUCB, HybridLinUCB, LinTS, EpsilonGreedy, UCB1, BetaTS, Uniform, FixedArm, FixedStyle)
}
#: the same classes by their short ``name`` (what settings, the CLI and the logs say)
REGISTRY: dict[str, type[Policy]] = {cls.name: cls for cls in POLICIES.values()}
#: the policies a decision service can serve with no more than the offered arms and a context
SERVABLE = ("linucb", "lints", "epsilon-greedy", "hybrid-linucb", "uniform")


def _init_params(cls: type) -> set[str]:
    """The keyword parameters ``cls(...)`` takes, following ``**kw`` up the base classes."""
    out: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        out |= {n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return out


def make_policy(name: str, *, lenient: bool = False, **params) -> Policy:
    """A policy by its short name, e.g. ``make_policy("linucb", n_features=64, alpha=0.1)``.

    Parameters the class does not take raise ``TypeError`` naming them, unless ``lenient`` (for
    settings that carry common parameters every policy may not use, such as ``alpha``).

    >>> make_policy("lints", n_features=8, alpha=0.03).name
    'lints'
    >>> make_policy("uniform", lenient=True, n_features=8, alpha=0.1).name
    'uniform'
    """
    cls = REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(sorted(REGISTRY))}")
    accepted = _init_params(cls)
    unknown = set(params) - accepted
    if unknown and not lenient:
        raise TypeError(f"policy {name!r} takes no parameter(s) {', '.join(sorted(unknown))} (it takes {', '.join(sorted(accepted))})")
    return cls(**{k: v for k, v in params.items() if k in accepted})
