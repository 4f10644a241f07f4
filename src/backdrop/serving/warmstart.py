"""A warm start: the first model of a deployment, learnt from what a log already knows.

The learner learns only from the bandit's own decisions, so an A/B test's arms stay isolated
while the test runs. Once it is over, what its random-style and fixed-style arms showed (and
their clicks) is evidence about every style, as good for a regression on clicks as the bandit's
own: :func:`warm_start` folds every shown decision that served a style -- whichever way it was
chosen, from this log or another -- into a fresh policy and publishes it as the deployment's
first model version, so the bandit starts from what the test learnt instead of from zero.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ..bandit.arms import ORIGINAL
from ..bandit.policies import Policy
from ..bandit.threads import small_matrices
from ..errors import BackdropError
from .eventlog import COMMIT_GRACE_S, EventLog
from .records import DecisionRecord, ModelRecord
from .rewards import RewardFunction


def styled(rows: list[tuple[DecisionRecord, float | None]]) -> list[tuple[DecisionRecord, float | None]]:
    """The shown decisions that served a style, by the bandit or by an experiment's random or fixed
    arm; the catalog image, fallbacks and never-shown decisions are left out."""
    return [(d, r) for d, r in rows if d.activate and d.fallback is None and d.arm != ORIGINAL]


def warm_start(
    target: EventLog,
    factory: Callable[[], Policy],
    source: EventLog | None = None,
    *,
    join_window_s: float,
    default_reward: float = 0.0,
    grace_s: float = COMMIT_GRACE_S,
    now: float | None = None,
    reward: RewardFunction | None = None,
) -> ModelRecord:
    """Publish in ``target`` its first model: ``factory()`` updated with the :func:`styled` decisions
    of ``source`` (default: ``target`` itself). From ``target`` itself, those whose join window has
    closed, and the learner goes on after them. Another log is a finished test's, which no service
    writes to any more: all of its decisions (nothing can join one after its writer stopped, as in
    ``Learner.drain``), and ``target``'s own decisions are all still to learn.

    Refuses a ``target`` that already has a model (a warm start seeds a deployment, it does not
    overwrite what its learner learnt) and a ``source`` whose contexts were encoded with another
    number of features than the policy's.
    """
    current = target.latest_model()
    if current is not None:
        raise BackdropError(
            f"the event log already has model version {current.version}: a warm start only seeds a deployment's first model "
            "(start from a fresh event log, or let the learner go on)"
        )
    own = source is None or source is target
    source = target if source is None else source
    cutoff = (time.time() if now is None else now) - join_window_s - grace_s if own else math.inf
    policy = factory()
    folded = clicked = 0
    last_seq = 0
    with small_matrices():  # the policy's algebra is on small matrices: one BLAS thread
        for batch in source.joined_batches(cutoff, reward=reward):
            last_seq = batch[-1][0].logged_seq
            rows = styled(batch)
            if not rows:
                continue
            widths = {len(d.context) for d, _ in rows}
            if policy.n_features is not None and widths != {policy.n_features}:
                raise BackdropError(
                    f"the source log's contexts have {sorted(widths)} features, this deployment encodes {policy.n_features}: "
                    "warm-start only from a log written with the same feature settings"
                )
            X = np.array([d.context for d, _ in rows], dtype=np.float64)
            rewards = [default_reward if r is None else r for _, r in rows]
            if not all(math.isfinite(r) for r in rewards):
                raise BackdropError("the source log has a non-finite reward; check its reward function")
            policy.update_many(X, [d.arm for d, _ in rows], rewards)
            folded += len(rows)
            clicked += sum(r is not None for _, r in rows)
    if not folded:
        raise BackdropError("nothing to warm-start from: the source log has no shown decision with a style whose join window has closed")
    return target.publish_model(
        policy.to_bytes(),
        policy.name,
        learner_offset=last_seq if own else 0,
        n_decisions=folded,
        n_rewards=clicked,
        expected_version=0,
        reward=(reward or RewardFunction()).describe(),
    )
