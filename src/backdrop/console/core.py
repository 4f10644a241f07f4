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
from functools import partial
from pathlib import Path

from ..creative import audit as audits
from ..creative import review as reviews
from ..creative.store import CreativeStore, StoreError
from ..errors import BackdropError, EnvironmentFailure
from ..serving.eventlog.reader import LogReader
from .auth import Keyring, User
from .images import Thumbnails, ThumbnailWarmer, default_cache
from .results import results
from .sessions import SignInLimits, open_sessions, state_dir

#: how long the results page's figures are reused (the log may hold millions of decisions)
RESULTS_TTL_S = 5.0
#: how long the filters' choices (categories, styles, placements: they change when a catalog is generated) are reused
OPTIONS_TTL_S = 30.0


@dataclass(frozen=True)
class BulkSelection:
    """What a bulk action would change: the keys, the flagged creatives it leaves for a look of
    their own, and the creatives themselves (the confirmation lists them)."""

    status: str
    filter: reviews.ReviewFilter
    keys: list[str]
    flagged_left: int
    items: list

    def by_product(self) -> list[tuple[str, str, int]]:
        """(product id, title, creatives) in the selection, most first."""
        counts: dict[tuple[str, str], int] = {}
        for it in self.items:
            counts[(it.product_id, it.title)] = counts.get((it.product_id, it.title), 0) + 1
        return sorted(((pid, title, n) for (pid, title), n in counts.items()), key=lambda t: (-t[2], t[0]))

    def by_arm(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for it in self.items:
            counts[it.arm] = counts.get(it.arm, 0) + 1
        return sorted(counts.items(), key=lambda t: (-t[1], t[0]))


@dataclass(frozen=True)
class BulkDone:
    selection: BulkSelection
    changes: list


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
    #: make the pending creatives' thumbnails in the background, in the grid's order, before anyone asks
    warm_thumbnails: bool = True


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
        self.warmer = ThumbnailWarmer(self.thumbs, self._pending_in_order).start() if config.warm_thumbnails else None

    def _pending_in_order(self):
        """The pending creatives' (key, read) in the grid's order, a page at a time."""
        page, f = 0, reviews.ReviewFilter("pending")
        while True:
            with self.lock:
                items, _ = reviews.review_page(self.store, f, offset=page * 200, limit=200)
            if not items:
                return
            yield [(it.key, partial(self.creative_bytes, it.key)) for it in items]
            page += 1

    def _session_paths(self) -> list[str | Path]:
        if self.config.sessions is not None:
            return [self.config.sessions]
        fallback = state_dir() / f"console-sessions-{hashlib.sha256(str(self.config.store).encode()).hexdigest()[:16]}.sqlite"
        return [fallback] if self.store.remote else [self.store.root / "console-sessions.sqlite", fallback]

    def close(self) -> None:
        if self.warmer is not None:
            self.warmer.stop()
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
        pages = page_count(total, size)
        return {"items": items, "total": total, "page": page, "pages": pages, "counts": counts, "options": options, "size": size}

    def counts(self) -> dict[str, int]:
        with self.lock:
            return reviews.review_counts(self.store)

    def review(self, user: User, keys: list[str], status: str, code: str = "", note: str = "") -> list[reviews.ReviewChange]:
        """Set ``keys`` to ``status`` as one action; a rejection takes a reason ``code`` from
        :data:`~backdrop.creative.review.REJECT_REASONS` (and ``note``: words of the reviewer's own)."""
        self._can_review(user)
        if not keys:
            raise ConsoleError("no creative selected")
        reason = self.reason_for(status, code, note)
        try:
            with self.lock:
                return reviews.set_review(self.store, keys, status, reviewer=user.name, role=user.role, reason=reason)
        except StoreError as e:
            raise NotFound(str(e)) from None

    def undo(self, user: User) -> reviews.Undone:
        """Revert ``user``'s last action not undone yet, of any size (:func:`~backdrop.creative.review.undo_last`)."""
        self._can_review(user)
        try:
            with self.lock:
                return reviews.undo_last(self.store, reviewer=user.name, role=user.role)
        except StoreError as e:
            raise Conflict(str(e)) from None

    def bulk(self, user: User, f: reviews.ReviewFilter, status: str) -> BulkSelection:
        """What a bulk action on every creative ``f`` selects (all pages) would change: approving takes
        the pending ones QA did not flag (a flagged one needs a look of its own); rejecting takes the
        pending ones; one product's creatives need the reviewer role, anything wider the admin role."""
        self._can_review(user)
        if status not in ("approved", "rejected"):
            raise ConsoleError("a bulk action approves or rejects")
        if not (f.product or f.style or f.category or f.placement):
            raise ConsoleError("choose what to act on: a product, a style, a category or a placement")
        if not f.product and not user.can("admin"):
            raise Forbidden(f"{user.name} is a {user.role}: more than one product at once needs the admin role")
        pending = reviews.ReviewFilter("pending", f.category, f.style, f.placement, f.product)
        with self.lock:
            keys = reviews.keys_matching(self.store, pending, only_unflagged=status == "approved")
            flagged = reviews.review_page(
                self.store, reviews.ReviewFilter("flagged", f.category, f.style, f.placement, f.product), limit=1
            )[1]
            items = reviews.review_page(self.store, pending, limit=len(keys) + flagged + 1)[0] if keys else []
        chosen = set(keys)
        picked = [it for it in items if it.key in chosen]
        if not user.can("admin") and len({it.product_id for it in picked}) > 1:  # "product" also matches title words
            raise Forbidden(f"{user.name} is a {user.role}: these filters select more than one product; that needs the admin role")
        return BulkSelection(status, f, keys, flagged if status == "approved" else 0, picked)

    def bulk_apply(self, user: User, f: reviews.ReviewFilter, status: str, expected: int, code: str = "", note: str = "") -> BulkDone:
        """Apply a bulk action the user confirmed for ``expected`` creatives; refused (409) when the
        selection changed since they looked (someone else reviewed some)."""
        reason = self.reason_for(status, code, note)
        selection = self.bulk(user, f, status)
        if len(selection.keys) != expected:
            raise Conflict(
                f"the selection changed since you confirmed it: it is {len(selection.keys)} creatives now, not {expected}; look again"
            )
        self._writable()
        try:
            with self.lock:
                changes = reviews.set_review(self.store, selection.keys, status, reviewer=user.name, role=user.role, reason=reason)
        except StoreError as e:
            raise NotFound(str(e)) from None
        return BulkDone(selection, changes)

    def _can_review(self, user: User) -> None:
        if not user.can("reviewer"):
            raise Forbidden(f"{user.name} is a {user.role}: reviewing needs the reviewer role")
        self._writable()

    @staticmethod
    def reason_for(status: str, code: str, note: str) -> str:
        """The reason recorded for a change (a rejection needs its code); a ConsoleError saying why not."""
        if status not in reviews.REVIEW_STATUSES:
            raise ConsoleError(f"status must be one of {', '.join(reviews.REVIEW_STATUSES)}")
        try:
            return reviews.review_reason(status, code, note)
        except ValueError as e:
            raise ConsoleError(str(e)) from None

    def _writable(self) -> None:
        if self.readonly_reason:
            raise Conflict(self.readonly_reason)

    def audit(self, key: str | None, limit: int = 200) -> list[reviews.ReviewChange]:
        with self.lock:
            return reviews.audit(self.store, key or None, limit)

    def audit_page(self, f: audits.AuditFilter, page: int, size: int = 100) -> dict:
        with self.lock:
            rows, total = audits.audit_page(self.store, f, offset=(page - 1) * size, limit=size)
            who = audits.reviewers(self.store)
        return {"rows": rows, "total": total, "page": page, "pages": page_count(total, size), "size": size, "reviewers": who}

    def audit_csv(self, f: audits.AuditFilter) -> str:
        with self.lock:
            rows, _ = audits.audit_page(self.store, f, limit=10**9)
        return audits.audit_csv(rows)

    def qa_agreement(self) -> dict:
        with self.lock:
            return audits.qa_agreement(self.store)

    def products(self, category: str, product: str, open_only: bool, page: int) -> dict:
        size = self.config.page_size
        with self.lock:
            items, total = reviews.product_progress(
                self.store, category=category, product=product, open_only=open_only, offset=(page - 1) * size, limit=size
            )
            if self._options is None or time.monotonic() - self._options[0] > OPTIONS_TTL_S:
                self._options = (time.monotonic(), reviews.filter_options(self.store))
            options = self._options[1]
        return {"items": items, "total": total, "page": page, "pages": page_count(total, size), "options": options}

    def product_view(self, product_id: str) -> dict:
        """One product: its catalog record, its creatives as a style x placement grid (rows: the
        arms, columns: the placements), and the next product with creatives awaiting review."""
        product = self.product(product_id)
        with self.lock:
            items = reviews.review_page(self.store, reviews.ReviewFilter("all", product=product_id), limit=10_000)[0]
            progress = reviews.product_progress(self.store, product=product_id, limit=10_000)[0]
            open_ids = [p.product_id for p in reviews.product_progress(self.store, open_only=True, limit=10**9)[0]]
        items = [it for it in items if it.product_id == product_id]  # the filter also matches titles
        placements = sorted({it.placement for it in items})
        arms = sorted({it.arm for it in items}, key=lambda a: (a != reviews.ORIGINAL, a))
        cells = {(it.arm, it.placement): it for it in items}
        later = [pid for pid in open_ids if pid > product_id]
        return {
            "product": product,
            "progress": next((p for p in progress if p.product_id == product_id), None),
            "placements": placements,
            "rows": [(arm, [cells.get((arm, pl)) for pl in placements]) for arm in arms],
            "items": items,
            "next_open": next(iter(later or [pid for pid in open_ids if pid != product_id]), None),
        }

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


def page_count(total: int, size: int) -> int:
    """How many pages of ``size`` rows hold ``total`` rows; an empty listing is one empty page.

    >>> page_count(0, 60), page_count(60, 60), page_count(61, 60)
    (1, 1, 2)
    """
    return max(1, -(-total // size))
