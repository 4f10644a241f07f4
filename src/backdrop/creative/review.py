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
#: why a creative is rejected: the reviewers' fixed list, the same as the QA labels'
#: (``benchmarks/labels``); "other" takes words of its own
REJECT_REASONS = {
    "hovering": "hovering: a gap between the product and the surface or its shadow",
    "cut-part": "cut part: a part of the product is missing",
    "fringe": "fringe: a rim of the photo's background along the outline",
    "trapped-background": "trapped background: the photo's background left inside the product",
    "wrong-scene": "wrong scene for the product",
    "unreadable-overlay": "unreadable overlay: text or a badge that cannot be read, or covers the product",
    "bad-texture": "bad texture: a broken or unconvincing surface",
    "other": "other (say what)",
}
#: which reviewer's reason a QA check stands for: how the checks are scored against the reviews
QA_CHECK_REASON = {
    "cut-part": "cut-part",
    "cut-not-flush": "cut-part",
    "cropped-by-canvas": "cut-part",
    "trapped-background": "trapped-background",
    "fringe": "fringe",
    "halo": "fringe",
    "hovering": "hovering",
    "on-model-packshot-scene": "wrong-scene",
    "overlay-dropped": "unreadable-overlay",
    "overlay-contrast": "unreadable-overlay",
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
    #: what the generator was asked for (the viewer shows it)
    prompt: str = ""
    #: the product's centre in the creative, as shares of its width and height (zoomed in, the viewer starts there)
    focus: tuple[float, float] = (0.5, 0.5)

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
    #: the reviewer's action it was part of (one click, of any size; 0: from before actions were recorded)
    action: int = 0
    #: the action this change undid (0: none)
    undoes: int = 0


def review_reason(status: str, code: str = "", note: str = "") -> str:
    """The reason recorded with a change: a rejection needs a code of :data:`REJECT_REASONS` ("other"
    needs a note too), written ``code`` or ``code: note``; an approval or a reset takes the note alone.

    >>> review_reason("rejected", "fringe"), review_reason("rejected", "other", " the logo is upside down ")
    ('fringe', 'other: the logo is upside down')
    >>> review_reason("approved", note="sliver only at 2x")
    'sliver only at 2x'
    >>> review_reason("rejected")
    Traceback (most recent call last):
    ...
    ValueError: a rejection needs a reason: one of hovering, cut-part, fringe, trapped-background, wrong-scene, unreadable-overlay, bad-texture, other
    """
    note = " ".join(note.split())[:500]
    if status != "rejected":
        return note
    if code not in REJECT_REASONS:
        raise ValueError(f"a rejection needs a reason: one of {', '.join(REJECT_REASONS)}")
    if code == "other" and not note:
        raise ValueError('a rejection for "other" needs a few words of what is wrong')
    return f"{code}: {note}" if note else code


def reason_code(reason: str) -> str:
    """The :data:`REJECT_REASONS` code a recorded reason starts with; "other" for words without one
    (a rejection from before the list), "" for none.

    >>> reason_code("fringe"), reason_code("other: upside down"), reason_code("product cut off"), reason_code("")
    ('fringe', 'other', 'other', '')
    """
    code = reason.split(":", 1)[0].strip()
    return code if code in REJECT_REASONS else ("other" if reason.strip() else "")


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


def missing_table(e: Exception) -> bool:
    """A store from before reviews existed, opened read-only (so not migrated): nothing reviewed yet."""
    text = str(e).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def query_or_empty(store: CreativeStore, sql: str, args: tuple | list = ()) -> list:
    """The rows of a read of the store's index; none when a table it reads is not there yet (a store
    from before that table, opened read-only, so not migrated)."""
    try:
        return list(store._db().execute(sql, args).fetchall())
    except Exception as e:
        if missing_table(e):
            return []
        raise


def review_seq(store: CreativeStore) -> int:
    """The number of the last review change (0: none): the service reloads the states when it moves."""
    rows = query_or_empty(store, "SELECT MAX(seq) FROM review_audit")
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def review_states(store: CreativeStore) -> tuple[dict[str, str], int]:
    """(key -> "approved" or "rejected" for every reviewed creative, the seq they are as of)."""
    rows = query_or_empty(store, "SELECT key, status, seq FROM reviews WHERE status <> 'pending'")
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
    rows = query_or_empty(store, "SELECT key, status, reviewer, reason, at FROM reviews WHERE status <> 'pending'")
    return {k: ReviewState(s, who or "", why or "", None if at is None else float(at)) for k, s, who, why, at in rows}


def set_review(store: CreativeStore, keys: list[str], status: str, *, reviewer: str, role: str, reason: str = "") -> list[ReviewChange]:
    """Set the review state of ``keys`` as one action of ``reviewer`` (what :func:`undo_last` reverts);
    returns the changes made (a key already in that state is not changed, nor audited again).
    Unknown keys are an error and nothing is changed."""
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
            action = _next_action(db)
            for key in keys:
                previous = current.get(key, "pending")
                if previous != status:
                    changes.append(_record(db, key, status, previous, reviewer, role, reason, now, action))
    except sqlite3.OperationalError as e:
        raise StoreError(f"{store.index_path}: cannot save the review: {e}") from None
    return changes


def _next_action(db) -> int:
    """A new action's number (inside the write transaction, so no two actions share one)."""
    (last,) = db.execute("SELECT COALESCE(MAX(action), 0) FROM review_audit").fetchone()
    return int(last) + 1


def _record(db, key: str, status: str, previous: str, reviewer: str, role: str, reason: str, at: float, action: int, undoes: int = 0):
    (seq,) = db.execute(
        "INSERT INTO review_audit (key, status, previous, reviewer, role, reason, at, action, undoes)"
        " VALUES (?,?,?,?,?,?,?,?,?) RETURNING seq",
        (key, status, previous, reviewer, role, reason, at, action, undoes),
    ).fetchone()
    db.execute(
        "INSERT OR REPLACE INTO reviews (key, status, reviewer, reason, at, seq) VALUES (?,?,?,?,?,?)",
        (key, status, reviewer, reason, at, int(seq)),
    )
    return ReviewChange(int(seq), key, status, previous, reviewer, role, reason, at, action, undoes)


@dataclass(frozen=True)
class Undone:
    """What :func:`undo_last` did: the action it reverted, the changes it made, and how many of the
    action's creatives it left alone because someone changed them since."""

    action: int
    changes: list[ReviewChange]
    kept: int


def undo_last(store: CreativeStore, *, reviewer: str, role: str) -> Undone:
    """Revert ``reviewer``'s last action not undone yet (of any size: one creative, a product, a
    style), wherever they are in the grid: each creative goes back to what it was before, as a new
    action recorded in the audit (``undoes`` names the one reverted). A creative whose state is no
    longer the one the action set (someone changed it since) keeps its newer state. Pressed again,
    it undoes the action before.
    :class:`StoreError` when there is nothing to undo."""
    if store.readonly:
        raise StoreError(f"{store.location}: the store is open read-only; reviews cannot be saved")
    db = store._db()
    now = time.time()
    try:
        with db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT MAX(action) FROM review_audit WHERE reviewer = ? AND action > 0 AND undoes = 0"
                " AND action NOT IN (SELECT undoes FROM review_audit WHERE reviewer = ? AND undoes > 0)",
                (reviewer, reviewer),
            ).fetchone()
            target = int(row[0]) if row and row[0] is not None else 0
            if not target:
                raise StoreError(f"{reviewer} has nothing to undo")
            rows = db.execute(
                "SELECT a.key, a.previous, a.status, COALESCE(r.status, 'pending') FROM review_audit a LEFT JOIN reviews r ON r.key = a.key"
                " WHERE a.action = ? ORDER BY a.seq",
                (target,),
            ).fetchall()
            action = _next_action(db)
            changes, kept = [], 0
            for key, previous, status, now_status in rows:
                if now_status != status:
                    kept += 1  # changed since: the newer decision stands
                    continue
                changes.append(_record(db, key, previous, status, reviewer, role, f"undo of action {target}", now, action, target))
    except sqlite3.OperationalError as e:
        raise StoreError(f"{store.index_path}: cannot save the undo: {e}") from None
    return Undone(target, changes, kept)


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
            if not missing_table(e):
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


