"""The review console's sessions and sign-in limits under attack (issue 27, item 8): a cookie copied
before logout, a forged X-Forwarded-For on a real socket, and an attacker trying to lock a user out.
Run alone: ``pytest tests/faults``."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time

import httpx
import pytest
from _support import KEY, free_port, store_copy  # noqa: F401 (fixtures)
from fastapi.testclient import TestClient

from backdrop.cli import main
from backdrop.console import ConsoleConfig, Keyring, User, add_user, console_app
from backdrop.console.auth import COOKIE
from backdrop.console.sessions import SessionStore, SignInLimits

CONSOLE_KEY = "console-fault-key-0123456789"


def _app(store, tmp_path, keyring=None, **kw):
    keyring = keyring or Keyring.from_console_key(CONSOLE_KEY)
    return console_app(ConsoleConfig(store=store, keyring=keyring, thumb_cache=tmp_path / "thumbs", **kw))


def _login(c, name="Ana", key=CONSOLE_KEY, forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return c.post("/console/login", data={"name": name, "key": key}, headers=headers, follow_redirects=False)


def _csrf(c) -> str:
    page = c.get("/console/review")
    assert page.status_code == 200, page.text
    return re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text).group(1)


def _signed_in(c, cookie: str) -> bool:
    c.cookies.clear()
    c.cookies.set(COOKIE, cookie, path="/console")
    r = c.get("/console/results.json", headers={"Accept": "application/json"})
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# --------------------------------------------------------------------------- sessions


def test_a_cookie_copied_before_logout_is_refused_after_it_also_after_a_restart(store_copy, tmp_path):
    with TestClient(_app(store_copy, tmp_path)) as c:
        assert _login(c, "Bo").status_code == 303
        kept = c.cookies.get(COOKIE)  # Bo never signs out
        c.cookies.clear()
        assert _login(c, "Ana").status_code == 303
        copied = c.cookies.get(COOKIE)
        r = c.post("/console/logout", data={"csrf": _csrf(c)}, follow_redirects=False)
        assert r.status_code == 303
        assert not _signed_in(c, copied), "the cookie copied before logout still signs in"
        assert _signed_in(c, kept)  # only that session ended
    with TestClient(_app(store_copy, tmp_path)) as c:  # the console restarted: same key, same store
        assert not _signed_in(c, copied), "after a restart the logged-out cookie signs in again"
        assert _signed_in(c, kept)  # sessions outlive a restart (they are kept server-side)


def test_sessions_end_server_side_when_idle_or_at_their_end_and_the_file_holds_no_session_id(tmp_path):
    path = tmp_path / "sessions.sqlite"
    s = SessionStore(path, hours=8.0, idle_minutes=60.0)
    ana, bo = User("Ana", "admin", "a" * 24), User("Bo", "admin", "b" * 24)
    s.create(ana, now=0.0)
    s.create(bo, now=0.0)
    assert s.check(ana, now=50 * 60) and s.check(ana, now=100 * 60)  # used: the idle clock restarts
    assert not s.check(bo, now=61 * 60), "an idle session must end"
    assert all(s.check(ana, now=t * 60) for t in range(150, 8 * 60, 50))  # in use all day
    assert not s.check(ana, now=8 * 3600 + 1), "a session must end after its hours, however busy"
    assert not s.check(User("Ana", "viewer", "c" * 24), now=10.0)  # never created
    s.close()
    assert path.stat().st_mode & 0o777 == 0o600
    rows = sqlite3.connect(path).execute("SELECT * FROM sessions").fetchall()
    assert "a" * 24 not in repr(rows) and "b" * 24 not in repr(rows)  # only hashes of the ids


# --------------------------------------------------------------------------- whose address a sign-in comes from


@contextlib.contextmanager
def _cli_server(monkeypatch, argv: list[str]):
    """``backdrop ARGV`` on a real socket: uvicorn with exactly the options the command passes, in a thread."""
    import uvicorn

    started: list = []

    def run(app, **kw):
        kw.update(host="127.0.0.1", port=free_port())
        server = uvicorn.Server(uvicorn.Config(app, **kw))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread, kw["port"]))

    monkeypatch.setattr(uvicorn, "run", run)
    assert main(argv) == 0
    server, thread, port = started[0]
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start within 30 s"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            yield c
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The sign-in slow-downs asked for, counted instead of waited for."""
    asked: list[float] = []

    async def pause(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr("backdrop.console.sessions.pause", pause)
    return asked


@pytest.fixture(params=["console", "serve"])
def command(request, store_copy, tmp_path, monkeypatch, waits):
    """argv of `backdrop console` or `backdrop serve` (which mounts the console) on a copy of the store."""
    monkeypatch.setenv("BACKDROP_CONSOLE_KEY", CONSOLE_KEY)
    monkeypatch.setenv("BACKDROP_API_KEY", KEY)
    argv = [request.param, "--store", str(store_copy)]
    if request.param == "console":
        argv += ["--thumb-cache", str(tmp_path / "thumbs")]
    else:
        argv += ["--db", str(tmp_path / "events.sqlite")]
    return argv


def test_a_new_x_forwarded_for_on_each_failed_sign_in_does_not_escape_the_limit(command, monkeypatch, waits):
    """Without --trusted-proxy the socket peer is the client, whatever X-Forwarded-For says."""
    with _cli_server(monkeypatch, command) as c:
        codes = [_login(c, "Ana", "wrong", forwarded=f"198.51.100.{i}").status_code for i in range(30)]
        assert codes == [401] * 10 + [429] * 20, codes
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0]  # the account slowed down from its 6th failure (the 429s check no key)


