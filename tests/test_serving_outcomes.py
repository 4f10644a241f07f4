"""Ad-traffic semantics on both event-log backends: activation, typed outcome events and reward
functions, safe rollout, and the Personalizer-compatible endpoints."""

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backdrop.serving.app import create_app
from backdrop.serving.eventlog import TooLate
from backdrop.serving.learner import Learner
from backdrop.serving.rollout import APPRENTICE
from backdrop.serving.settings import load_settings

KEY = "test-key-123"
AUTH = {"X-API-Key": KEY}


def _client(store, db_url, **kw):
    kw.setdefault("join_window_s", 60.0)
    settings = load_settings(None, store=store, db=db_url, api_key=KEY, commit_grace_s=2.5, model_poll_s=0.05, log_timeout_ms=2000.0, **kw)
    return TestClient(create_app(settings))


def _learn(client) -> Learner:
    """A learner whose clock is past every join window: it folds what is logged now."""
    service = client.app.state.service
    learner = Learner.for_settings(service.log, service.settings)
    learner.clock = lambda: time.time() + service.settings.join_window_s + service.settings.commit_grace_s + 1
    return learner


def _decide(c, item="apple-juice", user="u1", **kw):
    body = {"item_id": item, "placement": "square", "user": {"id": user, "features": {"segment": "runners"}}} | kw
    r = c.post("/v1/decide", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_only_activated_decisions_are_learned_and_the_rest_expire(small_store, db_url):
    with _client(small_store, db_url, activation_window_s=30.0) as c:
        shown = _decide(c)
        later = _decide(c, activate=False)
        never = _decide(c, activate=False)
        assert shown["activated"] and not later["activated"] and not never["activated"]
        log = c.app.state.service.log
        assert not log.get_decision(later["decision_id"]).activate

        first = c.post("/v1/activate", json={"decision_id": later["decision_id"]}, headers=AUTH)
        assert first.status_code == 200 and first.json()["status"] == "activated"
        again = c.post("/v1/activate", json={"decision_id": later["decision_id"]}, headers=AUTH)
        assert again.json()["status"] == "already-activated"  # idempotent
        assert c.post("/v1/activate", json={"decision_id": "nope"}, headers=AUTH).status_code == 404
        assert c.post("/v1/activate", json={"decision_id": never["decision_id"]}).status_code == 401
        with pytest.raises(TooLate, match="expired"):  # past the window: refused, and it stays inactive
            log.activate(never["decision_id"], time.time() + 31, 30.0)

        # a click on a decision that was never shown is kept, said, and never counted
        r = c.post("/v1/feedback", json={"decision_id": never["decision_id"], "reward": 1}, headers=AUTH)
        assert r.status_code == 200 and r.json()["activated"] is False
        c.post("/v1/feedback", json={"decision_id": later["decision_id"], "reward": 1}, headers=AUTH)

        model = _learn(c).run_once()
        assert (model.n_decisions, model.n_rewards, model.n_expired) == (2, 1, 1)
        from backdrop.console.results import results
        from backdrop.serving.eventlog.reader import LogReader

        figures = results(LogReader(db_url), {})  # the console counts what was shown, and says what it left out
        assert figures["summary"]["decisions"] == 2 and figures["summary"]["inactive"] == 1
        assert figures["models"][-1]["expired"] == 1
        service = c.app.state.service
        service.reload_model()
        assert "backdrop_decisions_expired 1.0" in c.get("/metrics").text


def test_activation_window_is_at_most_the_join_window(small_store, tmp_path):
    from backdrop.errors import ConfigError

    with pytest.raises(ConfigError, match="activation_window_s"):
        load_settings(None, store=small_store, db=str(tmp_path / "e.sqlite"), join_window_s=60, activation_window_s=120)


def test_typed_events_join_once_and_add_up_by_the_reward_function(small_store, db_url):
    reward = {"rule": "sum-values", "currency": "EUR"}
    with _client(small_store, db_url, reward=reward) as c:
        d = _decide(c)["decision_id"]
        ev = lambda **kw: c.post("/v1/events", json={"decision_id": d} | kw, headers=AUTH)
        assert ev(type="click").json() == {"decision_id": d, "type": "click", "status": "joined", "activated": True}
        assert ev(type="click").json()["status"] == "duplicate"  # a retried click counts once
        assert ev(type="add_to_cart").json()["status"] == "joined"
        assert ev(type="purchase", value=25.0, currency="EUR", id="order-1").json()["status"] == "joined"
        assert ev(type="purchase", value=5.5, currency="EUR", id="order-2").json()["status"] == "joined"
        assert ev(type="purchase", value=25.0, currency="EUR", id="order-1").json()["status"] == "duplicate"
        usd = ev(type="purchase", value=9.0, currency="USD", id="order-3")
        assert usd.status_code == 422 and "EUR" in usd.json()["detail"]
        assert ev(type="purchase", value=9.0, id="order-4").status_code == 422  # a value needs its currency
        assert ev(type="Bad Type").status_code == 422
        assert c.post("/v1/events", json={"decision_id": "nope", "type": "click"}, headers=AUTH).status_code == 404
        late = ev(type="click", id="late", at=time.time() + 3600)
        assert late.status_code == 409 and "join window" in late.json()["detail"]
        assert c.post("/v1/events", json={"decision_id": d, "type": "click"}).status_code == 401

        service = c.app.state.service
        (row,) = service.log.joined(0, time.time() + 1, reward=service.settings.reward)
        assert row[1] == pytest.approx(30.5)  # the two purchases
        from backdrop.serving.rewards import RewardFunction

        weighted = RewardFunction(rule="weighted", weights={"click": 1, "add_to_cart": 3, "purchase": 10})
        assert service.log.joined(0, time.time() + 1, reward=weighted)[0][1] == pytest.approx(24.0)
        assert service.log.joined(0, time.time() + 1, reward=RewardFunction(rule="first-click"))[0][1] == 1.0

        model = _learn(c).run_once()
        assert model.reward == service.settings.reward.describe() and '"sum-values"' in model.reward
        assert 'backdrop_events_total{status="joined",type="purchase"} 2.0' in c.get("/metrics").text


def test_feedback_stays_the_default_reward_and_events_fill_in(small_store, db_url):
    with _client(small_store, db_url) as c:
        a, b, _none = (_decide(c)["decision_id"] for _ in range(3))
        c.post("/v1/feedback", json={"decision_id": a, "reward": 0.5}, headers=AUTH)
        c.post("/v1/events", json={"decision_id": b, "type": "click"}, headers=AUTH)
        rewards = [r for _, r in c.app.state.service.log.joined(0, time.time() + 1)]
        assert rewards == [0.5, 1.0, None]  # feedback's value, a click, nothing (the default reward)


def _rollout_client(small_store, db_url):
    rollout = {"baseline": "original", "exploration": 0.5, "min_decisions": 150, "confidence": 0.9}
    return _client(small_store, db_url, rollout=rollout, policy={"seed": 0, "alpha": 0.0, "epsilon": 0.05})


def test_safe_rollout_serves_the_baseline_until_the_policy_beats_it(small_store, db_url):
    with _rollout_client(small_store, db_url) as c:
        service = c.app.state.service
        assert c.get("/v1/rollout").json()["phase"] == "baseline"
        served = []
        for i in range(240):
            body = _decide(c, user=f"u{i}")
            served.append(body["style"])
            assert body["policy"] == APPRENTICE
            k = 3  # color-pop, marble-counter and the catalog image
            expected = 0.5 + 0.5 / k if body["style"] == "original" else 0.5 / k
            assert body["propensity"] == pytest.approx(expected)
            if body["style"] == "color-pop":  # the catalog image and the other style never get a click
                c.post("/v1/feedback", json={"decision_id": body["decision_id"], "reward": 1}, headers=AUTH)
        share = served.count("original") / len(served)
        assert 0.55 < share < 0.8  # about 1/2 + 1/6

        model = _learn(c).run_once()
        service.reload_model()
        status = c.get("/v1/rollout").json()
        assert status["phase"] == "policy" and status["switched"]["model_version"] == model.version
        assert status["switched"]["difference_low"] > 0 and status["estimate"]["n"] == 240
        metrics = c.get("/metrics").text
        assert "backdrop_rollout_phase 1.0" in metrics and 'backdrop_rollout_value{estimate="difference_low"}' in metrics

        after = [_decide(c, user=f"v{i}") for i in range(30)]
        assert all(b["policy"] == "pooled-ucb" for b in after)
        assert sum(b["style"] == "color-pop" for b in after) >= 25  # the policy serves what it learned


def test_safe_rollout_keeps_the_baseline_without_evidence(small_store, db_url):
    with _rollout_client(small_store, db_url) as c:
        for i in range(200):  # nobody clicks anything: the policy cannot be shown to be better
            _decide(c, user=f"u{i}")
        _learn(c).run_once()
        c.app.state.service.reload_model()
        status = c.get("/v1/rollout").json()
        assert status["phase"] == "baseline" and status["switched"] is None and status["estimate"]["n"] == 200
        assert _decide(c)["policy"] == APPRENTICE


def test_safe_rollout_keeps_to_the_styles_asked_and_leaves_personalizer_ranks_out(small_store, db_url):
    """Issue 27, item 7: with ``baseline: color-pop``, decides narrowed to ``styles`` without it were
    answered with the catalog image, outside the styles asked for; and Personalizer ranks whose
    actions include the baseline entered the rollout's IPS estimates."""
    from backdrop.serving.rollout import RolloutState

    with _client(small_store, db_url, rollout={"baseline": "color-pop", "exploration": 0.1, "min_decisions": 1000}) as c:
        narrowed = [_decide(c, user=f"u{i}", styles=["marble-counter"]) for i in range(40)]
        assert {b["style"] for b in narrowed} == {"marble-counter"}  # not the catalog image: it was not asked for
        assert all(b["policy"] != APPRENTICE and b["propensity"] == 1.0 for b in narrowed)  # no baseline: the policy, its true propensity
        asked = [_decide(c, user=f"v{i}", styles=["marble-counter", "color-pop"]) for i in range(20)]
        assert all(b["policy"] == APPRENTICE and b["style"] in ("marble-counter", "color-pop") for b in asked)
        assert all(b["propensity"] == pytest.approx(0.95 if b["style"] == "color-pop" else 0.05) for b in asked)
        whole = _decide(c, user="w")
        assert whole["policy"] == APPRENTICE
        for i, actions in enumerate((["color-pop", "original"], ["original", "news"], ["color-pop"])):
            r = c.post("/personalizer/v1.0/rank", json={"actions": [{"id": a} for a in actions], "eventId": f"e{i}"}, headers=PZ)
            assert r.status_code == 201, r.text
            assert c.post(f"/personalizer/v1.0/events/e{i}/reward", json={"value": 1.0}, headers=PZ).status_code == 204
        model = _learn(c).run_once()
        assert model.n_decisions == 40 + 20 + 1 + 3  # every decision is learned from
        assert RolloutState.from_json(model.rollout).stats.n == 20 + 1  # only the rollout's own enter its estimates


# -- Personalizer: requests as the published API reference writes them (Rank, Reward, Activate v1.0) --

RANK = {
    "contextFeatures": [
        {"user": {"profileType": "AnonymousUser", "latLong": "47.6,-122.1"}},
        {"environment": {"dayOfMonth": "28", "monthOfYear": "8", "weather": "Sunny"}},
        {"device": {"mobile": True, "windows": True}},
        {"recentActivity": {"itemsInCart": 3}},
    ],
    "actions": [
        {"id": "NewsArticle", "features": [{"type": "News"}]},
        {"id": "SportsArticle", "features": [{"type": "Sports"}]},
        {"id": "EntertainmentArticle", "features": [{"type": "Entertainment"}]},
    ],
    "excludedActions": ["SportsArticle"],
    "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10",
    "deferActivation": False,
}
PZ = {"Ocp-Apim-Subscription-Key": KEY}


def test_personalizer_rank_reward_activate(small_store, db_url):
    with _client(small_store, db_url) as c:
        r = c.post("/personalizer/v1.0/rank", json=RANK, headers=PZ)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["eventId"] == RANK["eventId"] and body["rewardActionId"] == body["ranking"][0]["id"]
        assert [a["id"] for a in body["ranking"]][-1] == "SportsArticle" and body["ranking"][-1]["probability"] == 0.0
        assert sorted(a["id"] for a in body["ranking"]) == ["EntertainmentArticle", "NewsArticle", "SportsArticle"]
        assert sum(a["probability"] for a in body["ranking"]) == pytest.approx(1.0)
        log = c.app.state.service.log
        logged = log.get_by_request(f"personalizer:{RANK['eventId']}")
        assert logged.arm == body["rewardActionId"] and logged.propensity == pytest.approx(body["ranking"][0]["probability"])
        assert logged.user_features["device.mobile"] is True and logged.activate

        assert c.post(f"/personalizer/v1.0/events/{RANK['eventId']}/reward", json={"value": 1.0}, headers=PZ).status_code == 204
        assert log.rewards()[0].reward == 1.0
        again = c.post("/personalizer/v1.0/rank", json=RANK, headers=PZ)
        assert again.status_code == 409 and again.json()["error"]["code"] == "Conflict"

        deferred = c.post("/personalizer/v1.0/rank", json=RANK | {"eventId": "ev-2", "deferActivation": True}, headers=PZ).json()
        assert not log.get_by_request("personalizer:ev-2").activate
        assert c.post("/personalizer/v1.0/events/ev-2/activate", headers=PZ).status_code == 204
        assert c.post("/personalizer/v1.0/events/ev-2/activate", headers=PZ).status_code == 204  # idempotent
        assert log.get_by_request("personalizer:ev-2").activate and deferred["eventId"] == "ev-2"

        generated = c.post("/personalizer/v1.0/rank", json={"actions": [{"id": "a"}, {"id": "b"}]}, headers=PZ).json()
        assert len(generated["eventId"]) == 32 and generated["rewardActionId"] in ("a", "b")

        missing = c.post("/personalizer/v1.0/events/nope/reward", json={"value": 1}, headers=PZ)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
        unauthorized = c.post("/personalizer/v1.0/rank", json=RANK | {"eventId": "ev-3"})
        assert unauthorized.status_code == 401 and "Ocp-Apim-Subscription-Key" in unauthorized.json()["error"]["message"]
        bad = c.post("/personalizer/v1.0/rank", json={"actions": []}, headers=PZ)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
        excluded = c.post("/personalizer/v1.0/rank", json={"actions": [{"id": "a"}], "excludedActions": ["a"]}, headers=PZ)
        assert excluded.status_code == 400 and "excluded" in excluded.json()["error"]["message"]

        model = _learn(c).run_once()  # Personalizer events and /v1/decide share the learner
        assert model.n_decisions == 3 and model.n_rewards == 1
        from backdrop.bandit import Policy

        policy = Policy.from_bytes(model.blob)
        assert np.asarray(policy.coef(body["rewardActionId"])).any()


def test_abtest_reads_conversion_and_revenue_from_the_log(small_store, db_url, capsys):
    import json

    from backdrop.cli import main

    experiment = {"name": "bg", "arms": {"control": {"share": 1, "serve": "original"}, "styled": {"share": 1, "serve": "random"}}}
    expected: dict = {"control": [], "styled": []}
    with _client(small_store, db_url, experiment=experiment, reward={"rule": "sum-values", "currency": "EUR"}) as c:
        rng = np.random.default_rng(0)
        for i in range(160):
            body = _decide(c, user=f"u{i % 60}")
            arm = body["experiment_arm"]
            value = 0.0
            if rng.random() < (0.15 if arm == "styled" else 0.05):
                value = float(rng.integers(10, 60))
                r = c.post(
                    "/v1/events",
                    json={"decision_id": body["decision_id"], "type": "purchase", "value": value, "currency": "EUR"},
                    headers=AUTH,
                )
                assert r.status_code == 200
            expected[arm].append(value)
        _decide(c, user="u1", activate=False)  # never shown: left out, and said so
    capsys.readouterr()
    assert main(["abtest", db_url, "--metric", "revenue", "--json"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert "1 decision(s) made with activate=false" in out.err
    assert result["metric"] == "revenue" and result["unit"] == "user" and result["control"] == "control"
    assert result["srm"]["p"] is not None and set(result["srm"]["planned_shares"]) == {"control", "styled"}
    for row in result["arms"]:
        assert row["n"] == len(expected[row["arm"]]) and row["total"] == pytest.approx(sum(expected[row["arm"]]))
        assert row["mean"] == pytest.approx(np.mean(expected[row["arm"]]))
        assert row["mean_low"] < row["mean"] < row["mean_high"]
    styled = result["arms"][1]
    assert styled["lift_low"] < styled["lift"] < styled["lift_high"]

    assert main(["abtest", db_url, "--metric", "conversion", "--json"]) == 0
    conversion = {r["arm"]: r["mean"] for r in json.loads(capsys.readouterr().out)["arms"]}
    assert conversion == {a: pytest.approx(np.mean(np.array(v) > 0)) for a, v in expected.items()}
    assert main(["abtest", db_url, "--metric", "revenue", "--planned", "control=0.99,styled=0.01"]) == 0
    out = capsys.readouterr()
    assert "per impression" in out.out and "WARNING" in out.err  # the planned split is checked, not ignored


def test_rollout_scores_only_decisions_that_offered_the_baseline():
    from backdrop.bandit import make_policy
    from backdrop.serving.records import DecisionRecord
    from backdrop.serving.rollout import RolloutSettings, score

    policy = make_policy("linucb", n_features=4, epsilon=0.1)
    x = [1.0, 0.0, 0.0, 0.0]
    offered = DecisionRecord("a", 0.0, "i", "square", ["s1", "original"], "original", 0.55, "apprentice", 0, x)
    ranked = DecisionRecord("b", 0.0, "personalizer", "personalizer", ["news", "sports"], "news", 0.5, "linucb", 0, x)
    terms_p, terms_b = score(policy, [(offered, 1.0), (ranked, 1.0)], RolloutSettings(), 0.0)
    assert len(terms_p) == len(terms_b) == 1 and terms_b == [pytest.approx(1 / 0.55)]
