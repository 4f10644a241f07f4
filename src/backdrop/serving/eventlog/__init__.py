"""The durable event log: decisions, rewards and model versions, in SQLite (embedded) or PostgreSQL.

One schema, two dialects, versioned migrations (``schema_migrations``). Every write is one
transaction: a decision is answered only after :meth:`EventLog.log_decision` returned, a reward is
joined at most once (the rewards table is keyed by decision), and a model version is published
together with the learner's offset (so a crashed learner resumes exactly where its last published
model ends).

``seq`` orders decisions; the learner folds a contiguous prefix of it. On PostgreSQL several
replicas insert concurrently, so a row may commit after a row with a higher ``seq``; the learner
only reads decisions older than the join window plus a grace (:data:`COMMIT_GRACE_S`), and a
decision insert that takes longer than :data:`STATEMENT_TIMEOUT_MS` is aborted and answered as not
logged, so no decision commits behind the learner's offset.
"""

from __future__ import annotations

from .base import (
    COMMIT_GRACE_S,
    SCHEMA_VERSION,
    STATEMENT_TIMEOUT_MS,
    EarlyReward,
    EventLog,
    LogUnavailable,
    RequestConflict,
    TooLate,
    UnknownDecision,
    VersionConflict,
    request_conflict,
)
from .connect import open_event_log
from .postgres import PostgresEventLog
from .sqlite import SQLiteEventLog

__all__ = [
    "COMMIT_GRACE_S",
    "SCHEMA_VERSION",
    "STATEMENT_TIMEOUT_MS",
    "EarlyReward",
    "EventLog",
    "LogUnavailable",
    "PostgresEventLog",
    "RequestConflict",
    "SQLiteEventLog",
    "TooLate",
    "UnknownDecision",
    "VersionConflict",
    "open_event_log",
    "request_conflict",
]
