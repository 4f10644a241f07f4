"""The console's review workflow over HTTP (no browser): product by product, bulk actions with
their confirmation, undo, stale pages, the audit's filters and CSV, QA against the reviewers.
The same flows in a real browser: test_console_browser.py."""

from __future__ import annotations

import csv
import io
import re
import shutil
from contextlib import closing

import pytest
from fastapi.testclient import TestClient

from backdrop.console import ConsoleConfig, Keyring, console_app
from backdrop.creative.store import ORIGINAL, CreativeStore

KEY = "test-console-key"


@pytest.fixture
def store(small_store, tmp_path):
    return shutil.copytree(small_store, tmp_path / "store")


@pytest.fixture
def client(store, tmp_path):
    config = ConsoleConfig(store=store, keyring=Keyring.from_console_key(KEY), thumb_cache=tmp_path / "thumbs", page_size=6)
    with TestClient(console_app(config)) as c:
        assert c.post("/console/login", data={"name": "Ana", "key": KEY}, follow_redirects=False).status_code == 303
        yield c


def _csrf(c) -> str:
    return re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', c.get("/console/products").text).group(1)


def _generated(store):
    with closing(CreativeStore(store, readonly=True)) as s:
        return [r for r in s.creatives() if r.style != ORIGINAL]


def _states(c, keys):
    out = {}
    for key in keys:
        text = c.get(f"/console/creatives/{key}").text
        out[key] = re.search(r'Review state: <span class="state (\w+)"', text).group(1)
    return out


