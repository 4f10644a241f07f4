"""Adapters that give peer contextual-bandit libraries backdrop's online API.

Each adapter has ``choose(x, arms) -> arm`` and ``update(x, arm, reward)`` with ``x`` a 1-D float
array and arms the ints ``0..K-1`` fixed at construction; ``choose_batch(X) -> arms`` where the
library has a batch predict; ``memory_bytes()`` with what it measures in ``memory_kind``.
Factories have the bake-off's signature ``factory(n_features, n_arms, seed)`` (see
:func:`factories`).

Settings are matched to backdrop's ``LinUCB(alpha, l2=1, epsilon)`` as far as each library allows:

* **MABWiser** ``LearningPolicy.LinUCB(alpha, l2_lambda=1, scale=False)``: same score, ridge l2=1;
  no epsilon mix (its LinUCB has none); ties go to the first arm (np.argmax).
* **OBP 0.4.1** ``obp.policy.LinUCB(dim, n_actions, epsilon=alpha)``: OBP calls the UCB width
  multiplier ``epsilon``; its ridge prior is fixed at the identity (l2=1); no exploration mix;
  ties go to the *last* arm (``argsort()[::-1]``); no batch predict (``select_action`` takes one
  context); it keeps a second copy of every A^-1 and b for its ``batch_size`` updates.
* **contextualbandits** ``online.LinUCB(nchoices, alpha, lambda_=1, fit_intercept=False,
  use_float=False, method="sm", ucb_from_empty=True)``: same score, float64, Sherman-Morrison, no
  intercept (the data already carry a bias column); random tie-breaking; no epsilon mix.
* **Vowpal Wabbit** ``--cb_explore_adf --epsilon E -q sa``: one shared line with the context and one
  line per offered arm (an arm-id feature), crossed by ``-q sa`` so every arm gets its own linear
  model of x, like disjoint LinUCB. Not LinUCB: VW fits the costs (= -reward) by online
  importance-weighted regression with its default adaptive/normalised SGD (``cb_type mtr``), and
  explores epsilon-greedily over that (same epsilon as ours); there is no confidence width, so
  ``alpha`` and the ridge ``l2`` have no counterpart. Its pmf is sampled by the adapter.
"""

from __future__ import annotations

import gc
import pickle
import tracemalloc

import numpy as np


class _Adapter:
    name = "peer"
    memory_kind = "pickle"
    has_batch = False

    def __init__(self, n_features: int, n_arms: int, seed: int):
        self.d, self.K, self.seed = int(n_features), int(n_arms), int(seed)

    def _check_arms(self, arms) -> None:
        if len(arms) != self.K:
            raise NotImplementedError(f"{self.name}: per-call arm subsets are not supported by this adapter")

    def model(self):
        raise NotImplementedError

    def memory_bytes(self) -> int:
        return len(pickle.dumps(self.model(), protocol=pickle.HIGHEST_PROTOCOL))


class MABWiserLinUCB(_Adapter):
    name = "MABWiser LinUCB"
    has_batch = True

    def __init__(self, n_features, n_arms, seed, *, alpha=1.0, l2=1.0):
        super().__init__(n_features, n_arms, seed)
        from mabwiser.mab import MAB, LearningPolicy

        self.mab = MAB(
            arms=list(range(self.K)),
            learning_policy=LearningPolicy.LinUCB(alpha=alpha, l2_lambda=l2, scale=False),
            seed=self.seed + 1,
        )
        # MABWiser refuses predict() before fit(): fit on no data initialises every arm's ridge prior.
        self.mab.fit(decisions=np.zeros(0, dtype=np.int64), rewards=np.zeros(0), contexts=np.zeros((0, self.d)))

    def choose(self, x, arms):
        self._check_arms(arms)
        return self.mab.predict(x.reshape(1, -1))

    def update(self, x, arm, reward):
        self.mab.partial_fit(decisions=[arm], rewards=[reward], contexts=x.reshape(1, -1))

    def choose_batch(self, X):
        return self.mab.predict(X)

    def model(self):
        return self.mab


class OBPLinUCB(_Adapter):
    name = "OBP LinUCB"

    def __init__(self, n_features, n_arms, seed, *, alpha=1.0):
        super().__init__(n_features, n_arms, seed)
        from obp.policy import LinUCB

        # obp 0.4.1: ``epsilon`` is the UCB width multiplier (alpha); A starts at the identity.
        self.policy = LinUCB(dim=self.d, n_actions=self.K, epsilon=alpha, random_state=self.seed)

    def choose(self, x, arms):
        self._check_arms(arms)
        return int(self.policy.select_action(x.reshape(1, -1))[0])

    def update(self, x, arm, reward):
        self.policy.update_params(action=int(arm), reward=float(reward), context=x.reshape(1, -1))

    def model(self):
        return self.policy


