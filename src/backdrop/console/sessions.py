"""Sessions kept server-side, whose address a sign-in comes from, and the sign-in limits.

**Sessions.** The cookie is signed (:meth:`.auth.Keyring.sign`), and it is also a session this
console knows: :class:`SessionStore` keeps one row per sign-in in an SQLite file (mode 600; only
the SHA-256 of the session id, so the file holds nothing to sign in with). A session ends at logout
(its row is deleted: a copied cookie no longer works, also after a restart), after ``hours`` from
sign-in, and after ``idle_minutes`` without a request. A lost or unreadable file signs everybody
out; it never lets anybody in.

**The client's address.** A sign-in is from the connection's own address (the socket peer).
``X-Forwarded-For`` is believed only when the peer is one of the configured trusted proxies, and
then read from the right: the first address that is not a trusted proxy is the client (a client
can put anything in front; the proxy appends what it saw). An IPv6 client is its /64.

**The limits.** Per address: 10 failed sign-ins in 60 s lock that address for the rest of the
minute (429, Retry-After; the key is not even checked). Attempts in flight count, and a success does
not clear the failures (a valid account cannot buy more guesses at another). Per account (a user
name, known or not; with one shared console key, the key itself, whatever name is typed): after 5
failures in 15 minutes, from any addresses, every attempt at that account waits first, 0.5 s
doubling per further failure up to 4 s, right key or not (so a fast answer does not tell). An
account is never refused: an attacker cannot lock its user out; they sign in from their own address
at once, and in a few seconds at worst. The limits are per process.

>>> client_address("203.0.113.7", ["198.51.100.1"], ())  # no trusted proxy: the peer
'203.0.113.7'
>>> proxies = trusted_networks(["10.0.0.0/8"])
>>> client_address("10.0.0.2", ["192.0.2.1, 203.0.113.7"], proxies)  # the proxy appended the real one
'203.0.113.7'
>>> client_address("10.0.0.2", [], proxies), client_address("2001:db8::1", [], ())
('10.0.0.2', '2001:db8::/64')
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .auth import User

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: how often a session's last use is written (its idle time is this precise)
TOUCH_S = 60.0
#: buckets kept before the stale ones are swept (and at most, oldest first, after the sweep)
MAX_TRACKED = 50_000


# -- sessions ----------------------------------------------------------------------------------


class SessionStore:
    """The console's sessions: one row per sign-in, keyed by the SHA-256 of its id.

    ``path`` is an SQLite file (shared by the worker processes of one host) or ``:memory:``."""

    def __init__(self, path: str | Path, *, hours: float = 8.0, idle_minutes: float = 60.0):
        self.path = str(path)
        self.hours = hours
        self.idle_s = idle_minutes * 60
        self._lock = threading.Lock()
        if self.path != ":memory:":
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # mode 600 before SQLite writes a byte
        self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (id_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
                " created REAL NOT NULL, expires REAL NOT NULL, last_seen REAL NOT NULL)"
            )
        except sqlite3.Error:
            self._db.close()
            raise

    @staticmethod
    def _id(user: User) -> str:
        return hashlib.sha256(f"backdrop-console-session|{user.sid}".encode()).hexdigest()

    def create(self, user: User, now: float | None = None) -> None:
        """A new session for ``user`` (signed in just now); ended ones are swept."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE expires <= ? OR last_seen <= ?", (now, now - self.idle_s))
            self._db.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (self._id(user), user.name, user.role, now, now + self.hours * 3600, now),
            )

    def check(self, user: User, now: float | None = None) -> bool:
        """Whether ``user``'s session (of a verified cookie) is live: not logged out, expired or idle."""
        if not user.sid:
            return False
        now = time.time() if now is None else now
        sid = self._id(user)
        with self._lock:
            row = self._db.execute("SELECT name, role, expires, last_seen FROM sessions WHERE id_sha256 = ?", (sid,)).fetchone()
            if row is None:
                return False
            name, role, expires, last_seen = row
            if now >= expires or now - last_seen >= self.idle_s:
                self._db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (sid,))
                return False
            if (name, role) != (user.name, user.role):
                return False
            if now - last_seen >= TOUCH_S:
                self._db.execute("UPDATE sessions SET last_seen = ? WHERE id_sha256 = ?", (now, sid))
        return True

    def revoke(self, user: User) -> None:
        """End ``user``'s session (logout)."""
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (self._id(user),))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_sessions(candidates: Sequence[str | Path], *, hours: float, idle_minutes: float) -> tuple[SessionStore, str]:
    """The first of ``candidates`` that opens, and a warning ("" when it was the first); in memory
    (sessions end with the process: everybody signs in again) when none does."""
    problems = []
    for path in candidates:
        try:
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            store = SessionStore(path, hours=hours, idle_minutes=idle_minutes)
        except (OSError, sqlite3.Error) as e:
            problems.append(f"{path}: {getattr(e, 'strerror', None) or e}")
            continue
        return store, (f"console sessions are kept in {path} ({'; '.join(problems)})" if problems else "")
    store = SessionStore(":memory:", hours=hours, idle_minutes=idle_minutes)
    return store, f"console sessions are kept in memory: a restart signs everybody out ({'; '.join(problems)})"


