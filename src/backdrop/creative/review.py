"""What people decided about the creatives: review states and their audit, in the store's index.

A creative is ``pending`` until a reviewer approves or rejects it. Every change is one row of the
append-only ``review_audit`` table (who, with which role, when, from what, to what, why); the
``reviews`` table holds each creative's latest state and the audit row that set it, so the
decision service can tell in one cheap query (:func:`review_seq`) whether anything changed.

The review console writes these tables and reads the grid (:func:`review_page`) filtered and
paginated in SQL; the decision service reads :func:`review_states`. Nothing here touches a
creative's row or file: a review is a decision about the creative, not a change to it.

What a review state and a QA flag mean for a creative is one rule, :func:`servability`: the
decision service's index, ``backdrop export feed``, the report and the console all ask it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from .store import ORIGINAL, CreativeStore, StoreError, arm_name

REVIEW_STATUSES = ("pending", "approved", "rejected")
#: what :func:`servability` answers: usable, or why not (the names of the service's
#: ``backdrop_creatives{status=...}`` metric)
SERVABLE, REJECTED, PENDING_REVIEW, WITHHELD = "servable", "rejected", "pending-review", "withheld"
#: each answer in words, for reports and pages
SERVABILITY_TEXT = {
    SERVABLE: "served",
    REJECTED: "not served: rejected in review",
    PENDING_REVIEW: "not served: awaiting review (review is required)",
    WITHHELD: "withheld: flagged by QA, nobody approved it",
}
#: the grid's status filter: a review state, QA-flagged creatives nobody has looked at yet, or all.
#: "pending" (and "flagged") is what awaits review: never an :data:`~backdrop.creative.store.ORIGINAL`
#: rendition, which :func:`servability` serves without approval (a reviewer may still reject one:
#: "all", "approved" and "rejected" show them)
STATUS_FILTERS = ("pending", "flagged", "approved", "rejected", "all")


@dataclass(frozen=True)
class ReviewFilter:
    """Which creatives the grid shows; an empty field does not filter.

    ``category`` matches the category and everything under it (``Apparel`` matches
    ``Apparel > Shoes``); ``product`` is a product id or words of its title.
    """

    status: str = "pending"
    category: str = ""
    style: str = ""
    placement: str = ""
    product: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUS_FILTERS:
            raise ValueError(f"status must be one of {', '.join(STATUS_FILTERS)}, got {self.status!r}")


@dataclass(frozen=True)
class ReviewItem:
    """One creative as the grid shows it: what it is, what QA said, and what a person decided."""

    key: str
    product_id: str
    title: str
    category: str
    style: str
    overlay: str
    placement: str
    width: int
    height: int
    qa_status: str
    qa_reasons: tuple
    status: str
    reviewer: str
    reason: str
    at: float | None

    @property
    def arm(self) -> str:
        return arm_name(self.style, self.overlay)

    @property
    def baseline(self) -> bool:
        """The catalog photo's own rendition: served without approval, so never awaiting review."""
        return self.arm == ORIGINAL

    def servability(self, review_required: bool = False, serve_flagged: bool = False) -> str:
        """What the decision service does with it (:func:`servability`)."""
        return servability(
            flagged=self.qa_status == "flagged",
            status=self.status,
            review_required=review_required,
            serve_flagged=serve_flagged,
            arm=self.arm,
        )


@dataclass(frozen=True)
class ReviewChange:
    """One row of the audit: ``key`` went from ``previous`` to ``status``."""

    seq: int
    key: str
    status: str
    previous: str
    reviewer: str
    role: str
    reason: str
    at: float