class ContextualBanditsLinUCB(_Adapter):
    name = "contextualbandits LinUCB"
    has_batch = True

    def __init__(self, n_features, n_arms, seed, *, alpha=1.0, l2=1.0, use_float=False):
        super().__init__(n_features, n_arms, seed)
        from contextualbandits.online import LinUCB

        self.policy = LinUCB(
            nchoices=self.K,
            alpha=float(alpha),
            lambda_=float(l2),
            fit_intercept=False,
            use_float=use_float,
            method="sm",
            ucb_from_empty=True,
            random_state=self.seed + 1,  # it asserts random_state > 0
        )
        self._a = np.zeros(1, dtype=np.int64)
        self._r = np.zeros(1)

    def choose(self, x, arms):
        self._check_arms(arms)
        return int(self.policy.predict(x.reshape(1, -1))[0])

    def update(self, x, arm, reward):
        self._a[0] = arm
        self._r[0] = reward
        self.policy.partial_fit(x.reshape(1, -1), self._a, self._r)

    def choose_batch(self, X):
        return self.policy.predict(X)

    def model(self):
        return self.policy


class VWCbExploreAdf(_Adapter):
    name = "VW cb_explore_adf"
    memory_kind = "weight table"

    def __init__(self, n_features, n_arms, seed, *, epsilon=0.05, extra=""):
        super().__init__(n_features, n_arms, seed)
        import vowpalwabbit

        self.args = f"--cb_explore_adf --epsilon {epsilon} -q sa --quiet --random_seed {self.seed} {extra}".strip()
        self.vw = vowpalwabbit.Workspace(self.args)
        self.rng = np.random.default_rng(self.seed)
        self._names = [f"{j}:" for j in range(self.d)]
        self._actions = {}
        self._last_x = None
        self._last_shared = ""
        self._last_arms = None
        self._last_pmf = None

    def _shared(self, x) -> str:
        # a service formats each context once; choose() and the update() for the same x share it
        if x is not self._last_x:
            self._last_shared = "shared |s " + " ".join([n + repr(v) for n, v in zip(self._names, x.tolist(), strict=True)])
            self._last_x = x
        return self._last_shared

    def _action_lines(self, arms) -> list[str]:
        key = tuple(arms)
        lines = self._actions.get(key)
        if lines is None:
            lines = self._actions[key] = [f"|a arm{a}" for a in key]
        return lines

    def choose(self, x, arms):
        lines = self._action_lines(arms)
        pmf = self.vw.predict([self._shared(x), *lines])
        u = self.rng.random() * sum(pmf)
        k, acc = len(pmf) - 1, 0.0
        for i, p in enumerate(pmf):
            acc += p
            if u < acc:
                k = i
                break
        self._last_arms, self._last_pmf = tuple(arms), pmf
        return arms[k]

    def update(self, x, arm, reward):
        arms = self._last_arms if self._last_arms is not None else tuple(range(self.K))
        lines = list(self._action_lines(arms))
        k = arms.index(arm)
        p = self._last_pmf[k] if self._last_pmf is not None else 1.0 / len(arms)
        lines[k] = f"0:{-float(reward)}:{max(p, 1e-6)} " + lines[k]
        self.vw.learn([self._shared(x), *lines])

    def memory_bytes(self) -> int:
        # the weight table VW allocates (num_weights x stride floats); tracemalloc cannot see C++ memory
        return int(self.vw.num_weights()) * int(self.vw.get_stride()) * 4

    def model(self):
        return self.vw


PEERS = {
    "MABWiser": MABWiserLinUCB,
    "OBP": OBPLinUCB,
    "contextualbandits": ContextualBanditsLinUCB,
    "VW": VWCbExploreAdf,
}


def available() -> dict[str, str]:
    """``{peer: version}`` of the peers that import; the others are missing."""
    import importlib.metadata as md

    out = {}
    missing = []
    for peer, dist in (("MABWiser", "mabwiser"), ("OBP", "obp"), ("contextualbandits", "contextualbandits"), ("VW", "vowpalwabbit")):
        try:
            mod = {"MABWiser": "mabwiser.mab", "OBP": "obp.policy", "contextualbandits": "contextualbandits.online", "VW": "vowpalwabbit"}[
                peer
            ]
            __import__(mod)
            out[peer] = md.version(dist)
        except Exception as e:  # noqa: BLE001 - any import failure means "not available"
            missing.append(f"{peer}: {type(e).__name__}: {e}")
    available.missing = missing
    return out


def factories(alpha: float = 1.0, epsilon: float = 0.05, peers=None, vw_variants=("",)) -> dict:
    """Bake-off factories ``(n_features, n_arms, seed) -> adapter`` at matched settings.

    ``vw_variants``: extra VW arguments, one VW contender each (``""`` = VW's defaults).
    """
    out = {}
    for peer in PEERS if peers is None else peers:
        if peer == "MABWiser":
            out["MABWiser LinUCB"] = lambda d, k, s: MABWiserLinUCB(d, k, s, alpha=alpha)
        elif peer == "OBP":
            out["OBP LinUCB"] = lambda d, k, s: OBPLinUCB(d, k, s, alpha=alpha)
        elif peer == "contextualbandits":
            out["contextualbandits LinUCB"] = lambda d, k, s: ContextualBanditsLinUCB(d, k, s, alpha=alpha)
        elif peer == "VW":
            for extra in vw_variants:
                label = f"VW ε={epsilon:g}" + (f" {extra}" if extra else "")
                out[label] = lambda d, k, s, extra=extra: VWCbExploreAdf(d, k, s, epsilon=epsilon, extra=extra)
    return out


def traced_bytes(build) -> int:
    """Net bytes Python/numpy allocations hold after ``build()`` returns (tracemalloc), model kept alive."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        obj = build()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    del obj
    return held
