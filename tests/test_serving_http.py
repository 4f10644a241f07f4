"""The HTTP protocol's decide fast path (``serving.http.DecideProtocol``) on a real uvicorn server:
the wire behaviour of ``POST /v1/decide`` is the ASGI route's (the same bodies, errors and limits),
keep-alive and pipelining keep answers in order, and every answered decision is in the log."""

from __future__ import annotations

import json
import socket

import pytest
from fastapi.testclient import TestClient

from backdrop.serving.app import create_app
from backdrop.serving.settings import load_settings
from conftest import uvicorn_server

ITEM = {"item_id": "apple-juice", "placement": "square", "user": {"id": "u1", "features": {"segment": "runners"}}}


@pytest.fixture
def server(small_store, tmp_path):
    settings = load_settings(
        None,
        store=small_store,
        db=str(tmp_path / "events.sqlite"),
        api_key="k",
        log_timeout_ms=2000.0,
        **{"limits": {"body_timeout_s": 0.5}},
    )
    app = create_app(settings)
    with uvicorn_server(app) as port:
        yield port, app


def _request(body: bytes | str, *, path="/v1/decide", method="POST", headers: dict | None = None, version="1.1") -> bytes:
    body = body.encode() if isinstance(body, str) else body
    lines = [f"{method} {path} HTTP/{version}", "host: test", f"content-length: {len(body)}", "content-type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _responses(sock: socket.socket, n: int, timeout: float = 10.0) -> list[tuple[int, dict, bytes]]:
    """Read ``n`` HTTP responses (content-length framed) from ``sock``."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        length = int(headers.get("content-length", 0))
        while len(buf) < length:
            buf += sock.recv(65536)
        body, buf = buf[:length], buf[length:]
        out.append((int(status_line.split()[1]), headers, body))
    return out


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port))


def test_decides_on_one_kept_alive_connection_are_logged_and_answered_in_order(server):
    port, app = server
    with _connect(port) as s:
        # pipelined: a decide, a request for the ASGI app, and another decide, in one write
        s.sendall(_request(json.dumps(ITEM)) + _request("", path="/healthz", method="GET") + _request(json.dumps(ITEM)))
        answers = _responses(s, 3)
        s.sendall(_request(json.dumps(ITEM)))
        answers += _responses(s, 1)
    assert [a[0] for a in answers] == [200, 200, 200, 200]
    assert json.loads(answers[1][2])["status"] == "ok"  # the health check, in its place
    ids = [json.loads(a[2])["decision_id"] for a in (answers[0], answers[2], answers[3])]
    assert len(set(ids)) == 3 and all(ids)
    log = app.state.service.log
    assert {d.decision_id for d in log.decisions()} >= set(ids)
    assert answers[0][1]["content-type"] == "application/json" and "date" in answers[0][1]


def test_errors_are_the_asgi_routes_errors(server, small_store, tmp_path):
    port, _ = server
    bad = [
        '{"item_id": 1}',  # 422, naming the fields
        json.dumps(ITEM | {"item_id": "no-such-item"}),  # 404
        "not json",
    ]
    with TestClient(create_app(load_settings(None, store=small_store, db=str(tmp_path / "asgi.sqlite"), api_key="k"))) as c:
        expected = [(r.status_code, r.json()) for r in (c.post("/v1/decide", content=b) for b in bad)]
    with _connect(port) as s:
        s.sendall(b"".join(_request(b) for b in bad))
        got = [(status, json.loads(body)) for status, _, body in _responses(s, len(bad))]
    assert got == expected and [g[0] for g in got] == [422, 404, 422]


def test_limits_close_the_connection(server):
    port, _ = server
    with _connect(port) as s:  # a body over the limit: refused before it is read
        s.sendall(_request("x" * 20_000))
        [(status, headers, body)] = _responses(s, 1)
        assert status == 413 and headers["connection"] == "close" and b"larger than" in body
        assert s.recv(10) == b""
    with _connect(port) as s:  # a body that does not arrive in time
        s.sendall(_request(json.dumps(ITEM))[:-10])
        [(status, headers, _)] = _responses(s, 1)  # 408 is only ever the body timeout's answer
        assert status == 408 and headers["connection"] == "close"
    with _connect(port) as s:  # HTTP/1.0: answered, then closed
        s.sendall(_request(json.dumps(ITEM), version="1.0"))
        [(status, headers, _)] = _responses(s, 1)
        assert status == 200 and headers["connection"] == "close"


def test_expect_continue_request_ids_and_metrics(server):
    port, _ = server
    with _connect(port) as s:
        body = json.dumps(ITEM).encode()
        head = _request(body, headers={"expect": "100-continue"})[: -len(body)]
        s.sendall(head)
        s.settimeout(5)
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(body)
        [(status, _, _)] = _responses(s, 1)
        assert status == 200
        # a request_id is looked up in the log first (a pool thread); the retry gets the same decision
        again = json.dumps(ITEM | {"request_id": "imp-7"})
        s.sendall(_request(again) + _request(again))
        first, second = _responses(s, 2)
        assert first[0] == second[0] == 200 and json.loads(first[2])["decision_id"] == json.loads(second[2])["decision_id"]
        s.sendall(_request("", path="/metrics", method="GET"))
        [(_, _, metrics)] = _responses(s, 1)
    assert 'backdrop_requests_total{endpoint="/v1/decide",status="200"} 3.0' in metrics.decode()


def test_many_pipelined_decides_are_answered_in_their_order(server):
    port, app = server
    before = app.state.service.log.counts()["decisions"]
    items = ["apple-juice", "banana-juice", "carrot-juice"] * 8
    with _connect(port) as s:  # reading is not paused while a decide is answered: the rest queue in order
        s.sendall(b"".join(_request(json.dumps(ITEM | {"item_id": item})) for item in items))
        answers = _responses(s, len(items))
    assert [a[0] for a in answers] == [200] * len(items)
    assert [json.loads(a[2])["item_id"] for a in answers] == items
    assert app.state.service.log.counts()["decisions"] == before + len(items)