def state_dir() -> Path:
    """Where the console keeps its state when the store cannot (``$XDG_STATE_HOME/backdrop``)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "backdrop"


# -- the client's address ----------------------------------------------------------------------


def trusted_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Proxy addresses or networks (``10.0.0.2``, ``10.0.0.0/24``, ``::1``; comma-separated too)."""
    out = []
    for value in values:
        for item in str(value).split(","):
            item = item.strip()
            if not item:
                continue
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"--trusted-proxy: {item} is not an IP address or network (e.g. 10.0.0.2 or 10.0.0.0/24)") from None
    return tuple(out)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":")[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _bucket(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An IPv4 address, or the /64 of an IPv6 one (one client has a whole /64)."""
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def _trusted(ip, proxies: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in proxies)


def is_trusted_proxy(peer: str | None, proxies: Sequence[IPNetwork]) -> bool:
    """Whether the connection comes from one of the trusted ``proxies``."""
    ip = _ip(peer or "")
    return ip is not None and _trusted(ip, proxies)


def client_address(peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[IPNetwork]) -> str:
    """Whose sign-in this is: the socket ``peer``, or when it is a trusted proxy, the rightmost
    ``X-Forwarded-For`` address that is not one (the peer when the header says nothing usable)."""
    ip = _ip(peer or "")
    if ip is None:  # not an IP (a test client, a Unix socket): one bucket per peer name
        return peer or "?"
    if not proxies or not _trusted(ip, proxies):
        return _bucket(ip)
    hops = [h for header in forwarded_for for h in header.split(",")]
    for hop in reversed(hops):
        hop_ip = _ip(hop)
        if hop_ip is None:  # garbage the proxy passed on: not an address anybody can choose
            break
        if not _trusted(hop_ip, proxies):
            return _bucket(hop_ip)
        ip = hop_ip
    return _bucket(ip)


# -- the sign-in limits ------------------------------------------------------------------------


async def pause(seconds: float) -> None:
    """How a slowed-down sign-in waits (unless :attr:`SignInLimits.sleep` says otherwise)."""
    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class SignInLimits:
    #: failed (and in-flight) sign-ins from one address before it is refused for the rest of the window
    per_address: int = 10
    address_window_s: float = 60.0
    #: failures at one account, from any addresses, before its sign-ins slow down
    account_free: int = 5
    account_window_s: float = 900.0
    #: the first delay, doubling with each further failure, up to max_delay_s
    delay_s: float = 0.5
    max_delay_s: float = 4.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    #: None: :func:`pause`
    sleep: Callable[[float], Awaitable[None]] | None = field(default=None, compare=False)


class Locked(Exception):
    """This address has had too many failed sign-ins; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float):
        super().__init__(f"too many failed sign-ins: try again in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class Attempt:
    address: str
    account: str
    at: float
    #: seconds to wait before the key is checked
    delay: float


class SignInLimiter:
    """Failures per address (a hard limit) and per account (a delay, never a refusal); see the module."""

    def __init__(self, limits: SignInLimits | None = None):
        self.limits = limits or SignInLimits()
        self._lock = threading.Lock()
        self._addresses: dict[str, deque[float]] = {}
        self._accounts: dict[str, deque[float]] = {}

    @staticmethod
    def _recent(buckets: dict[str, deque[float]], key: str, since: float) -> deque[float]:
        q = buckets.get(key)
        if q is None:
            q = buckets[key] = deque()
        while q and q[0] <= since:
            q.popleft()
        return q

    def _sweep(self, buckets: dict[str, deque[float]], since: float) -> None:
        if len(buckets) < MAX_TRACKED:
            return
        for key in [k for k, q in buckets.items() if not q or q[-1] <= since]:
            del buckets[key]
        for key in list(buckets)[: max(0, len(buckets) - MAX_TRACKED // 2)]:
            del buckets[key]

    def begin(self, address: str, account: str) -> Attempt:
        """Count an attempt from ``address`` at ``account``; raises :class:`Locked` when the address is."""
        lim = self.limits
        now = lim.clock()
        with self._lock:
            self._sweep(self._addresses, now - lim.address_window_s)
            self._sweep(self._accounts, now - lim.account_window_s)
            tried = self._recent(self._addresses, address, now - lim.address_window_s)
            if len(tried) >= lim.per_address:
                raise Locked(max(1.0, tried[0] + lim.address_window_s - now))
            tried.append(now)  # in flight: counts until it succeeds
            failed = len(self._recent(self._accounts, account, now - lim.account_window_s)) if account in self._accounts else 0
        extra = failed - lim.account_free
        delay = 0.0 if extra < 0 else min(lim.max_delay_s, lim.delay_s * 2.0 ** min(extra, 32))
        return Attempt(address, account, now, delay)

    async def wait(self, attempt: Attempt) -> None:
        """The attempt's delay, before its key is checked."""
        if attempt.delay > 0:
            await (self.limits.sleep or pause)(attempt.delay)

    def end(self, attempt: Attempt, ok: bool) -> None:
        """The attempt's outcome: a success no longer counts against its address; a failure counts
        against its address and its account."""
        with self._lock:
            if ok:
                q = self._addresses.get(attempt.address)
                if q is not None and attempt.at in q:
                    q.remove(attempt.at)
            else:
                self._accounts.setdefault(attempt.account, deque()).append(self.limits.clock())
