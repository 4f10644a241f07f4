"""The decision service on both event-log backends: the API contract, the log, the learner."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backdrop.bandit import Policy
from backdrop.errors import BackdropError
from backdrop.serving.app import create_app
from backdrop.serving.eventlog import (
    SQLiteEventLog,
    TooLate,
    UnknownDecision,
    VersionConflict,
    open_event_log,
)
from backdrop.serving.learner import Learner, train_offline
from backdrop.serving.records import DecisionRecord
from backdrop.serving.settings import load_settings

KEY = "test-key-123"
AUTH = {"X-API-Key": KEY}
ROOT = Path(__file__).resolve().parents[1]


def _settings(store, db_url, **kw):
    kw.setdefault("join_window_s", 60.0)
    # these tests are about what is logged, not the latency bound (the fault tests hold that): on a
    # busy 2-core machine a commit can take longer than the production default of 50 ms
    kw.setdefault("log_timeout_ms", 2000.0)
    return load_settings(None, store=store, db=db_url, api_key=KEY, commit_grace_s=2.5, model_poll_s=0.05, **kw)


@pytest.fixture
def client(small_store, db_url):
    app = create_app(_settings(small_store, db_url))
    with TestClient(app) as c:
        yield c


def _decide(c, item="apple-juice", placement="square", **kw):
    body = {"item_id": item, "placement": placement, "user": {"id": "u1", "features": {"segment": "runners", "age": 31}}} | kw
    return c.post("/v1/decide", json=body)


def test_decide_logs_before_answering_and_retries_are_idempotent(client):
    r = _decide(client, request_id="req-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["style"] in ("color-pop", "marble-counter") and body["fallback"] is None
    assert 0 < body["propensity"] <= 1 and body["model_version"] == 0 and body["policy"] == "pooled-ucb"
    log = client.app.state.service.log
    logged = log.get_decision(body["decision_id"])
    assert logged is not None and logged.arm == body["style"] and logged.propensity == body["propensity"]
    assert sorted(logged.arms) == ["color-pop", "marble-counter"] and len(logged.context) == 64
    assert logged.user_features == {"segment": "runners", "age": 31}

    again = _decide(client, request_id="req-1").json()
    assert again == body
    assert log.counts()["decisions"] == 1
    clash = _decide(client, item="banana-juice", request_id="req-1")
    assert clash.status_code == 409 and "req-1" in clash.json()["detail"]


def test_propensity_is_the_served_policys_probability(client):
    service = client.app.state.service
    for _ in range(30):
        body = _decide(client).json()
        logged = service.log.get_decision(body["decision_id"])
        x = np.array(logged.context)
        probs = service.policy.probabilities(x, logged.arms)  # fresh model: no state changes between calls
        assert body["propensity"] == pytest.approx(probs[logged.arms.index(body["style"])])


def test_no_stored_creative_serves_the_baseline_fitted_to_the_placement(client):
    for placement, size in (("square", (1080, 1080)), ("story", (1080, 1920))):
        r = _decide(client, styles=["not-a-style"], placement=placement)
        body = r.json()
        assert r.status_code == 200 and body["style"] == "original" and body["fallback"] == "no-creative"
        # the catalog photo on the placement's canvas, made by generate: not the photo's own shape
        assert body["propensity"] == 1.0 and not body["creative"]["key"].startswith("catalog-")
        assert (body["creative"]["width"], body["creative"]["height"]) == size
        img = client.get(body["creative"]["url"])
        assert img.status_code == 200 and img.headers["content-type"].startswith("image/")


def test_feedback_joins_once_and_names_unknown_and_late_decisions(client):
    d = _decide(client).json()["decision_id"]
    assert client.post("/v1/feedback", json={"decision_id": d, "reward": 1}, headers=AUTH).json()["status"] == "joined"
    assert client.post("/v1/feedback", json={"decision_id": d, "reward": 1}, headers=AUTH).json()["status"] == "duplicate"
    assert len(client.app.state.service.log.rewards()) == 1

    r = client.post("/v1/feedback", json={"decision_id": "nope", "reward": 1}, headers=AUTH)
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    d2 = _decide(client).json()["decision_id"]
    r = client.post("/v1/feedback", json={"decision_id": d2, "reward": 1, "at": time.time() + 3600}, headers=AUTH)
    assert r.status_code == 409 and "join window" in r.json()["detail"]


def test_write_endpoints_need_the_api_key(client):
    d = _decide(client).json()["decision_id"]
    assert client.post("/v1/feedback", json={"decision_id": d, "reward": 1}).status_code == 401
    assert client.post("/v1/feedback", json={"decision_id": d, "reward": 1}, headers={"X-API-Key": "wrong"}).status_code == 401
    ok = client.post("/v1/feedback", json={"decision_id": d, "reward": 1}, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    assert client.post("/v1/models", content=b"x").status_code == 401


@pytest.mark.parametrize(
    "body, status, needle",
    [
        ({"item_id": "no-such-item", "placement": "square"}, 404, "no-such-item"),
        ({"item_id": "apple-juice", "placement": "billboard"}, 404, "billboard"),
        ({"item_id": "apple-juice", "placement": "square", "user": {"features": {"age": [1]}}}, 422, "age"),
        ({"item_id": "apple-juice"}, 422, "placement"),
        ({"item_id": "apple-juice", "placement": "square", "colour": 1}, 422, "colour"),
        ({"item_id": "apple-juice", "placement": "square", "user": {"features": {f"k{i}": 1 for i in range(65)}}}, 422, "at most 64"),
        ({"item_id": "apple-juice", "placement": "square", "user": {"features": {"k": "v" * 300}}}, 422, "at most 256 characters"),
        ({"item_id": "apple-juice", "product_id": "apple-juice", "placement": "square"}, 422, "not both"),
        ({"placement": "square"}, 422, "item_id"),
    ],
)
def test_bad_decide_input_names_the_field(client, body, status, needle):
    r = client.post("/v1/decide", json=body)
    assert r.status_code == status, r.text
    assert needle in json.dumps(r.json())


def test_decide_takes_the_catalog_s_product_id_as_the_item(client):
    r = client.post("/v1/decide", json={"product_id": "apple-juice", "placement": "square"})
    assert r.status_code == 200, r.text
    assert r.json()["item_id"] == "apple-juice" and r.json()["style"] in ("color-pop", "marble-counter")


def test_nan_and_oversized_bodies_are_rejected(client):
    nan = b'{"item_id": "apple-juice", "placement": "square", "user": {"features": {"x": NaN}}}'
    r = client.post("/v1/decide", content=nan, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "user", "features", "x"]
    r = client.post(
        "/v1/feedback", content=b'{"decision_id": "a", "reward": Infinity}', headers=AUTH | {"content-type": "application/json"}
    )
    assert r.status_code == 422 and "reward" in json.dumps(r.json())
    big = json.dumps({"item_id": "apple-juice", "placement": "square", "request_id": "x" * 20_000})
    assert client.post("/v1/decide", content=big, headers={"content-type": "application/json"}).status_code == 413


def test_creatives_are_served_with_immutable_caching(client):
    c = _decide(client).json()["creative"]
    r = client.get(c["url"])
    assert r.status_code == 200 and r.headers["etag"] == f'"{c["key"]}"'
    assert "immutable" in r.headers["cache-control"] and r.content[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"RIFF")
    assert client.get(c["url"], headers={"If-None-Match": f'"{c["key"]}"'}).status_code == 304
    assert client.get("/v1/creatives/deadbeef").status_code == 404


def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json() == {"ready": True, "problems": [], "warnings": [], "model_version": 0}
    _decide(client)
    text = client.get("/metrics").text
    assert 'backdrop_requests_total{endpoint="/v1/decide",status="200"} 1.0' in text
    assert "backdrop_decisions_total{" in text and "backdrop_request_seconds_bucket" in text
    assert "backdrop_model_version 0.0" in text and KEY not in text


def _factory(settings):
    return lambda: settings.policy.make(settings.features.n_features)


def test_learner_model_equals_the_offline_model_and_replicas_pick_it_up(small_store, db_url):
    settings = _settings(small_store, db_url, join_window_s=0.2)
    app = create_app(settings)
    rng = np.random.default_rng(0)
    with TestClient(app) as c:
        for i in range(120):
            body = _decide(
                c,
                item=["apple-juice", "ascii-tee-1"][i % 2],
                placement=["square", "story"][i % 3 % 2],
                user={"features": {"segment": f"s{i % 4}"}},
            ).json()
            if rng.random() < 0.3:
                c.post("/v1/feedback", json={"decision_id": body["decision_id"], "reward": 1}, headers=AUTH)
        service = app.state.service
        learner = Learner(service.log, _factory(settings), join_window_s=0.2, grace_s=0.0, batch=50)
        time.sleep(0.3)
        versions = []
        while (m := learner.run_once()) is not None:
            versions.append(m.version)
        assert versions == [1, 2, 3] and m is None
        latest = service.log.latest_model()
        assert latest.n_decisions == 120 and latest.n_rewards == len(service.log.rewards())
        offline, offset = train_offline(service.log, _factory(settings), join_window_s=0.2, grace_s=0.0)
        assert offset == latest.learner_offset
        online = Policy.from_bytes(latest.blob)
        assert online.arm_ids == offline.arm_ids and online.n_updates == offline.n_updates == 120
        for (k, a), b in zip(online._state().items(), offline._state().values(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=k)

        deadline = time.time() + 60  # only stops a hang: the replica polls every model_poll_s
        while service.model_version != 3:
            assert time.time() < deadline, f"the replica still serves model version {service.model_version}, not 3, after 60 s"
            time.sleep(0.02)
        assert _decide(c).json()["model_version"] == 3


def test_learner_crash_before_publish_changes_nothing(small_store, db_url, monkeypatch):
    settings = _settings(small_store, db_url, join_window_s=0.1)
    app = create_app(settings)
    with TestClient(app) as c:
        for _ in range(20):
            _decide(c)
    log = app.state.service.log
    time.sleep(0.15)
    learner = Learner(log, _factory(settings), join_window_s=0.1, grace_s=0.0)

    def crash(*a, **k):
        raise KeyboardInterrupt("killed mid-pass")

    monkeypatch.setattr(log, "publish_model", crash)
    with pytest.raises(KeyboardInterrupt):
        learner.run_once()
    monkeypatch.undo()
    assert log.latest_model() is None
    m = learner.run_once()
    assert m.version == 1 and m.n_decisions == 20 and learner.run_once() is None


def test_drain_folds_what_is_inside_its_join_window_once_the_writers_stopped(small_store, db_url):
    settings = _settings(small_store, db_url, join_window_s=600)
    app = create_app(settings)
    with TestClient(app) as c:
        for _ in range(30):
            _decide(c)
    log = app.state.service.log
    learner = Learner(log, _factory(settings), join_window_s=600, batch=20)
    assert learner.run_once() is None  # every join window is open
    versions = learner.drain()
    assert [m.version for m in versions] == [1, 2] and versions[-1].n_decisions == 30
    assert versions[-1].learner_offset == max(d.logged_seq for d, _ in log.joined(0, float("inf")))
    assert learner.drain() == []


def test_hybrid_linucb_is_served_with_the_library_s_attributes_and_learns_through_them(small_store, db_url):
    settings = _settings(small_store, db_url, join_window_s=600, policy={"name": "hybrid-linucb"})
    app = create_app(settings)
    with TestClient(app) as c:
        policy = app.state.service.policy
        assert policy.name == "hybrid-linucb" and policy.shared_dims == 1  # the bias: user fields are hashed here
        assert {"color-pop", "marble-counter", "color-pop+price"} <= set(policy.arm_features)
        ids = []
        for _ in range(40):
            body = _decide(c).json()
            assert body["policy"] == "hybrid-linucb" and 0 < body["propensity"] <= 1
            ids.append(body["decision_id"])
        for decision_id in ids[::3]:
            assert c.post("/v1/feedback", json={"decision_id": decision_id, "reward": 1}, headers=AUTH).status_code == 200
        log = app.state.service.log
        (model,) = Learner.for_settings(log, settings).drain()
        served = Policy.from_bytes(model.blob)
        assert served.name == "hybrid-linucb" and served.n_updates == 40 and served.shared_dims == 1
        assert np.abs(served.beta).max() > 0  # the attributes' shared model learnt from the clicks
        deadline = time.time() + 60  # only stops a hang: the replica polls every model_poll_s
        while app.state.service.model_version != model.version:
            assert time.time() < deadline, f"the replica still serves model version {app.state.service.model_version} after 60 s"
            time.sleep(0.02)
        assert _decide(c).json()["model_version"] == model.version


def test_two_publishers_of_one_version_conflict(small_store, db_url):
    log = open_event_log(db_url)
    log.migrate()
    blob = _factory(_settings(small_store, db_url))().to_bytes()
    log.publish_model(blob, "linucb", learner_offset=0, n_decisions=0, n_rewards=0, expected_version=0)
    with pytest.raises(VersionConflict):
        log.publish_model(blob, "linucb", learner_offset=0, n_decisions=0, n_rewards=0, expected_version=0)
    assert log.latest_version() == 1
    log.close()


def test_uploaded_model_is_published_and_validated(client, small_store, db_url):
    model = _factory(_settings(small_store, db_url))()
    r = client.post("/v1/models", content=model.to_bytes(), headers=AUTH | {"content-type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["version"] == 1
    bad = client.post("/v1/models", content=b"not a zip", headers=AUTH)
    assert bad.status_code == 422 and "not a readable" in bad.json()["detail"]


def test_event_log_rules(db_url):
    log = open_event_log(db_url)
    assert log.migrate() == log.migrate() == 5  # idempotent
    rec = DecisionRecord("d1", time.time(), "i", "square", ["a", "b"], "a", 0.5, "linucb", 0, [0.0, 1.0])
    assert log.log_decision(rec).seq == 1
    with pytest.raises(UnknownDecision):
        log.log_reward("zz", 1.0, time.time(), time.time(), 60)
    with pytest.raises(TooLate):
        log.log_reward("d1", 1.0, time.time() + 120, time.time(), 60)
    with pytest.raises(ValueError):
        log.log_decision(DecisionRecord("d2", time.time(), "i", "square", ["a"], "a", 0.0, "x", 0, [0.0]))
    assert [d.decision_id for d in log.decisions()] == ["d1"]
    log.close()


def test_newer_schema_is_refused(tmp_path):
    log = SQLiteEventLog(tmp_path / "e.sqlite")
    log.migrate()
    with log._tx() as cur:
        cur.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
    with pytest.raises(BackdropError, match="newer than this backdrop"):
        log.migrate()
    log.close()


def test_evaluate_log_on_the_services_own_log(small_store, tmp_path, capsys):
    from backdrop.cli import main

    db = tmp_path / "events.sqlite"
    settings = _settings(small_store, str(db), join_window_s=0.1)
    rng = np.random.default_rng(1)
    with TestClient(create_app(settings)) as c:
        for i in range(300):
            seg = f"s{i % 3}"
            body = _decide(c, placement=["square", "story"][i % 2], user={"features": {"segment": seg}}).json()
            p = 0.3 if (body["style"] == "color-pop") == (seg == "s0") else 0.05
            if rng.random() < p:
                c.post("/v1/feedback", json={"decision_id": body["decision_id"], "reward": 1}, headers=AUTH)
    time.sleep(0.1)
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "log",
                "--db",
                str(db),
                "--join-window",
                "0",
                "--commit-grace",
                "0",
                "--bootstrap",
                "50",
                "--policy",
                "linucb:alpha=0.5",
                "--policy",
                "uniform",
                "--json",
            ]
        )
        == 0
    )
    records = json.loads(capsys.readouterr().out)
    by = {(r["policy"], r["estimator"]): r for r in records}
    assert by[("logged", "on-policy")]["n"] == 300
    assert {("linucb:alpha=0.5", "ips"), ("uniform", "snips"), ("uniform", "dr")} <= set(by)
    for r in records:
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
    assert main(["evaluate", "log", "--db", str(db), "--policy", "linucb:beta=2"]) == 2
    assert "unknown parameter 'beta'" in capsys.readouterr().err


def test_openapi_schema_is_the_committed_contract(client):
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert client.get("/openapi.json").json() == committed, "the API changed: run `python scripts/export-openapi.py`"


def test_experiment_arms_are_sticky_serve_as_configured_and_stay_isolated(small_store, db_url):
    experiment = {
        "name": "study",
        "arms": {
            "original": {"share": 1, "serve": "original"},
            "fixed": {"share": 1, "serve": "fixed", "styles": {"apple-juice": "marble-counter"}},
            "random": {"share": 1, "serve": "random"},
            "bandit": {"share": 1, "serve": "policy"},
        },
    }
    settings = _settings(small_store, db_url, join_window_s=0.1, experiment=experiment)
    app = create_app(settings)
    seen: dict[str, set] = {}
    with TestClient(app) as c:
        for i in range(400):
            body = _decide(c, user={"id": f"user-{i % 100}", "features": {"segment": "a"}}).json()
            seen.setdefault(body["experiment_arm"], set()).add((f"user-{i % 100}", body["style"], body["policy"], body["propensity"]))
    users = {arm: {u for u, *_ in rows} for arm, rows in seen.items()}
    assert set(users) == {"original", "fixed", "random", "bandit"}
    assert sum(len(u) for u in users.values()) == 100  # each user stays in one arm
    assert all(10 <= len(u) <= 40 for u in users.values())  # ~25 each
    assert {(s, p, q) for _, s, p, q in seen["original"]} == {("original", "control", 1.0)}
    assert {(s, p, q) for _, s, p, q in seen["fixed"]} == {("marble-counter", "fixed-style", 1.0)}
    assert {(s, p, q) for _, s, p, q in seen["random"]} == {("color-pop", "random-style", 0.5), ("marble-counter", "random-style", 0.5)}
    assert {p for _, _, p, _ in seen["bandit"]} == {"pooled-ucb"}

    log = open_event_log(db_url)
    time.sleep(0.15)
    m = Learner(log, _factory(settings), join_window_s=0.1, grace_s=0.0).run_once()
    n_bandit = sum(1 for d in log.decisions() if d.experiment_arm == "bandit")
    assert m.n_decisions == n_bandit > 0  # only the bandit's own traffic trains it
    assert {d.experiment_arm for d in log.decisions()} == set(users)
    log.close()


def test_settings_come_from_flags_then_environment_then_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("log_timeout_ms: 99\npolicy: {alpha: 0.3, l2: 2}\nlimits: {body_timeout_s: 4}\n")
    monkeypatch.setenv("BACKDROP_LOG_TIMEOUT_MS", "77")
    monkeypatch.setenv("BACKDROP_POLICY__ALPHA", "0.7")
    monkeypatch.setenv("BACKDROP_API_KEY", "from-env")
    s = load_settings(cfg, store=tmp_path, **{"policy.epsilon": 0.2})
    assert (s.log_timeout_ms, s.policy.alpha, s.policy.epsilon, s.policy.l2) == (77, 0.7, 0.2, 2)  # env > file, flag kept
    assert s.limits.body_timeout_s == 4 and s.api_key.get_secret_value() == "from-env"
    assert load_settings(cfg, store=tmp_path, log_timeout_ms=5).log_timeout_ms == 5  # a flag beats the environment
    monkeypatch.setenv("BACKDROP_POLICY__NAME", "nope")
    with pytest.raises(BackdropError, match=r"policy\.name"):
        load_settings(cfg, store=tmp_path)
