"""Group commit: decisions arriving together share one transaction (one commit, one fsync)."""

from __future__ import annotations

import contextlib
import functools
import threading

from ..records import DecisionRecord
from .base import _DECISION_COLUMNS, EventLog, LogUnavailable, RequestConflict, _check_propensity

_N_COLUMNS = len(_DECISION_COLUMNS.split(","))


@functools.lru_cache(maxsize=512)
def insert_rows(n: int, placeholder: str = "?", returning: str = "") -> str:
    """One INSERT of ``n`` decision rows (a batch is one statement on both backends: one round trip
    on PostgreSQL; one step on SQLite, whose Python driver releases the GIL once per step, so the
    writer waits for the GIL once per batch rather than once per row)."""
    row = "(" + ", ".join([placeholder] * _N_COLUMNS) + ")"
    return f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES {', '.join([row] * n)}{returning}"


class _Pending:
    """A decision waiting for the group commit. ``state`` (changed under the queue lock):
    ``queued`` -> ``committing`` (its row is in the transaction about to commit: the caller waits
    for the outcome) or ``abandoned`` (the caller gave up and answered it as not logged: the writer
    skips it, or deletes its row before the commit)."""

    __slots__ = ("callback", "done", "error", "loop", "record", "result", "state")

    def __init__(self, record: DecisionRecord, loop=None, callback=None):
        self.record = record
        self.result: DecisionRecord | None = None
        self.error: Exception | None = None
        #: a caller on a thread waits on ``done``; one on an event loop gets ``callback(result, error)`` there
        self.done = threading.Event() if loop is None else None
        self.loop, self.callback = loop, callback
        self.state = "queued"


def _deliver(batch: list[_Pending]) -> None:
    """Tell every waiter of a written batch: threads by their event, event loops by one call each."""
    by_loop: dict = {}
    for p in batch:
        if p.loop is None:
            assert p.done is not None
            p.done.set()
        else:
            by_loop.setdefault(p.loop, []).append(p)
    for loop, pending in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_callbacks, pending)


def _callbacks(pending: list[_Pending]) -> None:
    for p in pending:
        p.callback(p.result, p.error)


class GroupCommit(EventLog):
    """An event log whose decisions arriving together share one transaction (one commit, one
    fsync): a writer thread takes what is queued, inserts it in one statement and commits; each
    caller returns (or its event loop's callback runs) only once its own row is durable. A backend
    provides ``_tx`` and ``_insert_batch``."""

    #: the writer thread exits after this long without work (and lets go of its connection)
    writer_idle_s = 5.0
    max_batch = 256
    #: writer threads (each commits its own batches): 1 where the database has one writer anyway
    max_writers = 1

    def _init_group_commit(self) -> None:
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._queue_cv = threading.Condition(self._queue_lock)
        self._writers: set[threading.Thread] = set()
        self._idle_writers = 0

    def _writer_done(self) -> None:
        pass

    def _insert_batch(self, cur, plain: list[_Pending]) -> None:  # pragma: no cover - abstract
        """Insert ``plain`` (no request_id) in one statement, setting each one's seq and result."""
        raise NotImplementedError

    @property
    def default_wait_s(self) -> float:
        """How long a decision waits for its commit when the caller gives no timeout."""
        return 10.0

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
        limit = self.default_wait_s if timeout_s is None else timeout_s
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
            pending.error = LogUnavailable(f"{self.redacted_url}: the event log did not take the decision within {waited_s * 1000:.0f} ms")
        self._wrote(pending.error)
        return True

    def _enqueue(self, pending: _Pending) -> None:
        with self._queue_lock:
            self._queue.append(pending)
            if not self._idle_writers and len(self._writers) < self.max_writers:
                writer = threading.Thread(target=self._write_batches, name="backdrop-eventlog-writer", daemon=True)
                self._writers.add(writer)
                writer.start()
            self._queue_cv.notify()

    def _write_batches(self) -> None:
        try:
            while True:
                with self._queue_lock:
                    while not self._queue:
                        self._idle_writers += 1
                        woken = self._queue_cv.wait(timeout=self.writer_idle_s)
                        self._idle_writers -= 1
                        if not woken and not self._queue:
                            self._writers.discard(threading.current_thread())  # idle: exit; a decision starts a new one
                            return
                    batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                    batch = [p for p in batch if p.state == "queued"]
                if batch:
                    self._write_batch(batch)
        finally:
            self._writer_done()

    def _write_batch(self, batch: list[_Pending]) -> None:
        written: list[_Pending] = []
        try:
            with self._tx() as cur:
                self._before_decision_insert(cur, None)
                plain = [p for p in batch if p.state == "queued" and p.record.request_id is None]
                if plain:  # one statement for the batch
                    self._insert_batch(cur, plain)
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
            err = e if isinstance(e, (LogUnavailable, ValueError)) else LogUnavailable(f"{self.redacted_url}: {e}")
            self._wrote(err)
            for p in batch:
                if p.error is None:
                    p.result, p.error = None, err
        _deliver(batch)
