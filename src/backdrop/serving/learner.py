"""The learner: fold joined rewards into the policy and publish model versions.

A pass reads the decisions after the latest model's ``learner_offset`` whose join window (plus the
commit grace of :mod:`.eventlog`) has passed, gives each its joined reward or the default reward,
updates a copy of the latest model with ``update_many`` and publishes it as the next version with
the new offset, in one transaction. A crash anywhere before that commit changes nothing; a crash
after it is a finished pass. Two learners racing get a :class:`VersionConflict` on one side, which
reloads and retries, so no event is skipped or counted twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..bandit.features import FeatureEncoder
from ..bandit.policies import Policy
from ..bandit.threads import small_matrices
from .eventlog import COMMIT_GRACE_S, EventLog, LogUnavailable, VersionConflict
from .records import DecisionRecord, ModelRecord
from .rewards import RewardFunction
from .rollout import RolloutSettings, RolloutState, advance, score

log = logging.getLogger(__name__)


def learnable(rows: list[tuple[DecisionRecord, float | None]]) -> list[tuple[DecisionRecord, float | None]]:
    """The decisions the learner learns from: the bandit's own (``learn`` set by the service), shown.

    Fallbacks (nothing was offered) and experiment arms that bypass the bandit (control, fixed or
    random style) are not marked: an experiment's arms stay isolated from each other. A decision
    made inactive and never activated was never shown: its "no click" says nothing.
    """
    return [(d, r) for d, r in rows if d.learn and d.activate]


def fold(policy: Policy, rows: list[tuple[DecisionRecord, float | None]], default_reward: float) -> tuple[int, int]:
    """Update ``policy`` with the :func:`learnable` decisions of ``rows``; (decisions, rewards) folded."""
    learnable_rows = learnable(rows)
    if learnable_rows:
        X = np.array([d.context for d, _ in learnable_rows], dtype=np.float64)
        arms = [d.arm for d, _ in learnable_rows]
        rewards = [default_reward if r is None else r for _, r in learnable_rows]
        policy.update_many(X, arms, rewards)
    return len(learnable_rows), sum(r is not None for _, r in learnable_rows)


@dataclass
class LearnerStatus:
    """What readiness and the logs know about a learner: it survives failed passes and says so."""

    passes: int = 0
    published: int = 0
    consecutive_failures: int = 0
    last_ok_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


class Learner:
    #: a failing pass is retried after interval x 2^failures, at most this long
    max_backoff_s = 60.0

    def __init__(
        self,
        log: EventLog,
        factory: Callable[[], Policy],
        *,
        join_window_s: float,
        default_reward: float = 0.0,
        batch: int = 20_000,
        grace_s: float = COMMIT_GRACE_S,
        clock: Callable[[], float] = time.time,
        reward: RewardFunction | None = None,
        rollout: RolloutSettings | None = None,
    ):
        self.log = log
        self.factory = factory
        self.join_window_s = join_window_s
        self.default_reward = default_reward
        self.batch = batch
        self.grace_s = grace_s
        self.clock = clock
        self.reward = reward or RewardFunction()
        self.rollout = rollout
        self.status = LearnerStatus()

    @classmethod
    def for_settings(cls, log: EventLog, settings) -> Learner:
        """The learner a deployment's settings describe (its policy, windows, reward function, rollout)."""
        encoder = FeatureEncoder(settings.features)
        return cls(
            log,
            lambda: settings.policy.make(encoder.n_features, encoder.blocks),
            join_window_s=settings.join_window_s,
            default_reward=settings.default_reward,
            grace_s=settings.commit_grace_s,
            reward=settings.reward,
            rollout=settings.rollout,
        )

    def cutoff(self) -> float:
        return self.clock() - self.join_window_s - self.grace_s

    def run_once(self, cutoff: float | None = None) -> ModelRecord | None:
        """One pass over the decisions made before ``cutoff`` (default: :meth:`cutoff`, the join
        window and commit grace ago): the published model, or None when nothing new was ready.
        Retries a lost race."""
        for _ in range(5):
            try:
                return self._pass(self.cutoff() if cutoff is None else cutoff)
            except VersionConflict:
                continue
        raise VersionConflict("five passes in a row lost the race to publish; is another learner running?")

    def drain(self) -> list[ModelRecord]:
        """Passes until every logged decision is folded, each join window taken as closed: for a log
        no service writes to any more (nothing can join a decision after its writer stopped), such as
        a study's at its end. The versions published, oldest first."""
        published = []
        while (record := self.run_once(cutoff=math.inf)) is not None:
            published.append(record)
        return published

    def _pass(self, cutoff: float) -> ModelRecord | None:
        with small_matrices():  # the policy's algebra is on small matrices: one BLAS thread
            return self._learn(cutoff)

    def _learn(self, cutoff: float) -> ModelRecord | None:
        current = self.log.latest_model()
        rows = self.log.joined(current.learner_offset if current else 0, cutoff, limit=self.batch, reward=self.reward)
        if not rows:
            return None
        version = (current.version if current else 0) + 1
        policy = Policy.from_bytes(current.blob, source=f"model version {current.version}") if current else self.factory()
        rollout = None
        if self.rollout is not None:  # scored before it learns from them: progressive validation
            state = RolloutState.from_json(current.rollout if current else None)
            was = state.phase
            state = advance(state, score(policy, learnable(rows), self.rollout, self.default_reward), self.rollout, version)
            if state.phase != was:
                s = state.switched or {}
                log.warning(
                    "rollout: the policy takes over from the baseline at model version %d (policy %.4g [%.4g, %.4g], baseline %.4g, "
                    "difference lower bound %.4g over %d decisions)",
                    version, s["policy_value"], s["policy_low"], s["policy_high"], s["baseline_value"], s["difference_low"], s["n"],
                )  # fmt: skip
            rollout = state.to_json()
        n_decisions, n_rewards = fold(policy, rows, self.default_reward)
        n_expired = sum(not d.activate for d, _ in rows)
        blob = policy.to_bytes()
        if policy.n_features is not None:  # never publish what a replica would refuse to serve
            from .models import load_servable

            load_servable(blob, policy.n_features, f"the learner's next model (after version {current.version if current else 0})")
        return self.log.publish_model(
            blob,
            policy.name,
            learner_offset=rows[-1][0].logged_seq,
            n_decisions=(current.n_decisions if current else 0) + n_decisions,
            n_rewards=(current.n_rewards if current else 0) + n_rewards,
            expected_version=current.version if current else 0,
            reward=self.reward.describe(),
            n_expired=(current.n_expired if current else 0) + n_expired,
            rollout=rollout,
        )

    def run_forever(self, interval_s: float, stop: threading.Event) -> None:
        """Passes until ``stop`` is set; a full batch is followed at once by the next pass.

        A failing pass (the database down, a model that does not load, a bug) is logged, counted in
        :attr:`status` and retried with exponential backoff; the loop itself never dies of it.
        """
        while not stop.is_set():
            s = self.status
            try:
                record = self.run_once()
            except Exception as e:
                s.passes += 1
                s.consecutive_failures += 1
                s.last_error, s.last_error_at = f"{type(e).__name__}: {e}", time.time()
                wait = min(self.max_backoff_s, interval_s * 2 ** min(s.consecutive_failures, 16))
                if isinstance(e, LogUnavailable):
                    log.warning("learner: %s (retrying in %.0f s)", e, wait)
                else:
                    log.exception("learner pass failed (retrying in %.0f s)", wait)
                stop.wait(wait)
                continue
            s.passes += 1
            s.consecutive_failures = 0
            s.last_ok_at = time.time()
            if record is not None:
                s.published += 1
                log.info("published model version %d (offset %d)", record.version, record.learner_offset)
                continue
            stop.wait(interval_s)


def train_offline(
    log: EventLog,
    factory: Callable[[], Policy],
    *,
    join_window_s: float,
    default_reward: float = 0.0,
    grace_s: float = COMMIT_GRACE_S,
    now: float | None = None,
    reward: RewardFunction | None = None,
) -> tuple[Policy, int]:
    """The model a learner would reach on the same log, trained in one go; (policy, offset)."""
    policy = factory()
    cutoff = (time.time() if now is None else now) - join_window_s - grace_s
    offset = 0
    for rows in log.joined_batches(cutoff, reward=reward):
        fold(policy, rows, default_reward)
        offset = rows[-1][0].seq
    return policy, offset
