"""The service's side of what happens after a decision: rewards, activations and outcome events."""

from __future__ import annotations

import contextlib
import time

from .errors import Conflict, Invalid, NotFound, Unavailable
from .eventlog import EarlyReward, EventLog, LogUnavailable, TooLate, UnknownDecision
from .metrics import Metrics
from .rewards import FEEDBACK
from .schemas import MAX_FEEDBACK, EventRequest
from .settings import ServiceSettings


class Outcomes:
    """Feedback, activation and events (mixed into :class:`~.service.Service`)."""

    log: EventLog
    metrics: Metrics
    settings: ServiceSettings

    def feedback(self, decision_id: str, reward: float, at: float | None) -> tuple[str, bool]:
        """Join a reward to its decision: ("joined", or "duplicate" when one was joined already; whether
        the decision is activated)."""
        now = time.time()
        with _outcome_errors(decision_id):
            status, activated = self.log.log_reward(decision_id, reward, at if at is not None else now, now, self.settings.join_window_s)
        self.metrics.rewards.labels(status=status).inc()
        return status, activated

    def activate(self, decision_id: str) -> str:
        """Mark a decision made with ``activate: false`` shown: "activated" or "already-activated"."""
        with _outcome_errors(decision_id):
            status = self.log.activate(decision_id, time.time(), self.settings.activation_window)
        self.metrics.activations.labels(status=status).inc()
        return status

    def event(self, req: EventRequest) -> tuple[str, bool]:
        """Join an outcome event to its decision: ("joined" or "duplicate", whether the decision is activated)."""
        if req.type == FEEDBACK:  # the feedback value, however it arrives, counts once: /v1/feedback's row
            if req.value is None:
                raise Invalid("value: a feedback event needs its value (a JSON number), as /v1/feedback's reward")
            if abs(req.value) > MAX_FEEDBACK:
                raise Invalid(f"value: a feedback value must be within +-{MAX_FEEDBACK:g}, as /v1/feedback's reward")
            status, activated = self.feedback(req.decision_id, float(req.value), req.at)
            self.metrics.events.labels(type=req.type, status=status).inc()
            return status, activated
        why = self.settings.reward.check(req.type, None if req.value is None else float(req.value), req.currency)
        if why:
            self.metrics.events.labels(type=req.type, status="refused").inc()
            raise Invalid(f"{req.type}: {why}")
        now = time.time()
        with _outcome_errors(req.decision_id):
            status, activated = self.log.log_event(
                req.decision_id,
                req.type,
                key=req.id,
                value=None if req.value is None else float(req.value),
                currency=req.currency,
                at=req.at if req.at is not None else now,
                received_at=now,
                join_window_s=self.settings.join_window_s,
            )
        self.metrics.events.labels(type=req.type, status=status).inc()
        return status, activated


@contextlib.contextmanager
def _outcome_errors(decision_id: str):
    """The event log's answers to an activation, a reward or an event, as domain errors."""
    try:
        yield
    except UnknownDecision:
        raise NotFound(f"unknown decision_id '{decision_id}'") from None
    except TooLate as e:
        raise Conflict(str(e)) from None
    except EarlyReward as e:
        raise Invalid(f"at: {e}") from None
    except LogUnavailable:
        raise Unavailable("the event log is unavailable; retry later") from None
