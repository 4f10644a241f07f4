"""The review console: review states in the store's index (both index backends), the decision
service honouring them, sign-in, roles and CSRF, the read-only event log, and the results figures.
The whole thing in a real browser is in test_console_browser.py."""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from contextlib import closing

import pytest
from fastapi.testclient import TestClient

from backdrop.cli import main
from backdrop.console import ConsoleConfig, Keyring, add_user, console_app
from backdrop.console.app import mount_console
from backdrop.console.results import results
from backdrop.creative.review import (
    ReviewFilter,
    audit,
    keys_of_style,
    review_counts,
    review_page,
    review_seq,
    review_states,
    set_review,
)
from backdrop.creative.store import ORIGINAL, CreativeStore, StoreError
from backdrop.serving.app import create_app
from backdrop.serving.eventlog import LogUnavailable, open_event_log
from backdrop.serving.eventlog.reader import LogReader
from backdrop.serving.settings import load_settings
from conftest import SEEDS

API_KEY = "test-api-key"
CONSOLE_KEY = "test-console-key"


@pytest.fixture
def store(small_store, tmp_path):
    """A copy of the small store (reviews write its index)."""
    return shutil.copytree(small_store, tmp_path / "store")


def test_review_states_are_audited_and_filtered_in_sql(review_store):
    s = review_store
    records = s.creatives()
    generated = [r for r in records if r.style != ORIGINAL]
    originals = [r for r in records if r.style == ORIGINAL]
    # 2 products x 2 placements x 2 styles, and each product's catalog photo fitted to each placement
    assert len(generated) == 8 and len(originals) == 4 and review_seq(s) == 0
    items, total = review_page(s, ReviewFilter())
    # pending is what awaits review: not the originals, served without approval (review.servability)
    assert total == 8 and {i.status for i in items} == {"pending"} and {i.key for i in items} == {r.key for r in generated}
    assert review_page(s, ReviewFilter("all"))[1] == 12
    k1, k2 = generated[0].key, generated[1].key

    changes = set_review(s, [k1], "rejected", reviewer="Ana", role="reviewer", reason="product cut off")
    assert [(c.key, c.previous, c.status) for c in changes] == [(k1, "pending", "rejected")]
    assert set_review(s, [k1], "rejected", reviewer="Ana", role="reviewer") == []  # no change, no audit row
    set_review(s, [k1, k2], "approved", reviewer="Bo", role="admin")
    history = audit(s, k1)
    assert [(c.previous, c.status, c.reviewer, c.reason) for c in history] == [
        ("rejected", "approved", "Bo", ""),
        ("pending", "rejected", "Ana", "product cut off"),
    ]
    assert review_states(s) == ({k1: "approved", k2: "approved"}, review_seq(s)) and review_seq(s) == 3
    with pytest.raises(StoreError, match="not in the store"):
        set_review(s, [generated[2].key, "f" * 32], "rejected", reviewer="Ana", role="reviewer")
    assert review_states(s)[0].get(generated[2].key) is None  # nothing of that call was changed

    # the grid's filters, in SQL
    assert review_page(s, ReviewFilter("approved"))[1] == 2
    assert review_page(s, ReviewFilter("pending"))[1] == 6
    product = s.product(records[0].product_id)
    top = product["category"].split(" > ")[0]
    assert review_page(s, ReviewFilter("all", category=top))[1] == sum(
        1 for r in records if s.product(r.product_id)["category"].startswith(top)
    )
    assert review_page(s, ReviewFilter("all", style="color-pop", placement="story"))[1] == 2
    word = product["title"].split()[0].lower()
    found = review_page(s, ReviewFilter("all", product=word))[0]
    assert found and all(word in i.title.lower() for i in found)
    assert review_page(s, ReviewFilter("all", product="100%_no_such"))[1] == 0  # wildcards in the query are literal
    # the four counts add up to every creative: the unreviewed originals are the baseline, not pending
    assert review_counts(s) == {"pending": 6, "flagged": 0, "approved": 2, "rejected": 0, "baseline": 4}
    # a whole style: approving takes only the pending ones QA did not flag
    pending_pop = [r.key for r in records if r.style == "color-pop" and r.key not in (k1, k2)]
    assert sorted(keys_of_style(s, "color-pop", only_pending_unflagged=True)) == sorted(pending_pop)

    # an original is reviewable: rejected, it leaves the baseline; reset, it is back there (never pending)
    original = originals[0].key
    set_review(s, [original], "rejected", reviewer="Ana", role="reviewer", reason="wrong product")
    assert review_counts(s) == {"pending": 6, "flagged": 0, "approved": 2, "rejected": 1, "baseline": 3}
    [item] = review_page(s, ReviewFilter("rejected"))[0]
    assert item.key == original and item.baseline and item.servability() == "rejected"
    set_review(s, [original], "pending", reviewer="Ana", role="reviewer")
    assert review_counts(s)["baseline"] == 4 and review_page(s, ReviewFilter("pending"))[1] == 6
    # a QA flag holds back a generated creative, not an original: only the former awaits a look
    flagged = [generated[3].key, originals[1].key]
    with s._db() as db:
        for key in flagged:
            db.execute("UPDATE creatives SET qa_status = 'flagged' WHERE key = ?", (key,))
    assert [i.key for i in review_page(s, ReviewFilter("flagged"))[0]] == [generated[3].key]
    assert review_counts(s) == {"pending": 6, "flagged": 1, "approved": 2, "rejected": 0, "baseline": 4}
    assert {i.key for i in review_page(s, ReviewFilter("all"))[0][:2]} == set(flagged)  # "all" shows both, flagged first
    baseline = review_page(s, ReviewFilter("all", style=ORIGINAL))[0]
    assert len(baseline) == 4 and all(i.baseline and i.servability(review_required=True) == "servable" for i in baseline)