def servability(
    *, flagged: bool, status: str = "pending", review_required: bool = False, serve_flagged: bool = False, arm: str = ""
) -> str:
    """Whether a creative may be used (served, exported to a feed, shown as usable): :data:`SERVABLE`,
    or why not. The one rule; every reader of review states applies it.

    - Rejected in review: never (:data:`REJECTED`), whatever else holds.
    - The :data:`~backdrop.creative.store.ORIGINAL` arm (the catalog photo fitted to the placement:
      the retailer's own photo, product untouched) needs no approval and no QA pass; only a
      rejection stops it. With an overlay it is generated content like any other.
    - Approved: yes; an approval is a person overriding a QA flag.
    - Review required (``serve --review-required``) and not approved: :data:`PENDING_REVIEW`.
    - Flagged by QA and not approved: :data:`WITHHELD`, unless ``serve_flagged``.

    >>> servability(flagged=True, status="approved"), servability(flagged=True), servability(flagged=False, status="rejected")
    ('servable', 'withheld', 'rejected')
    >>> servability(flagged=True, review_required=True, arm="original")
    'servable'
    """
    if status not in REVIEW_STATUSES:
        raise ValueError(f"review status must be one of {', '.join(REVIEW_STATUSES)}, got {status!r}")
    if status == "rejected":
        return REJECTED
    if arm == ORIGINAL or status == "approved":
        return SERVABLE
    if review_required:
        return PENDING_REVIEW
    if flagged and not serve_flagged:
        return WITHHELD
    return SERVABLE


def _missing_table(e: Exception) -> bool:
    """A store from before reviews existed, opened read-only (so not migrated): nothing reviewed yet."""
    text = str(e).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _query(store: CreativeStore, sql: str, args: tuple | list = ()) -> list:
    try:
        return list(store._db().execute(sql, args).fetchall())
    except Exception as e:
        if _missing_table(e):
            return []
        raise


def review_seq(store: CreativeStore) -> int:
    """The number of the last review change (0: none): the service reloads the states when it moves."""
    rows = _query(store, "SELECT MAX(seq) FROM review_audit")
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def review_states(store: CreativeStore) -> tuple[dict[str, str], int]:
    """(key -> "approved" or "rejected" for every reviewed creative, the seq they are as of)."""
    rows = _query(store, "SELECT key, status, seq FROM reviews WHERE status <> 'pending'")
    seq = max((int(r[2]) for r in rows), default=0)
    return {k: s for k, s, _ in rows}, max(seq, review_seq(store))


@dataclass(frozen=True)
class ReviewState:
    """A creative's latest review: its state, who set it and why."""

    status: str
    reviewer: str = ""
    reason: str = ""
    at: float | None = None


def review_details(store: CreativeStore) -> dict[str, ReviewState]:
    """key -> its review, for every creative reviewed (absent: pending); empty for a store from before reviews."""
    rows = _query(store, "SELECT key, status, reviewer, reason, at FROM reviews WHERE status <> 'pending'")
    return {k: ReviewState(s, who or "", why or "", None if at is None else float(at)) for k, s, who, why, at in rows}


def set_review(store: CreativeStore, keys: list[str], status: str, *, reviewer: str, role: str, reason: str = "") -> list[ReviewChange]:
    """Set the review state of ``keys``; returns the changes made (a key already in that state is not
    changed, nor audited again). Unknown keys are an error and nothing is changed."""
    if status not in REVIEW_STATUSES:
        raise ValueError(f"status must be one of {', '.join(REVIEW_STATUSES)}, got {status!r}")
    if not reviewer:
        raise ValueError("a review needs the reviewer's name")
    keys = list(dict.fromkeys(keys))
    if not keys:
        return []
    if store.readonly:
        raise StoreError(f"{store.location}: the store is open read-only; reviews cannot be saved")
    db = store._db()
    changes: list[ReviewChange] = []
    now = time.time()
    try:
        with db:
            db.execute("BEGIN IMMEDIATE")  # one writer: the audit's "previous" is what was really there
            known: set[str] = set()
            current: dict[str, str] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                known.update(k for (k,) in db.execute(f"SELECT key FROM creatives WHERE key IN ({marks})", chunk).fetchall())
                current.update(db.execute(f"SELECT key, status FROM reviews WHERE key IN ({marks})", chunk).fetchall())
            unknown = [k for k in keys if k not in known]
            if unknown:
                raise StoreError(f"{len(unknown)} creative(s) not in the store (first: {unknown[0]}); nothing was changed")
            for key in keys:
                previous = current.get(key, "pending")
                if previous == status:
                    continue
                (seq,) = db.execute(
                    "INSERT INTO review_audit (key, status, previous, reviewer, role, reason, at) VALUES (?,?,?,?,?,?,?) RETURNING seq",
                    (key, status, previous, reviewer, role, reason, now),
                ).fetchone()
                db.execute(
                    "INSERT OR REPLACE INTO reviews (key, status, reviewer, reason, at, seq) VALUES (?,?,?,?,?,?)",
                    (key, status, reviewer, reason, now, int(seq)),
                )
                changes.append(ReviewChange(int(seq), key, status, previous, reviewer, role, reason, now))
    except sqlite3.OperationalError as e:
        raise StoreError(f"{store.index_path}: cannot save the review: {e}") from None
    return changes


