"""The service's edges, round two: what a careless or hostile client sends, assets that go missing,
and outcomes that must count once. Each test reproduces a failure a red-team run found (issue 27)."""

from __future__ import annotations

import math
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from _support import AUTH, KEY, Server, settings, store_copy  # noqa: F401 (fixtures)
from fastapi.testclient import TestClient

from backdrop.bandit.policies import Policy
from backdrop.serving.app import create_app
from backdrop.serving.eventlog import open_event_log
from backdrop.serving.learner import Learner
from backdrop.serving.rewards import FEEDBACK

BODY = {"item_id": "apple-juice", "placement": "square", "user": {"id": "u1", "features": {"segment": "a"}}}
PZ = {"Ocp-Apim-Subscription-Key": KEY}
RANK = {"contextFeatures": [{"timeOfDay": "Morning"}], "actions": [{"id": "a", "features": []}, {"id": "b", "features": []}]}


def _app(store, db, **kw):
    return create_app(settings(store, db, **kw))


def _logged(db) -> list:
    log = open_event_log(str(db))
    try:
        return list(log.decisions())
    finally:
        log.close()


def _lose_catalog_images(store) -> None:
    """A store made before `generate` fitted the photo to each placement (no `original` creatives), whose
    catalog photos cannot be read (moved, or a relative path served from another directory)."""
    con = sqlite3.connect(store / "index.sqlite")
    with con:
        con.execute("UPDATE products SET image_path = '/nonexistent/moved/' || product_id || '.png'")
        con.execute("DELETE FROM creatives WHERE style = 'original'")
    con.close()


# --------------------------------------------------------------------------- 1, 14: decide checks before it logs


def test_a_decision_is_never_logged_for_a_baseline_it_cannot_serve(store_copy, tmp_path):
    _lose_catalog_images(store_copy)
    db = tmp_path / "events.sqlite"
    app = _app(store_copy, db, rollout={"baseline": "original", "exploration": 0.1})
    with TestClient(app) as c:
        answers = [c.post("/v1/decide", json=BODY | {"request_id": f"r{i}"}) for i in range(40)]
        codes = {a.status_code for a in answers}
        assert 404 not in codes, [a.json() for a in answers if a.status_code == 404][:2]
        refused = [a for a in answers if a.status_code == 503]
        assert refused and "baseline" in refused[0].json()["detail"] and "apple-juice" in refused[0].json()["detail"]
        served = [a.json() for a in answers if a.status_code == 200]
        for a in served:  # whatever is answered can be fetched
            assert c.get(a["creative"]["url"]).status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503 and any("baseline" in p for p in ready.json()["problems"]), ready.json()
        assert 'backdrop_fallbacks_total{reason="baseline-unavailable"}' in c.get("/metrics").text
    logged = _logged(db)
    assert len(logged) == len(served)  # a refused decision is not in the log
    assert all(d.creative_key and not d.creative_key.startswith("catalog-") for d in logged)


def test_a_rejected_baseline_is_not_replaced_by_the_raw_catalog_photo(store_copy, tmp_path):
    from backdrop.creative.review import set_review
    from backdrop.creative.store import CreativeStore

    s = CreativeStore(store_copy)
    (fitted,) = [r for r in s.creatives(product_id="apple-juice", placement="square") if r.style == "original"]
    set_review(s, [fitted.key], "rejected", reviewer="ana", role="admin", reason="cropped wrong")
    s.close()
    db = tmp_path / "events.sqlite"
    with TestClient(_app(store_copy, db)) as c:
        r = c.post("/v1/decide", json=BODY | {"styles": ["not-a-style"]})  # only the baseline could answer
        assert r.status_code == 503 and "baseline" in r.json()["detail"], r.text
        story = c.post("/v1/decide", json=BODY | {"styles": ["not-a-style"], "placement": "story"}).json()
        assert story["style"] == "original" and (story["creative"]["width"], story["creative"]["height"]) == (1080, 1920)
        assert any("baseline" in p for p in c.get("/readyz").json()["problems"])
    assert [d.placement for d in _logged(db)] == ["story"]


def test_an_unreadable_original_is_not_offered_to_the_policy(store_copy, tmp_path):
    _lose_catalog_images(store_copy)
    db = tmp_path / "events.sqlite"
    app = _app(store_copy, db, experiment=None, rollout=None)
    with TestClient(app) as c:
        answers = [c.post("/v1/decide", json=BODY | {"request_id": f"p{i}"}).json() for i in range(20)]
        assert all(a["style"] != "original" for a in answers)
        assert all(c.get(a["creative"]["url"]).status_code == 200 for a in answers)
    assert all("original" not in d.arms for d in _logged(db))


