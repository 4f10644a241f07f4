"""The policy interface (choose, update, their batch forms, probabilities, save/load) and the decisions it returns."""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...files import write_atomic

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

    Bulk users read the arrays directly: ``indices`` (n,) (each row's chosen arm's position in
    ``arms``, i.e. :attr:`Decision.index` per row), ``propensity`` (n,), ``scores`` and
    ``probabilities`` (n, K). (Not ``index``: that name is :meth:`Sequence.index`.)
    """

    __slots__ = ("arms", "indices", "probabilities", "propensity", "scores")

    def __init__(self, arms: tuple, indices: np.ndarray, propensity: np.ndarray, scores: np.ndarray, probabilities: np.ndarray):
        self.arms, self.indices, self.propensity = arms, indices, propensity
        self.scores, self.probabilities = scores, probabilities

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        k = int(self.indices[i])
        return Decision(self.arms[k], float(self.propensity[i]), self.scores[i], self.probabilities[i], self.arms)

    @property
    def chosen(self) -> list:
        """The chosen arm ids, in row order."""
        arms = self.arms
        return [arms[k] for k in self.indices.tolist()]


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

    def update_many(self, X, arms: Sequence, rewards: Sequence[float] | np.ndarray) -> None:
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
                arrays = {n[:-4]: np.load(io.BytesIO(z.read(n)), allow_pickle=False) for n in z.namelist() if n.endswith(".npy")}
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
            raise ModelFileError(f"{source}: not a readable backdrop model file (corrupt or truncated: {e})") from e
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{source}: not a backdrop bandit model (format {meta.get('format')!r})")
        if meta.get("version") != FORMAT_VERSION:
            raise ModelFileError(
                f"{source}: model file version {meta.get('version')} is not supported by this backdrop "
                f"(reads version {FORMAT_VERSION}); retrain or convert it"
            )
        from .registry import POLICIES  # the registry imports every policy class, each built on this module

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


def _shared_arms(X: np.ndarray, arms) -> tuple | None:
    """The arms every row of ``X`` is offered, when they are the same for all (a batch path's
    precondition); None otherwise, or for no rows."""
    per_row = _per_row_arms(arms, len(X))
    if not len(X):
        return None
    shared = per_row[0]
    return shared if all(a is shared or a == shared for a in per_row) else None


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


_BREAKS = np.array([-7.0, -4.0, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 4.0, 7.0])
