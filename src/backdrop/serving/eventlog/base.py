"""What every event log does (the EventLog interface, its errors, the schema migrations of both dialects) and the pieces the backends share."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ...errors import BackdropError
from ...text import redact_url
from ..records import DecisionRecord, ModelRecord, RewardRecord
from ..rewards import RewardFunction
from .outcomes import EarlyReward, Outcomes, TooLate, UnknownDecision

__all__ = ["EarlyReward", "TooLate", "UnknownDecision"]  # raised here, defined with the outcomes

#: the learner waits this long past the join window before folding a decision in (default)
COMMIT_GRACE_S = 5.0


#: a decision insert on PostgreSQL taking longer than this is aborted (and answered as not logged)
STATEMENT_TIMEOUT_MS = 2000


class LogUnavailable(BackdropError):
    """The database cannot be reached or written right now (the service degrades, never lies)."""


class VersionConflict(BackdropError):
    """Another writer published a model version first; reload and retry."""


class RequestConflict(BackdropError):
    """A ``request_id`` already logged for another request (another item, placement or user)."""


_DECISION_COLUMNS = (
    "decision_id, request_id, created_at, item_id, placement, arms, arm, propensity, policy, "
    "model_version, context, user_id, user_features, creative_key, fallback, experiment_arm, learn, activated_at"
)
_MODEL_COLUMNS = "version, created_at, policy, blob, learner_offset, n_decisions, n_rewards, reward, n_expired, rollout"


#: before schema 4 the learner told its own decisions by the logged policy name
_LEGACY_LEARNERS = frozenset({"linucb", "lints", "epsilon-greedy", "hybrid-linucb", "ucb1", "beta-ts", "uniform", "fixed"})


def _migrations(dialect: str) -> list[tuple[int, list[str]]]:
    seq = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    blob = "BLOB" if dialect == "sqlite" else "BYTEA"
    real = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    big = "INTEGER" if dialect == "sqlite" else "BIGINT"
    return [
        (
            1,
            [
                f"""CREATE TABLE decisions (
                    seq {seq},
                    decision_id TEXT NOT NULL UNIQUE,
                    request_id TEXT UNIQUE,
                    created_at {real} NOT NULL,
                    item_id TEXT NOT NULL,
                    placement TEXT NOT NULL,
                    arms TEXT NOT NULL,
                    arm TEXT NOT NULL,
                    propensity {real} NOT NULL CHECK (propensity > 0 AND propensity <= 1),
                    policy TEXT NOT NULL,
                    model_version {big} NOT NULL,
                    context {blob} NOT NULL,
                    user_id TEXT,
                    user_features TEXT NOT NULL,
                    creative_key TEXT,
                    fallback TEXT)""",
                "CREATE INDEX decisions_created_at ON decisions (created_at)",
                f"""CREATE TABLE rewards (
                    decision_id TEXT PRIMARY KEY REFERENCES decisions (decision_id),
                    reward {real} NOT NULL,
                    at {real} NOT NULL,
                    received_at {real} NOT NULL)""",
                f"""CREATE TABLE models (
                    version {big} PRIMARY KEY,
                    created_at {real} NOT NULL,
                    policy TEXT NOT NULL,
                    blob {blob} NOT NULL,
                    learner_offset {big} NOT NULL,
                    n_decisions {big} NOT NULL,
                    n_rewards {big} NOT NULL)""",
            ],
        ),
        (2, ["ALTER TABLE decisions ADD COLUMN experiment_arm TEXT"]),
        # readiness proves the log is writable with a real write, also while no decision comes in
        (3, [f"CREATE TABLE heartbeat (writer TEXT PRIMARY KEY, at {real} NOT NULL)"]),
        # the learner learns from the rows the service marks, not from policy-name strings
        (4, ["ALTER TABLE decisions ADD COLUMN learn INTEGER"]),
        # activation (a decision may be made before its impression), typed outcome events, the
        # reward function and the rollout state recorded with each model version
        (
            5,
            [
                f"ALTER TABLE decisions ADD COLUMN activated_at {real}",
                "UPDATE decisions SET activated_at = created_at",
                f"""CREATE TABLE events (
                    decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
                    type TEXT NOT NULL,
                    event_key TEXT NOT NULL,
                    value {real},
                    currency TEXT,
                    at {real} NOT NULL,
                    received_at {real} NOT NULL,
                    PRIMARY KEY (decision_id, type, event_key))""",
                "ALTER TABLE models ADD COLUMN reward TEXT",
                f"ALTER TABLE models ADD COLUMN n_expired {big} NOT NULL DEFAULT 0",
                "ALTER TABLE models ADD COLUMN rollout TEXT",
            ],
        ),
    ]


SCHEMA_VERSION = max(v for v, _ in _migrations("sqlite"))


def _same_request(a: DecisionRecord, b: DecisionRecord) -> bool:
    """Whether two decisions answer the same request (a retry), as far as the log can tell."""
    return (a.item_id, a.placement, a.user_id, a.user_features) == (b.item_id, b.placement, b.user_id, b.user_features)


def request_conflict(logged: DecisionRecord, asked: DecisionRecord) -> RequestConflict:
    differs = [
        f"{name} {getattr(logged, name)!r} (now {getattr(asked, name)!r})"
        for name in ("item_id", "placement", "user_id")
        if getattr(logged, name) != getattr(asked, name)
    ]
    if logged.user_features != asked.user_features:
        differs.append("other user features")
    return RequestConflict(
        f"request_id '{asked.request_id}' was already used for another request: {', '.join(differs)}; "
        "a retry must repeat the request, a new impression needs a new request_id"
    )


def _check_propensity(r: DecisionRecord) -> None:
    if not r.propensity > 0:  # the table's CHECK says the same; this names the value
        raise ValueError(f"propensity must be > 0, got {r.propensity}")


@functools.lru_cache(maxsize=8192)
def _arms_json(arms: tuple) -> str:
    return json.dumps(list(arms))


def _decision_row(r: DecisionRecord) -> tuple:
    return (
        r.decision_id,
        r.request_id,
        r.created_at,
        r.item_id,
        r.placement,
        _arms_json(tuple(r.arms)),  # an item's candidates are the same list decision after decision
        r.arm,
        r.propensity,
        r.policy,
        r.model_version,
        np.asarray(r.context, dtype="<f8").tobytes(),
        r.user_id,
        json.dumps(r.user_features, sort_keys=True),
        r.creative_key,
        r.fallback,
        r.experiment_arm,
        None if r.learn is None else int(bool(r.learn)),
        r.activated_at if r.activated_at is not None else (r.created_at if r.activate else None),
    )


def _decision(row) -> DecisionRecord:
    (seq, decision_id, request_id, created_at, item_id, placement, arms, arm, propensity, policy,
     model_version, context, user_id, user_features, creative_key, fallback, experiment_arm, learn, activated_at) = row  # fmt: skip
    if learn is None:  # logged before schema 4
        learn = fallback is None and policy in _LEGACY_LEARNERS
    return DecisionRecord(
        decision_id=decision_id,
        created_at=float(created_at),
        item_id=item_id,
        placement=placement,
        arms=json.loads(arms),
        arm=arm,
        propensity=float(propensity),
        policy=policy,
        model_version=int(model_version),
        context=np.frombuffer(bytes(context), dtype="<f8").tolist(),
        user_id=user_id,
        user_features=json.loads(user_features),
        request_id=request_id,
        creative_key=creative_key,
        fallback=fallback,
        experiment_arm=experiment_arm,
        seq=int(seq),
        learn=bool(learn),
        activate=activated_at is not None,
        activated_at=None if activated_at is None else float(activated_at),
    )


def _model(row) -> ModelRecord:
    version, created_at, policy, blob, offset, n_decisions, n_rewards, reward, n_expired, rollout = row
    return ModelRecord(
        int(version), float(created_at), policy, bytes(blob), int(offset), int(n_decisions), int(n_rewards), reward, int(n_expired), rollout
    )


class EventLog(Outcomes):
    """The dialect-independent operations; subclasses provide connections and the SQL placeholders."""

    dialect = "?"
    url = ""

    # subclass hooks -----------------------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool = True, wait_s: float | None = None):  # pragma: no cover - abstract
        """A transaction's cursor; ``wait_s`` bounds the wait for a connection (where there is a pool)."""
        raise NotImplementedError
        yield

    def _sql(self, sql: str) -> str:
        return sql

    def _is_unique_violation(self, e: Exception) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    # schema -------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply the migrations this database lacks (idempotent, safe with several replicas)."""
        with self._tx() as cur:
            self._lock_for_migration(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            cur.execute("SELECT version FROM schema_migrations")
            done = {int(r[0]) for r in cur.fetchall()}
            if done and max(done) > SCHEMA_VERSION:
                raise BackdropError(
                    f"{self.redacted_url}: event log schema version {max(done)} is newer than this backdrop "
                    f"(knows {SCHEMA_VERSION}); upgrade backdrop"
                )
            for version, statements in _migrations(self.dialect):
                if version in done:
                    continue
                for s in statements:
                    cur.execute(s)
                cur.execute(self._sql("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"), (version, time.time()))
        return SCHEMA_VERSION

    def _lock_for_migration(self, cur) -> None:
        pass

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    def ping(self) -> bool:
        return self.ping_problem() is None

    def ping_problem(self) -> str | None:
        """Why the log cannot be read right now (None: it can)."""
        try:
            with self._tx(write=False) as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
            return None
        except LogUnavailable as e:
            return str(e)

    # write health: readiness must know the log can be *written*, not only read ------------
    _last_write_ok = 0.0
    _last_write_error: tuple[float, str] | None = None

    def _wrote(self, error: Exception | None = None) -> None:
        if error is None:
            self._last_write_ok = time.monotonic()
        else:
            self._last_write_error = (time.monotonic(), str(error))

    def write_problem(self, probe_after_s: float = 5.0, writer: str = "service") -> str | None:
        """Why the log cannot be written right now, or None. Probes with a real write (a heartbeat
        row) when no write succeeded for ``probe_after_s``; a write that failed after the last one
        that succeeded is a problem until one succeeds again."""
        now = time.monotonic()
        if now - self._last_write_ok > probe_after_s:
            try:
                with self._tx() as cur:
                    cur.execute(
                        self._sql("INSERT INTO heartbeat (writer, at) VALUES (?, ?) ON CONFLICT (writer) DO UPDATE SET at = excluded.at"),
                        (writer, time.time()),
                    )
                self._wrote()
            except Exception as e:  # noqa: BLE001 - any failure to write is the answer
                self._wrote(e)
        err = self._last_write_error
        if err is not None and err[0] > self._last_write_ok:
            return f"event log cannot be written: {err[1]}"
        return None

    # decisions ----------------------------------------------------------------------------
    def log_decision(self, record: DecisionRecord, timeout_s: float | None = None) -> DecisionRecord:
        """Insert the decision durably; with a ``request_id`` already logged, return that decision instead
        (:class:`RequestConflict` when it was logged for another request).

        ``timeout_s`` bounds the wait: past it the insert is abandoned and :class:`LogUnavailable`
        raised, and the decision is never written later (the caller may answer it as not logged).
        Both backends group-commit (:class:`~.groupcommit.GroupCommit`).
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def _insert_decision(self, cur, record: DecisionRecord) -> DecisionRecord:
        row = _decision_row(record)
        placeholders = ", ".join("?" * len(row))
        conflict = " ON CONFLICT (request_id) DO NOTHING" if record.request_id is not None else ""
        cur.execute(self._sql(f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES ({placeholders}){conflict} RETURNING seq"), row)
        got = cur.fetchone()
        if got is None:  # the request_id was logged before: an idempotent retry, or a clash
            cur.execute(self._sql(f"SELECT seq, {_DECISION_COLUMNS} FROM decisions WHERE request_id = ?"), (record.request_id,))
            logged = _decision(cur.fetchone())
            if not _same_request(logged, record):
                raise request_conflict(logged, record)
            return logged
        return dataclasses.replace(record, seq=int(got[0]))

    def _before_decision_insert(self, cur, timeout_s: float | None = None) -> None:
        pass

    def model(self, version: int) -> ModelRecord | None:
        with self._tx(write=False) as cur:
            cur.execute(
                self._sql(f"SELECT {_MODEL_COLUMNS} FROM models WHERE version = ?"),
                (version,),
            )
            row = cur.fetchone()
        return _model(row) if row else None

    def model_versions(self) -> list[int]:
        with self._tx(write=False) as cur:
            cur.execute("SELECT version FROM models ORDER BY version DESC")
            return [int(r[0]) for r in cur.fetchall()]

    def first_unfolded(self, after_seq: int) -> float | None:
        """``created_at`` of the first decision after ``after_seq`` (the learner's offset), or None."""
        with self._tx(write=False) as cur:
            cur.execute(self._sql("SELECT created_at FROM decisions WHERE seq > ? ORDER BY seq LIMIT 1"), (after_seq,))
            row = cur.fetchone()
        return float(row[0]) if row else None

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        with self._tx(write=False) as cur:
            cur.execute(self._sql(f"SELECT seq, {_DECISION_COLUMNS} FROM decisions WHERE decision_id = ?"), (decision_id,))
            row = cur.fetchone()
        return _decision(row) if row else None

    def get_by_request(self, request_id: str) -> DecisionRecord | None:
        with self._tx(write=False) as cur:
            cur.execute(self._sql(f"SELECT seq, {_DECISION_COLUMNS} FROM decisions WHERE request_id = ?"), (request_id,))
            row = cur.fetchone()
        return _decision(row) if row else None

    def decisions(self, after_seq: int = 0, batch: int = 5000) -> Iterator[DecisionRecord]:
        """Every decision in ``seq`` order (read in batches)."""
        while True:
            with self._tx(write=False) as cur:
                cur.execute(
                    self._sql(f"SELECT seq, {_DECISION_COLUMNS} FROM decisions WHERE seq > ? ORDER BY seq LIMIT ?"),
                    (after_seq, batch),
                )
                rows = cur.fetchall()
            if not rows:
                return
            for row in rows:
                yield _decision(row)
            after_seq = int(rows[-1][0])

    # rewards ------------------------------------------------------------------------------
    def rewards(self) -> list[RewardRecord]:
        with self._tx(write=False) as cur:
            cur.execute("SELECT decision_id, reward, at, received_at FROM rewards")
            return [RewardRecord(r[0], float(r[1]), float(r[2]), float(r[3])) for r in cur.fetchall()]

    def joined(
        self, after_seq: int, created_before: float, limit: int = 10_000, reward: RewardFunction | None = None
    ) -> list[tuple[DecisionRecord, float | None]]:
        """The decisions after ``after_seq`` with their reward (None: no outcome), in ``seq`` order;
        the reward is ``reward`` (the deployment's function) of each one's feedback and events.

        Only a contiguous prefix of decisions made before ``created_before`` is returned, so the
        caller's offset never jumps over a decision whose join window is still open.
        """
        with self._tx(write=False) as cur:
            cur.execute(
                self._sql(f"SELECT seq, {_DECISION_COLUMNS} FROM decisions WHERE seq > ? ORDER BY seq LIMIT ?"),
                (after_seq, limit),
            )
            rows = cur.fetchall()
        decisions = []
        for row in rows:
            if float(row[3]) > created_before:
                break
            decisions.append(_decision(row))
        return self.rewarded(decisions, reward)

    def joined_batches(
        self, created_before: float, after_seq: int = 0, batch: int = 50_000, reward: RewardFunction | None = None
    ) -> Iterator[list]:
        """:meth:`joined`, page after page, to the end of the prefix made before ``created_before``."""
        while rows := self.joined(after_seq, created_before, limit=batch, reward=reward):
            yield rows
            after_seq = rows[-1][0].logged_seq

    # models -------------------------------------------------------------------------------
    def publish_model(
        self,
        blob: bytes,
        policy: str,
        *,
        learner_offset: int,
        n_decisions: int,
        n_rewards: int,
        expected_version: int,
        reward: str | None = None,
        n_expired: int = 0,
        rollout: str | None = None,
    ) -> ModelRecord:
        """Publish ``blob`` as version ``expected_version + 1``; :class:`VersionConflict` if that exists.
        ``reward`` (the reward function's description), ``n_expired`` and ``rollout`` are recorded with it."""
        record = ModelRecord(
            expected_version + 1, time.time(), policy, blob, learner_offset, n_decisions, n_rewards, reward, n_expired, rollout
        )
        try:
            with self._tx() as cur:
                cur.execute(
                    self._sql(f"INSERT INTO models ({_MODEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    (record.version, record.created_at, policy, blob, learner_offset, n_decisions, n_rewards, reward, n_expired, rollout),
                )
        except _Conflict as e:
            raise VersionConflict(f"model version {record.version} was published by another writer; reload and retry") from e
        return record

    def latest_version(self) -> int:
        with self._tx(write=False) as cur:
            cur.execute("SELECT MAX(version) FROM models")
            row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def latest_model(self) -> ModelRecord | None:
        with self._tx(write=False) as cur:
            cur.execute(f"SELECT {_MODEL_COLUMNS} FROM models ORDER BY version DESC LIMIT 1")
            row = cur.fetchone()
        return _model(row) if row else None

    def counts(self) -> dict[str, int]:
        with self._tx(write=False) as cur:
            out = {}
            for table in ("decisions", "rewards", "models"):
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                out[table] = int(cur.fetchone()[0])
        return out

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _Conflict(Exception):
    """A unique-key violation, whatever the driver calls it."""
