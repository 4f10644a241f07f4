"""Reviews at catalog scale, in the store's index (both backends): reasons from the fixed list,
actions of any size and their undo, bulk selections, the audit's filters and CSV, and how QA's flags
agree with the reviewers."""

from __future__ import annotations

import csv
import io
import json

import pytest

from backdrop.creative.audit import AuditFilter, audit_csv, audit_page, qa_agreement, reviewers
from backdrop.creative.review import (
    REJECT_REASONS,
    ReviewFilter,
    keys_matching,
    review_counts,
    review_reason,
    set_review,
    undo_last,
)
from backdrop.creative.store import ORIGINAL, StoreError


def _generated(s):
    return sorted((r for r in s.creatives() if r.style != ORIGINAL), key=lambda r: (r.product_id, r.placement, r.style))


def _state(s, key):
    rows = s._db().execute("SELECT status FROM reviews WHERE key = ?", (key,)).fetchall()
    return rows[0][0] if rows else "pending"


def test_undo_reverts_the_reviewer_s_last_action_of_any_size_wherever_they_are(review_store):
    s = review_store
    gen = _generated(s)
    product = gen[0].product_id
    theirs = keys_matching(s, ReviewFilter("pending", product=product))
    assert len(theirs) == 4 and set(theirs) == {r.key for r in gen if r.product_id == product}
    one = next(r.key for r in gen if r.product_id != product)
    set_review(s, theirs, "approved", reviewer="Ana", role="reviewer")  # a whole product: one action
    set_review(s, [one], "rejected", reviewer="Ana", role="reviewer", reason=review_reason("rejected", "fringe"))
    set_review(s, [theirs[0]], "rejected", reviewer="Bo", role="reviewer", reason="cut-part")  # someone else, since
    first = undo_last(s, reviewer="Ana", role="reviewer")  # Ana's last: the single rejection, not Bo's
    assert [c.key for c in first.changes] == [one] and first.changes[0].status == "pending" and first.kept == 0
    assert _state(s, one) == "pending" and _state(s, theirs[0]) == "rejected"
    second = undo_last(s, reviewer="Ana", role="reviewer")  # pressed again: the product's approval
    assert second.action != first.action and len(second.changes) == 3 and second.kept == 1  # Bo's rejection stands
    assert {_state(s, k) for k in theirs[1:]} == {"pending"} and _state(s, theirs[0]) == "rejected"
    assert all(c.undoes == second.action and c.reason == f"undo of action {second.action}" for c in second.changes)
    with pytest.raises(StoreError, match="Ana has nothing to undo"):
        undo_last(s, reviewer="Ana", role="reviewer")
    counts = review_counts(s)
    assert counts["rejected"] == 1 and counts["approved"] == 0
    # the audit keeps every step, the undos as their own rows
    rows, total = audit_page(s, AuditFilter(reviewer="Ana"))
    assert total == 4 + 1 + 1 + 3 and sum(r.change.undoes > 0 for r in rows) == 4


def test_an_undo_of_an_undo_s_restored_state_goes_back_to_before_it(review_store):
    s = review_store
    key = _generated(s)[0].key
    set_review(s, [key], "rejected", reviewer="Ana", role="reviewer", reason="hovering")
    set_review(s, [key], "approved", reviewer="Ana", role="reviewer")
    undo_last(s, reviewer="Ana", role="reviewer")
    assert _state(s, key) == "rejected"
    undo_last(s, reviewer="Ana", role="reviewer")  # the first action's state is the current one again: it goes
    assert _state(s, key) == "pending"


def test_a_rejection_takes_a_reason_from_the_list():
    assert list(REJECT_REASONS) == [
        "hovering", "cut-part", "fringe", "trapped-background", "wrong-scene", "unreadable-overlay", "bad-texture", "other",
    ]  # fmt: skip  # the QA labels' list (benchmarks/labels/README.md)
    assert review_reason("rejected", "bad-texture", "stepped floor") == "bad-texture: stepped floor"
    with pytest.raises(ValueError, match="needs a reason"):
        review_reason("rejected", "ugly")
    with pytest.raises(ValueError, match="few words"):
        review_reason("rejected", "other", "   ")
    assert review_reason("pending", "fringe", "") == ""  # only a rejection carries a code