def test_a_store_from_before_reviews_reads_as_all_pending(store):
    """Opened read-only (no migration), an index without the review tables is not an error."""
    db = sqlite3.connect(store / "index.sqlite")
    db.executescript("DROP TABLE reviews; DROP TABLE review_audit; UPDATE meta SET value='2' WHERE key='schema_version';")
    db.close()
    ro = CreativeStore(store, readonly=True)
    n_originals = len(ro.creatives(style=ORIGINAL))  # served without approval: not awaiting review
    assert review_states(ro) == ({}, 0) and review_page(ro, ReviewFilter())[1] == len(ro) - n_originals > 0
    assert review_page(ro, ReviewFilter("all"))[1] == len(ro) and review_counts(ro)["baseline"] == n_originals
    with pytest.raises(StoreError, match="read-only"):
        set_review(ro, [ro.creatives()[0].key], "approved", reviewer="Ana", role="admin")
    ro.close()
    CreativeStore(store).close()  # a writer migrates it to schema 3
    assert review_seq(CreativeStore(store, readonly=True)) == 0


def _service(store, **kw):
    settings = load_settings(
        None, store=store, db=str(store / "events.sqlite"), api_key=API_KEY, review_poll_s=0.05, log_timeout_ms=2000.0, **kw
    )
    return create_app(settings)


