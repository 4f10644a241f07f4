"""Every policy by name: what model files, settings, the CLI and the simulator make policies from."""

from __future__ import annotations

import inspect

from .base import (
    Policy,
)
from .counting import UCB1, BetaTS
from .fixed import FixedArm, FixedStyle, Uniform
from .linear import (
    EpsilonGreedy,
    HybridLinUCB,
    LinTS,
    LinUCB,
)
from .pooled import PooledUCB

#: every policy class by class name (what a model file records)
POLICIES: dict[str, type[Policy]] = {
    cls.__name__: cls for cls in (PooledUCB, LinUCB, HybridLinUCB, LinTS, EpsilonGreedy, UCB1, BetaTS, Uniform, FixedArm, FixedStyle)
}


#: the same classes by their short ``name`` (what settings, the CLI and the logs say)
REGISTRY: dict[str, type[Policy]] = {cls.name: cls for cls in POLICIES.values()}


#: the policies a decision service can serve with no more than the offered arms and a context
SERVABLE = ("pooled-ucb", "linucb", "lints", "epsilon-greedy", "hybrid-linucb", "uniform")


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