def test_a_product_is_reviewed_from_its_page_in_one_confirmed_action_and_undone(client, store):
    c = client
    gen = _generated(store)
    pid = sorted({r.product_id for r in gen})[0]
    mine = [r for r in gen if r.product_id == pid]
    listing = c.get("/console/products").text
    assert f'href="/console/products/{pid}"' in listing and "awaiting review" in listing
    page = c.get(f"/console/products/{pid}").text
    for r in mine:  # the style x placement grid holds every creative of the product
        assert f'data-key="{r.key}"' in page
    assert page.count('<th scope="col">') >= 1 + len({r.placement for r in mine}) and 'id="next-product"' in page
    token = _csrf(c)
    form = {"csrf": token, "product": pid, "status": "approved", "next": f"/console/products/{pid}"}
    confirm = c.post("/console/review/bulk", data=form)
    assert confirm.status_code == 200 and f"Approve {len(mine)} creatives?" in confirm.text
    assert f'name="expected" value="{len(mine)}"' in confirm.text and confirm.text.count("/console/thumb/") == len(mine)
    assert _states(c, [r.key for r in mine]) == {r.key: "pending" for r in mine}  # nothing happens before the confirmation
    done = c.post("/console/review/bulk", data=form | {"expected": str(len(mine))}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(f"/console/products/{pid}?notice=Approved+{len(mine)}")
    shown = c.get(done.headers["location"]).text
    assert f"Approved {len(mine)} creatives (u or Undo reverts it)" in shown and "0 pending" in shown
    assert set(_states(c, [r.key for r in mine]).values()) == {"approved"}
    undo = c.post("/console/review/undo", data={"csrf": token, "next": f"/console/products/{pid}"}, follow_redirects=False)
    assert undo.status_code == 303 and "Undid+your+action" in undo.headers["location"]
    assert set(_states(c, [r.key for r in mine]).values()) == {"pending"}
    again = c.post("/console/review/undo", json={"csrf": token})
    assert again.status_code == 409 and again.json()["detail"] == "Ana has nothing to undo"
    audit = c.get(f"/console/audit?product={pid}").text
    assert audit.count("(undo of ") == len(mine) and f"{2 * len(mine)} changes" in audit


def test_a_bulk_rejection_needs_its_reason_and_a_selection_that_did_not_change(client, store):
    c = client
    gen = _generated(store)
    pid = gen[0].product_id
    token = _csrf(c)
    form = {"csrf": token, "product": pid, "status": "rejected"}
    assert c.post("/console/review/bulk", data=form).status_code == 400  # no reason
    assert "Reject" in c.post("/console/review/bulk", data=form | {"reason_code": "fringe"}).text
    n = sum(r.product_id == pid for r in gen)
    one = next(r.key for r in gen if r.product_id == pid)
    c.post("/console/review", json={"keys": [one], "status": "approved", "csrf": token})  # someone acts meanwhile
    stale = c.post("/console/review/bulk", json=form | {"reason_code": "fringe", "expected": n})
    assert stale.status_code == 409 and f"it is {n - 1} creatives now, not {n}" in stale.json()["detail"]
    ok = c.post("/console/review/bulk", json=form | {"reason_code": "other", "note": "wrong colour", "expected": n - 1})
    assert ok.status_code == 200 and ok.json()["changed"] == n - 1
    table = list(csv.DictReader(io.StringIO(c.get("/console/audit.csv?action=rejected").text)))
    assert (
        len(table) == n - 1
        and {row["reason"] for row in table} == {"other: wrong colour"}
        and {row["product_id"] for row in table} == {pid}
    )


def test_stale_pages_go_to_the_last_page_and_the_console_has_its_icon(client):
    c = client
    r = c.get("/console/review?status=pending&page_no=31", follow_redirects=False)
    assert r.status_code == 303 and re.search(r"/console/review\?status=pending(&page_no=\d+)?$", r.headers["location"])
    last = c.get(r.headers["location"]).text
    shown = re.search(r"Showing (\d+)–(\d+) of (\d+)", last)
    assert int(shown.group(1)) <= int(shown.group(2)) == int(shown.group(3))
    icon = c.get("/console/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert c.get("/console/products?page_no=99", follow_redirects=False).status_code == 303
    audit = c.get("/console/audit?reviewer=Ana&page_no=9", follow_redirects=False)  # the audit pages the same way
    assert audit.status_code == 303 and audit.headers["location"] == "/console/audit?reviewer=Ana"


def test_the_audit_pages_filters_and_shows_what_each_change_was_about(client, store):
    c = client
    gen = _generated(store)
    token = _csrf(c)
    for r in gen[:8]:
        c.post("/console/review", json={"keys": [r.key], "status": "approved", "csrf": token})
    page = c.get("/console/audit").text
    assert "8 changes" in page and page.count('class="audit-thumb"') == 8 and "Page 1 of 1" in page
    assert f"/console/products/{gen[0].product_id}" in page and gen[0].placement in page
    assert "0 changes" in c.get("/console/audit?reviewer=Bo").text
    assert "0 changes" in c.get("/console/audit?since=2999-01-01").text
    assert "8 changes" in c.get("/console/audit?until=2999-01-01&action=approved").text
    bad = c.get("/console/audit?since=yesterday")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    qa = c.get("/console/qa").text
    assert "QA against the reviewers" in qa and 'id="qa-precision">–' in qa  # nothing flagged was reviewed yet


def test_the_console_makes_the_pending_thumbnails_before_anyone_asks(store, tmp_path):
    import time

    cache = tmp_path / "warm-thumbs"
    config = ConsoleConfig(store=store, keyring=Keyring.from_console_key(KEY), thumb_cache=cache)
    pending = [r.key for r in _generated(store)]
    with TestClient(console_app(config)):
        deadline = time.monotonic() + 60  # only stops a hang: ~50 ms a thumbnail
        while not all(any((cache / k[:2]).glob(f"{k}-*.webp")) for k in pending):
            made = len(list(cache.rglob("*.webp")))
            assert time.monotonic() < deadline, f"after 60 s {made} of {len(pending)} pending thumbnails were made"
            time.sleep(0.05)
    quiet = ConsoleConfig(store=store, keyring=Keyring.from_console_key(KEY), thumb_cache=tmp_path / "cold", warm_thumbnails=False)
    with TestClient(console_app(quiet)):
        pass
    assert not (tmp_path / "cold").exists() or not list((tmp_path / "cold").rglob("*.webp"))
