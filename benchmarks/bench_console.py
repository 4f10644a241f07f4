"""The review console on a store of 100k creatives: page times, review writes, the service's review
poll, and thumbnails. Writes the ``bench_console`` section of RESULTS.md.

The store's index is filled with 100,000 synthetic creative rows (5,000 products in 50 categories x 4
placements x 5 of 20 styles, 1% flagged by QA; no image files, which no page query reads) and the
console answers real HTTP requests through its app (Starlette's test client, in process). The peer is
the same index without the console's SQL indexes (a store from before them), in the same run.

    python benchmarks/bench_console.py [--creatives 100000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEMENTS = [("square", 1080, 1080), ("landscape", 1200, 628), ("portrait", 1080, 1350), ("story", 1080, 1920)]
STYLES = [f"style-{i:02d}" for i in range(20)]
CONSOLE_INDEXES = ("creatives_review_order", "creatives_style", "creatives_qa", "products_category")


def build(root: Path, n_creatives: int, seed: int = 0) -> dict:
    from backdrop.creative.store import CreativeStore

    rng = random.Random(seed)
    store = CreativeStore(root)
    store.close()
    per_product = len(PLACEMENTS) * 5
    n_products = n_creatives // per_product
    words = ["trail", "merino", "studio", "linen", "canvas", "juice", "ceramic", "leather", "cotton", "steel"]
    db = sqlite3.connect(root / "index.sqlite")
    products, creatives = [], []
    for i in range(n_products):
        category = f"Department {i % 5} > Category {i % 50:02d}"
        title = f"{rng.choice(words).title()} {rng.choice(words)} item {i}"
        products.append((f"p{i:05d}", title, category, f"/nonexistent/p{i}.jpg", f"{i:064x}", "{}", 0.0))
        for style in rng.sample(STYLES, 5):
            for placement, w, h in PLACEMENTS:
                key = f"{len(creatives):032x}"
                flagged = rng.random() < 0.01
                reasons = json.dumps([{"check": "low-contrast", "detail": "synthetic"}]) if flagged else "[]"
                creatives.append(
                    (
                        key,
                        f"p{i:05d}",
                        style,
                        placement,
                        "procedural",
                        "1",
                        0,
                        f"creatives/{key[:2]}/{key}.png",
                        "png",
                        w,
                        h,
                        1000,
                        "",
                        "",
                        "{}",
                        "{}",
                        float(len(creatives)),
                        "flagged" if flagged else "ok",
                        reasons,
                    )
                )
    with db:
        db.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?)", products)
        db.executemany(f"INSERT INTO creatives VALUES ({','.join('?' * 19)})", creatives)
    db.execute("ANALYZE")
    db.close()
    return {"products": n_products, "creatives": len(creatives), "flagged": sum(1 for c in creatives if c[17] == "flagged")}


def timed(fn, repeat: int) -> dict:
    fn()  # warm
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50": statistics.median(times), "p95": times[min(len(times) - 1, int(0.95 * len(times)))]}


def console_pages(root: Path, repeat: int, tmp: Path) -> dict:
    from fastapi.testclient import TestClient

    from backdrop.console import ConsoleConfig, Keyring, console_app

    app = console_app(ConsoleConfig(store=root, keyring=Keyring.from_console_key("k"), thumb_cache=tmp / "thumbs"))
    out = {}
    with TestClient(app) as c:
        c.post("/console/login", data={"name": "bench", "key": "k"})
        csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', c.get("/console/review").text).group(1)

        def get(url):
            r = c.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])

        for name, url in (
            ("review grid, pending, page 1", "/console/review"),
            ("flagged by QA", "/console/review?status=flagged"),
            ("one category", "/console/review?category=Department+2+%3E+Category+17"),
            ("a department (category prefix)", "/console/review?category=Department+3"),
            ("style + placement", "/console/review?style=style-07&placement=story"),
            ("product title words", "/console/review?product=merino"),
            ("page 1,000 of the grid", "/console/review?status=all&page_no=1000"),
        ):
            out[name] = timed(lambda url=url: get(url), repeat)
        keys = [f"{i:032x}" for i in range(0, 60 * 40, 40)]
        state = {"i": 0}

        def select():
            status = ("approved", "pending")[state["i"] % 2]
            state["i"] += 1
            r = c.post("/console/review", json={"keys": keys, "status": status, "csrf": csrf})
            assert r.status_code == 200 and r.json()["changed"] == 60, r.text

        out["approve or reset a selection of 60 (POST)"] = timed(select, repeat)
        t0 = time.perf_counter()
        r = c.post("/console/review/style", json={"style": "style-04", "category": "Department 1", "status": "rejected", "csrf": csrf})
        whole = {"ms": (time.perf_counter() - t0) * 1000, "changed": r.json()["changed"]}
    return {"pages": out, "whole_style": whole}


def peer_without_indexes(root: Path, tmp: Path, repeat: int) -> dict:
    """The grid's queries on the same index without the console's SQL indexes."""
    import shutil

    from backdrop.creative.review import ReviewFilter, review_page
    from backdrop.creative.store import CreativeStore

    peer = tmp / "peer"
    shutil.copytree(root, peer)
    db = sqlite3.connect(peer / "index.sqlite")
    for name in CONSOLE_INDEXES:
        db.execute(f"DROP INDEX {name}")
    db.close()
    out = {}
    for label, path in (("with the console's indexes", root), ("without (peer)", peer)):
        s = CreativeStore(path, readonly=True)
        out[label] = {
            "flagged": timed(lambda s=s: review_page(s, ReviewFilter("flagged")), repeat)["p50"],
            "style + placement": timed(lambda s=s: review_page(s, ReviewFilter("all", style="style-07", placement="story")), repeat)["p50"],
            "one category": timed(lambda s=s: review_page(s, ReviewFilter("all", category="Department 2 > Category 17")), repeat)["p50"],
        }
        s.close()
    return out


def service_poll(root: Path, repeat: int) -> dict:
    """What a replica pays: the cheap "anything new?" query every poll, and applying the states."""
    from backdrop.creative.review import review_seq, review_states
    from backdrop.creative.store import CreativeStore
    from backdrop.serving.index import CreativeIndex, _Candidate, _Creative

    s = CreativeStore(root, readonly=True)
    seq_ms = timed(lambda: review_seq(s), repeat)
    states_ms = timed(lambda: review_states(s), repeat)
    states, seq = review_states(s)
    candidates = tuple(
        _Candidate(r.product_id, r.placement, r.arm, r.flagged, _Creative(r.key, None, r.width, r.height, "image/png", r.bytes, r.path))
        for r in s.creatives()
    )
    s.close()
    index = CreativeIndex(root, candidates=candidates)
    apply_ms = timed(lambda: index.with_reviews(states, seq), max(3, repeat // 3))
    return {"seq": seq_ms, "states": states_ms, "apply": apply_ms, "reviewed": len(states), "candidates": len(candidates)}


def thumbnails(tmp: Path, repeat: int) -> dict:
    import io

    import numpy as np
    from PIL import Image

    from backdrop.console.images import Thumbnails

    rng = np.random.default_rng(0)
    image = (rng.random((1080, 1080, 3)) * 40 + np.linspace(60, 200, 1080)[None, :, None]).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG", compress_level=1)
    data = buf.getvalue()
    thumbs = Thumbnails(tmp / "thumb-bench")
    names = iter(f"{i:032x}" for i in range(10_000))
    first = timed(lambda: thumbs.get(next(names), lambda: data), repeat)
    thumbs.get("cached" + "0" * 26, lambda: data)
    cached = timed(lambda: thumbs.get("cached" + "0" * 26, lambda: data), repeat)
    return {"first": first, "cached": cached}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--creatives", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_console-") as d:
        tmp = Path(d)
        root = tmp / "store"
        t0 = time.perf_counter()
        info = build(root, args.creatives)
        print(f"built {info} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        peer = peer_without_indexes(root, tmp, args.repeat)
        pages = console_pages(root, args.repeat, tmp)
        poll = service_poll(root, args.repeat)
        thumbs = thumbnails(tmp, args.repeat)
    rows = "\n".join(f"| {name} | {t['p50']:.1f} | {t['p95']:.1f} |" for name, t in pages["pages"].items())
    peer_rows = "\n".join(
        f"| {label} | {v['flagged']:.1f} | {v['style + placement']:.1f} | {v['one category']:.1f} |" for label, v in peer.items()
    )
    body = f"""
