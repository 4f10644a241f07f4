"""The review console in a real browser: Playwright driving Debian's Chromium (no browser download).

`backdrop serve` and `backdrop console` run as the processes a user starts. A reviewer signs in,
filters, approves and rejects with the keyboard; the running service stops serving the rejected
creative within seconds and never serves it after; the results page shows the study's numbers.
Every page is screenshotted and checked for rendered images, labels, focus order and contrast.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from backdrop.console import add_user
from backdrop.creative.store import CreativeStore
from conftest import SEEDS, need

API_KEY = "browser-test-api-key"


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright (pip install -e '.[test]')")
    from browser import chromium_path

    p = sync_playwright().start()
    b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"], headless=True)
    yield b
    b.close()
    p.stop()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Process:
    """A `backdrop` command in its own process group, stopped whatever happens."""

    def __init__(self, args: list[str], ready_path: str, log: Path, env: dict | None = None):
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "backdrop.cli", *args, "--port", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                env=os.environ | (env or {}),
            )
        deadline = time.time() + 60
        while True:
            assert self.proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, f"{args[0]} did not come up: {log.read_text()[-3000:]}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _looked_at(page, shots: Path, name: str) -> Image.Image:
    """Screenshot the page; every image on it loaded (lazy ones too) and the shot is not blank."""
    page.evaluate(
        """async () => { for (const img of document.images) img.loading = 'eager';
                          await Promise.all([...document.images].filter(i => i.getAttribute('src')).map(i => i.decode().catch(() => null))); }"""
    )
    broken = page.evaluate(
        "[...document.images].filter(i => i.getAttribute('src') && !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))"
    )
    assert broken == [], f"{name}: images that did not render: {broken[:5]}"
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shot = Image.open(path).convert("RGB")
    assert np.asarray(shot, dtype=float).std() > 10, f"{name}: the screenshot is blank"
    return shot


_CONTRAST = """() => {
  const channel = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = c => { const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(channel); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || box.right < 0) continue;
    const a = lum(getComputedStyle(el).color), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 24)}" ${ratio.toFixed(2)}`);
  }
  return low;
}"""

_UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter(e => e.offsetParent !== null)
  .filter(e => e.tagName === 'BUTTON' ? !e.textContent.trim() && !e.getAttribute('aria-label')
                                      : !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.outerHTML.slice(0, 80))"""


