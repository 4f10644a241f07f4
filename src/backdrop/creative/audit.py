"""Reading the review audit: who changed what, found and exported; and how QA's flags agree with
the reviewers' verdicts, so that every review round measures the checks.

The audit itself is written by :mod:`.review` (append-only ``review_audit``); this module only reads.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass

from .review import QA_CHECK_REASON, ReviewChange, missing_table, query_or_empty, reason_code
from .store import ORIGINAL, CreativeStore, arm_name

#: the statuses an audit row can change to (its filter)
AUDIT_STATUSES = ("approved", "rejected", "pending")


@dataclass(frozen=True)
class AuditFilter:
    """Which audit rows to show; an empty field does not filter. ``since``/``until``: epoch seconds."""

    reviewer: str = ""
    status: str = ""
    since: float | None = None
    until: float | None = None
    key: str = ""
    product: str = ""

    def __post_init__(self) -> None:
        if self.status and self.status not in AUDIT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(AUDIT_STATUSES)}, got {self.status!r}")


@dataclass(frozen=True)
class AuditRow:
    """One change, with the creative it changed: its product, style and placement."""

    change: ReviewChange
    product_id: str
    title: str
    style: str
    overlay: str
    placement: str

    @property
    def arm(self) -> str:
        return arm_name(self.style, self.overlay)


def _where(f: AuditFilter) -> tuple[str, list]:
    where: list[str] = ["1=1"]
    args: list[str | float] = []
    for column, value in (("a.reviewer", f.reviewer), ("a.status", f.status), ("a.key", f.key.strip())):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if f.product.strip():
        where.append("c.product_id = ?")
        args.append(f.product.strip())
    if f.since is not None:
        where.append("a.at >= ?")
        args.append(float(f.since))
    if f.until is not None:
        where.append("a.at < ?")
        args.append(float(f.until))
    return " AND ".join(where), args


_FROM = " FROM review_audit a LEFT JOIN creatives c ON c.key = a.key LEFT JOIN products p ON p.product_id = c.product_id"


def audit_page(store: CreativeStore, f: AuditFilter = AuditFilter(), offset: int = 0, limit: int = 100) -> tuple[list[AuditRow], int]:
    """(the changes ``f`` selects, newest first, from ``offset``; how many it selects in all)."""
    where, args = _where(f)
    total_rows = query_or_empty(store, f"SELECT COUNT(*){_FROM} WHERE {where}", args)
    total = int(total_rows[0][0]) if total_rows else 0
    rows = query_or_empty(
        store,
        "SELECT a.seq, a.key, a.status, a.previous, a.reviewer, a.role, a.reason, a.at, a.action, a.undoes,"
        f" c.product_id, p.title, c.style, c.params, c.placement{_FROM} WHERE {where} ORDER BY a.seq DESC LIMIT ? OFFSET ?",
        [*args, int(limit), int(offset)],
    )
    out = []
    for seq, key, status, prev, who, role, why, at, action, undoes, pid, title, style, params, placement in rows:
        overlay = str((json.loads(params).get("overlay") or {}).get("name", "")) if params else ""
        change = ReviewChange(int(seq), key, status, prev, who, role, why, float(at), int(action or 0), int(undoes or 0))
        out.append(AuditRow(change, pid or "", title or "(no longer in the store)", style or "", overlay, placement or ""))
    return out, total


def reviewers(store: CreativeStore) -> list[str]:
    """Everyone who changed a review state (the audit's reviewer filter)."""
    return [r for (r,) in query_or_empty(store, "SELECT DISTINCT reviewer FROM review_audit ORDER BY reviewer")]


CSV_COLUMNS = (
    "seq",
    "at",
    "reviewer",
    "role",
    "key",
    "product_id",
    "title",
    "style",
    "placement",
    "previous",
    "status",
    "reason",
    "action",
    "undoes",
)


def audit_csv(rows: list[AuditRow]) -> str:
    """The rows as CSV (UTF-8, a header line; ``at`` in ISO 8601 UTC)."""
    import datetime as dt

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        c = r.change
        at = dt.datetime.fromtimestamp(c.at, dt.UTC).isoformat(timespec="seconds")
        w.writerow(
            [
                c.seq,
                at,
                c.reviewer,
                c.role,
                c.key,
                r.product_id,
                r.title,
                r.arm,
                r.placement,
                c.previous,
                c.status,
                c.reason,
                c.action,
                c.undoes,
            ]
        )
    return buf.getvalue()


def qa_agreement(store: CreativeStore) -> dict:
    """How QA's flags agree with the reviewers' latest verdicts (generated creatives; the catalog
    photo's own renditions are left out).

    * ``totals``: flagged and rejected (QA was right), flagged and approved (a false flag), flagged
      and still pending; rejected unflagged (QA missed it), approved unflagged; ``precision`` (of the
      reviewed flags, the share rejected) and ``recall`` (of the rejections, the share QA flagged),
      None without reviews to judge by.
    * ``checks``: per QA check, the same for the creatives it flagged, and how many were rejected for
      the reason the check stands for (``QA_CHECK_REASON``).
    * ``missed``: rejections QA did not flag, per the reviewer's reason: what the checks should learn.
    """
    try:
        rows = (
            store._db()
            .execute(
                "SELECT c.qa_status, c.qa_reasons, COALESCE(r.status, 'pending'), COALESCE(r.reason, '')"
                " FROM creatives c LEFT JOIN reviews r ON r.key = c.key WHERE c.style <> ?",
                (ORIGINAL,),
            )
            .fetchall()
        )
    except Exception as e:
        if not missing_table(e):
            raise
        rows = [
            (q, reasons, "pending", "")
            for q, reasons in query_or_empty(store, "SELECT qa_status, qa_reasons FROM creatives WHERE style <> ?", (ORIGINAL,))
        ]
    totals: Counter = Counter()
    checks: dict[str, Counter] = {}
    missed: Counter = Counter()
    for qa, reasons, status, reason in rows:
        flagged = qa == "flagged"
        totals[("flagged" if flagged else "unflagged", status)] += 1
        if flagged:
            for check in sorted({r["check"] for r in json.loads(reasons)}):
                c = checks.setdefault(check, Counter())
                c[status] += 1
                if status == "rejected" and reason_code(reason) == QA_CHECK_REASON.get(check):
                    c["rejected_for_it"] += 1
        elif status == "rejected":
            missed[reason_code(reason) or "other"] += 1
    tp, fp = totals[("flagged", "rejected")], totals[("flagged", "approved")]
    fn = totals[("unflagged", "rejected")]
    return {
        "totals": {
            "flagged_rejected": tp,
            "flagged_approved": fp,
            "flagged_pending": totals[("flagged", "pending")],
            "unflagged_rejected": fn,
            "unflagged_approved": totals[("unflagged", "approved")],
            "unflagged_pending": totals[("unflagged", "pending")],
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
        },
        "checks": [
            {
                "check": check,
                "reason": QA_CHECK_REASON.get(check, ""),
                "flagged": sum(c[s] for s in ("pending", "approved", "rejected")),
                "rejected": c["rejected"],
                "rejected_for_it": c["rejected_for_it"],
                "approved": c["approved"],
                "pending": c["pending"],
            }
            for check, c in sorted(checks.items())
        ],
        "missed": [{"reason": r, "rejected": n} for r, n in missed.most_common()],
    }