def test_a_creative_damaged_after_load_leaves_the_candidates_at_once(store_copy, tmp_path):
    from backdrop.creative.store import CreativeStore

    s = CreativeStore(store_copy, readonly=True)
    victims = [r for r in s.creatives(product_id="apple-juice", placement="square") if r.style != "original"]
    s.close()
    app = _app(store_copy, tmp_path / "events.sqlite", store_refresh_s=3600)
    victim = victims[0]
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
        (store_copy / victim.path).write_bytes(b"")  # truncated to 0 bytes while the service runs
        assert c.get(f"/v1/creatives/{victim.key}").status_code == 503
        styles = [c.post("/v1/decide", json=BODY | {"request_id": f"d{i}"}).json()["style"] for i in range(30)]
        assert victim.style not in styles
        ready = c.get("/readyz")
        assert ready.status_code == 503 and any(victim.key in p for p in ready.json()["problems"]), ready.json()


def test_a_periodic_check_finds_a_damaged_creative_nobody_fetched(store_copy, tmp_path):
    from backdrop.creative.store import CreativeStore

    s = CreativeStore(store_copy, readonly=True)
    victim = next(r for r in s.creatives(product_id="apple-juice", placement="square") if r.style != "original")
    s.close()
    app = _app(store_copy, tmp_path / "events.sqlite", store_refresh_s=3600, file_check_s=0.05)
    service = app.state.service
    with TestClient(app) as c:
        (store_copy / victim.path).write_bytes(b"")
        deadline = time.time() + 30
        while victim.key not in service.damaged.keys and time.time() < deadline:
            time.sleep(0.05)
        assert victim.key in service.damaged.keys, "the periodic file check did not find the truncated creative within 30 s"
        styles = [c.post("/v1/decide", json=BODY | {"request_id": f"q{i}"}).json()["style"] for i in range(20)]
        assert victim.style not in styles
        (store_copy / victim.path).unlink()
        assert c.get("/readyz").status_code == 503


# --------------------------------------------------------------------------- 2: the cap bounds the reward


def test_a_huge_negative_purchase_cannot_corrupt_the_model(small_store, tmp_path):
    db = tmp_path / "events.sqlite"
    reward = {"rule": "sum-values", "currency": "EUR", "cap": 100}
    app = _app(small_store, db, reward=reward, join_window_s=1.0)
    with TestClient(app) as c:
        d = c.post("/v1/decide", json=BODY).json()
        r = c.post(
            "/v1/events",
            json={"decision_id": d["decision_id"], "type": "purchase", "value": -1e9, "currency": "EUR", "id": "o1"},
            headers=AUTH,
        )
        assert r.status_code == 200
    from backdrop.serving.rewards import Outcome, RewardFunction

    assert RewardFunction(**reward).reward([Outcome("purchase", -1e9, "EUR")]) == -100
    s = settings(small_store, db, reward=reward, join_window_s=1.0)
    log = open_event_log(str(db))
    try:
        assert Learner.for_settings(log, s).drain(), "the learner published nothing"
        model = Policy.from_bytes(log.latest_model().blob)
        assert float(np.abs(model.b).max()) <= 200, float(np.abs(model.b).max())  # |x| <= ~1: |b| <= cap per decision
    finally:
        log.close()


# --------------------------------------------------------------------------- 3, 9: features and bodies checked at the edge

NUMERIC = {"numeric": {"age": {"center": 35, "scale": 10}}}


@pytest.mark.parametrize("age", ["old", 10**400, -(10**400)], ids=["string", "huge", "-huge"])
def test_a_bad_declared_feature_is_a_422_naming_the_field(small_store, tmp_path, age):
    app = _app(small_store, tmp_path / "events.sqlite", features=NUMERIC)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/decide", json=BODY | {"user": {"id": "u1", "features": {"age": age}}})
        assert r.status_code == 422, r.text
        assert "age" in r.text
    assert _logged(tmp_path / "events.sqlite") == []


@pytest.mark.parametrize("age", ["old", 10**400, "NaN", "Infinity"], ids=["string", "huge", "nan", "inf"])
def test_a_bad_personalizer_context_is_a_400_in_personalizers_shape(small_store, tmp_path, age):
    app = _app(small_store, tmp_path / "events.sqlite", features=NUMERIC)
    value = str(age) if isinstance(age, int) or age in ("NaN", "Infinity") else f'"{age}"'
    raw = '{"contextFeatures": [{"age": ' + value + '}], "actions": [{"id": "a"}, {"id": "b"}]}'
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/personalizer/v1.0/rank", content=raw, headers=PZ | {"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "BadRequest" and "age" in r.json()["error"]["message"]
    for d in _logged(tmp_path / "events.sqlite"):  # nothing non-standard in the log
        assert all(not isinstance(v, float) or math.isfinite(v) for v in d.user_features.values())


