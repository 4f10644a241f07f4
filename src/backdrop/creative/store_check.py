"""Checking a creative store against its index, and repairing it: ``backdrop store verify|repair``."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..text import redact_url
from .storage import is_remote, open_files
from .store import CreativeStore, StoreError


@dataclass
class StoreReport:
    """What :func:`verify_store` found (and :func:`repair_store` did about it)."""

    #: the store as given: its folder, or its object-storage URL
    root: str
    creatives: int = 0
    #: index rows whose file is missing
    missing: list[str] = field(default_factory=list)
    #: index rows whose file does not have the indexed size (truncated or replaced)
    mismatched: list[str] = field(default_factory=list)
    #: files under creatives/ that no index row names
    orphans: list[str] = field(default_factory=list)
    #: temp files of writers that died mid-write
    temp: list[str] = field(default_factory=list)
    #: the index itself could not be read (and, after repair, was moved to this path)
    corrupt_index: str | None = None
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.orphans or self.temp or self.corrupt_index)

    def to_dict(self) -> dict:
        return {
            "store": str(self.root),
            "ok": self.ok,
            "creatives": self.creatives,
            "missing": self.missing,
            "mismatched": self.mismatched,
            "orphans": self.orphans,
            "temp": self.temp,
            "corrupt_index": self.corrupt_index,
            "repaired": self.repaired,
        }


def verify_store(root: str | Path, *, index: str | None = None, storage_options: dict | None = None) -> StoreReport:
    """Check every indexed file exists with its indexed size, and every file is indexed."""
    files = open_files(root, storage_options)
    report = StoreReport(files.url)
    if index is None and (is_remote(root) or not (Path(files.url) / "index.sqlite").is_file()):
        raise StoreError(f"{root}: not a creative store (no index.sqlite)")
    try:
        store = CreativeStore(root, readonly=True, index=index, storage_options=storage_options)
        rows = store._db().execute("SELECT key, path, bytes FROM creatives").fetchall()
        store.close()
    except (StoreError, sqlite3.DatabaseError) as e:
        report.corrupt_index = str(e)
        rows = []
    report.creatives = len(rows)
    on_disk = dict(files.walk("creatives"))
    indexed = set()
    for key, rel, nbytes in rows:
        indexed.add(rel)
        size = on_disk.get(rel)
        if size is None:
            report.missing.append(key)
        elif size != nbytes:
            report.mismatched.append(key)
    for rel in sorted(on_disk):
        if rel.endswith(".tmp"):
            report.temp.append(rel)
        elif rel not in indexed or report.corrupt_index:  # a corrupt index: every file is an orphan of the one to be rebuilt
            report.orphans.append(rel)
    return report


def repair_store(root: str | Path, *, index: str | None = None, storage_options: dict | None = None) -> StoreReport:
    """Make the index and the files agree: rows whose file is missing or damaged are removed (the next
    ``backdrop generate`` makes them again), orphan and temp files are deleted; an index that cannot be
    read is moved aside (``index.sqlite.corrupt-<time>``) and a fresh one created."""
    report = verify_store(root, index=index, storage_options=storage_options)
    if report.corrupt_index:
        if index is not None:  # a server's database is not ours to move aside
            raise StoreError(
                f"{redact_url(str(index))}: the store's index cannot be read ({report.corrupt_index}); restore it from a backup"
            )
        local = Path(str(root))
        aside = local / f"index.sqlite.corrupt-{int(time.time())}"
        os.replace(local / "index.sqlite", aside)
        for suffix in ("-wal", "-shm"):
            (local / f"index.sqlite{suffix}").unlink(missing_ok=True)
        report.corrupt_index = f"{report.corrupt_index} (moved to {aside.name})"
    store = CreativeStore(root, index=index, storage_options=storage_options)
    damaged = [store.get(key) for key in report.mismatched]
    with store._db() as db:
        for key in report.missing + report.mismatched:
            db.execute("DELETE FROM creatives WHERE key=?", (key,))
    for rec in damaged:
        if rec is not None:
            store.files.delete(rec.path)
    for rel in report.orphans + report.temp:
        store.files.delete(rel)
    store.close()
    report.repaired = True
    return report
