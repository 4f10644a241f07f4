"""A warm start: a deployment's first model learnt from an A/B test's random- and fixed-style arms."""

import json
import time

import pytest
from fastapi.testclient import TestClient

from backdrop.bandit import Policy
from backdrop.bandit.features import FeatureEncoder
from backdrop.cli import main
from backdrop.errors import BackdropError
from backdrop.serving.app import create_app
from backdrop.serving.eventlog import open_event_log
from backdrop.serving.learner import Learner
from backdrop.serving.settings import load_settings
from backdrop.serving.warmstart import warm_start

KEY = "test-key-123"
EXPERIMENT = {
    "name": "test",
    "arms": {
        "original": {"share": 1, "serve": "original"},
        "fixed": {"share": 1, "serve": "fixed", "styles": {"apple-juice": "marble-counter"}},
        "random": {"share": 2, "serve": "random"},
    },
}


def _run_test(store, db, n=300):
    """Serve an A/B test in which color-pop is clicked and marble-counter never; (settings, decisions by arm)."""
    settings = load_settings(None, store=store, db=db, api_key=KEY, join_window_s=60.0, log_timeout_ms=2000.0, experiment=EXPERIMENT)
    arms: dict[str, int] = {}
    with TestClient(create_app(settings)) as c:
        for i in range(n):
            body = {"item_id": "apple-juice", "placement": "square", "user": {"id": f"u{i}", "features": {"segment": "a"}}}
            d = c.post("/v1/decide", json=body).json()
            arms[d["experiment_arm"]] = arms.get(d["experiment_arm"], 0) + 1
            if d["style"] == "color-pop":
                c.post("/v1/feedback", json={"decision_id": d["decision_id"], "reward": 1}, headers={"X-API-Key": KEY})
    return settings, arms


def _factory(settings):
    enc = FeatureEncoder(settings.features)
    return lambda: settings.policy.make(enc.n_features, enc.blocks)


def test_warm_start_learns_from_the_test_s_styled_arms_and_the_learner_goes_on_after_them(small_store, db_url):
    settings, arms = _run_test(small_store, db_url)
    later = time.time() + 3600  # every join window closed, without waiting for one
    log = open_event_log(db_url)
    try:
        m = warm_start(log, _factory(settings), join_window_s=60.0, now=later)
        assert m.version == 1 and m.policy == "pooled-ucb"
        assert m.n_decisions == arms["fixed"] + arms["random"]  # the catalog image taught nothing about styles
        assert 0 < m.n_rewards < m.n_decisions
        policy = Policy.from_bytes(m.blob)
        x = FeatureEncoder(settings.features).encode({"segment": "a"}, "Food > Juice", "square")
        p = dict(zip(["color-pop", "marble-counter"], policy.probabilities(x, ["color-pop", "marble-counter"]), strict=True))
        assert p["color-pop"] > 0.9  # starts from what the test learnt: only color-pop was ever clicked
        assert Learner(log, _factory(settings), join_window_s=60.0, grace_s=0.0).run_once(cutoff=later) is None  # nothing twice
        with pytest.raises(BackdropError, match="already has model version 1"):
            warm_start(log, _factory(settings), join_window_s=60.0, now=later)
    finally:
        log.close()


def test_learn_warm_start_from_another_log_on_the_command_line(small_store, tmp_path, capsys):
    source = str(tmp_path / "test.sqlite")
    _, arms = _run_test(small_store, source, n=120)
    target = tmp_path / "fresh.sqlite"
    args = ["learn", "--store", str(small_store), "--db", str(target), "--join-window", "0.01", "--once", "--json"]
    capsys.readouterr()
    assert main([*args, "--warm-start", source]) == 0  # the test's log is finished: all of it, no join window to wait for
    out = capsys.readouterr()
    assert f"learnt from {arms['fixed'] + arms['random']} shown decisions of {source}" in out.err
    assert json.loads(out.out) == {"published": False, "version": 1, "learner_offset": None, "expired": None, "reward": None}
    log = open_event_log(str(target))
    try:
        assert log.latest_model().learner_offset == 0  # the fresh log's own decisions are all still to learn
    finally:
        log.close()
    assert main([*args, "--warm-start", str(tmp_path / "missing.sqlite")]) != 0
    assert "missing.sqlite" in capsys.readouterr().err
