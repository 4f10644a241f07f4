"""The creative store's index: SQLite beside a local store (WAL mode), or PostgreSQL when several
machines write one store on object storage (``--index postgresql://...``).

Both are used through the same few calls of :mod:`sqlite3`'s connection (``execute``, ``with conn:``
for a transaction, ``close``); the store's SQL is written for SQLite and :func:`to_postgres` turns
it into PostgreSQL's (placeholders, upserts, the migration lock, the catalog query, column types).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from ..errors import EnvironmentFailure
from ..text import redact_url

#: the primary key of every table the store upserts into
PRIMARY_KEYS = {
    "meta": ("key",),
    "products": ("product_id",),
    "creatives": ("key",),
    "subjects": ("image_sha256", "method"),
    "reviews": ("key",),
}
_MIGRATION_LOCK = 0x62616B64  # "bakd": one migrating writer at a time
_UPSERT = re.compile(r"INSERT OR REPLACE INTO (\w+)\s*(?:\(([^)]*)\))?\s*VALUES", re.IGNORECASE)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def to_postgres(sql: str, columns: dict[str, list[str]]) -> str:
    """The store's SQLite statement as PostgreSQL's; ``columns``: table -> its columns, for upserts
    that list none.

    >>> to_postgres("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", {"meta": ["key", "value"]})
    "INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    """
    stripped = sql.strip()
    if stripped == "BEGIN IMMEDIATE":
        return f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"
    if "sqlite_master" in stripped:  # does a table exist?
        return re.sub(
            r"SELECT name FROM sqlite_master WHERE name='(\w+)'",
            r"SELECT table_name FROM information_schema.tables WHERE table_name='\1' AND table_schema=current_schema()",
            stripped,
        )
    out = sql.replace("?", "%s")
    if stripped.upper().startswith(("CREATE TABLE", "ALTER TABLE")):
        out = out.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        out = re.sub(r"\bREAL\b", "DOUBLE PRECISION", out)
        out = re.sub(r"\bINTEGER\b", "BIGINT", out)
    m = _UPSERT.search(out)
    if m:
        table = m.group(1)
        cols = [c.strip() for c in m.group(2).split(",")] if m.group(2) else columns[table]
        pk = PRIMARY_KEYS[table]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in pk)
        out = _UPSERT.sub(lambda mm: mm.group(0).replace("INSERT OR REPLACE INTO", "INSERT INTO"), out, count=1)
        out += f" ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {sets}"
    return out


class PostgresIndex:
    """A PostgreSQL connection that answers like :class:`sqlite3.Connection` for the store's calls."""

    def __init__(self, url: str, columns: dict[str, list[str]]):
        import psycopg

        self.url = url
        self._columns = columns
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as e:
            raise EnvironmentFailure(f"{redact_url(url)}: cannot connect to the store's index: {str(e).strip().splitlines()[0]}") from None
        self._tx: Any = None

    def execute(self, sql: str, args: tuple | list = ()) -> Any:
        cur = self._conn.cursor()
        cur.execute(to_postgres(sql, self._columns), tuple(args))
        return cur

    def __enter__(self) -> PostgresIndex:
        self._tx = self._conn.transaction()
        self._tx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        tx, self._tx = self._tx, None
        tx.__exit__(*exc)

    def close(self) -> None:
        self._conn.close()


def open_sqlite(path: Path, readonly: bool) -> sqlite3.Connection:
    if not readonly:
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("PRAGMA journal_mode=WAL")  # the first read of the file: a corrupt one fails here
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    # Read-only; on read-only media (no -shm file can be created beside a WAL index) the index is
    # opened as immutable: nothing may write it meanwhile, which a read-only mount guarantees.
    for query in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(f"file:{path}?{query}", uri=True, timeout=60, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as e:
            conn.close()
            if query == "immutable=1" or not any(s in str(e) for s in ("readonly", "read-only", "unable to open")):
                raise
        except sqlite3.DatabaseError:
            conn.close()
            raise
    raise AssertionError("unreachable")
