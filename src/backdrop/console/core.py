"""The console's domain, without HTTP: the store it reviews, the event log it reads, the thumbnails.

One :class:`Console` per app. The store's index is one connection, so calls to it take a lock
(pages are a few SQL queries on indexed columns; see ``benchmarks/bench_console.py``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..creative import review as reviews
from ..creative.store import CreativeStore, StoreError
from ..errors import BackdropError, EnvironmentFailure
from ..serving.eventlog.reader import LogReader
from .auth import Keyring, User
from .images import Thumbnails, default_cache
from .results import results
from .sessions import SignInLimits, open_sessions, state_dir

#: how long the results page's figures are reused (the log may hold millions of decisions)
RESULTS_TTL_S = 5.0
#: how long the filters' choices (categories, styles, placements: they change when a catalog is generated) are reused
OPTIONS_TTL_S = 30.0


class ConsoleError(BackdropError):
    status = 400


class NotFound(ConsoleError):
    status = 404


class Forbidden(ConsoleError):
    status = 403


class Conflict(ConsoleError):
    status = 409


@dataclass
class ConsoleConfig:
    """What a console serves and who may use it."""

    store: str | Path
    keyring: Keyring
    #: the store's index when it is not STORE/index.sqlite (postgresql://... or a path)
    store_index: str | None = None
    #: the event log (sqlite path or postgresql://...); default: STORE/events.sqlite
    db: str | None = None
    thumb_cache: Path = field(default_factory=default_cache)
    #: the decision service's Prometheus metrics text (a callable: read when the results page is)
    metrics: Callable[[], str | None] | None = None
    #: the running experiment's planned shares (its SRM check); None: an equal split
    planned_shares: dict[str, float] | None = None
    page_size: int = 60
    session_hours: float = 8.0
    #: whether the session cookie is Secure (None: when the request came over https)
    secure_cookie: bool | None = None
    #: a session unused this long ends (and any after session_hours)
    session_idle_minutes: float = 60.0
    #: where sessions are kept: an SQLite file or ":memory:" (None: STORE/console-sessions.sqlite, or
    #: $XDG_STATE_HOME/backdrop/ when the store is on object storage or cannot take it)
    sessions: str | Path | None = None
    #: reverse proxies (addresses or networks) whose X-Forwarded-For and X-Forwarded-Proto are believed;
    #: none: the connection's own address is the client's
    trusted_proxies: Sequence[str] = ()
    #: failed sign-ins allowed per address, and the slow-down per account
    limits: SignInLimits = field(default_factory=SignInLimits)


class Console:
    def __init__(self, config: ConsoleConfig):
        self.config = config
        self.lock = threading.Lock()
        #: why reviews cannot be saved ("" when they can)
        self.readonly_reason = ""
        try:
            self.store = CreativeStore(config.store, index=config.store_index)  # read-write: the review tables
        except (EnvironmentFailure, StoreError, OSError) as e:
            self.store = CreativeStore(config.store, readonly=True, index=config.store_index)
            self.readonly_reason = f"reviews cannot be saved: the store's index is read-only ({e})"
        db = config.db
        if db is None:
            if self.store.remote:
                raise BackdropError(f"{config.store} is on object storage: give the event log with --db")
            db = str(self.store.root / "events.sqlite")
        self.log = LogReader(db)
        self.thumbs = Thumbnails(config.thumb_cache)
        self.sessions, warning = open_sessions(self._session_paths(), hours=config.session_hours, idle_minutes=config.session_idle_minutes)
        if warning:
            logging.getLogger("backdrop.console").warning("%s", warning)
        self._results: tuple[float, dict] | None = None
        self._options: tuple[float, dict] | None = None

    def _session_paths(self) -> list[str | Path]:
        if self.config.sessions is not None:
            return [self.config.sessions]
        fallback = state_dir() / f"console-sessions-{hashlib.sha256(str(self.config.store).encode()).hexdigest()[:16]}.sqlite"
        return [fallback] if self.store.remote else [self.store.root / "console-sessions.sqlite", fallback]

    def close(self) -> None:
        self.store.close()
        self.log.close()
        self.sessions.close()

    # -- review ------------------------------------------------------------------------------

    def page(self, f: reviews.ReviewFilter, page: int) -> dict:
        size = self.config.page_size
        with self.lock:
            items, total = reviews.review_page(self.store, f, offset=(page - 1) * size, limit=size)
            counts = reviews.review_counts(self.store)
            if self._options is None or time.monotonic() - self._options[0] > OPTIONS_TTL_S:
                self._options = (time.monotonic(), reviews.filter_options(self.store))
            options = self._options[1]
        pages = max(1, -(-total // size))
        return {"items": items, "total": total, "page": page, "pages": pages, "counts": counts, "options": options, "size": size}

    def counts(self) -> dict[str, int]:
        with self.lock:
            return reviews.review_counts(self.store)

    def review(self, user: User, keys: list[str], status: str, reason: str) -> list[reviews.ReviewChange]:
        if not user.can("reviewer"):
            raise Forbidden(f"{user.name} is a {user.role}: reviewing needs the reviewer role")
        self._writable()
        if not keys:
            raise ConsoleError("no creative selected")
        if status not in reviews.REVIEW_STATUSES:
            raise ConsoleError(f"status must be one of {', '.join(reviews.REVIEW_STATUSES)}")
        try:
            with self.lock:
                return reviews.set_review(self.store, keys, status, reviewer=user.name, role=user.role, reason=reason.strip()[:500])
        except StoreError as e:
            raise NotFound(str(e)) from None

    def review_style(self, user: User, style: str, category: str, status: str, reason: str) -> dict:
        """A whole style of a category: approving takes the pending creatives QA did not flag (a
        flagged one needs a look of its own); rejecting takes them all."""
        if not user.can("admin"):
            raise Forbidden(f"{user.name} is a {user.role}: a whole style at once needs the admin role")
        if status not in ("approved", "rejected"):
            raise ConsoleError("a whole style is approved or rejected")
        if not style:
            raise ConsoleError("choose the style")
        self._writable()
        with self.lock:
            keys = reviews.keys_of_style(self.store, style, category, only_pending_unflagged=status == "approved")
            flagged = 0
            if status == "approved":
                flagged = reviews.review_page(self.store, reviews.ReviewFilter("flagged", category, style), limit=1)[1]
            changes = reviews.set_review(self.store, keys, status, reviewer=user.name, role=user.role, reason=reason.strip()[:500])
        return {"changed": len(changes), "matched": len(keys), "flagged_left_pending": flagged}

    def _writable(self) -> None:
        if self.readonly_reason:
            raise Conflict(self.readonly_reason)

    def audit(self, key: str | None, limit: int = 200) -> list[reviews.ReviewChange]:
        with self.lock:
            return reviews.audit(self.store, key or None, limit)

    def creative(self, key: str):
        with self.lock:
            record = self.store.get(key)
        if record is None:
            raise NotFound(f"no creative {key} in the store")
        return record

    def product(self, product_id: str) -> dict:
        with self.lock:
            p = self.store.product(product_id)
        if p is None:
            raise NotFound(f"no product {product_id} in the store")
        return p

    def creative_bytes(self, key: str) -> bytes:
        record = self.creative(key)
        try:
            return self.store.read_bytes(record)
        except (OSError, FileNotFoundError):
            raise NotFound(f"creative {key}: its file {record.path} cannot be read; run `backdrop store verify`") from None

    def catalog_bytes(self, product_id: str) -> bytes:
        p = self.product(product_id)
        try:
            return Path(p["image_path"]).read_bytes()
        except OSError:
            raise NotFound(f"product {product_id}: its catalog image {p['image_path']} cannot be read") from None

    def thumbnail(self, key: str) -> bytes:
        return self.thumbs.get(key, lambda: self.creative_bytes(key))

    def catalog_thumbnail(self, product_id: str) -> bytes:
        p = self.product(product_id)
        return self.thumbs.get("catalog-" + p["image_sha256"][:32], lambda: self.catalog_bytes(product_id))

    # -- results -----------------------------------------------------------------------------

    def results(self) -> dict:
        now = time.monotonic()
        if self._results is not None and now - self._results[0] < RESULTS_TTL_S:
            return self._results[1]
        with self.lock:
            categories = {p["product_id"]: p["category"] for p in self.store.products()}
        text, error = None, ""
        if self.config.metrics is not None:
            try:
                text = self.config.metrics()
            except Exception as e:  # noqa: BLE001 - the service may be down; the page says so
                error = str(e) or type(e).__name__
        data = results(self.log, categories, text, self.config.planned_shares)
        data["metrics_error"] = error
        self._results = (now, data)
        return data
