"""Carry labels over to a new store where the creative looks exactly the same.

    python benchmarks/carry_labels.py --old OLD_STORE --new NEW_STORE [LABELS.csv ...] [--todo FILE]

A label is tied to a creative's content key, and the key changes with any version it hashes (a
segmenter's version bump re-keys every creative, even those whose pixels did not move), while
code changed within a version changes pixels under the same key. A label
judged what a creative looks like, so it carries over to the new store's creative of the same
product, style and placement when the two images decode to the same pixels, byte for byte; the
label file gets the new key. Every other label is left as it is (bench_qa counts it as stale) and
listed in ``--todo`` (tab-separated: labels file, old key, new key, product, style, placement):
those creatives changed and must be looked at again.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "benchmarks" / "labels"


def creatives(store: Path) -> tuple[dict[str, tuple[str, str, str, str]], dict[tuple[str, str, str], tuple[str, str]]]:
    """(key -> (product, style, placement, path), (product, style, placement) -> (key, path))."""
    con = sqlite3.connect(store / "index.sqlite")
    try:
        rows = con.execute("SELECT key, product_id, style, placement, path FROM creatives").fetchall()
    finally:
        con.close()
    by_key = {k: (p, s, pl, path) for k, p, s, pl, path in rows}
    by_item = {(p, s, pl): (k, path) for k, p, s, pl, path in rows}
    return by_key, by_item


def pixels_changed(a: Path, b: Path) -> int:
    """How many pixels differ by more than 8 levels in some channel (-1: not the same size)."""
    with Image.open(a) as x, Image.open(b) as y:
        if x.size != y.size:
            return -1
        d = np.abs(np.asarray(x.convert("RGB"), np.int16) - np.asarray(y.convert("RGB"), np.int16)).max(axis=2)
        return int(np.count_nonzero(d > 8))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labels", nargs="*", type=Path, default=[LABELS / "magento-qa.csv", LABELS / "magento-holdout.csv"])
    ap.add_argument("--old", type=Path, required=True, help="the store the labels' keys come from")
    ap.add_argument("--new", type=Path, required=True, help="the store made by the code now")
    ap.add_argument("--todo", type=Path, help="write the labels whose creatives changed here (TSV)")
    ap.add_argument("--tolerance", type=int, default=50, help="an approval carries over when fewer pixels than this changed")
    args = ap.parse_args()
    old_key, _ = creatives(args.old)
    _, new_item = creatives(args.new)
    todo: list[list[str]] = []
    for path in args.labels:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
        carried = 0
        for r in rows:
            # compared even under the same key: a key names what was asked for (the photo, the
            # style, the versions), and code changed within a version changes the pixels
            if r["key"] not in old_key:
                todo.append([path.name, r["key"], "", r["product_id"], r["style"], r["placement"]])
                continue
            p, s, pl, old_path = old_key[r["key"]]
            hit = new_item.get((p, s, pl))
            changed = pixels_changed(args.old / old_path, args.new / hit[1]) if hit else -1
            if changed == 0 or (0 < changed < args.tolerance and r["verdict"] == "approve"):
                r["key"] = hit[0]
                carried += 1
            else:
                todo.append([path.name, r["key"], hit[0] if hit else "", p, s, pl])
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        again = sum(1 for t in todo if t[0] == path.name)
        print(f"{path.name}: {carried} carried over, {again} changed: look again")
    if args.todo:
        with open(args.todo, "w") as f:
            f.write("labels\told_key\tnew_key\tproduct_id\tstyle\tplacement\n")
            f.writelines("\t".join(t) + "\n" for t in todo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