def test_personalizer_routes_answer_in_personalizers_shape_before_reading(small_store, tmp_path):
    app = _app(small_store, tmp_path / "events.sqlite")
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/personalizer/v1.0/rank", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "Unauthorized"
        deep = "[" * 5000 + "]" * 5000
        r = c.post("/personalizer/v1.0/rank", content='{"contextFeatures": ' + deep + ', "actions": [{"id": "a"}]}', headers=PZ)
        assert r.status_code == 400 and "error" in r.json(), r.text
        for bad in ("1", True, None):
            c.post("/personalizer/v1.0/rank", json=RANK | {"eventId": f"e-{bad}"}, headers=PZ)
            r = c.post(f"/personalizer/v1.0/events/e-{bad}/reward", json={"value": bad}, headers=PZ)
            assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest", (bad, r.text)


@pytest.mark.parametrize("event_id", ["a/b", "..", ".", "a b", "a?b", "a%2Fb"])
def test_an_event_id_a_url_cannot_address_is_refused_at_rank(small_store, tmp_path, event_id):
    app = _app(small_store, tmp_path / "events.sqlite")
    with TestClient(app) as c:
        r = c.post("/personalizer/v1.0/rank", json=RANK | {"eventId": event_id}, headers=PZ)
        assert r.status_code == 400 and "eventId" in r.json()["error"]["message"], r.text
    assert _logged(tmp_path / "events.sqlite") == []


def test_personalizer_checks_the_key_before_a_byte_of_the_body(small_store, tmp_path):
    from test_service_faults import _raw

    s = Server(["--store", str(small_store), "--db", str(tmp_path / "events.sqlite")], log_path=tmp_path / "serve.log")
    try:
        s.wait_ready()
        head = b"POST /personalizer/v1.0/rank HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 16000\r\n\r\n"
        got, _ = _raw(s.port, head, wait=30)  # announced 16 kB, sent none: the answer must not wait for the body
        assert got.startswith(b"HTTP/1.1 401"), got[:300]
        assert b'"Unauthorized"' in got
    finally:
        s.stop()


# --------------------------------------------------------------------------- 4, 5: one count, one namespace


@pytest.mark.parametrize("rule", ["sum-values", "weighted"])
def test_feedback_counts_once_however_it_arrives(small_store, tmp_path, rule):
    db = tmp_path / "events.sqlite"
    app = _app(small_store, db, reward={"rule": rule, "value_events": ["purchase"]})
    with TestClient(app) as c:
        d = c.post("/v1/decide", json=BODY).json()["decision_id"]
        assert c.post("/v1/feedback", json={"decision_id": d, "reward": 1}, headers=AUTH).json()["status"] == "joined"
        again = c.post("/v1/events", json={"decision_id": d, "type": FEEDBACK, "value": 1}, headers=AUTH)
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
        third = c.post("/v1/events", json={"decision_id": d, "type": FEEDBACK, "value": 1, "id": "2"}, headers=AUTH)
        assert third.json()["status"] == "duplicate", third.text
        fn = app.state.service.settings.reward
    log = open_event_log(str(db))
    try:
        (decision,) = log.decisions()
        ((_, reward),) = log.rewarded([decision], fn)
        assert reward == 1
    finally:
        log.close()


def test_a_decide_request_id_cannot_take_a_personalizer_event_id(small_store, tmp_path):
    app = _app(small_store, tmp_path / "events.sqlite")
    with TestClient(app) as c:
        r = c.post("/v1/decide", json=BODY | {"request_id": "personalizer:future-1"})
        assert r.status_code == 422 and "request_id" in r.text, r.text
        r = c.post("/personalizer/v1.0/rank", json=RANK | {"eventId": "future-1"}, headers=PZ)
        assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- 6: one activation, one count


def test_concurrent_activations_count_once(small_store, db_url):
    app = create_app(settings(small_store, db_url, log_timeout_ms=5000))  # every decision logged, however busy the box
    service = app.state.service
    with TestClient(app) as c:
        ids = [c.post("/v1/decide", json=BODY | {"activate": False}).json()["decision_id"] for _ in range(20)]
        with ThreadPoolExecutor(12) as ex:
            answers = list(ex.map(service.activate, [d for d in ids for _ in range(6)]))
        assert answers.count("activated") == len(ids), answers.count("activated")
        assert 'backdrop_activations_total{status="activated"} 20.0' in c.get("/metrics").text
