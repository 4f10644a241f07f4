"""Who may use the console and what they may do: keys, roles, signed session cookies, CSRF tokens.

Two ways to let people in:

* **one console key** (``BACKDROP_CONSOLE_KEY``, ``--console-key-file``, or the store's
  ``console-key`` file, generated mode 600): whoever has it signs in as an admin under the name
  they type, which is the name the review audit records;
* **per-user keys** (``--users FILE``, written by ``backdrop console-user``): each user has a name,
  a role and the SHA-256 of their key (the keys are random 256-bit tokens, shown once).

Roles, each allowed what the ones before it are: ``viewer`` (the grid, results and audit),
``reviewer`` (approve, reject or reset creatives, one or a selection) and ``admin`` (also a whole
style of a category at once).

The session is a cookie signed with HMAC-SHA256 (HttpOnly, SameSite=Strict, Secure over TLS),
valid for ``session_hours``; its key is derived from the key material, so changing the console key
or the users file signs everybody out. The cookie is also a session kept server-side
(:mod:`.sessions`): logout, ``session_hours`` and idle time end it there. Every state change needs
the session's CSRF token.

>>> ring = Keyring.from_console_key("s3cret")
>>> user = ring.login("Ana", "s3cret")
>>> user.name, user.role, user.can("reviewer"), ring.login("Ana", "wrong")
('Ana', 'admin', True, None)
>>> cookie = ring.sign(user, now=1000.0)
>>> ring.verify(cookie, now=1000.0).name, ring.verify(cookie + "x", now=1000.0), ring.verify(cookie, now=1e9)
('Ana', None, None)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ConfigError

ROLES = ("viewer", "reviewer", "admin")
COOKIE = "backdrop_console"
MAX_NAME = 64


@dataclass(frozen=True)
class User:
    name: str
    role: str
    #: the session's id (the CSRF token is derived from it)
    sid: str = ""

    def can(self, role: str) -> bool:
        """Whether this user has ``role`` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Keyring:
    """The keys that sign people in, and the session and CSRF signatures derived from them."""

    def __init__(self, *, console_key: str | None = None, users: dict[str, tuple[str, str]] | None = None, material: bytes = b""):
        #: name -> (role, sha256 of the key)
        self.users = users or {}
        self.console_key = console_key
        self._secret = hmac.new(material or (console_key or "").encode(), b"backdrop-console-session-v1", hashlib.sha256).digest()

    @classmethod
    def from_console_key(cls, key: str) -> Keyring:
        if not key:
            raise ConfigError("the console key is empty")
        return cls(console_key=key)

    @classmethod
    def from_users_file(cls, path: Path) -> Keyring:
        users = read_users(path)
        if not users:
            raise ConfigError(f"{path}: no users; add one with `backdrop console-user NAME --role reviewer --users {path}`")
        return cls(users=users, material=path.read_bytes())

    @property
    def shared_key(self) -> bool:
        """One console key for everybody (the name is typed at login)."""
        return self.console_key is not None

    def login(self, name: str, key: str) -> User | None:
        """The user ``name`` signed in with ``key``, or None (compared in constant time)."""
        name = name.strip()
        if not name or len(name) > MAX_NAME or not key:
            return None
        sid = secrets.token_hex(12)
        if self.console_key is not None:
            ok = hmac.compare_digest(key.encode(), self.console_key.encode())
            return User(name, "admin", sid) if ok else None
        role, digest = self.users.get(name, ("", "0" * 64))
        ok = hmac.compare_digest(key_hash(key), digest)  # the same work for an unknown name
        return User(name, role, sid) if ok and role else None

    def account(self, name: str) -> str:
        """What a sign-in as ``name`` tries to open, for the sign-in limits: that user (known or not:
        one bucket for all unknown names would tell them apart from known ones by their delay), or with
        one shared console key, the key itself, whatever name is typed."""
        if self.console_key is not None:
            return "(the console key)"
        return f"user:{name.strip()}"

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()

    def sign(self, user: User, now: float | None = None, hours: float = 8.0) -> str:
        """The session cookie's value for ``user``, valid ``hours``."""
        expires = (time.time() if now is None else now) + hours * 3600
        payload = base64.urlsafe_b64encode(json.dumps([user.name, user.role, expires, user.sid]).encode()).decode()
        return f"{payload}.{self._mac(payload.encode())}"

    def verify(self, cookie: str | None, now: float | None = None) -> User | None:
        """The user of a session cookie, or None when it is forged, expired or from another key."""
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            name, role, expires, sid = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except (ValueError, TypeError):
            return None
        if (time.time() if now is None else now) > float(expires) or role not in ROLES:
            return None
        if self.console_key is None and self.users.get(name, ("",))[0] != role:  # removed, or the role changed
            return None
        return User(name, role, sid)

    def csrf_token(self, user: User) -> str:
        """The token every state change of this session must carry (a form field or ``X-CSRF-Token``)."""
        return self._mac(f"csrf|{user.sid}".encode())[:40]

    def csrf_ok(self, user: User, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(user))


def read_users(path: Path) -> dict[str, tuple[str, str]]:
    """name -> (role, key sha256) from a users file; errors name the file and the entry."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the users file: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    entries = data.get("users") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected `users:` with a list of {{name, role, key_sha256}}")
    users: dict[str, tuple[str, str]] = {}
    for i, entry in enumerate(entries, 1):
        where = f"{path}: users entry {i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected name, role and key_sha256")
        name, role, digest = str(entry.get("name", "")).strip(), entry.get("role"), str(entry.get("key_sha256", "")).lower()
        if not name or len(name) > MAX_NAME:
            raise ConfigError(f"{where}: name must be 1-{MAX_NAME} characters")
        if role not in ROLES:
            raise ConfigError(f"{where} ({name}): role must be one of {', '.join(ROLES)}, got {role!r}")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{where} ({name}): key_sha256 must be 64 hex digits (write it with `backdrop console-user`)")
        if name in users:
            raise ConfigError(f"{where}: {name} is listed twice")
        users[name] = (role, digest)
    return users


def add_user(path: Path, name: str, role: str) -> str:
    """Add ``name`` with ``role`` to the users file (or give them a new key); returns the new key,
    which is stored only as its hash. The file is written atomically, mode 600."""
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ConfigError(f"the name must be 1-{MAX_NAME} characters")
    users = read_users(path) if path.exists() else {}
    key = secrets.token_urlsafe(32)
    users[name] = (role, key_hash(key))
    text = yaml.safe_dump({"users": [{"name": n, "role": r, "key_sha256": d} for n, (r, d) in users.items()]}, sort_keys=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return key