def _from(store: CreativeStore, products: bool = True, reviews: bool = True) -> str:
    """The grid's tables, only those a query needs (a join the planner need not make is time saved
    on 100k rows); reviews as an empty table for an index from before them (opened read-only)."""
    sql = "FROM creatives c"
    if products:
        sql += " JOIN products p ON p.product_id = c.product_id"
    if reviews:
        try:
            store._db().execute("SELECT 1 FROM reviews LIMIT 1").fetchall()
            sql += " LEFT JOIN reviews r ON r.key = c.key"
        except Exception as e:
            if not _missing_table(e):
                raise
            sql += (
                " LEFT JOIN (SELECT '' AS key, NULL AS status, NULL AS reviewer, NULL AS reason, NULL AS at WHERE 1=0) r ON r.key = c.key"
            )
    return sql


def _like(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _where(f: ReviewFilter) -> tuple[str, list, bool]:
    """(the WHERE clause, its arguments, whether it reads reviews)."""
    where, args = ["1=1"], []
    # awaiting review: nobody decided, and not an original rendition (served without approval; it
    # never carries an overlay, so its style says it)
    pending = "(r.status IS NULL OR r.status = 'pending') AND c.style <> ?"
    if f.status == "pending":
        where.append(pending)
        args.append(ORIGINAL)
    elif f.status == "flagged":
        where.append(f"c.qa_status = 'flagged' AND {pending}")
        args.append(ORIGINAL)
    elif f.status in ("approved", "rejected"):
        where.append("r.status = ?")
        args.append(f.status)
    # products are matched first (thousands of rows), then their creatives through the index
    if f.category:
        where.append("c.product_id IN (SELECT product_id FROM products WHERE category = ? OR category LIKE ? ESCAPE '!')")
        args += [f.category, _like(f.category) + " > %"]
    for column, value in (("c.style", f.style), ("c.placement", f.placement)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if f.product.strip():
        where.append("c.product_id IN (SELECT product_id FROM products WHERE product_id = ? OR LOWER(title) LIKE ? ESCAPE '!')")
        args += [f.product.strip(), "%" + _like(f.product.strip().lower()) + "%"]
    return " AND ".join(where), args, f.status != "all"


def keys_of_style(store: CreativeStore, style: str, category: str = "", *, only_pending_unflagged: bool = False) -> list[str]:
    """The creatives of ``style`` (all its overlay variants) in ``category`` and below (all when empty);
    with ``only_pending_unflagged``, just those nobody reviewed that QA did not flag."""
    where, args, _ = _where(ReviewFilter(status="all", style=style, category=category))
    if only_pending_unflagged:
        where += " AND (r.status IS NULL OR r.status = 'pending') AND c.qa_status <> 'flagged'"
    return [k for (k,) in _query(store, f"SELECT c.key {_from(store)} WHERE {where} ORDER BY c.key", args)]


_COLUMNS = (
    "SELECT c.key, c.product_id, p.title, p.category, c.style, c.params, c.placement, c.width, c.height, c.qa_status,"
    " c.qa_reasons, r.status, r.reviewer, r.reason, r.at"
)
#: the grid's order within the flagged and the other creatives: the creatives_review_order index
_ORDER = " ORDER BY c.product_id, c.placement, c.style, c.key LIMIT ? OFFSET ?"


def review_page(store: CreativeStore, f: ReviewFilter, offset: int = 0, limit: int = 60) -> tuple[list[ReviewItem], int]:
    """(the creatives ``f`` selects, QA-flagged first, from ``offset``; how many it selects in all).

    The flagged ones (a few per cent) and the others are read as two index-ordered runs, so a page
    costs its own rows, not a sort of everything the filter selects."""
    where, args, reviewed = _where(f)
    if where == "1=1" or (f == ReviewFilter(f.status) and f.status in ("pending", "approved", "rejected")):
        counts = review_counts(store)
        total = sum(counts[s] for s in ("pending", "approved", "rejected", "baseline")) if f.status == "all" else counts[f.status]
    else:
        total = int(_query(store, f"SELECT COUNT(*) {_from(store, False, reviewed)} WHERE {where}", args)[0][0])
    flagged_where = f"{where} AND c.qa_status = 'flagged'"
    n_flagged = int(_query(store, f"SELECT COUNT(*) {_from(store, False, reviewed)} WHERE {flagged_where}", args)[0][0])
    rows: list = []
    source = _from(store)
    if offset < n_flagged:
        rows = _query(store, f"{_COLUMNS} {source} WHERE {flagged_where}{_ORDER}", [*args, int(limit), int(offset)])
    if len(rows) < limit and f.status != "flagged":
        rest = max(0, offset - n_flagged)
        rows += _query(store, f"{_COLUMNS} {source} WHERE {where} AND c.qa_status <> 'flagged'{_ORDER}", [*args, limit - len(rows), rest])
    items = []
    for key, pid, title, category, style, params, placement, w, h, qa, reasons, status, who, why, at in rows:
        overlay = str((json.loads(params).get("overlay") or {}).get("name", ""))
        items.append(
            ReviewItem(
                key,
                pid,
                title,
                category,
                style,
                overlay,
                placement,
                int(w),
                int(h),
                qa,
                tuple(json.loads(reasons)),
                status or "pending",
                who or "",
                why or "",
                None if at is None else float(at),
            )
        )
    return items, total


def review_counts(store: CreativeStore) -> dict[str, int]:
    """How many creatives are pending (awaiting review; of them, QA-flagged), approved and rejected,
    and how many are ``baseline``: original renditions nobody reviewed, served without approval (the
    four states add up to every creative). From the QA and style indexes and the (small) reviews
    table, without joining every creative."""
    by_qa = dict(_query(store, "SELECT qa_status, COUNT(*) FROM creatives GROUP BY qa_status"))
    originals = dict(_query(store, "SELECT qa_status, COUNT(*) FROM creatives WHERE style = ? GROUP BY qa_status", (ORIGINAL,)))
    n_originals = sum(int(n) for n in originals.values())
    total, flagged = sum(int(n) for n in by_qa.values()), int(by_qa.get("flagged", 0)) - int(originals.get("flagged", 0))
    out = {"pending": total - n_originals, "flagged": flagged, "approved": 0, "rejected": 0, "baseline": n_originals}
    rows = _query(
        store,
        "SELECT r.status, CASE WHEN c.qa_status = 'flagged' THEN 1 ELSE 0 END, CASE WHEN c.style = ? THEN 1 ELSE 0 END, COUNT(*)"
        " FROM reviews r JOIN creatives c ON c.key = r.key WHERE r.status <> 'pending' GROUP BY 1, 2, 3",
        (ORIGINAL,),
    )
    for status, is_flagged, is_original, n in rows:
        out[status] = out.get(status, 0) + int(n)
        if is_original:
            out["baseline"] -= int(n)
            continue
        out["pending"] -= int(n)
        if is_flagged:
            out["flagged"] -= int(n)
    return out


def filter_options(store: CreativeStore) -> dict[str, list[str]]:
    """The values the grid's filters offer: categories (with every parent), styles and placements."""
    categories: set[str] = set()
    for (category,) in _query(store, "SELECT DISTINCT category FROM products"):
        parts = category.split(" > ")
        categories.update(" > ".join(parts[: i + 1]) for i in range(len(parts)))
    return {
        "category": sorted(categories),
        "style": [s for (s,) in _query(store, "SELECT DISTINCT style FROM creatives ORDER BY style")],
        "placement": [p for (p,) in _query(store, "SELECT DISTINCT placement FROM creatives ORDER BY placement")],
    }


def audit(store: CreativeStore, key: str | None = None, limit: int = 200) -> list[ReviewChange]:
    """The latest review changes, newest first (of one creative when ``key`` is given)."""
    sql, args = "SELECT seq, key, status, previous, reviewer, role, reason, at FROM review_audit", []
    if key:
        sql += " WHERE key = ?"
        args.append(key)
    rows = _query(store, sql + " ORDER BY seq DESC LIMIT ?", [*args, int(limit)])
    return [ReviewChange(int(s), k, st, prev, who, role, why, float(at)) for s, k, st, prev, who, role, why, at in rows]