def test_behind_a_trusted_proxy_the_forwarded_address_is_limited_and_nobody_else(command, monkeypatch):
    with _cli_server(monkeypatch, [*command, "--trusted-proxy", "10.9.9.9,127.0.0.1"]) as c:
        assert [_login(c, "Ana", "wrong", forwarded="203.0.113.66").status_code for _ in range(10)] == [401] * 10
        locked = _login(c, "Ana", forwarded="203.0.113.66")
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0  # the right key is not even checked
        # a forged address put in front of the real one: the proxy appended the real one, which counts
        assert _login(c, "Ana", forwarded="192.0.2.1, 203.0.113.66").status_code == 429
        assert _login(c, "Ana", forwarded="192.0.2.1").status_code == 303  # another client, the same user


# --------------------------------------------------------------------------- nobody can lock a user out


def test_an_attacker_cannot_lock_a_user_out_from_another_address_or_after_the_lock(store_copy, tmp_path):
    users = tmp_path / "users.yaml"
    key = add_user(users, "ana", "reviewer")
    clock, delays = Clock(), []

    async def sleep(s: float) -> None:
        delays.append(s)

    limits = SignInLimits(clock=clock, sleep=sleep)
    app = _app(store_copy, tmp_path, Keyring.from_users_file(users), trusted_proxies=("10.0.0.0/24",), limits=limits)
    with TestClient(app, client=("10.0.0.2", 40000)) as c:  # every connection comes from the proxy
        codes = [_login(c, "ana", "wrong", forwarded="203.0.113.66").status_code for _ in range(12)]
        assert codes == [401] * 10 + [429] * 2, codes
        assert _login(c, "ana", key, forwarded="203.0.113.66").status_code == 429
        assert _login(c, "ana", key, forwarded="198.51.100.7").status_code == 303, "locked out from another address"
        # an IPv6 client owns its /64: another address in it is the same client
        v6 = [_login(c, "ana", "wrong", forwarded=f"2001:db8:1:2::{i:x}").status_code for i in range(11)]
        assert v6 == [401] * 10 + [429]
        assert _login(c, "ana", key, forwarded="2001:db8:1:3::1").status_code == 303
        clock.t += limits.address_window_s + 1
        assert _login(c, "ana", key, forwarded="203.0.113.66").status_code == 303, "still locked after the lock expired"


def test_failures_spread_over_many_addresses_slow_the_account_down_but_never_refuse_its_key(store_copy, tmp_path):
    users = tmp_path / "users.yaml"
    keys = {name: add_user(users, name, "reviewer") for name in ("ana", "bo")}
    clock, delays = Clock(), []

    async def sleep(s: float) -> None:
        delays.append(s)

    limits = SignInLimits(clock=clock, sleep=sleep)
    app = _app(store_copy, tmp_path, Keyring.from_users_file(users), trusted_proxies=("10.0.0.2",), limits=limits)
    with TestClient(app, client=("10.0.0.2", 40000)) as c:
        for i in range(limits.account_free + 1):
            assert _login(c, f"nobody{i}", "wrong", forwarded=f"192.0.2.{100 + i}").status_code == 401
        assert delays == []  # each unknown name is an account of its own: no delay tells it from a known one
        codes = [_login(c, "ana", "wrong", forwarded=f"198.51.100.{i}").status_code for i in range(30)]
        assert codes == [401] * 30, codes  # one failure per address: no address is locked
        assert len(delays) == 30 - limits.account_free and max(delays) == limits.max_delay_s
        assert delays == sorted(delays), "the delay grows with the account's failures"
        delays.clear()
        assert _login(c, "ana", keys["ana"], forwarded="192.0.2.10").status_code == 303, "the right key was refused"
        assert delays == [limits.max_delay_s]  # slowed down like every attempt at that account (no timing oracle)
        delays.clear()
        assert _login(c, "bo", keys["bo"], forwarded="192.0.2.11").status_code == 303 and delays == []  # other accounts: no delay
        clock.t += limits.account_window_s + 1
        assert _login(c, "ana", keys["ana"], forwarded="192.0.2.12").status_code == 303 and delays == []


def test_with_one_shared_key_the_key_is_the_account_whatever_name_is_typed(store_copy, tmp_path):
    clock, delays = Clock(), []

    async def sleep(s: float) -> None:
        delays.append(s)

    limits = SignInLimits(clock=clock, sleep=sleep)
    with TestClient(_app(store_copy, tmp_path, trusted_proxies=("10.0.0.2",), limits=limits), client=("10.0.0.2", 1)) as c:
        for i in range(limits.account_free + 2):
            assert _login(c, f"name{i}", "wrong", forwarded=f"198.51.100.{i}").status_code == 401
        assert len(delays) == 2
        assert _login(c, "Ana", forwarded="192.0.2.1").status_code == 303


# --------------------------------------------------------------------------- the command line says it


def test_the_help_explains_the_trusted_proxy_and_a_bad_one_is_refused(store_copy, capsys):
    texts = {}
    for command in ("console", "serve"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        texts[command] = text = " ".join(capsys.readouterr().out.split())
        assert "--trusted-proxy" in text and "X-Forwarded-For is ignored" in text, command
    assert "a copied cookie stops working" in texts["console"] and "the right key is never refused" in texts["console"]
    assert main(["console", "--store", str(store_copy), "--trusted-proxy", "not-an-address"]) == 2
    assert "--trusted-proxy: not-an-address" in capsys.readouterr().err
