"""What happens after a decision: its activation (the impression really happened) and the outcome
events joined to it, and reading them back as one reward per decision for the learner."""

from __future__ import annotations

from contextlib import AbstractContextManager

from ...errors import BackdropError
from ..rewards import FEEDBACK, Outcome, RewardFunction


class UnknownDecision(BackdropError):
    pass


class TooLate(BackdropError):
    pass


class EarlyReward(BackdropError):
    """A reward whose event time is before its decision was made."""


#: a second of clock skew between the caller and the service is tolerated
CLOCK_SKEW_S = 1.0


class Outcomes:
    """The event log's activation and outcome operations (mixed into :class:`~.base.EventLog`)."""

    def _tx(self, write: bool = True, wait_s: float | None = None) -> AbstractContextManager:  # pragma: no cover - EventLog's
        raise NotImplementedError

    def _sql(self, sql: str) -> str:  # pragma: no cover - EventLog's
        raise NotImplementedError

    def activate(self, decision_id: str, now: float, window_s: float) -> str:
        """Mark a decision shown: ``"activated"``, or ``"already-activated"`` (idempotent).

        :class:`UnknownDecision`, or :class:`TooLate` past ``window_s`` after the decision: it has
        expired, and the learner and the analyses leave it out.
        """
        with self._tx() as cur:
            cur.execute(self._sql("SELECT created_at, activated_at FROM decisions WHERE decision_id = ?"), (decision_id,))
            row = cur.fetchone()
            if row is None:
                raise UnknownDecision(decision_id)
            if row[1] is not None:
                return "already-activated"
            age = now - float(row[0])
            if age > window_s:
                raise TooLate(
                    f"decision {decision_id} was made {age:.0f} s ago, past the activation window of {window_s:g} s: "
                    "it expired unshown and is not learned from"
                )
            cur.execute(
                self._sql("UPDATE decisions SET activated_at = ? WHERE decision_id = ? AND activated_at IS NULL"), (now, decision_id)
            )
            # under PostgreSQL's read committed, concurrent activations all saw it unactivated: one updated the row
            return "activated" if cur.rowcount == 1 else "already-activated"

    def _joinable(self, cur, decision_id: str, at: float, received_at: float, join_window_s: float, what: str) -> bool:
        """Check an outcome may join its decision (else raise); whether the decision is activated."""
        cur.execute(self._sql("SELECT created_at, activated_at FROM decisions WHERE decision_id = ?"), (decision_id,))
        row = cur.fetchone()
        if row is None:
            raise UnknownDecision(decision_id)
        created = float(row[0])
        if at < created - CLOCK_SKEW_S:
            raise EarlyReward(f"the {what}'s time {at:.3f} is before its decision {decision_id} was made ({created:.3f})")
        late = max(at, received_at) - created
        if late > join_window_s:
            raise TooLate(
                f"decision {decision_id} was made {late:.0f} s before this {what}, more than the join window "
                f"of {join_window_s:g} s: the learner has counted it with the default reward"
            )
        return row[1] is not None

    def log_event(
        self,
        decision_id: str,
        type_: str,
        *,
        key: str | None = None,
        value: float | None = None,
        currency: str | None = None,
        at: float,
        received_at: float,
        join_window_s: float,
    ) -> tuple[str, bool]:
        """Join one outcome event to its decision: (``"joined"`` or ``"duplicate"``, activated?).

        An event is identified by (decision, type, ``key``); ``key`` defaults to the type, so a
        retried click is one click, and two purchases of one impression need their own keys (order
        ids). The same errors as :meth:`log_reward`.
        """
        with self._tx() as cur:
            activated = self._joinable(cur, decision_id, at, received_at, join_window_s, type_)
            cur.execute(
                self._sql(
                    "INSERT INTO events (decision_id, type, event_key, value, currency, at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (decision_id, type, event_key) DO NOTHING RETURNING decision_id"
                ),
                (decision_id, type_, key or type_, value, currency, at, received_at),
            )
            return ("joined" if cur.fetchone() is not None else "duplicate"), activated

    def log_reward(self, decision_id: str, reward: float, at: float, received_at: float, join_window_s: float) -> tuple[str, bool]:
        """Join a reward (``/v1/feedback``) to its decision: (``"joined"``, or ``"duplicate"`` when one
        was joined already; whether the decision is activated).

        Raises :class:`UnknownDecision`, or :class:`TooLate` when the reward arrives (or happened)
        after the join window closed: the learner may already have folded the decision in.
        """
        with self._tx() as cur:
            activated = self._joinable(cur, decision_id, at, received_at, join_window_s, "reward")
            cur.execute(
                self._sql(
                    "INSERT INTO rewards (decision_id, reward, at, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (decision_id) DO NOTHING RETURNING decision_id"
                ),
                (decision_id, float(reward), float(at), float(received_at)),
            )
            return ("joined" if cur.fetchone() is not None else "duplicate"), activated

    def outcomes(self, first_seq: int, last_seq: int) -> dict[str, list[Outcome]]:
        """decision_id -> its outcomes (feedback and events) for the decisions with seq in [first, last]."""
        out: dict[str, list[Outcome]] = {}
        with self._tx(write=False) as cur:
            cur.execute(
                self._sql(
                    "SELECT r.decision_id, r.reward FROM rewards r JOIN decisions d ON d.decision_id = r.decision_id WHERE d.seq BETWEEN ? AND ?"
                ),
                (first_seq, last_seq),
            )
            for decision_id, reward in cur.fetchall():
                out.setdefault(decision_id, []).append(Outcome(FEEDBACK, float(reward)))
            cur.execute(
                self._sql(
                    "SELECT e.decision_id, e.type, e.value, e.currency FROM events e JOIN decisions d ON d.decision_id = e.decision_id "
                    "WHERE d.seq BETWEEN ? AND ? ORDER BY e.at"
                ),
                (first_seq, last_seq),
            )
            for decision_id, type_, value, currency in cur.fetchall():
                got = out.setdefault(decision_id, [])
                if type_ == FEEDBACK and any(o.type == FEEDBACK for o in got):
                    continue  # feedback counts once, however it arrived (events of logs made before it went to rewards)
                got.append(Outcome(type_, None if value is None else float(value), currency))
        return out

    def rewarded(self, rows: list, reward: RewardFunction | None) -> list[tuple]:
        """``[(decision, reward or None)]`` for decisions read from the log, the reward by ``reward``
        (default: the feedback value, else 1 for a click) over each one's outcomes."""
        if not rows:
            return []
        fn = reward or RewardFunction()
        outcomes = self.outcomes(rows[0].logged_seq, rows[-1].logged_seq)
        return [(d, fn.reward(outcomes.get(d.decision_id, []))) for d in rows]
