"""A read-only view of the event log, for the review console's results: the database itself refuses
writes (SQLite opened ``mode=ro``; PostgreSQL sessions with ``default_transaction_read_only``), so
nothing that reads through it can change what was logged."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ...errors import BackdropError
from ...text import redact_url
from .base import LogUnavailable


class LogReader:
    """``query(sql, args)`` -> rows, on a connection that cannot write (SQL written with ``?``)."""

    def __init__(self, url: str):
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self._conn: Any = None

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        if self.postgres:
            import psycopg

            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5, options="-c default_transaction_read_only=on")
            except psycopg.OperationalError as e:
                raise LogUnavailable(f"{self.redacted_url}: {str(e).strip().splitlines()[0]}") from None
        else:
            path = Path(self.url.removeprefix("sqlite:///"))
            if "://" in str(path):
                raise BackdropError(f"event log URL {self.url!r}: use postgresql://user:pass@host/db or an SQLite path")
            if not path.is_file():
                raise LogUnavailable(f"{path}: no event log yet (it is created when `backdrop serve` first runs)")
            try:
                self._conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, check_same_thread=False, timeout=5)
            except sqlite3.Error as e:
                raise LogUnavailable(f"{path}: cannot open the event log: {e}") from None
        return self._conn

    def query(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        conn = self._connect()
        try:
            if self.postgres:
                with conn.cursor() as cur:
                    cur.execute(sql.replace("?", "%s"), tuple(args))
                    return list(cur.fetchall())
            return list(conn.execute(sql, tuple(args)).fetchall())
        except Exception as e:
            self.close()  # a broken connection is not reused
            if isinstance(e, sqlite3.OperationalError) or type(e).__module__.startswith("psycopg"):
                raise LogUnavailable(
                    f"{self.redacted_url}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
                ) from None
            raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
