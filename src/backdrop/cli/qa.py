"""The QA checks measured against the reviewers: `backdrop qa evaluate STORE`."""

from __future__ import annotations

import json

from ._common import Formatter as _Formatter


def register(sub) -> dict:
    """Add this group's commands to ``sub``; returns command -> handler."""
    qa = sub.add_parser(
        "qa",
        help="how QA's flags agree with the reviewers' verdicts",
        formatter_class=_Formatter,
        description=(
            "`backdrop qa evaluate STORE`: QA's flags (made when the creatives were generated) against the\n"
            "reviewers' latest verdicts in the store's review audit (the console writes them): flagged and\n"
            "rejected, flagged and approved (false flags), rejected unflagged (misses); precision and recall;\n"
            "the same per check, with how many were rejected for the reason the check stands for; and the\n"
            "misses per reviewer's reason. Every review round measures the checks. The console's QA page\n"
            "shows the same figures."
        ),
    )
    qsub = qa.add_subparsers(dest="qa_command", metavar="ACTION", required=True)
    ev = qsub.add_parser("evaluate", help="QA against the reviews of a store", formatter_class=_Formatter)
    ev.add_argument("store", metavar="STORE", help="creative store: a folder, or s3://... with --store-index")
    ev.add_argument("--store-index", metavar="URL", help="the store's index when it is not STORE/index.sqlite")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    return {"qa": cmd_qa}


def _share(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def cmd_qa(args) -> int:
    from ..creative.audit import qa_agreement
    from ..creative.store import CreativeStore
    from ..errors import BackdropError

    try:
        store = CreativeStore(args.store, readonly=True, index=args.store_index)
    except FileNotFoundError as e:
        raise BackdropError(f"{args.store}: not a creative store ({e}); run `backdrop generate` or `backdrop demo` first") from None
    try:
        a = qa_agreement(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps(a))
        return 0
    t = a["totals"]
    reviewed = t["flagged_rejected"] + t["flagged_approved"] + t["unflagged_rejected"] + t["unflagged_approved"]
    print(f"QA against the reviewers of {args.store}: {reviewed:,} generated creatives reviewed")
    print("| | rejected | approved | pending |")
    print("|---|--:|--:|--:|")
    print(f"| flagged by QA | {t['flagged_rejected']:,} | {t['flagged_approved']:,} (false flags) | {t['flagged_pending']:,} |")
    print(f"| not flagged | {t['unflagged_rejected']:,} (missed) | {t['unflagged_approved']:,} | {t['unflagged_pending']:,} |")
    print(
        f"precision {_share(t['precision'])} (of the reviewed flags, the share rejected); recall {_share(t['recall'])} (of the rejections, the share flagged)"
    )
    if a["checks"]:
        print("\n| check | stands for | flagged | rejected | for that reason | approved | pending |")
        print("|---|---|--:|--:|--:|--:|--:|")
        for c in a["checks"]:
            print(
                f"| {c['check']} | {c['reason'] or '–'} | {c['flagged']} | {c['rejected']} | {c['rejected_for_it']} | {c['approved']} | {c['pending']} |"
            )
    if a["missed"]:
        print(
            "\nmissed (rejected, not flagged), by the reviewer's reason: "
            + ", ".join(f"{m['reason']} {m['rejected']}" for m in a["missed"])
        )
    if not reviewed:
        print("nothing reviewed yet: review in `backdrop console` (or `backdrop serve`'s /console), then run this again")
    return 0
