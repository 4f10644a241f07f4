"""The embedded event log: one SQLite file, one writer thread that group-commits decisions."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from .base import (
    LogUnavailable,
    _Conflict,
    _decision_row,
)
from .groupcommit import GroupCommit, _Pending, insert_rows


class SQLiteEventLog(GroupCommit):
    """SQLite in WAL mode, one connection per thread; ``synchronous=FULL`` so a logged decision survives a power cut."""

    dialect = "sqlite"

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
        self._init_group_commit()

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

    # group commit (GroupCommit): one statement per batch ------------------------------------
    def _insert_batch(self, cur, plain: list[_Pending]) -> None:
        cur.execute(insert_rows(len(plain)), [v for p in plain for v in _decision_row(p.record)])
        # one writer, one transaction: the seqs are consecutive, ending at the last row's (lastrowid:
        # no second statement, so no second wait for the GIL)
        first = int(cur.lastrowid) - len(plain) + 1
        for i, p in enumerate(plain):
            p.record.seq = first + i
            p.result = p.record

    def _writer_done(self) -> None:
        self._close_thread_connection()

    @property
    def default_wait_s(self) -> float:
        return self.busy_timeout_ms / 1000 + 5

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