def _decide(c, item, placement, styles=None, user="u1"):
    body = {"item_id": item, "placement": placement, "user": {"id": user, "features": {"segment": "runners"}}}
    if styles is not None:
        body["styles"] = styles
    r = c.post("/v1/decide", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _wait(condition, what: str, bound_s: float = 30.0) -> None:
    """Poll ``condition`` until it holds; the bound only keeps a broken service from hanging the suite."""
    deadline = time.monotonic() + bound_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {bound_s:g} s"
        time.sleep(0.02)


def test_the_service_stops_serving_a_rejected_creative_at_the_next_review_poll(store):
    writer = CreativeStore(store)
    target = next(r for r in writer.creatives() if r.placement == "square")
    # a creative QA flagged is withheld, until a person approves it
    flagged = next(r for r in writer.creatives() if r.placement == "story" and r.product_id == target.product_id)
    with writer._db() as db:
        db.execute("UPDATE creatives SET qa_status='flagged', qa_reasons='[]' WHERE key=?", (flagged.key,))
    with TestClient(_service(store)) as c:
        assert _decide(c, target.product_id, "square", [target.style])["creative"]["key"] == target.key
        assert _decide(c, flagged.product_id, "story", [flagged.style])["style"] == "original"
        set_review(writer, [target.key], "rejected", reviewer="Ana", role="reviewer", reason="artifact")
        set_review(writer, [flagged.key], "approved", reviewer="Ana", role="reviewer", reason="QA false alarm")
        _wait(
            lambda: _decide(c, target.product_id, "square", [target.style])["creative"]["key"] != target.key,
            "the review poll applied the rejection",
        )
        assert _decide(c, flagged.product_id, "story", [flagged.style])["creative"]["key"] == flagged.key
        served = {_decide(c, target.product_id, "square", user=f"u{i}")["creative"]["key"] for i in range(60)}
        assert target.key not in served and served
        r = c.get(f"/v1/creatives/{target.key}")
        assert r.status_code == 404 and "rejected in review" in r.json()["detail"]
        metrics = c.get("/metrics").text
        assert 'backdrop_creatives{status="rejected"} 1.0' in metrics and "backdrop_review_seq 2.0" in metrics
        # a full reload of the store (the 30 s refresh) keeps the rejection
        c.app.state.service.refresh_index()
        assert target.key not in c.app.state.service.index.files
    writer.close()


def test_a_rejection_while_a_decision_is_being_logged_does_not_fail_that_decision(store):
    """The review poll may apply a rejection between a decision's choice and its commit: the decision,
    logged, is answered with the creative it chose (the rejection takes effect from the next one)."""
    from backdrop.serving.schemas import DecideRequest

    writer = CreativeStore(store)
    target = next(r for r in writer.creatives() if r.placement == "square")
    with TestClient(_service(store)) as c:
        service = c.app.state.service
        req = DecideRequest(item_id=target.product_id, placement="square", styles=[target.style], user={"id": "u1"})
        plan = service.plan(req)
        set_review(writer, [target.key], "rejected", reviewer="Ana", role="reviewer", reason="artifact")
        assert service.refresh_reviews() and target.key not in service.index.files
        logged = service.log.log_decision(plan.record, timeout_s=5)
        answer = service.finish(plan, logged, None)
        assert answer.creative.key == target.key and answer.decision_id == logged.decision_id
        assert _decide(c, target.product_id, "square", [target.style])["creative"]["key"] != target.key
    writer.close()


def test_review_required_serves_only_approved_creatives_and_readiness_says_why(store):
    writer = CreativeStore(store)
    records = [r for r in writer.creatives() if r.style != ORIGINAL]
    originals = [r.key for r in writer.creatives(style=ORIGINAL)]
    with TestClient(_service(store, review_required=True)) as c:
        # nothing approved yet: every decision shows the product's baseline, fitted to the placement (no approval needed)
        ready = c.get("/readyz")
        assert ready.status_code == 200 and "only the baselines" in str(ready.json()["warnings"]), ready.json()
        item = records[0].product_id
        first = _decide(c, item, "square")
        assert first["style"] == ORIGINAL and first["fallback"] == "no-creative" and first["creative"]["key"] in originals
        assert (first["creative"]["width"], first["creative"]["height"]) == (1080, 1080)
        approved = [r for r in records if r.product_id == item and r.placement == "square"][:2]
        set_review(writer, [r.key for r in approved], "approved", reviewer="Ana", role="reviewer")
        _wait(lambda: _decide(c, item, "square", user="probe")["style"] != ORIGINAL, "an approved creative served")
        served = {_decide(c, item, "square", user=f"u{i}")["creative"]["key"] for i in range(40)}
        assert served == {r.key for r in approved} or served < {r.key for r in approved}
        other = next(r for r in records if r.product_id != item)
        fallback = _decide(c, other.product_id, other.placement)
        assert fallback["fallback"] == "no-creative" and fallback["creative"]["key"] in originals  # its baseline
        assert 'backdrop_creatives{status="pending-review"}' in c.get("/metrics").text
        # the baselines rejected too: the products nobody approved have nothing to show, and readiness says so
        set_review(writer, originals, "rejected", reviewer="Ana", role="reviewer")
        _wait(lambda: c.get("/readyz").status_code == 503, "not ready once the baselines are rejected")
        assert "baseline(s) cannot be served" in str(c.get("/readyz").json()["problems"])
        refused = c.post("/v1/decide", json={"item_id": other.product_id, "placement": other.placement})
        assert refused.status_code == 503 and "baseline" in refused.json()["detail"]
    writer.close()


def _console(store, tmp_path, keyring=None, **kw):
    config = ConsoleConfig(store=store, keyring=keyring or Keyring.from_console_key(CONSOLE_KEY), thumb_cache=tmp_path / "thumbs", **kw)
    return console_app(config)


def _login(c, name, key=CONSOLE_KEY):
    return c.post("/console/login", data={"name": name, "key": key}, follow_redirects=False)


def _csrf(c) -> str:
    page = c.get("/console/review")
    assert page.status_code == 200, page.text
    return re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text).group(1)


