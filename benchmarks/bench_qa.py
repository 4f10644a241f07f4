"""QA against a reviewer's eye: the checks' verdicts on creatives a person labelled by looking.

    python benchmarks/bench_qa.py [--labels benchmarks/labels/magento-qa.csv] [--store DIR] [--no-write]

The labels (one row per creative: key, product_id, style, placement, verdict approve/reject,
reason from a fixed list, note; no images) were made by looking at each creative of the shared
Magento set (../shared/data/magento-catalog) at full size and at 100% crops. Labels are tied to a
creative's content key: when the code changes what a creative looks like, its key changes and
its label no longer applies. The benchmark says how many labels still match (stale ones are
counted, never silently dropped).

Without ``--store`` it makes the store first: ``backdrop generate`` of the whole Magento set,
every placement and style, no overlays, into a temporary folder (a few minutes on 2 cores).

Reported: the labelled pass rate (approved / labelled), QA recall (rejected creatives that QA
flagged; target >= 95%), the false-flag rate (approved creatives flagged; target <= 3%), and
per labelled reason which checks fired. Writes the ``bench_qa`` section of RESULTS.md (the
section is named after the labels file's stem, so a "before" file gets its own).
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import update_section

ROOT = Path(__file__).resolve().parents[1]
MAGENTO = ROOT.parent / "shared" / "data" / "magento-catalog"
REASONS = ("hovering", "cut-part", "fringe", "trapped-background", "wrong-scene", "unreadable-overlay", "bad-texture", "other")
#: which checks speak to a labelled reason
CHECKS_FOR = {
    "hovering": {"hovering"},
    "fringe": {"fringe", "halo"},
    "trapped-background": {"trapped-background"},
    "cut-part": {"cut-part", "cropped-by-canvas", "cut-not-flush"},
    "wrong-scene": {"on-model-packshot-scene", "product-share", "low-contrast"},
    "unreadable-overlay": {"overlay-contrast", "overlay-overlap", "overlay-text"},
}


def read_labels(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows, start=2):
        if r["verdict"] not in ("approve", "reject"):
            raise SystemExit(f"{path}:{i}: verdict: {r['verdict']!r} is not approve or reject")
        for reason in filter(None, r["reason"].split(";")):
            if reason not in REASONS:
                raise SystemExit(f"{path}:{i}: reason: {reason!r} is not one of {', '.join(REASONS)}")
        if r["verdict"] == "reject" and not r["reason"]:
            raise SystemExit(f"{path}:{i}: reason: a reject needs a reason")
    return rows


def make_store(root: Path) -> Path:
    from backdrop.cli import main

    store = root / "store"
    code = main(["generate", str(MAGENTO / "products.csv"), "--out", str(store), "--overlays", "none", "--no-progress", "--json"])
    if code != 0:
        raise SystemExit(f"backdrop generate failed with exit code {code}")
    return store


def qa_of(store: Path) -> dict[str, list[str]]:
    """Key -> the checks that flagged it (empty: ok)."""
    con = sqlite3.connect(store / "index.sqlite")
    try:
        return {k: [r["check"] for r in json.loads(reasons or "[]")] for k, reasons in con.execute("SELECT key, qa_reasons FROM creatives")}
    finally:
        con.close()


def evaluate(labels: list[dict], qa: dict[str, list[str]]) -> dict:
    live = [r for r in labels if r["key"] in qa]
    rejected = [r for r in live if r["verdict"] == "reject"]
    approved = [r for r in live if r["verdict"] == "approve"]
    caught = [r for r in rejected if qa[r["key"]]]
    false_flags = [r for r in approved if qa[r["key"]]]
    by_reason: dict[str, Counter] = defaultdict(Counter)
    agree = 0
    for r in rejected:
        main = r["reason"].split(";")[0]
        checks = qa[r["key"]]
        by_reason[main].update(checks or ["(not flagged)"])
        if set(checks) & CHECKS_FOR.get(main, set()):
            agree += 1
    return {
        "labels": len(labels),
        "live": len(live),
        "stale": len(labels) - len(live),
        "approved": len(approved),
        "rejected": len(rejected),
        "recall": len(caught) / len(rejected) if rejected else None,
        "false_flag_rate": len(false_flags) / len(approved) if approved else None,
        "reason_agreement": agree / len(rejected) if rejected else None,
        "by_reason": {k: dict(v) for k, v in sorted(by_reason.items())},
        "false_flags": Counter(c for r in false_flags for c in qa[r["key"]]),
        "missed": [f"{r['key'][:8]} {r['product_id']} {r['style']} {r['placement']}: {r['reason']}" for r in rejected if not qa[r["key"]]],
    }


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def report(name: str, res: dict) -> str:
    lines = [
        f"## QA against labels: `{name}` (`bench_qa.py`)",
        "",
        f"{res['labels']} creatives of the shared Magento set labelled by looking at each (approve / reject with a reason);"
        f" {res['live']} still match the store's creatives, {res['stale']} are stale (the code changed those creatives' pixels).",
        "",
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| labelled pass rate (approved / live labels) | {pct(res['approved'] / res['live'] if res['live'] else None)} | |",
        f"| QA recall (rejected creatives flagged) | {pct(res['recall'])} | >= 95% |",
        f"| false flags (approved creatives flagged) | {pct(res['false_flag_rate'])} | <= 3% |",
        f"| flag reason matches the labelled reason | {pct(res['reason_agreement'])} | |",
        "",
        "Checks that fired, per labelled reason of the rejected creatives:",
        "",
        "| labelled reason | checks (count) |",
        "|---|---|",
    ]
    for reason, checks in res["by_reason"].items():
        lines.append(f"| {reason} | {', '.join(f'{c} ({n})' for c, n in sorted(checks.items()))} |")
    if res["false_flags"]:
        lines += ["", f"False flags by check: {', '.join(f'{c} ({n})' for c, n in res['false_flags'].most_common())}."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--labels",
        type=Path,
        nargs="+",
        default=[ROOT / "benchmarks" / "labels" / "magento-qa.csv", ROOT / "benchmarks" / "labels" / "magento-holdout.csv"],
        help="label files (default: the calibration set and the held-out set), each evaluated against the same store",
    )
    ap.add_argument("--store", type=Path, help="an existing store of the Magento set (default: make one)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    sets = {path: read_labels(path) for path in args.labels}
    if args.store:
        qa = qa_of(args.store)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            qa = qa_of(make_store(Path(tmp)))
    for path, labels in sets.items():
        res = evaluate(labels, qa)
        body = report(path.stem, res)
        print(body)
        if res["missed"]:
            print("\nmissed rejects:\n  " + "\n  ".join(res["missed"]))
        if not args.no_write:
            update_section(f"bench_qa-{path.stem}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