## Review console (`bench_console.py`)

A store index of {info["creatives"]:,} creatives ({info["products"]:,} products in 50 categories x 4 placements x 5 of 20
styles, {info["flagged"]:,} flagged by QA); real HTTP requests to the console app in process (sign-in cookie,
CSRF, Jinja2 rendering of 60 cards), {args.repeat} repeats each.

| request | p50 ms | p95 ms |
|---|---:|---:|
{rows}

Rejecting a whole style in a department (admin): {pages["whole_style"]["changed"]:,} creatives in one transaction,
{pages["whole_style"]["ms"]:.0f} ms, every change audited.

The grid's query alone (p50 ms), with the console's SQL indexes and without them (the peer: the same index
before schema 3), same run:

| index | flagged first | style + placement | one category |
|---|---:|---:|---:|
{peer_rows}

What a decision-service replica pays per review poll (every `review_poll_s`, 1 s by default): the
"anything new?" query {poll["seq"]["p50"]:.2f} ms; when something changed, reading the
{poll["reviewed"]:,} review states {poll["states"]["p50"]:.1f} ms and applying them to the
{poll["candidates"]:,} indexed creatives {poll["apply"]["p50"]:.0f} ms (a new snapshot, swapped in one assignment).

Thumbnails (360 px WebP from a 1080x1080 PNG): {thumbs["first"]["p50"]:.1f} ms to make, {thumbs["cached"]["p50"]:.2f} ms
from the cache (content-addressed: made once per creative).
"""
    print(body)
    if not args.no_write:
        sys.path.insert(0, str(HERE))
        from _results import update_section

        update_section("bench_console", body)


if __name__ == "__main__":
    main()
