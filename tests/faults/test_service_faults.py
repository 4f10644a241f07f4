"""The decision service under races, faults and hostile input: every failure shows (an answer that
says so, nothing written that was not claimed, readiness, a metric). Run alone: ``pytest tests/faults``."""

from __future__ import annotations

import io
import os
import socket
import sqlite3
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from _support import AUTH, KEY, Server, fill, settings, store_copy, tiny_fs  # noqa: F401 (fixtures)
from fastapi.testclient import TestClient

from backdrop.bandit import LinUCB
from backdrop.serving.app import create_app
from backdrop.serving.eventlog import SQLiteEventLog, open_event_log
from backdrop.serving.schemas import DecideRequest

BODY = {"item_id": "apple-juice", "placement": "square", "user": {"id": "u1", "features": {"segment": "a"}}}


def _app(store, db, **kw):
    return create_app(settings(store, db, **kw))


def _decide(c, **kw):
    return c.post("/v1/decide", json=BODY | kw)


# --------------------------------------------------------------------------- one truth about what was logged


def test_one_request_id_sent_concurrently_for_two_items_never_answers_with_the_other_item(small_store, tmp_path):
    # about the request_id race, not the latency bound: 64 requests on 16 threads may wait past 50 ms on 2 cores,
    # and an unlogged fallback answers with the asked item without claiming the id
    app = _app(small_store, tmp_path / "events.sqlite", log_timeout_ms=2000)
    service = app.state.service
    items = ["apple-juice", "banana-juice"]

    def one(i):
        req = DecideRequest.model_validate(BODY | {"request_id": "shared-1", "item_id": items[i % 2]})
        try:
            return req.item_id, service.decide(req).item_id
        except Exception as e:  # noqa: BLE001
            return req.item_id, getattr(e, "status", repr(e))

    with TestClient(app), ThreadPoolExecutor(16) as ex:
        got = list(ex.map(one, range(64)))
    assert all(answer in (asked, 409) for asked, answer in got), [g for g in got if g[1] not in (g[0], 409)]
    winners = {asked for asked, answer in got if answer == asked}
    assert len(winners) == 1 and sum(a == 409 for _, a in got) >= 1  # one item won the id; the other was refused
    with TestClient(app) as c:
        r = _decide(c, request_id="shared-1", item_id=({*items} - winners).pop())
        assert r.status_code == 409 and "already used for another request" in r.json()["detail"]
        assert "item_id" in r.json()["detail"]
        assert 'backdrop_fallbacks_total{reason="request-conflict"}' in c.get("/metrics").text
    log = open_event_log(str(tmp_path / "events.sqlite"))
    assert [d.item_id for d in log.decisions() if d.request_id == "shared-1"] == list(winners)
    log.close()


def test_a_locked_log_answers_within_the_bound_and_never_writes_those_decisions_later(small_store, tmp_path):
    db = tmp_path / "events.sqlite"
    app = _app(small_store, db, log_timeout_ms=50)
    with TestClient(app) as c:
        assert _decide(c, request_id="before").json()["decision_id"]
        outside = sqlite3.connect(db, isolation_level=None, timeout=5)
        outside.execute("BEGIN EXCLUSIVE")  # another process holds the log
        t0 = time.perf_counter()
        answers, times = [], []
        for i in range(8):
            t = time.perf_counter()
            answers.append(_decide(c, request_id=f"locked-{i}").json())
            times.append(time.perf_counter() - t)
        assert max(times) < 1.0, times  # the fallback is fast; the lock is not waited out (it stays 2 s)
        assert all(a["decision_id"] is None and a["fallback"] == "log-unavailable" for a in answers)
        ready = c.get("/readyz")
        assert ready.status_code == 503 and any("cannot be written" in p for p in ready.json()["problems"])
        time.sleep(max(0.0, 2.0 - (time.perf_counter() - t0)))
        outside.execute("COMMIT")
        outside.close()
        time.sleep(6.5)  # longer than any retry of the writer inside the busy timeout
        retry = _decide(c, request_id="locked-0").json()
        assert retry["decision_id"] and retry["fallback"] is None  # a retry is a fresh, logged decision
    log = open_event_log(str(db))
    ids = {d.request_id for d in log.decisions()}
    log.close()
    assert ids == {"before", "locked-0"}, ids  # none of the unlogged answers was written behind our back


