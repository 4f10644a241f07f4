"""Content-addressed creative store: image files plus an SQLite index.

A creative's key hashes everything that determines its pixels: the product image's content,
the style (name and full spec), the placement (size and layout), the generator (name, version
and settings), the mask method, what the photo analysis found (cut sides, on-model), the prompts
and the seed. Every creative carries a QA status (``ok`` or ``flagged``, with the reasons) that
the report and the decision service read. Re-running a job therefore generates nothing new,
an interrupted job resumes where it stopped, and parallel workers are safe: files are written
to a temporary name and renamed into place, index rows are inserted in WAL mode, and a key that
two workers produce at once has the same bytes either way.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import BackdropError, EnvironmentFailure
from ..text import redact_url
from .storage import StoreFiles, is_remote, open_files
from .store_index import PostgresIndex, is_postgres, open_sqlite

SCHEMA_VERSION = 5
KEY_VERSION = 2
QA_STATUSES = ("ok", "flagged")
FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}
LOSSLESS_FORMATS = {"png", "webp"}

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS products (
        product_id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        category TEXT NOT NULL,
        image_path TEXT NOT NULL,
        image_sha256 TEXT NOT NULL,
        fields TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS creatives (
        key TEXT PRIMARY KEY,
        product_id TEXT NOT NULL,
        style TEXT NOT NULL,
        placement TEXT NOT NULL,
        generator TEXT NOT NULL,
        generator_version TEXT NOT NULL,
        seed INTEGER NOT NULL,
        path TEXT NOT NULL,
        format TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        prompt TEXT NOT NULL,
        negative_prompt TEXT NOT NULL,
        params TEXT NOT NULL,
        metrics TEXT NOT NULL,
        created_at REAL NOT NULL,
        qa_status TEXT NOT NULL DEFAULT 'ok',
        qa_reasons TEXT NOT NULL DEFAULT '[]'
    )""",
    """CREATE INDEX IF NOT EXISTS creatives_item ON creatives (product_id, placement, style)""",
    # the photo analysis (cut sides, on-model, trapped background) per image content and method
    """CREATE TABLE IF NOT EXISTS subjects (
        image_sha256 TEXT NOT NULL,
        method TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (image_sha256, method)
    )""",
    # what a person decided about a creative (no row: pending), and every change, append-only
    """CREATE TABLE IF NOT EXISTS reviews (
        key TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL,
        seq INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS review_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        status TEXT NOT NULL,
        previous TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        role TEXT NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL,
        action INTEGER NOT NULL DEFAULT 0,
        undoes INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE INDEX IF NOT EXISTS review_audit_key ON review_audit (key)""",
    # a reviewer's actions (one per click, of any size) and what undid them: `u` in the console
    """CREATE INDEX IF NOT EXISTS review_audit_action ON review_audit (reviewer, action)""",
    # the review console filters and pages 100k creatives in SQL (the grid's order is an index's)
    """CREATE INDEX IF NOT EXISTS creatives_review_order ON creatives (product_id, placement, style, key)""",
    """CREATE INDEX IF NOT EXISTS creatives_style ON creatives (style, placement)""",
    """CREATE INDEX IF NOT EXISTS creatives_qa ON creatives (qa_status)""",
    """CREATE INDEX IF NOT EXISTS products_category ON products (category)""",
    # styles taken out of a category's rotation (their creatives stay): `backdrop evolve --retire`
    """CREATE TABLE IF NOT EXISTS retired (
        category TEXT NOT NULL,
        style TEXT NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (category, style)
    )""",
]
#: schema 1 -> 2: every creative gets a QA status (rows from before the checks existed are "ok"
#: with no reasons: they were never checked, and say so in their metrics' absence of "qa")
_UPGRADES = {
    2: [
        "ALTER TABLE creatives ADD COLUMN qa_status TEXT NOT NULL DEFAULT 'ok'",
        "ALTER TABLE creatives ADD COLUMN qa_reasons TEXT NOT NULL DEFAULT '[]'",
    ],
    # schema 2 -> 3: the review tables and the console's indexes (created by _SCHEMA's IF NOT EXISTS)
    # schema 3 -> 4: the retired table (likewise)
    # schema 4 -> 5: review changes grouped into actions, and undos (rows from before: action 0, each its own)
    5: [
        "ALTER TABLE review_audit ADD COLUMN action INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE review_audit ADD COLUMN undoes INTEGER NOT NULL DEFAULT 0",
    ],
}


