"""An event log from a URL: postgresql://... or an SQLite path."""

from __future__ import annotations

from pathlib import Path

from ...errors import BackdropError
from .base import (
    EventLog,
)
from .postgres import PostgresEventLog
from .sqlite import SQLiteEventLog


def open_event_log(url: str, **kwargs) -> EventLog:
    """``postgresql://...`` -> :class:`PostgresEventLog`; ``sqlite:///path`` or a plain path -> :class:`SQLiteEventLog`."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresEventLog(url, **kwargs)
    path = url.removeprefix("sqlite:///")
    if "://" in path:
        raise BackdropError(f"event log URL {url!r}: use postgresql://user:pass@host/db or an SQLite path")
    return SQLiteEventLog(Path(path), **kwargs)