def test_the_writer_closes_its_connection_when_idle(tmp_path, monkeypatch):
    monkeypatch.setattr(SQLiteEventLog, "writer_idle_s", 0.1)
    log = SQLiteEventLog(tmp_path / "e.sqlite")
    log.migrate()
    from backdrop.serving.records import DecisionRecord

    def fds():
        return len(os.listdir("/proc/self/fd"))

    def one(i):
        return DecisionRecord(f"d{i}", time.time(), "i", "square", ["a"], "a", 1.0, "linucb", 0, [0.0])

    log.log_decision(one(0))
    time.sleep(0.4)
    before = fds()
    for i in range(1, 6):  # five idle gaps: a writer thread each
        log.log_decision(one(i))
        time.sleep(0.4)
    assert fds() <= before
    log.close()


# --------------------------------------------------------------------------- models


def _nan_model(n_features=64) -> bytes:
    p = LinUCB(n_features=n_features, alpha=0.1)
    p.update(np.ones(n_features), "color-pop", 1.0)
    blob = p.to_bytes()
    zin = zipfile.ZipFile(io.BytesIO(blob))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "arm_b.npy":
                arr = np.load(io.BytesIO(data))
                arr[0, 0] = np.nan
                buf = io.BytesIO()
                np.save(buf, arr)
                data = buf.getvalue()
            z.writestr(name, data)
    return out.getvalue()


def test_a_nan_model_is_refused_at_upload_and_a_stored_one_never_breaks_decisions(small_store, tmp_path):
    db = tmp_path / "events.sqlite"
    app = _app(small_store, db)
    with TestClient(app) as c:
        r = c.post("/v1/models", content=_nan_model(), headers=AUTH | {"content-type": "application/octet-stream"})
        assert r.status_code == 422 and "non-finite" in r.json()["detail"]
        good = LinUCB(n_features=64, alpha=0.1).to_bytes()
        assert c.post("/v1/models", content=good, headers=AUTH).json()["version"] == 1
        deadline = time.time() + 5
        while app.state.service.model_version != 1 and time.time() < deadline:
            time.sleep(0.05)
        # a bad version written to the database behind the API's back
        log = open_event_log(str(db))
        log.publish_model(_nan_model(), "linucb", learner_offset=0, n_decisions=0, n_rewards=0, expected_version=1)
        log.close()
        time.sleep(0.5)
        assert app.state.service.model_version == 1  # kept the last good version
        for i in range(5):
            assert _decide(c, request_id=f"n{i}").status_code == 200
        ready = c.get("/readyz").json()
        assert ready["ready"] and any("model version 2 rejected" in w and "non-finite" in w for w in ready["warnings"])
        assert "backdrop_models_rejected_total 1.0" in c.get("/metrics").text


