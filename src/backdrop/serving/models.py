"""Model files the service may serve: validated before they are accepted or loaded.

A model that loads is not yet a model that decides: NaN coefficients load fine and make every
decision fail. :func:`load_servable` checks the numbers are finite, the shapes match the service's
features, and that the model answers trial decisions (on a copy) with a proper probability
distribution; it raises :class:`~backdrop.bandit.policies.ModelFileError` naming what is wrong.
"""

from __future__ import annotations

import numpy as np

from ..bandit.policies import ModelFileError, Policy

#: arms offered in the trial decisions besides the model's own (a new style must not break it)
PROBE_ARM = "__probe__"


def load_servable(data: bytes, n_features: int, source: str) -> Policy:
    """The policy in ``data`` if the service can serve it; else :class:`ModelFileError` with the reason."""
    policy = Policy.from_bytes(data, source=source)
    if getattr(policy, "n_features", None) not in (None, n_features):
        raise ModelFileError(f"{source}: the model expects {policy.n_features} features; the service encodes {n_features}")
    for name, value in policy._state().items():
        arr = np.asarray(value)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad = int(arr.size - np.isfinite(arr).sum())
            raise ModelFileError(f"{source}: {bad} non-finite number(s) (NaN or infinity) in {name}")
    for key, value in policy.params().items():
        if isinstance(value, float) and not np.isfinite(value):
            raise ModelFileError(f"{source}: parameter {key} is {value}")
    trial = Policy.from_bytes(data, source=source)  # choose() may register arms: probe a copy
    arms = [*trial.arm_ids[:7], PROBE_ARM]
    rng = np.random.default_rng(0)
    for x in (np.zeros(n_features), rng.standard_normal(n_features), np.eye(1, n_features, 0)[0]):
        try:
            d = trial.choose(x, arms)
        except Exception as e:  # noqa: BLE001 - whatever breaks a decision, the model is not servable
            raise ModelFileError(f"{source}: a trial decision failed: {type(e).__name__}: {e}") from None
        p = np.asarray(d.probabilities, dtype=float)
        if not (np.isfinite(p).all() and abs(p.sum() - 1.0) < 1e-6 and 0.0 < d.propensity <= 1.0 and d.arm in arms):
            raise ModelFileError(f"{source}: a trial decision gave no valid probability distribution ({p.tolist()})")
    return policy
