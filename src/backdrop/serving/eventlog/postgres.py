"""The event log for replicas: PostgreSQL through psycopg_pool, with a fail-fast circuit."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from ...errors import BackdropError
from .base import (
    STATEMENT_TIMEOUT_MS,
    LogUnavailable,
    _Conflict,
    _decision_row,
)
from .groupcommit import GroupCommit, _Pending, insert_rows


class PostgresEventLog(GroupCommit):
    """PostgreSQL through psycopg 3 and a ``psycopg_pool`` connection pool; fails fast while the
    server is down (a failed connection marks it down for ``retry_after_s``, so requests in that
    time do not each wait for a connection that will not come). Decisions are group-committed
    (:class:`GroupCommit`): a replica's concurrent decisions share one transaction."""

    dialect = "postgresql"
    #: commits of several batches in flight at once (PostgreSQL groups concurrent commits itself)
    max_writers = 4

    def __init__(self, url: str, *, pool_size: int = 16, connect_timeout_s: int = 2, retry_after_s: float = 1.0):
        try:
            from psycopg_pool import ConnectionPool
        except ImportError as e:  # pragma: no cover - psycopg[pool] is a core dependency
            raise BackdropError("PostgreSQL event log needs psycopg and psycopg_pool: pip install 'psycopg[binary,pool]'") from e
        self.url = url
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._pool_class = ConnectionPool
        self._pool = self._new_pool()
        self._pool_lock = threading.Lock()
        self._init_group_commit()

    def _new_pool(self):
        pool = self._pool_class(
            self.url,
            min_size=0,
            max_size=self.pool_size,
            kwargs={"autocommit": True, "connect_timeout": self.connect_timeout_s},
            timeout=self.connect_timeout_s,
            open=False,
            name="backdrop-eventlog",
        )
        pool.open(wait=False)
        return pool

    def _live_pool(self):
        """The pool; a fresh one after :meth:`close` (a closed pool cannot reopen), as a log used after
        closing simply connects again."""
        if self._pool.closed:
            with self._pool_lock:
                if self._pool.closed:
                    self._pool = self._new_pool()
        return self._pool

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _tx(self, write: bool = True, wait_s: float | None = None):
        import psycopg
        import psycopg.errors
        from psycopg_pool import PoolTimeout

        if time.monotonic() < self._down_until:
            raise LogUnavailable(f"{self.redacted_url}: unreachable (retrying shortly)")
        wait = self.connect_timeout_s if wait_s is None else max(0.001, min(wait_s, self.connect_timeout_s))
        try:
            with self._live_pool().connection(timeout=wait) as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.errors.UniqueViolation as e:
            raise _Conflict(str(e)) from e
        except PoolTimeout:
            if wait_s is None or wait_s >= self.connect_timeout_s:  # a full wait: the server is down, or every connection busy
                self._down_until = time.monotonic() + self.retry_after_s
            raise LogUnavailable(
                f"{self.redacted_url}: no connection within {wait:g} s (server down or all {self.pool_size} busy)"
            ) from None
        except (psycopg.OperationalError, psycopg.errors.QueryCanceled, psycopg.InterfaceError) as e:
            if isinstance(e, psycopg.OperationalError) and not isinstance(e, psycopg.errors.QueryCanceled):
                self._down_until = time.monotonic() + self.retry_after_s
            raise LogUnavailable(f"{self.redacted_url}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None

    def _lock_for_migration(self, cur) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(7261004)")  # replicas starting together migrate one at a time

    def _before_decision_insert(self, cur, timeout_s: float | None = None) -> None:
        ms = STATEMENT_TIMEOUT_MS if timeout_s is None else max(1, min(STATEMENT_TIMEOUT_MS, int(timeout_s * 1000)))
        cur.execute(f"SET LOCAL statement_timeout = {ms}")

    @property
    def default_wait_s(self) -> float:
        return self.connect_timeout_s + STATEMENT_TIMEOUT_MS / 1000 + 5

    def _insert_batch(self, cur, plain: list[_Pending]) -> None:
        # the seqs are matched by decision id
        sql = insert_rows(len(plain), "%s", " RETURNING decision_id, seq")
        cur.execute(sql, [v for p in plain for v in _decision_row(p.record)])
        seqs = dict(cur.fetchall())
        for p in plain:
            p.record.seq = int(seqs[p.record.decision_id])
            p.result = p.record

    def close(self) -> None:
        self._pool.close()