def test_a_truncated_model_in_the_database_does_not_stop_serve_from_starting(small_store, tmp_path):
    db = tmp_path / "events.sqlite"
    log = open_event_log(str(db))
    log.migrate()
    good = LinUCB(n_features=64, alpha=0.1).to_bytes()
    log.publish_model(good[: len(good) // 2], "linucb", learner_offset=0, n_decisions=0, n_rewards=0, expected_version=0)
    log.close()
    app = _app(small_store, db)  # used to raise at start-up: nothing could publish a fix
    with TestClient(app) as c:
        assert _decide(c).status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503 and any("model version 1 rejected" in p for p in ready.json()["problems"])
        assert c.post("/v1/models", content=good, headers=AUTH).json()["version"] == 2  # the API can publish the fix
        deadline = time.time() + 5
        while c.get("/readyz").status_code != 200 and time.time() < deadline:
            time.sleep(0.05)
        assert c.get("/readyz").json()["model_version"] == 2


def test_the_learner_survives_failed_passes_and_readiness_says_so(small_store, tmp_path, monkeypatch):
    from backdrop.serving.learner import Learner

    calls = {"n": 0}
    real = Learner.run_once

    def flaky(self):
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError("disk on fire")
        return real(self)

    monkeypatch.setattr(Learner, "run_once", flaky)
    monkeypatch.setattr(Learner, "max_backoff_s", 0.2)
    app = create_app(settings(small_store, tmp_path / "events.sqlite"), learn_interval_s=0.02)
    with TestClient(app) as c:
        learner = app.state.service.learner
        deadline = time.time() + 5
        while learner.status.consecutive_failures < 3 and time.time() < deadline:
            time.sleep(0.01)
        ready = c.get("/readyz").json()
        assert not ready["ready"] and any("disk on fire" in p for p in ready["problems"]), ready
        while learner.status.consecutive_failures and time.time() < deadline:
            time.sleep(0.05)
        assert learner.status.consecutive_failures == 0 and learner.status.last_ok_at  # it came back
        assert c.get("/readyz").json()["ready"]


def test_a_stalled_learner_fails_readiness_and_its_lag_is_a_metric(small_store, tmp_path):
    db = tmp_path / "events.sqlite"
    app = _app(small_store, db, join_window_s=0.05, learner_max_lag_s=0.5)
    with TestClient(app) as c:
        assert _decide(c).json()["decision_id"]
        time.sleep(2.5 + 0.05 + 1.0)  # past join window + commit grace + the bound: nobody folded it
        ready = c.get("/readyz").json()
        assert not ready["ready"] and any("learner is" in p and "behind" in p for p in ready["problems"]), ready
        lag = [line for line in c.get("/metrics").text.splitlines() if line.startswith("backdrop_learner_lag_seconds ")]
        assert lag and float(lag[0].split()[1]) > 0.5


# --------------------------------------------------------------------------- healthy while blind


def test_the_event_log_removed_under_a_running_service(small_store, tmp_path):
    db = tmp_path / "events.sqlite"
    app = _app(small_store, db)
    with TestClient(app) as c:
        assert _decide(c).json()["decision_id"]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        answers = [_decide(c, request_id=f"gone-{i}").json() for i in range(5)]
        assert all(a["decision_id"] is None and a["fallback"] == "log-unavailable" for a in answers)
        ready = c.get("/readyz")
        assert ready.status_code == 503 and any(
            "unreachable" in p and "the event log file is gone" in p for p in ready.json()["problems"]
        ), ready.json()


@pytest.mark.parametrize("how", ["injected", "tmpfs"])
def test_a_full_disk_is_not_ready(small_store, tmp_path, monkeypatch, how):
    db_dir = tmp_path / "db"
    ctx = tiny_fs(db_dir, "1m") if how == "tmpfs" else _nullctx(db_dir)
    with ctx:
        db = db_dir / "events.sqlite"
        app = _app(small_store, db, write_probe_s=0.01)
        with TestClient(app) as c:
            assert _decide(c).json()["decision_id"]
            assert c.get("/readyz").status_code == 200
            if how == "tmpfs":
                fill(db_dir)
            else:
                import backdrop.serving.eventlog as el

                real = el.EventLog._insert_decision

                def full(self, cur, record):
                    raise sqlite3.OperationalError("database or disk is full")

                monkeypatch.setattr(el.EventLog, "_insert_decision", full)
                monkeypatch.setattr(el.EventLog, "write_problem", _failing_probe(el.EventLog.write_problem))
            answers = [_decide(c, request_id=f"full-{i}").json() for i in range(20)]
            assert all(a["decision_id"] is None and a["fallback"] == "log-unavailable" for a in answers[-5:]), answers
            ready = c.get("/readyz")
            assert ready.status_code == 503, ready.json()
            assert any("cannot be written" in p for p in ready.json()["problems"])
            assert 'backdrop_fallbacks_total{reason="log-unavailable"}' in c.get("/metrics").text
            if how == "injected":
                monkeypatch.setattr(el.EventLog, "_insert_decision", real)


def _failing_probe(real):
    def probe(self, probe_after_s=5.0, writer="service"):
        self._last_write_ok = 0.0  # the heartbeat write would fail on a full disk too
        return real(self, probe_after_s=1e9, writer=writer)

    return probe


class _nullctx:
    def __init__(self, path):
        path.mkdir(parents=True, exist_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# --------------------------------------------------------------------------- the store's files


def test_a_truncated_creative_is_not_served_and_readiness_says_so(store_copy, tmp_path):
    from backdrop.creative.store import CreativeStore

    s = CreativeStore(store_copy, readonly=True)
    victims = list(s.creatives(product_id="apple-juice", placement="square"))
    s.close()
    (store_copy / victims[0].path).write_bytes((store_copy / victims[0].path).read_bytes()[:1000])
    app = _app(store_copy, tmp_path / "events.sqlite")
    with TestClient(app) as c:
        assert c.get(f"/v1/creatives/{victims[0].key}").status_code == 404  # not in the servable index
        for i in range(10):
            assert _decide(c, request_id=f"t{i}").json()["style"] != victims[0].style
        ready = c.get("/readyz")
        assert ready.status_code == 503 and any("do not match the store's index" in p for p in ready.json()["problems"])
        assert 'backdrop_creatives{status="broken"} 1.0' in c.get("/metrics").text
        # a file damaged after the index was loaded is refused at serve time, never sent as immutable
        other = victims[1]
        (store_copy / other.path).write_bytes(b"")
        r = c.get(f"/v1/creatives/{other.key}")
        assert r.status_code == 503 and "damaged" in r.json()["detail"]
    app = _app(store_copy, tmp_path / "events2.sqlite", max_broken_creatives=5)
    with TestClient(app) as c:
        ready = c.get("/readyz").json()
        assert ready["ready"] and any("do not match" in w for w in ready["warnings"])


# --------------------------------------------------------------------------- input


def test_feedback_takes_numbers_only_and_no_reward_before_its_decision(small_store, tmp_path):
    app = _app(small_store, tmp_path / "events.sqlite")
    with TestClient(app) as c:
        d = _decide(c).json()
        for bad in ("1", True, None, [1]):
            r = c.post("/v1/feedback", json={"decision_id": d["decision_id"], "reward": bad}, headers=AUTH)
            assert r.status_code == 422, (bad, r.text)
        r = c.post("/v1/feedback", json={"decision_id": d["decision_id"], "reward": 1, "at": time.time() - 3600}, headers=AUTH)
        assert r.status_code == 422 and "before its decision" in r.json()["detail"]
        assert c.post("/v1/feedback", json={"decision_id": d["decision_id"], "reward": 1}, headers=AUTH).json()["status"] == "joined"


# --------------------------------------------------------------------------- the wire (a real server)


@pytest.fixture
def server(small_store, tmp_path):
    cfg = tmp_path / "service.yaml"
    cfg.write_text("limits: {header_timeout_s: 1, body_timeout_s: 1}\n")
    s = Server(
        ["--store", str(small_store), "--db", str(tmp_path / "events.sqlite"), "--config", str(cfg)], log_path=tmp_path / "serve.log"
    )
    s.wait_ready()
    yield s
    s.stop()


def _raw(port: int, data: bytes, wait: float = 3.0) -> tuple[bytes, float]:
    """Send ``data`` on a fresh connection; (what came back before the server closed or ``wait`` passed, seconds)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got and b"content-length: 0" not in got.lower():
                    head, _, body = got.partition(b"\r\n\r\n")
                    n = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), None)
                    if n is not None and len(body) >= n:
                        break
        except TimeoutError:
            pass
    return got, time.perf_counter() - t0


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(server):
    headers = b"POST /v1/models HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-type: application/octet-stream\r\n\r\n"
    # not a byte of body: a server that read first would answer 408 after the 1 s body timeout, not 401
    got, _ = _raw(server.port, headers, wait=30)
    assert got.startswith(b"HTTP/1.1 401"), got[:200]


def test_slow_headers_and_slow_bodies_are_cut_off(server):
    # the 30 s bound only stops a hang: the cut-off itself is the 408 (limits of 1 s in the fixture's config)
    got, took = _raw(server.port, b"POST /v1/decide HTTP/1.1\r\nhost: x\r\n", wait=30)  # headers never finish
    assert got.startswith(b"HTTP/1.1 408"), (got[:100], took)
    got, took = _raw(
        server.port, b"POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{", wait=30
    )
    assert got.startswith(b"HTTP/1.1 408"), (got[:100], took)


def test_a_key_on_the_command_line_is_warned_about_and_never_left_in_a_file(small_store, tmp_path):
    log = tmp_path / "serve.log"
    s = Server(
        ["--store", str(small_store), "--db", str(tmp_path / "e.sqlite"), "--api-key", "on-the-command-line", "--workers", "2"],
        env={"BACKDROP_API_KEY": "", "TMPDIR": str(tmp_path)},
        log_path=log,
    )
    try:
        s.wait_ready()
        time.sleep(1.0)
        files = list(tmp_path.glob("backdrop-serve-*.json"))
        assert files and all("on-the-command-line" not in f.read_text() for f in files)
    finally:
        s.stop()
    assert "visible to every user in `ps`" in log.read_text()
