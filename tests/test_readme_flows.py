"""Every flow the README shows, through the real command line, on one small store made the way
`backdrop demo` makes its store: each style plain and with the demo's overlays (price; sale for a
product on sale), so overlay arms ("stacked-discs+price") are in every flow. Smaller than the demo
(3 products x 2 placements x 2 styles) so the module stays within ~40 s; `backdrop demo` itself,
all 735 creatives, runs in test_wheel.py.

The flows: report, study (and abtest on its log), serve with a decide, a creative and a click,
console sign-in, export feed (with the study's results), cost. Each is checked for what it says,
not only for its exit code.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backdrop.cli import DEMO_DIR, main
from backdrop.cli.creative import DEMO_OVERLAYS
from backdrop.creative.store import CreativeStore
from backdrop.experiments.study import ARMS

DEMO_CATALOG = DEMO_DIR / "products.csv"
#: the catalog's first three, all Juices: apple and carrot with a price, banana on sale (a price and a sale overlay)
PRODUCTS = ("apple-juice", "banana-juice", "carrot-juice")
STYLES = ("stacked-discs", "sunny-terrazzo")
PLACEMENTS = ("square", "story")
BASE_URL = "https://creatives.example.com"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("readme") / "store"
    args = ["generate", str(DEMO_CATALOG), "--out", str(root), "--placements", ",".join(PLACEMENTS), "--limit", str(len(PRODUCTS))]
    args += ["--styles", ",".join(STYLES), "--overlays", ",".join(DEMO_OVERLAYS), "--workers", "1", "--no-progress", "--json"]
    assert main(args) == 0
    return root


def _records(store: Path):
    s = CreativeStore(store, readonly=True)
    try:
        return s.creatives()
    finally:
        s.close()


def test_the_store_holds_overlay_arms_as_the_demo_makes_them(store):
    arms = {(r.product_id, r.arm) for r in _records(store)}
    assert {p for p, _ in arms} == set(PRODUCTS)
    for style in STYLES:
        assert {("apple-juice", style), ("apple-juice", f"{style}+price")} <= arms
        assert {("banana-juice", f"{style}+price"), ("banana-juice", f"{style}+sale")} <= arms
    assert ("apple-juice", f"{STYLES[0]}+sale") not in arms  # not on sale: no sale overlay


def test_report_shows_every_creative(store, tmp_path, capsys):
    html = tmp_path / "report.html"
    assert main(["report", str(store), "--out", str(html), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    records = _records(store)
    assert out["creatives"] == len(records) and Path(out["report"]) == html
    page = html.read_text()
    for arm in {r.arm for r in records}:
        assert arm in page, arm
    assert page.count("<img") >= len(records)


@pytest.fixture(scope="module")
def study(store, tmp_path_factory):
    """`backdrop study --json` on the store, small: (its result, its output folder)."""
    out = tmp_path_factory.mktemp("study") / "study-out"
    with _captured() as printed:
        code = main(
            ["study", "--store", str(store), "--out", str(out), "--impressions", "400", "--base-ctr", "0.1", "--no-progress", "--json"]
        )
    assert code == 0, printed.get("err", "")
    return json.loads(printed["out"]), out


@contextlib.contextmanager
def _captured():
    """stdout and stderr of an in-process CLI call (a module fixture cannot take capsys)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    printed: dict[str, str] = {}
    try:
        with redirect_stdout(out), redirect_stderr(err):
            yield printed
    finally:
        printed.update(out=out.getvalue(), err=err.getvalue())


