"""Prometheus metrics of one replica (a registry per app, so tests can run several)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("backdrop_requests", "HTTP requests", ["endpoint", "status"], registry=r)
        self.latency = Histogram("backdrop_request_seconds", "HTTP request latency", ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.policy_seconds = Histogram(
            "backdrop_policy_seconds", "Time in feature encoding + policy choice", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.log_seconds = Histogram(
            "backdrop_log_write_seconds", "Time writing a decision to the event log (commit included)", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.decisions = Counter("backdrop_decisions", "Decisions answered, per style", ["style", "fallback"], registry=r)
        self.rewards = Counter("backdrop_rewards", "Rewards received", ["status"], registry=r)
        self.model_version = Gauge("backdrop_model_version", "Model version being served", registry=r)
        self.fallbacks = Counter("backdrop_fallbacks", "Decisions answered with a fallback (or refused), by reason", ["reason"], registry=r)
        self.arms_not_offered = Counter(
            "backdrop_arms_not_offered",
            "Stored arms left out of a decision because their file cannot be served (damaged after load, baseline unreadable)",
            ["reason"],
            registry=r,
        )
        self.model_rejected = Counter("backdrop_models_rejected", "Published model versions that failed validation", registry=r)
        self.learner_lag = Gauge(
            "backdrop_learner_lag_seconds",
            "How long the oldest decision the learner could fold has waited for it (0: it is up to date)",
            registry=r,
        )
        self.creatives = Gauge(
            "backdrop_creatives",
            "Creatives in the index: served, withheld because QA flagged them, rejected in review, pending review"
            " (when review is required), broken (file does not match the index), or retired (the style left its"
            " category's rotation)",
            ["status"],
            registry=r,
        )

        self.review_seq = Gauge(
            "backdrop_review_seq", "The last review change this replica applies (the store's review_audit seq)", registry=r
        )
        self.activations = Counter("backdrop_activations", "POST /v1/activate calls, by outcome", ["status"], registry=r)
        self.events = Counter("backdrop_events", "Outcome events received, by type and status", ["type", "status"], registry=r)
        self.expired = Gauge(
            "backdrop_decisions_expired",
            "Decisions made inactive and never activated in their window, in all (as of the served model; not learned from)",
            registry=r,
        )
        self.rollout_phase = Gauge("backdrop_rollout_phase", "Safe rollout: 0 serving the baseline, 1 the policy took over", registry=r)
        self.rollout_value = Gauge(
            "backdrop_rollout_value",
            "Safe rollout: off-policy estimates of reward per decision (policy, baseline, and the difference's lower bound)",
            ["estimate"],
            registry=r,
        )

        self._children: dict = {}

    def count(self, endpoint: str, status: int, seconds: float) -> None:
        """One request answered: its count and latency (the labelled children cached: the hot path)."""
        key = (endpoint, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (
                self.requests.labels(endpoint=endpoint, status=str(status)),
                self.latency.labels(endpoint=endpoint),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def decided(self, style: str, fallback: str) -> None:
        """One decision answered (the labelled child cached: the hot path)."""
        key = ("decided", style, fallback)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.decisions.labels(style=style, fallback=fallback)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