#: the style (arm) of the baseline creative: the catalog photo fitted to the placement's canvas,
#: product untouched (:mod:`backdrop.imaging.plain`); the same name as
#: :data:`backdrop.bandit.arms.ORIGINAL`, which the creative layer cannot import (the bandit imports it)
ORIGINAL = "original"


class StoreError(BackdropError):
    pass


def arm_name(style: str, overlay: str = "") -> str:
    """>>> arm_name("studio-sweep", "price"), arm_name("studio-sweep")
    ('studio-sweep+price', 'studio-sweep')
    """
    return f"{style}+{overlay}" if overlay else style


def creative_key(
    *,
    image_sha256: str,
    style_spec: dict,
    placement_spec: dict,
    generator: str,
    generator_version: str,
    generator_spec: dict,
    mask_method: str,
    seed: int,
    fmt: str,
    subject: dict | None = None,
    prompt: str = "",
    negative_prompt: str = "",
    overlay: dict | None = None,
    product_id: str | None = None,
) -> str:
    """The content address of a creative (32 hex digits); ``overlay`` (template, what it shows,
    where it may go) only when the creative carries one, so the plain ones keep their keys;
    ``product_id`` for a creative nothing else ties to its product (the baseline: two catalog rows
    may share a photo, and each needs its own row in the index)."""
    extra: dict[str, object] = {"overlay": overlay} if overlay is not None else {}
    if product_id is not None:
        extra["product"] = product_id
    blob = json.dumps(
        extra
        | {
            "v": KEY_VERSION,
            "image": image_sha256,
            "style": style_spec,
            "placement": placement_spec,
            "generator": [generator, generator_version, generator_spec],
            "mask": mask_method,
            "subject": subject or {},
            "prompt": [prompt, negative_prompt],
            "seed": seed,
            "format": fmt,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


@dataclass(frozen=True)
class CreativeRecord:
    key: str
    product_id: str
    style: str
    placement: str
    generator: str
    generator_version: str
    seed: int
    path: str
    format: str
    width: int
    height: int
    bytes: int
    prompt: str
    negative_prompt: str
    params: dict
    metrics: dict
    created_at: float
    #: "ok" or "flagged"
    qa_status: str = "ok"
    #: why it is flagged: [{"check": ..., "detail": ...}]
    qa_reasons: tuple = ()

    @property
    def flagged(self) -> bool:
        return self.qa_status == "flagged"

    @property
    def overlay(self) -> str:
        """The overlay template it carries ('' for none)."""
        return str((self.params.get("overlay") or {}).get("name", ""))

    @property
    def arm(self) -> str:
        """What the bandit chooses: the style, with its overlay when it has one ("studio-sweep+price")."""
        return arm_name(self.style, self.overlay)


def encode_image(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(image)
    if fmt == "png":
        # Level 1: the grain that keeps gradients free of banding makes higher levels cost 60% more
        # time for 9% fewer bytes.
        im.save(buf, "PNG", compress_level=1)
    elif fmt == "webp":
        im.save(buf, "WEBP", lossless=True, method=1)
    elif fmt == "jpeg":
        im.save(buf, "JPEG", quality=92, subsampling=0)
    else:
        raise ValueError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    return buf.getvalue()


class CreativeStore:
    """Files under ``ROOT/creatives/`` and an index at ``ROOT/index.sqlite``.

    ``root`` may also be object storage (``s3://bucket/prefix`` and other fsspec URLs;
    ``storage_options`` go to the file system), with the index given apart: ``index`` a
    ``postgresql://`` URL (several machines writing one store) or an SQLite path (one machine).
    A PostgreSQL index serves a local store too.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        readonly: bool = False,
        index: str | Path | None = None,
        storage_options: dict | None = None,
    ):
        self.location = str(root)
        self.remote = is_remote(root)
        self.files: StoreFiles = open_files(root, storage_options)
        self._root = Path(self.files.url) if not self.remote else None
        self.readonly = readonly
        self.storage_options = storage_options
        if self.remote and index is None:  # an SQLite file on object storage cannot be locked or written in place
            raise StoreError(
                f"{root}: a store on object storage needs --index: postgresql://... (several machines) or a local SQLite path (one machine)"
            )
        self.index_url = str(index) if index is not None else str(self.root / "index.sqlite")
        self.postgres = is_postgres(self.index_url)
        if readonly:
            if not self.postgres and not Path(self.index_url).exists():
                raise StoreError(f"{self.location}: not a creative store (no index.sqlite); run `backdrop generate` first")
        elif not self.remote:
            try:
                (self.root / "creatives").mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise EnvironmentFailure(f"{self.root}: cannot create the store: {e.strerror}") from None
        self._conn: Any = None
        self._pid: int | None = None
        if not readonly:
            try:
                self._migrate()
            except sqlite3.OperationalError as e:
                if any(s in str(e).lower() for s in ("disk is full", "readonly", "read-only", "unable to open", "disk i/o")):
                    raise EnvironmentFailure(f"{self.index_path}: cannot write the store's index: {e}") from None
                raise
            except sqlite3.DatabaseError as e:
                raise StoreError(_corrupt(self.index_path, e)) from None
            if not self.remote:
                self._sweep_orphans()

    def _sweep_orphans(self) -> None:
        """Delete temp files left by writers killed mid-write (``files.write_atomic``'s ``.KEY.PID.XXXX.tmp``, PID dead).

        Temp files of live writers (another run on this store, on this host) are left alone."""
        for tmp in (self.root / "creatives").glob("*/.*.tmp"):
            parts = tmp.name.split(".")
            pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None
            if pid is None or pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                tmp.unlink(missing_ok=True)
            except PermissionError:  # a live process of another user
                pass

    @property
    def root(self) -> Path:
        """The local folder the store's files are in (an error for a store on object storage)."""
        if self._root is None:
            raise StoreError(f"{self.location}: a store on object storage has no local folder; read its files with read_bytes")
        return self._root

    @property
    def index_path(self) -> str:
        """The index, for messages (a PostgreSQL URL without its password)."""
        return redact_url(self.index_url) if self.postgres else self.index_url

    def _db(self) -> Any:
        """The index connection (sqlite3's, or :class:`~.store_index.PostgresIndex` answering the same calls)."""
        # One connection per process: a connection must not cross a fork.
        if self._conn is None or self._pid != os.getpid():
            if self.postgres:
                conn: Any = PostgresIndex(self.index_url, _TABLE_COLUMNS)
            else:
                try:
                    conn = open_sqlite(Path(self.index_url), self.readonly)
                except sqlite3.DatabaseError as e:
                    raise StoreError(_corrupt(self.index_path, e)) from None
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _migrate(self) -> None:
        db = self._db()
        with db:
            db.execute("BEGIN IMMEDIATE")  # one migrating writer at a time
            fresh = db.execute("SELECT name FROM sqlite_master WHERE name='creatives'").fetchone() is None
            db.execute(_SCHEMA[0])
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = SCHEMA_VERSION if (fresh or row is None) else int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.index_path}: store schema {version} is newer than this backdrop supports ({SCHEMA_VERSION}); upgrade backdrop"
                )
            if not fresh:
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    for stmt in _UPGRADES.get(v, []):
                        table = stmt.split()[2]  # ALTER TABLE name ...: a table made later by _SCHEMA is made whole
                        if db.execute(f"SELECT name FROM sqlite_master WHERE name='{table}'").fetchone() is not None:
                            db.execute(stmt)
            for stmt in _SCHEMA[1:]:
                db.execute(stmt)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __getstate__(self):
        return {"location": self.location, "readonly": self.readonly, "index": self.index_url, "storage_options": self.storage_options}

    def __setstate__(self, state):
        # reopened on the other side (another process, another Ray node): files and index by address
        self.__init__(state["location"], readonly=True, index=state["index"], storage_options=state["storage_options"])  # type: ignore[misc]
        self.readonly = state["readonly"]

    # -- products -------------------------------------------------------------------------

    def put_product(self, product, image_sha256: str) -> None:
        db = self._db()
        with db:
            db.execute(
                "INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    product.product_id,
                    product.title,
                    product.category_str,
                    str(product.image_path),
                    image_sha256,
                    json.dumps(product.fields(), sort_keys=True),
                    time.time(),
                ),
            )

    def product(self, product_id: str) -> dict | None:
        row = self._db().execute(f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE product_id=?", (product_id,)).fetchone()
        return None if row is None else _product(row)

    def products(self) -> list[dict]:
        rows = self._db().execute(f"SELECT {_PRODUCT_COLUMNS} FROM products ORDER BY product_id").fetchall()
        return [_product(row) for row in rows]

    # -- creatives ------------------------------------------------------------------------

    @staticmethod
    def rel_path(key: str, fmt: str) -> str:
        """Where a creative's file goes, relative to the store's root."""
        return f"creatives/{key[:2]}/{key}.{fmt if fmt != 'jpeg' else 'jpg'}"

    def has(self, key: str) -> bool:
        row = self._db().execute("SELECT path FROM creatives WHERE key=?", (key,)).fetchone()
        return row is not None and self.files.size(row[0]) is not None

    def existing(self, keys: list[str]) -> set[str]:
        if not keys:
            return set()
        found: set[str] = set()
        db = self._db()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = db.execute(f"SELECT key, path FROM creatives WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            found.update(k for k, p in rows if self.files.size(p) is not None)
        return found

    def put(
        self,
        key: str,
        image: np.ndarray,
        *,
        fmt: str,
        product_id: str,
        style: str,
        placement: str,
        generator: str,
        generator_version: str,
        seed: int,
        prompt: str,
        negative_prompt: str,
        params: dict,
        metrics: dict,
        qa_status: str = "ok",
        qa_reasons: list | tuple = (),
    ) -> CreativeRecord:
        """Write the image atomically, then index it. Safe to call twice for the same key."""
        if qa_status not in QA_STATUSES:
            raise ValueError(f"qa_status must be one of {QA_STATUSES}, got {qa_status!r}")
        data = encode_image(image, fmt)
        rel = self.rel_path(key, fmt)
        self.files.write(rel, data, tmp_name=key)
        record = CreativeRecord(
            key=key,
            product_id=product_id,
            style=style,
            placement=placement,
            generator=generator,
            generator_version=generator_version,
            seed=seed,
            path=rel,
            format=fmt,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            bytes=len(data),
            prompt=prompt,
            negative_prompt=negative_prompt,
            params=params,
            metrics=metrics,
            created_at=time.time(),
            qa_status=qa_status,
            qa_reasons=tuple(qa_reasons),
        )
        db = self._db()
        with db:
            db.execute(
                f"INSERT OR REPLACE INTO creatives ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.key,
                    record.product_id,
                    record.style,
                    record.placement,
                    record.generator,
                    record.generator_version,
                    record.seed,
                    record.path,
                    record.format,
                    record.width,
                    record.height,
                    record.bytes,
                    record.prompt,
                    record.negative_prompt,
                    json.dumps(record.params, sort_keys=True),
                    json.dumps(record.metrics, sort_keys=True),
                    record.created_at,
                    record.qa_status,
                    json.dumps(list(record.qa_reasons), sort_keys=True),
                ),
            )
        return record

    def qa_statuses(self, keys: list[str]) -> dict[str, str]:
        """key -> QA status of the given keys that are in the index."""
        out: dict[str, str] = {}
        db = self._db()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            out.update(db.execute(f"SELECT key, qa_status FROM creatives WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall())
        return out

    # -- the photo analysis cache -------------------------------------------------------------

    def subject(self, image_sha256: str, method: str) -> dict | None:
        row = self._db().execute("SELECT data FROM subjects WHERE image_sha256=? AND method=?", (image_sha256, method)).fetchone()
        return json.loads(row[0]) if row else None

    def put_subject(self, image_sha256: str, method: str, data: dict) -> None:
        db = self._db()
        with db:
            db.execute(
                "INSERT OR REPLACE INTO subjects VALUES (?, ?, ?, ?)",
                (image_sha256, method, json.dumps(data, sort_keys=True), time.time()),
            )

    def get(self, key: str) -> CreativeRecord | None:
        row = self._db().execute(f"SELECT {_COLUMNS} FROM creatives WHERE key=?", (key,)).fetchone()
        return _record(row) if row else None

    def creatives(
        self,
        *,
        product_id: str | None = None,
        placement: str | None = None,
        style: str | None = None,
        qa_status: str | None = None,
    ) -> list[CreativeRecord]:
        sql, args = f"SELECT {_COLUMNS} FROM creatives WHERE 1=1", []
        for col, val in (("product_id", product_id), ("placement", placement), ("style", style), ("qa_status", qa_status)):
            if val is not None:
                sql += f" AND {col}=?"
                args.append(val)
        sql += " ORDER BY product_id, placement, style, created_at"
        return [_record(r) for r in self._db().execute(sql, args).fetchall()]

    def __iter__(self) -> Iterator[CreativeRecord]:
        return iter(self.creatives())

    def __len__(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM creatives").fetchone()[0])

    def read_bytes(self, record: CreativeRecord) -> bytes:
        return self.files.read(record.path)

    def read_image(self, record: CreativeRecord) -> np.ndarray:
        with Image.open(io.BytesIO(self.read_bytes(record))) as im:
            return np.asarray(im.convert("RGB")).copy()


_COLUMNS = (
    "key, product_id, style, placement, generator, generator_version, seed, path, format, width, height, "
    "bytes, prompt, negative_prompt, params, metrics, created_at, qa_status, qa_reasons"
)
#: every table's columns in order (the PostgreSQL index spells out upserts with them)
_TABLE_COLUMNS = {
    "meta": ["key", "value"],
    "products": ["product_id", "title", "category", "image_path", "image_sha256", "fields", "updated_at"],
    "creatives": [c.strip() for c in _COLUMNS.split(",")],
    "subjects": ["image_sha256", "method", "data", "created_at"],
    "reviews": ["key", "status", "reviewer", "reason", "at", "seq"],
    "retired": ["category", "style", "reason", "at"],
}


def _corrupt(path: str | Path, e: Exception) -> str:
    folder = Path(path).parent
    return (
        f"{path}: the store's index cannot be read ({e}); check it with `backdrop store verify {folder}`, "
        f"rebuild it with `backdrop store repair {folder}`"
    )


def as_store(store: CreativeStore | str | Path) -> CreativeStore:
    """``store`` itself, or the (local) store at that path, created and migrated; a runner passes the
    result to its workers, which reopen it by address (files and index) wherever they run."""
    if isinstance(store, CreativeStore):
        return store
    return CreativeStore(store if is_remote(store) else Path(store).resolve())


def _record(row) -> CreativeRecord:
    (key, pid, style, placement, gen, gver, seed, path, fmt, w, h, nbytes, prompt, neg, params, metrics, created,
     qa_status, qa_reasons) = row  # fmt: skip
    return CreativeRecord(
        key=key,
        product_id=pid,
        style=style,
        placement=placement,
        generator=gen,
        generator_version=gver,
        seed=int(seed),
        path=path,
        format=fmt,
        width=int(w),
        height=int(h),
        bytes=int(nbytes),
        prompt=prompt,
        negative_prompt=neg,
        params=json.loads(params),
        metrics=json.loads(metrics),
        created_at=float(created),
        qa_status=qa_status,
        qa_reasons=tuple(json.loads(qa_reasons)),
    )


_PRODUCT_COLUMNS = "product_id, title, category, image_path, image_sha256, fields"


def _product(row: tuple) -> dict:
    return {
        "product_id": row[0],
        "title": row[1],
        "category": row[2],
        "image_path": row[3],
        "image_sha256": row[4],
        "fields": json.loads(row[5]),
    }