def test_study_serves_overlay_arms_and_analyses_the_services_log(study, store, capsys):
    """Issue 27, 13: the demo store's overlay arms were unknown to the study's click model (KeyError in the
    client threads, then "25 decisions logged for 40000 impressions served")."""
    from backdrop.serving.eventlog import open_event_log

    result, out = study
    assert result["left_out"] == {}
    table = result["table"]
    assert table["impressions"] == 400 and {a["arm"] for a in table["arms"]} == set(ARMS)
    assert table["clicks"] > 0 and table["srm"]["warning"] is None
    assert len(result["ablations"]) == 5 and all(-1 < a["true_lift"] < 5 for a in result["ablations"])
    log = open_event_log(str(out / "events.sqlite"))
    try:
        decisions = list(log.decisions())
    finally:
        log.close()
    assert len(decisions) == 400
    stored = {(r.product_id, r.placement, r.arm) for r in _records(store)}
    served = {(d.item_id, d.placement, d.arm) for d in decisions if d.arm != "original"}
    assert served <= stored
    assert any("+" in arm for _, _, arm in served), "no overlay arm was served"
    assert (out / "report.html").read_text().count("Clicks in this study are simulated") >= 1

    # `backdrop abtest` on the study's log gives the study's table
    assert main(["abtest", str(out / "events.sqlite"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(table))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _process(args: list[str], log: Path):
    """`backdrop ARGS` in its own process group, stopped at the end whatever happens."""
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "backdrop.cli", *args], stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_for(url: str, proc: subprocess.Popen, log: Path, bound: float = 120.0) -> None:
    """Until ``url`` answers 200; the bound only stops a hang (a slow machine is not a failure)."""
    deadline = time.time() + bound
    while True:
        assert proc.poll() is None, f"{url}: the process exited ({proc.returncode}): {log.read_text()[-2000:]}"
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, f"{url} did not answer 200 within {bound:.0f} s: {log.read_text()[-2000:]}"
        time.sleep(0.2)


def test_serve_decides_serves_the_creative_and_joins_a_click_and_the_console_signs_in(store, tmp_path):
    serve_port, console_port = _free_port(), _free_port()
    serve_log, console_log = tmp_path / "serve.log", tmp_path / "console.log"
    # the README's commands: `backdrop serve --store demo-out/store --learn`, `backdrop console --store demo-out/store`
    with (
        _process(["serve", "--store", str(store), "--learn", "--port", str(serve_port)], serve_log) as serve,
        _process(
            ["console", "--store", str(store), "--port", str(console_port), "--thumb-cache", str(tmp_path / "thumbs")], console_log
        ) as console,
    ):
        api = f"http://127.0.0.1:{serve_port}"
        _wait_for(api + "/readyz", serve, serve_log)
        servable = {(r.product_id, r.placement): set() for r in _records(store)}
        for r in _records(store):
            if not r.flagged:
                servable[(r.product_id, r.placement)].add(r.arm)
        decided = []
        for item, placement in (("apple-juice", "square"), ("banana-juice", "story")):
            body = {
                "request_id": f"imp-{item}",
                "item_id": item,
                "placement": placement,
                "user": {"id": "u42", "features": {"segment": "runners", "device": "ios", "age": 31}},
            }
            r = httpx.post(api + "/v1/decide", json=body, timeout=30)
            assert r.status_code == 200, r.text
            d = r.json()
            assert d["decision_id"] and d["fallback"] is None and 0 < d["propensity"] <= 1, d
            assert d["style"] in servable[(item, placement)], d
            image = httpx.get(api + d["creative"]["url"], timeout=30)
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            record = next(x for x in _records(store) if x.key == d["creative"]["key"])
            assert image.content == (store / record.path).read_bytes() and record.arm == d["style"]
            decided.append(d)
        key = (store / "api-key").read_text().strip()
        fb = httpx.post(
            api + "/v1/feedback", json={"decision_id": decided[0]["decision_id"], "reward": 1}, headers={"X-API-Key": key}, timeout=30
        )
        assert fb.status_code == 200 and fb.json()["status"] == "joined", fb.text

        ui = f"http://127.0.0.1:{console_port}/console"
        _wait_for(ui + "/login", console, console_log)
        with httpx.Client(base_url=ui, timeout=30) as c:
            assert c.post("/login", data={"name": "Ana", "key": "wrong"}).status_code == 401
            login = c.post("/login", data={"name": "Ana", "key": (store / "console-key").read_text().strip()})
            assert login.status_code == 303 and login.headers["location"] == "/console/review", login.text
            grid = c.get("/review?status=all")
            assert grid.status_code == 200 and "Sign in" not in grid.text
            overlay = next(r for r in _records(store) if r.overlay)
            page = c.get(f"/creatives/{overlay.key}")
            assert page.status_code == 200 and overlay.arm in page.text
            results = c.get("/results.json")
            assert results.status_code == 200, console_log.read_text()[-3000:]
            assert results.json()["summary"]["decisions"] == 2  # the two decisions above, from STORE/events.sqlite


def _rows(path: Path, delimiter: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def test_export_feed_takes_plain_creatives_with_and_without_the_studys_results(store, study, tmp_path, capsys):
    by_key = {r.key: r for r in _records(store)}
    _, study_out = study
    for extra in ([], ["--results", str(study_out / "events.sqlite")]):
        out = tmp_path / "supplemental.tsv"
        args = ["export", "feed", "--store", str(store), "--catalog", str(DEMO_CATALOG), "--base-url", BASE_URL]
        args += ["--out", str(out), "--json"]
        assert main(args + extra) == 0
        summary = json.loads(capsys.readouterr().out)
        rows = _rows(out, "\t")
        assert sorted(r["id"] for r in rows) == sorted(PRODUCTS)
        assert len(summary["skipped"]) == 17  # the catalog's other products have no creative in this store
        for row in rows:
            prefix = f"{BASE_URL}/v1/creatives/"
            assert row["image_link"].startswith(prefix)
            chosen = by_key[row["image_link"].removeprefix(prefix)]
            # Merchant Center refuses promotional text on product images: never an overlay
            assert chosen.product_id == row["id"] and chosen.placement == "square" and not chosen.overlay and not chosen.flagged
            assert chosen.style in STYLES, chosen.style


def test_cost_of_a_catalog_measured_on_the_store(store, capsys):
    args = ["cost", "--products", "1000000", "--placements", "3", "--styles", "5", "--store", str(store), "--json"]
    assert main(args) == 0
    e = json.loads(capsys.readouterr().out)
    records = _records(store)
    assert e["images"] == 15_000_000 and e["provenance"]["bytes_per_creative"] == "measured"
    assert e["bytes_per_creative"] == pytest.approx(sum(r.bytes for r in records) / len(records))
    assert e["gpu_hours"] == pytest.approx(e["generated_images"] / e["gpu_images_per_s"] / 3600)
    # every overlay variant is a file of its own: storage counts them (the GPU renders each scene once)
    images = {(r.product_id, r.placement, r.style) for r in records if r.style != "original"}
    assert e["files_per_image"] == pytest.approx(len(records) / len(images)) and e["files_per_image"] > 2
    assert e["provenance"]["files_per_image"] == "measured"
    assert e["storage_bytes"] == pytest.approx(15_000_000 * e["files_per_image"] * e["bytes_per_creative"])
    assert main(["cost"]) == 0
    table = capsys.readouterr().out
    assert "| 10,000 |" in table and "| 10,000,000 |" in table and "Assumptions" in table