def _until(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript expression from here: ``page.wait_for_function`` polls with ``eval`` inside the
    page once the expression is not true at once, which the console's CSP (no 'unsafe-eval') refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true within {timeout:g} s: {expression}"
        time.sleep(0.05)


def _accessible(page, name: str) -> None:
    assert page.evaluate(_UNLABELLED) == [], f"{name}: controls without a label"
    assert page.evaluate("[...document.images].filter(i => !i.alt.trim()).length") == 0, f"{name}: images without alt text"
    assert page.evaluate(_CONTRAST) == [], f"{name}: text under 4.5:1 contrast"
    assert page.evaluate("document.documentElement.lang") == "en"


def test_a_reviewer_rejects_with_the_keyboard_and_the_service_stops_serving_it(small_store, studies, tmp_path, chromium):
    store = shutil.copytree(small_store, tmp_path / "store")
    shots = Path(os.environ.get("BACKDROP_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    users = tmp_path / "users.yaml"
    key = add_user(users, "Rita", "reviewer")
    study_log = studies[SEEDS[0]][2] / "events.sqlite"
    serve = _Process(["serve", "--store", str(store)], "/readyz", tmp_path / "serve.log", {"BACKDROP_API_KEY": API_KEY})
    console = None
    try:
        console = _Process(
            [
                "console",
                "--store",
                str(store),
                "--users",
                str(users),
                "--db",
                str(study_log),
                "--service",
                serve.url,
                "--thumb-cache",
                str(tmp_path / "thumbs"),
            ],
            "/console/login",
            tmp_path / "console.log",
        )
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # sign in
        page.goto(console.url + "/")
        page.wait_for_url("**/console/login**")
        _looked_at(page, shots, "login")
        _accessible(page, "login")
        page.fill("#name", "Rita")
        page.fill("#key", key)
        page.press("#key", "Enter")
        page.wait_for_url("**/console/review")
        assert page.locator(".card").count() > 0

        # filter by placement and product
        page.select_option("#f-placement", "square")
        page.fill("#f-product", "juice")
        page.click("button:text('Filter')")
        page.wait_for_url("**placement=square**")
        cards = page.locator(".card")
        n = cards.count()
        assert n >= 3 and all("Juice" in t for t in cards.locator(".title").all_inner_texts())
        _accessible(page, "review")
        # focus order: the skip link, the sections, sign out, then the page in reading order
        page.locator("body").focus()
        order = []
        for _ in range(8):
            page.keyboard.press("Tab")
            order.append(page.evaluate("document.activeElement.textContent.trim() || document.activeElement.id"))
        assert order[:7] == ["Skip to content", "Review", "Products", "Results", "QA", "Audit", "Sign out"]

        assert order[7].startswith("Pending")
        # review with the keyboard: j/k move, a approves, r then a number rejects with that reason, u undoes
        page.locator("#main").focus()
        page.keyboard.press("j")
        first = cards.nth(0).get_attribute("data-key")
        page.keyboard.press("a")
        page.wait_for_selector(f".card[data-key='{first}'].state-approved")
        rejected, title = cards.nth(1).get_attribute("data-key"), cards.nth(1).get_attribute("data-title")
        assert page.evaluate("document.activeElement.dataset.key") == rejected  # moved on
        page.keyboard.press("r")
        assert page.inner_text("#status-message").startswith("Reason? 1 hovering · 2 cut-part · 3 fringe")
        page.keyboard.press("3")
        page.wait_for_selector(f".card[data-key='{rejected}'].state-rejected")
        confirmed_at = time.monotonic()
        assert page.inner_text("#status-message") == f"Rejected: {title}. u undoes it."
        assert page.input_value("#grid-code") == ""  # the reason was for that rejection only
        third = cards.nth(2).get_attribute("data-key")
        page.keyboard.press("a")
        page.wait_for_selector(f".card[data-key='{third}'].state-approved")
        page.keyboard.press("k")
        page.keyboard.press("k")  # wherever the focus is, u undoes the last action: the third card's approval
        page.keyboard.press("u")
        page.wait_for_selector(f".card[data-key='{third}'].state-pending")
        assert page.inner_text("#status-message").startswith("Undid your action")
        assert (page.inner_text("#count-approved"), page.inner_text("#count-rejected")) == ("1", "1")
        _looked_at(page, shots, "review")
        page.keyboard.press("o")  # full size, beside the catalog image
        page.wait_for_selector("dialog#viewer[open]")
        _until(page, "[...document.querySelectorAll('dialog img')].every(i => i.complete && i.naturalWidth > 0)")
        assert page.get_attribute("#viewer-creative", "src").endswith(rejected)
        _looked_at(page, shots, "review-viewer")
        page.keyboard.press("Escape")
        assert errors == []

        # the running service stops serving the rejected creative within seconds, and never serves it again
        record = CreativeStore(store, readonly=True).get(rejected)
        body = {"item_id": record.product_id, "placement": record.placement, "user": {"id": "u0", "features": {}}}

        def served(styles=None, user="u0"):
            r = httpx.post(
                serve.url + "/v1/decide", json=body | {"user": {"id": user, "features": {}}} | ({"styles": styles} if styles else {})
            )
            assert r.status_code == 200, r.text
            return r.json()["creative"]["key"]

        while served([record.arm]) == rejected:  # until the service's review poll applies it
            assert time.monotonic() - confirmed_at < 60, "the service still serves the rejected creative after 60 s"
            time.sleep(0.05)
        stopped_after = time.monotonic() - confirmed_at
        assert rejected not in {served(user=f"u{i}") for i in range(100)}
        assert httpx.get(f"{serve.url}/v1/creatives/{rejected}").status_code == 404

        # what was decided is in the audit, with who and why; the creative's own page shows it
        page.goto(console.url + "/console/audit")
        text = page.inner_text("main")
        assert "Rita" in text and "fringe" in text and "rejected" in text
        _looked_at(page, shots, "audit")
        _accessible(page, "audit")
        page.goto(f"{console.url}/console/creatives/{rejected}")
        assert "rejected" in page.inner_text("main") and page.locator("main img").count() == 2
        _looked_at(page, shots, "creative")

        # the results page: the study's numbers, from its log, with the service's latency
        page.goto(console.url + "/console/results")
        table = studies[SEEDS[0]][0]["table"]
        for arm in table["arms"]:
            row = page.locator(f"#experiment tr[data-arm='{arm['arm']}']")
            assert row.locator(".n").inner_text() == f"{arm['n']:,}"
            assert row.locator(".clicks").inner_text() == f"{arm['clicks']:,}"
        assert page.locator("img.plot").count() == 2
        assert re.search(r"Decide latency\s+p50 [0-9.]+ ms, p99 [0-9.]+ ms over 10[0-9] requests", page.inner_text("main"))
        _looked_at(page, shots, "results")
        _accessible(page, "results")

        # `backdrop serve` mounts the same console, signed into with the store's console key
        mounted = httpx.post(serve.url + "/console/login", data={"name": "Rita", "key": (store / "console-key").read_text().strip()})
        assert mounted.status_code == 303 and mounted.cookies.get("backdrop_console")
    finally:
        if console is not None:
            console.stop()
        serve.stop()
    print(f"the service stopped serving the rejected creative {stopped_after:.2f} s after the reviewer's key press was confirmed")


def test_a_reviewer_clears_a_product_zooms_in_undoes_and_sees_qa_and_the_audit(small_store, tmp_path, chromium):
    """Product by product: the style x placement grid, the product's pending approved in one
    confirmed action and undone, the viewer at 100% with the catalog photo at the same scale and the
    keys working inside it, the audit filtered and exported, QA against the reviewers, a phone's width."""
    store = shutil.copytree(small_store, tmp_path / "store")
    shots = Path(os.environ.get("BACKDROP_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    users = tmp_path / "users.yaml"
    key = add_user(users, "Rita", "reviewer")
    console = _Process(
        ["console", "--store", str(store), "--users", str(users), "--thumb-cache", str(tmp_path / "thumbs")],
        "/console/login",
        tmp_path / "c.log",
    )
    try:
        page = chromium.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        errors: list[str] = []
        missing: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
        page.goto(console.url + "/console/login")
        page.fill("#name", "Rita")
        page.fill("#key", key)
        page.press("#key", "Enter")
        page.wait_for_url("**/console/review")

        # the products awaiting review, then one product's grid
        page.click("header nav a:text('Products')")
        page.wait_for_url("**/console/products")
        rows = page.locator("table.products tbody tr")
        assert rows.count() == 4
        _looked_at(page, shots, "products")
        _accessible(page, "products")
        rows.nth(0).locator("a").first.click()
        page.wait_for_url("**/console/products/*")
        pid = page.url.rsplit("/", 1)[1]
        cells = page.locator("table.matrix .card")
        n = cells.count()
        placements = page.locator("table.matrix thead th").count() - 1
        assert n >= 4 and placements >= 2
        _looked_at(page, shots, "product")
        _accessible(page, "product")
        page.keyboard.press("o")  # nothing focused yet: o opens the first creative
        page.wait_for_selector("dialog#viewer[open]")
        assert page.get_attribute("dialog#viewer", "data-key") == cells.first.get_attribute("data-key")
        page.keyboard.press("Escape")
        page.wait_for_selector("dialog#viewer:not([open])", state="attached")

        # the viewer: 100% is the creative's own pixels, the catalog photo at the same scale; keys work in it
        page.locator("table.matrix .card:not(.baseline)").nth(1).focus()
        page.keyboard.press("o")
        page.wait_for_selector("dialog#viewer[open]")
        _until(page, "[...document.querySelectorAll('dialog img')].every(i => i.complete && i.naturalWidth > 0)")
        page.keyboard.press("z")
        widths = page.evaluate("[...document.querySelectorAll('dialog .pane img')].map(i => [i.naturalWidth, parseFloat(i.style.width)])")
        assert all(abs(w - natural) <= 1 for natural, w in widths), widths  # 100%, both
        assert page.inner_text("#viewer-scale") == "100% (both)" and page.inner_text("#viewer-meta").count("·") == 2
        # zoomed in, the creative's pane starts at the product (its layout box's centre), not the canvas's middle
        off = page.evaluate(
            """(() => { const p = document.querySelector('dialog .pane'), i = p.querySelector('img');
            const [fx, fy] = i.dataset.focus.split(',').map(Number);
            const want = (f, size, view, max) => Math.max(0, Math.min(max, f * size - view / 2));
            return [p.scrollLeft - want(fx, i.offsetWidth, p.clientWidth, p.scrollWidth - p.clientWidth),
                    p.scrollTop - want(fy, i.offsetHeight, p.clientHeight, p.scrollHeight - p.clientHeight), fy]; })()"""
        )
        assert abs(off[0]) <= 2 and abs(off[1]) <= 2 and off[2] != 0.5, off
        _looked_at(page, shots, "viewer-100")
        viewed = page.get_attribute("dialog#viewer", "data-key")
        page.keyboard.press("a")
        page.wait_for_selector(f".card[data-key='{viewed}'].state-approved")
        assert page.get_attribute("dialog#viewer", "data-key") not in (viewed, None)  # on to the next, in the viewer
        page.keyboard.press("Escape")

        # the product's pending in one action, confirmed with its count and its creatives
        pending = page.locator("table.matrix .card.state-pending:not(.baseline)").count()
        page.click("button:text('Approve this product')")
        page.wait_for_url("**/console/review/bulk")
        heading = page.inner_text("h1")
        assert re.fullmatch(rf"Approve {pending} creatives\?", heading), heading
        assert page.locator(".confirm-thumbs img").count() == min(12, pending)
        _looked_at(page, shots, "bulk-confirm")
        _accessible(page, "bulk-confirm")
        page.click("button.confirm")
        page.wait_for_url(f"**/console/products/{pid}?notice=*")
        assert f"Approved {pending} creatives" in page.inner_text("#notice")
        assert page.locator("table.matrix .card.state-approved").count() == pending + 1
        # undo: the product's approval goes, the viewer's single approval stays
        page.locator("#main").focus()
        page.keyboard.press("u")
        _until(page, f"document.querySelectorAll('table.matrix .card.state-pending:not(.baseline)').length === {pending}")
        message = page.inner_text("#status-message")
        assert message.startswith("Undid your action") and f"{pending} creatives back" in message
        page.reload()
        assert page.locator("table.matrix .card.state-approved").count() == 1

        # a rejection that needs words: "other" asks for them
        page.locator("table.matrix .card.state-pending").first.focus()
        target = page.evaluate("document.activeElement.dataset.key")
        page.keyboard.press("r")
        page.keyboard.press("8")
        assert page.evaluate("document.activeElement.id") == "grid-note"
        page.keyboard.type("label upside down")
        page.keyboard.press("Enter")
        page.wait_for_selector(f".card[data-key='{target}'].state-rejected")

        # the audit: who, which product, style and placement, filtered, exported
        page.goto(console.url + "/console/audit")
        audit = page.inner_text("main")
        assert "other: label upside down" in audit and "undo of" in audit
        _looked_at(page, shots, "audit-filtered")
        page.select_option("#a-action", "rejected")
        page.click("button:text('Show')")
        page.wait_for_url("**action=rejected**")
        assert page.locator("table.audit tbody tr").count() == 1
        with page.expect_download() as download:
            page.click("#audit-csv")
        text = Path(download.value.path()).read_text()
        assert text.splitlines()[0].startswith("seq,at,reviewer") and len(text.splitlines()) == 2 and pid in text
        _accessible(page, "audit")

        # QA against the reviewers
        page.click("header nav a:text('QA')")
        page.wait_for_url("**/console/qa")
        assert "QA missed them" in page.inner_text("main")
        _looked_at(page, shots, "qa")
        _accessible(page, "qa")

        # a phone: the header wraps instead of overflowing
        phone = chromium.new_page(viewport={"width": 390, "height": 844})
        phone.context.add_cookies(page.context.cookies())
        phone.goto(console.url + "/console/review")
        wide = phone.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
            ".map(e => e.tagName + '.' + e.className + '#' + e.id).slice(0, 8)"
        )
        assert wide == [], f"wider than a phone: {wide}"
        _looked_at(phone, shots, "review-phone")
        assert errors == [] and missing == [], (errors, missing)
    finally:
        console.stop()