def keys_matching(store: CreativeStore, f: ReviewFilter, *, only_unflagged: bool = False) -> list[str]:
    """The keys of every creative ``f`` selects, on every page (a bulk action's selection), in the
    grid's order; with ``only_unflagged``, those QA did not flag (a flagged one needs a look of its own)."""
    where, args, _ = _where(f)
    if only_unflagged:
        where += " AND c.qa_status <> 'flagged'"
    return [
        k
        for (k,) in query_or_empty(
            store, f"SELECT c.key {_from(store)} WHERE {where} ORDER BY c.product_id, c.placement, c.style, c.key", args
        )
    ]


def keys_of_style(store: CreativeStore, style: str, category: str = "", *, only_pending_unflagged: bool = False) -> list[str]:
    """The creatives of ``style`` (all its overlay variants) in ``category`` and below (all when empty);
    with ``only_pending_unflagged``, just those nobody reviewed that QA did not flag."""
    f = ReviewFilter(status="pending" if only_pending_unflagged else "all", style=style, category=category)
    return keys_matching(store, f, only_unflagged=only_pending_unflagged)


_COLUMNS = (
    "SELECT c.key, c.product_id, p.title, p.category, c.style, c.params, c.placement, c.width, c.height, c.qa_status,"
    " c.qa_reasons, r.status, r.reviewer, r.reason, r.at, c.prompt"
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
        total = int(query_or_empty(store, f"SELECT COUNT(*) {_from(store, False, reviewed)} WHERE {where}", args)[0][0])
    flagged_where = f"{where} AND c.qa_status = 'flagged'"
    n_flagged = int(query_or_empty(store, f"SELECT COUNT(*) {_from(store, False, reviewed)} WHERE {flagged_where}", args)[0][0])
    rows: list = []
    source = _from(store)
    if offset < n_flagged:
        rows = query_or_empty(store, f"{_COLUMNS} {source} WHERE {flagged_where}{_ORDER}", [*args, int(limit), int(offset)])
    if len(rows) < limit and f.status != "flagged":
        rest = max(0, offset - n_flagged)
        rows += query_or_empty(
            store, f"{_COLUMNS} {source} WHERE {where} AND c.qa_status <> 'flagged'{_ORDER}", [*args, limit - len(rows), rest]
        )
    items = []
    for key, pid, title, category, style, params, placement, w, h, qa, reasons, status, who, why, at, prompt in rows:
        p = json.loads(params)
        overlay = str((p.get("overlay") or {}).get("name", ""))
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
                prompt or "",
                product_focus(p, int(w), int(h)),
            )
        )
    return items, total