def test_sign_in_sets_a_strict_session_cookie_and_state_changes_need_csrf(store, tmp_path):
    key = CreativeStore(store, readonly=True).creatives()[0].key
    with TestClient(_console(store, tmp_path), base_url="https://testserver") as c:
        assert c.get("/console/review", follow_redirects=False).headers["location"].startswith("/console/login?next=")
        assert _login(c, "Ana", "wrong").status_code == 401
        r = _login(c, "Ana")
        assert r.status_code == 303 and r.headers["location"] == "/console/review"
        cookie = r.headers["set-cookie"].lower()
        assert all(a in cookie for a in ("httponly", "samesite=strict", "secure", "path=/console"))
        assert "default-src 'self'" in c.get("/console/review").headers["content-security-policy"]
        token = _csrf(c)
        assert c.post("/console/review", json={"keys": [key], "status": "rejected"}).status_code == 403  # no token
        cross = c.post(
            "/console/review", json={"keys": [key], "status": "rejected", "csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403
        bare = c.post("/console/review", json={"keys": [key], "status": "rejected", "csrf": token})
        assert bare.status_code == 400 and "needs a reason" in bare.json()["detail"]  # a rejection says why
        ok = c.post("/console/review", json={"keys": [key], "status": "rejected", "csrf": token, "reason_code": "other", "note": "blurry"})
        assert ok.status_code == 200 and ok.json()["items"][0]["reviewer"] == "Ana"
        form = c.post("/console/review", data={"keys": key, "status": "pending", "csrf": token}, follow_redirects=False)
        assert form.status_code == 303  # a plain form post works too (no JavaScript)
        assert "Ana" in c.get("/console/audit").text
        forged = c.cookies.get("backdrop_console")[:-2] + "00"
        c.cookies.clear()
        c.cookies.set("backdrop_console", forged, path="/console")
        assert c.get("/console/review", follow_redirects=False).status_code == 303  # a forged cookie is nobody
    with TestClient(_console(store, tmp_path), base_url="http://testserver") as c:
        assert "secure" not in _login(c, "Ana").headers["set-cookie"].lower()  # Secure only over TLS
        # a place to go after signing in is a path of this console, never another site
        r = c.post("/console/login", data={"name": "Ana", "key": CONSOLE_KEY, "next": "https://evil.example/x"}, follow_redirects=False)
        assert r.headers["location"] == "/console/review"


def test_the_grid_labels_the_baseline_and_does_not_count_it_as_awaiting_review(store, tmp_path):
    with closing(CreativeStore(store, readonly=True)) as s:
        originals = {r.key for r in s.creatives(style=ORIGINAL)}
        n_generated = len(s) - len(originals)
    assert originals and n_generated
    label = "Baseline: catalog photo, served without approval"
    with TestClient(_console(store, tmp_path)) as c:
        assert _login(c, "Ana").status_code == 303
        pending = c.get("/console/review?status=pending").text
        cards = set(re.findall(r'<li class="card[^"]*"[^>]*data-key="([0-9a-f]+)"', pending))
        assert cards and not cards & originals and label not in pending
        assert re.search(rf'id="count-pending">{n_generated:,}<', pending)
        assert re.search(rf'id="count-baseline">{len(originals):,}<', pending)
        page = c.get(f"/console/review?status=all&style={ORIGINAL}").text
        found = re.findall(r'<li class="card[^"]*\bbaseline\b[^"]*"[^>]*data-key="([0-9a-f]+)"', page)
        assert set(found) == originals and page.count(label) == len(originals)
        # reviewable all the same: the card has its Select box, and a rejection counts as one
        token = _csrf(c)
        key = sorted(originals)[0]
        assert f'name="keys" value="{key}"' in page
        body = c.post("/console/review", json={"keys": [key], "status": "rejected", "reason_code": "wrong-scene", "csrf": token}).json()
        assert body["counts"]["rejected"] == 1 and body["counts"]["baseline"] == len(originals) - 1
        assert body["counts"]["pending"] == n_generated
        assert "served without approval" in c.get(f"/console/creatives/{key}").text


def test_roles_decide_what_a_user_may_change(store, tmp_path):
    users = tmp_path / "users.yaml"
    keys = {name: add_user(users, name, role) for name, role in (("vi", "viewer"), ("re", "reviewer"), ("ad", "admin"))}
    assert users.stat().st_mode & 0o777 == 0o600 and keys["vi"] not in users.read_text()
    records = CreativeStore(store, readonly=True).creatives()
    style = records[0].style
    for name, status in (("vi", 403), ("re", 200)):
        with TestClient(_console(store, tmp_path, Keyring.from_users_file(users))) as c:
            assert _login(c, name, keys[name]).status_code == 303
            token = _csrf(c)
            assert c.post("/console/review", json={"keys": [records[0].key], "status": "approved", "csrf": token}).status_code == status
            whole = c.post("/console/review/bulk", json={"style": style, "status": "rejected", "reason_code": "fringe", "csrf": token})
            assert whole.status_code == 403 and ("admin" if name == "re" else "reviewer role") in whole.json()["detail"]
    with TestClient(_console(store, tmp_path, Keyring.from_users_file(users))) as c:
        assert _login(c, "ad", keys["re"]).status_code == 401  # another user's key
        assert _login(c, "ad", keys["ad"]).status_code == 303
        token = _csrf(c)
        seen = c.post("/console/review/bulk", json={"style": style, "status": "approved", "csrf": token})
        n_style = sum(1 for r in records if r.style == style)
        assert seen.status_code == 200 and seen.json()["matched"] == n_style - 1  # the one approved already is not pending
        stale = c.post("/console/review/bulk", json={"style": style, "status": "approved", "expected": n_style, "csrf": token})
        assert stale.status_code == 409 and f"it is {n_style - 1} creatives now" in stale.json()["detail"]
        whole = c.post("/console/review/bulk", json={"style": style, "status": "approved", "expected": n_style - 1, "csrf": token})
        assert whole.status_code == 200 and whole.json()["changed"] == n_style - 1
        cookie = c.cookies.get("backdrop_console")
    add_user(users, "ad", "viewer")  # a changed users file signs everybody out
    with TestClient(_console(store, tmp_path, Keyring.from_users_file(users))) as c:
        c.cookies.set("backdrop_console", cookie, path="/console")
        assert c.get("/console/review", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_console_reads_the_event_log_and_cannot_change_it(backend, tmp_path, request):
    url = str(tmp_path / "events.sqlite") if backend == "sqlite" else request.getfixturevalue("pg_url")
    log = open_event_log(url)
    log.migrate()
    log.close()
    reader = LogReader(url)
    assert reader.query("SELECT COUNT(*) FROM decisions") == [(0,)]
    with pytest.raises(LogUnavailable, match=r"read-only|readonly"):
        reader.query("INSERT INTO heartbeat (writer, at) VALUES ('console', 1)")
    with pytest.raises(LogUnavailable, match=r"read-only|readonly"):
        reader.query("DELETE FROM decisions")
    reader.close()
    with pytest.raises(LogUnavailable, match="no event log yet"):
        LogReader(str(tmp_path / "none.sqlite")).query("SELECT 1")


def test_the_results_are_the_studys_numbers(studies, small_store):
    result, _, out = studies[SEEDS[0]]
    s = CreativeStore(small_store, readonly=True)
    categories = {p["product_id"]: p["category"] for p in s.products()}
    r = results(LogReader(str(out / "events.sqlite")), categories)
    study = {a["arm"]: a for a in result["table"]["arms"]}
    shown = {a["arm"]: a for a in r["experiment"]["arms"]}
    assert shown.keys() == study.keys()
    for arm, row in study.items():
        assert (shown[arm]["n"], shown[arm]["clicks"]) == (row["n"], row["clicks"])
        for field in ("ctr", "lift", "lift_low", "always_valid_p"):
            if not row["control"]:
                assert shown[arm][field] == pytest.approx(row[field], rel=1e-9), field
        assert shown[arm]["ctr"] == pytest.approx(row["ctr"], rel=1e-12)
    assert r["summary"]["decisions"] == result["table"]["impressions"]
    by_arm = {row["arm"]: row for row in r["by_arm"]}
    assert by_arm["original"]["control"] and sum(row["n"] for row in r["by_arm"]) == result["table"]["impressions"]
    assert {row["group"] for row in r["by_placement"]} == {"square", "story"}
    assert r["models"] and r["models"][-1]["version"] == len(r["models"])
    assert r["plots"]["ctr"].startswith("data:image/png;base64,")
    # for whom: each context field the study's users carried, and the policy against the best single style
    fields = {f["field"] for f in r["for_whom"]}
    assert {"segment", "placement"} <= fields
    v = r["vs_best_style"]
    personalized = study["personalized"]
    assert v["policy_decisions"] == personalized["n"] and v["policy_ctr"] == pytest.approx(personalized["ctr"], rel=1e-9)
    assert v["decisions"] == result["table"]["impressions"] - study["original"]["n"]
    assert v["lift_low"] is None or v["lift_low"] <= v["lift"] <= v["lift_high"]
    assert v["verdict"]


def test_the_service_mounts_the_console_with_its_own_metrics(store, tmp_path):
    app = _service(store)
    mount_console(app, Keyring.from_console_key(CONSOLE_KEY), thumb_cache=tmp_path / "thumbs")
    with TestClient(app) as c:
        record = CreativeStore(store, readonly=True).creatives()[0]
        for i in range(5):
            _decide(c, record.product_id, record.placement, user=f"u{i}")
        assert _login(c, "Ana").status_code == 303
        page = c.get("/console/results").text
        assert "5</strong> decisions" in page
        latency = re.search(r"p50 ([0-9.]+) ms, p99 ([0-9.]+) ms over 5 requests", page)
        assert latency and 0 < float(latency.group(1)) <= float(latency.group(2))
        thumb = c.get(f"/console/thumb/{record.key}")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        assert (tmp_path / "thumbs" / record.key[:2] / f"{record.key}-360.webp").is_file()  # cached


def test_console_user_and_console_errors_on_the_command_line(store, tmp_path, capsys):
    users = tmp_path / "u.yaml"
    assert main(["console-user", "ana", "--role", "reviewer", "--users", str(users), "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["role"] == "reviewer" and Keyring.from_users_file(users).login("ana", out["key"]).role == "reviewer"
    assert main(["console", "--store", str(tmp_path / "nothing")]) == 2
    assert "not a creative store" in capsys.readouterr().err
    users.write_text("users:\n  - name: bo\n    role: boss\n    key_sha256: " + "0" * 64 + "\n")
    assert main(["console", "--store", str(store), "--users", str(users)]) == 2
    assert "users entry 1 (bo): role must be one of viewer, reviewer, admin" in capsys.readouterr().err
