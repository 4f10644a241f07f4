"""The embedded event log: one SQLite file, one writer thread that group-commits decisions."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from ..records import DecisionRecord
from .base import (
    _DECISION_COLUMNS,
    EventLog,
    LogUnavailable,
    RequestConflict,
    _check_propensity,
    _Conflict,
    _decision_row,
    _deliver,
    _Pending,
)

_INSERT = f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES ({', '.join('?' * len(_DECISION_COLUMNS.split(',')))})"


class SQLiteEventLog(EventLog):
    """SQLite in WAL mode, one connection per thread; ``synchronous=FULL`` so a logged decision survives a power cut."""

    dialect = "sqlite"
    #: the group-commit writer thread exits after this long without work (and closes its connection)
    writer_idle_s = 5.0

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 5000):
        self.path = Path(path)
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the connections opened
        self.url = f"sqlite:///{self.path}"
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._queue_cv = threading.Condition(self._queue_lock)
        self._writer: threading.Thread | None = None
        self.max_batch = 256

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._identity is not None:  # opened before: never create a fresh, empty log in its place
                self._check_file()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                target, uri = (f"file:{quote(str(self.path))}?mode=rw", True) if self._identity is not None else (self.path, False)
                conn = sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_ms / 1000)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.execute("PRAGMA foreign_keys=ON")
            except (sqlite3.Error, OSError) as e:
                raise LogUnavailable(f"{self.path}: cannot open the event log: {e}") from e
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
                if self._identity is None:
                    st = self.path.stat()
                    self._identity = (st.st_dev, st.st_ino)
        self._check_file()
        return conn

    def _check_file(self) -> None:
        """The file at ``path`` must still be the one the connections write to: SQLite keeps writing to
        a deleted (or replaced) file's inode, and every decision would be lost at the next restart."""
        try:
            st = self.path.stat()
        except OSError:
            raise LogUnavailable(f"{self.path}: the event log file is gone (removed while the service ran); restart the service") from None
        if self._identity is not None and (st.st_dev, st.st_ino) != self._identity:
            raise LogUnavailable(f"{self.path}: the event log file was replaced while the service ran; restart the service")

    @contextmanager
    def _tx(self, write: bool = True, wait_s: float | None = None):
        # (no pool: ``wait_s`` has nothing to bound; the busy timeout bounds the wait for the file's lock)
        # SQLite has one writer at a time; threads of this process queue on a mutex, because SQLite's
        # own busy handler sleeps in growing steps (1, 2, 5, 10 ms...) and would add milliseconds
        if write:
            with self._write_lock, self._tx_inner(write) as cur:
                yield cur
        else:
            with self._tx_inner(write) as cur:
                yield cur

    @contextmanager
    def _tx_inner(self, write: bool):
        conn = self._conn()
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as e:
            raise LogUnavailable(f"{self.path}: {e}") from e
        try:
            yield cur
            cur.execute("COMMIT")
        except sqlite3.IntegrityError as e:
            conn.rollback()
            if "UNIQUE" in str(e) or "PRIMARY KEY" in str(e):
                raise _Conflict(str(e)) from e
            raise
        except sqlite3.OperationalError as e:
            if conn.in_transaction:
                conn.rollback()
            raise LogUnavailable(f"{self.path}: {e}") from e
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            cur.close()

    # group commit: concurrent decisions share one transaction (and one fsync) -----------------
    def log_decision(self, record: DecisionRecord, timeout_s: float | None = None) -> DecisionRecord:
        """As :meth:`EventLog.log_decision`, but requests arriving while a commit is in flight are
        written together in the next transaction: the caller still returns only after its own row
        is durable, and the disk's fsync rate stops capping the decision rate.

        Past ``timeout_s`` a decision not yet in a committing transaction is abandoned: the writer
        skips it (or deletes its row before committing), so "not logged" is the truth.
        """
        _check_propensity(record)
        pending = _Pending(record)
        self._enqueue(pending)
        limit = self.busy_timeout_ms / 1000 + 5 if timeout_s is None else timeout_s
        assert pending.done is not None
        if not pending.done.wait(limit):
            if self.abandon(pending, limit):
                raise pending.error  # type: ignore[misc]
            pending.done.wait()  # in a transaction that is committing now: its outcome is the answer
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None  # the writer sets a result or an error before done
        return pending.result

    #: decisions can be submitted from an event loop (:meth:`submit_decision`) without a thread each
    group_commit = True

    def submit_decision(self, record: DecisionRecord, loop, callback) -> _Pending:
        """Queue ``record`` for the next group commit; ``callback(logged, error)`` runs on ``loop`` once
        it is durable (or failed). The caller bounds the wait itself with :meth:`abandon`."""
        _check_propensity(record)
        pending = _Pending(record, loop, callback)
        self._enqueue(pending)
        return pending

    def abandon(self, pending: _Pending, waited_s: float) -> bool:
        """Give up on a decision not yet in a committing transaction (True: it will never be written,
        and ``pending.error`` says why); False: it is committing, its outcome is coming."""
        with self._queue_lock:
            if pending.state == "committing" or pending.result is not None or pending.error is not None:
                return False
            pending.state = "abandoned"
            pending.error = LogUnavailable(f"{self.path}: the event log did not take the decision within {waited_s * 1000:.0f} ms")
        self._wrote(pending.error)
        return True

    def _enqueue(self, pending: _Pending) -> None:
        with self._queue_lock:
            self._queue.append(pending)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_batches, name="backdrop-eventlog-writer", daemon=True)
                self._writer.start()
            self._queue_cv.notify()

    def _write_batches(self) -> None:
        try:
            while True:
                with self._queue_lock:
                    while not self._queue:
                        if not self._queue_cv.wait(timeout=self.writer_idle_s) and not self._queue:
                            self._writer = None  # idle: exit; the next decision starts a new writer
                            return
                    batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                    batch = [p for p in batch if p.state == "queued"]
                if batch:
                    self._write_batch(batch)
        finally:
            self._close_thread_connection()

    def _write_batch(self, batch: list[_Pending]) -> None:
        written: list[_Pending] = []
        try:
            with self._tx() as cur:
                plain = [p for p in batch if p.state == "queued" and p.record.request_id is None]
                if plain:  # one statement for the batch: their seqs are consecutive (one writer, one transaction)
                    cur.executemany(_INSERT, [_decision_row(p.record) for p in plain])
                    cur.execute("SELECT last_insert_rowid()")
                    first = int(cur.fetchone()[0]) - len(plain) + 1
                    for i, p in enumerate(plain):
                        p.record.seq = first + i
                        p.result = p.record
                    written += plain
                for p in batch:
                    if p.state != "queued" or p.record.request_id is None:
                        continue
                    try:
                        p.result = self._insert_decision(cur, p.record)
                        written.append(p)
                    except RequestConflict as e:  # this request only; the batch goes on
                        p.error = e
                with self._queue_lock:
                    for p in written:
                        if p.state == "queued":
                            p.state = "committing"
                abandoned = [p for p in written if p.state == "abandoned"]
                for p in abandoned:  # answered as not logged while we were inserting: not written
                    cur.execute(self._sql("DELETE FROM decisions WHERE decision_id = ?"), (p.record.decision_id,))
            self._wrote()
        except Exception as e:  # noqa: BLE001 - every waiter gets the reason; none is claimed as logged
            err = e if isinstance(e, (LogUnavailable, ValueError)) else LogUnavailable(f"{self.path}: {e}")
            self._wrote(err)
            for p in batch:
                if p.error is None:
                    p.result, p.error = None, err
        _deliver(batch)

    def _close_thread_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