def product_focus(params: dict, width: int, height: int) -> tuple[float, float]:
    """Where the product sits in a creative (its layout box's centre) as shares of the canvas; the
    middle when the record has no box (a baseline, an older store).

    >>> product_focus({"box": [229, 0, 851, 1459]}, 1080, 1920)
    (0.5, 0.38)
    """
    box = params.get("box")
    if not (isinstance(box, list) and len(box) == 4 and width > 0 and height > 0):
        return (0.5, 0.5)
    x0, y0, x1, y1 = (float(v) for v in box)
    return (round((x0 + x1) / 2 / width, 3), round((y0 + y1) / 2 / height, 3))


def review_counts(store: CreativeStore) -> dict[str, int]:
    """How many creatives are pending (awaiting review; of them, QA-flagged), approved and rejected,
    and how many are ``baseline``: original renditions nobody reviewed, served without approval (the
    four states add up to every creative). From the QA and style indexes and the (small) reviews
    table, without joining every creative."""
    by_qa = dict(query_or_empty(store, "SELECT qa_status, COUNT(*) FROM creatives GROUP BY qa_status"))
    originals = dict(query_or_empty(store, "SELECT qa_status, COUNT(*) FROM creatives WHERE style = ? GROUP BY qa_status", (ORIGINAL,)))
    n_originals = sum(int(n) for n in originals.values())
    total, flagged = sum(int(n) for n in by_qa.values()), int(by_qa.get("flagged", 0)) - int(originals.get("flagged", 0))
    out = {"pending": total - n_originals, "flagged": flagged, "approved": 0, "rejected": 0, "baseline": n_originals}
    rows = query_or_empty(
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
    for (category,) in query_or_empty(store, "SELECT DISTINCT category FROM products"):
        parts = category.split(" > ")
        categories.update(" > ".join(parts[: i + 1]) for i in range(len(parts)))
    return {
        "category": sorted(categories),
        "style": [s for (s,) in query_or_empty(store, "SELECT DISTINCT style FROM creatives ORDER BY style")],
        "placement": [p for (p,) in query_or_empty(store, "SELECT DISTINCT placement FROM creatives ORDER BY placement")],
    }


def audit(store: CreativeStore, key: str | None = None, limit: int = 200) -> list[ReviewChange]:
    """The latest review changes, newest first (of one creative when ``key`` is given)."""
    sql, args = "SELECT seq, key, status, previous, reviewer, role, reason, at FROM review_audit", []
    if key:
        sql += " WHERE key = ?"
        args.append(key)
    rows = query_or_empty(store, sql + " ORDER BY seq DESC LIMIT ?", [*args, int(limit)])
    return [ReviewChange(int(s), k, st, prev, who, role, why, float(at)) for s, k, st, prev, who, role, why, at in rows]


@dataclass(frozen=True)
class ProductProgress:
    """How far the review of one product's creatives has come (the catalog photo's own renditions,
    served without approval, are not counted)."""

    product_id: str
    title: str
    category: str
    total: int
    pending: int
    flagged: int
    approved: int
    rejected: int

    @property
    def done(self) -> bool:
        return self.pending == 0


def product_progress(
    store: CreativeStore, *, category: str = "", product: str = "", open_only: bool = False, offset: int = 0, limit: int = 50
) -> tuple[list[ProductProgress], int]:
    """Per product (in id order, from ``offset``), its creatives' review counts; how many products
    match in all. ``open_only``: just the products with creatives awaiting review."""
    f = ReviewFilter("all", category=category, product=product)
    where, args, _ = _where(f)
    pending = "(r.status IS NULL OR r.status = 'pending')"
    rows = query_or_empty(
        store,
        f"SELECT c.product_id, p.title, p.category, COUNT(*), SUM(CASE WHEN {pending} THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN {pending} AND c.qa_status = 'flagged' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN r.status = 'approved' THEN 1 ELSE 0 END), SUM(CASE WHEN r.status = 'rejected' THEN 1 ELSE 0 END)"
        f" {_from(store)} WHERE {where} AND c.style <> ? GROUP BY c.product_id, p.title, p.category ORDER BY c.product_id",
        [*args, ORIGINAL],
    )
    items = [ProductProgress(pid, title, cat, *(int(v or 0) for v in counts)) for pid, title, cat, *counts in rows]
    if open_only:
        items = [p for p in items if not p.done]
    return items[offset : offset + limit], len(items)