def test_the_audit_filters_pages_and_exports_with_product_style_and_placement(review_store):
    s = review_store
    gen = _generated(s)
    set_review(s, [r.key for r in gen[:3]], "approved", reviewer="Ana", role="reviewer")
    set_review(s, [gen[3].key], "rejected", reviewer="Bo", role="admin", reason="wrong-scene: a kitchen for a tee")
    assert reviewers(s) == ["Ana", "Bo"]
    rows, total = audit_page(s, AuditFilter(status="rejected"))
    assert total == 1 and rows[0].change.reviewer == "Bo" and rows[0].product_id == gen[3].product_id
    assert (rows[0].style, rows[0].placement, rows[0].title) == (gen[3].style, gen[3].placement, s.product(gen[3].product_id)["title"])
    page1, total = audit_page(s, AuditFilter(), offset=0, limit=3)
    page2, _ = audit_page(s, AuditFilter(), offset=3, limit=3)
    assert total == 4 and len(page1) == 3 and len(page2) == 1 and page1[0].change.seq > page1[-1].change.seq > page2[0].change.seq
    assert audit_page(s, AuditFilter(since=rows[0].change.at + 1))[1] == 0
    assert audit_page(s, AuditFilter(until=rows[0].change.at + 1, reviewer="Ana"))[1] == 3
    assert audit_page(s, AuditFilter(product=gen[0].product_id))[1] == sum(r.product_id == gen[0].product_id for r in gen[:4])
    table = list(csv.DictReader(io.StringIO(audit_csv(audit_page(s)[0]))))
    assert len(table) == 4 and table[0]["reviewer"] == "Bo" and table[0]["reason"] == "wrong-scene: a kitchen for a tee"
    assert table[0]["at"].endswith("+00:00") and table[0]["placement"] == gen[3].placement
    with pytest.raises(ValueError, match="status must be one of"):
        AuditFilter(status="maybe")


def test_qa_agreement_counts_flags_against_the_reviewers_verdicts(review_store):
    s = review_store
    gen = _generated(s)
    flags = {
        gen[0].key: [{"check": "fringe", "detail": "x"}],
        gen[1].key: [{"check": "hovering", "detail": "y"}, {"check": "halo", "detail": "z"}],
        gen[2].key: [{"check": "fringe", "detail": "x"}],
    }
    with s._db() as db:
        for key, reasons in flags.items():
            db.execute("UPDATE creatives SET qa_status = 'flagged', qa_reasons = ? WHERE key = ?", (json.dumps(reasons), key))
    set_review(s, [gen[0].key], "rejected", reviewer="Ana", role="reviewer", reason="fringe")  # QA right, same reason
    set_review(s, [gen[1].key], "approved", reviewer="Ana", role="reviewer")  # a false flag
    set_review(s, [gen[3].key], "rejected", reviewer="Ana", role="reviewer", reason="bad-texture: stepped")  # QA missed it
    set_review(s, [gen[4].key], "approved", reviewer="Ana", role="reviewer")
    a = qa_agreement(s)
    t = a["totals"]
    assert (t["flagged_rejected"], t["flagged_approved"], t["flagged_pending"]) == (1, 1, 1)
    assert (t["unflagged_rejected"], t["unflagged_approved"]) == (1, 1) and t["unflagged_pending"] == len(gen) - 5
    assert t["precision"] == 0.5 and t["recall"] == 0.5
    by = {c["check"]: c for c in a["checks"]}
    assert by["fringe"] == {
        "check": "fringe",
        "reason": "fringe",
        "flagged": 2,
        "rejected": 1,
        "rejected_for_it": 1,
        "approved": 0,
        "pending": 1,
    }
    assert by["halo"]["approved"] == by["hovering"]["approved"] == 1
    assert a["missed"] == [{"reason": "bad-texture", "rejected": 1}]


def test_qa_evaluate_prints_the_agreement_from_the_store_s_reviews(review_store, capsys):
    from backdrop.cli import main

    s = review_store
    gen = _generated(s)
    with s._db() as db:
        db.execute(
            "UPDATE creatives SET qa_status = 'flagged', qa_reasons = ? WHERE key = ?",
            (json.dumps([{"check": "hovering", "detail": "d"}]), gen[0].key),
        )
    set_review(s, [gen[0].key], "rejected", reviewer="Ana", role="reviewer", reason="hovering")
    set_review(s, [gen[1].key], "rejected", reviewer="Ana", role="reviewer", reason="cut-part")
    args = ["qa", "evaluate", str(s.root)] + (["--store-index", s.index_url] if s.index_url.startswith("postgres") else [])
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == qa_agreement(s) and out["totals"]["recall"] == 0.5 and out["missed"] == [{"reason": "cut-part", "rejected": 1}]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "precision 100.0%" in text and "recall 50.0%" in text and "| hovering | hovering | 1 | 1 | 1 | 0 | 0 |" in text
