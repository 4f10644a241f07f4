"""The review console's commands: console (the web app) and console-user (per-user keys)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BackdropError
from ._common import Formatter as _Formatter
from ._common import generated_key, planned_shares, read_key_file

if TYPE_CHECKING:
    from ..console import Keyring

CONSOLE_KEY_ENV = "BACKDROP_CONSOLE_KEY"


def register(sub) -> dict:
    """Add this group's commands to ``sub``; returns command -> handler."""
    co = sub.add_parser(
        "console",
        help="review creatives and see results in the browser",
        formatter_class=_Formatter,
        description=(
            "A web app at http://HOST:PORT/console: a grid of the store's creatives to approve or reject\n"
            "(filtered by status, category, style, placement and product; keys j/k, a, r, u, x, o), the\n"
            "results of the event log (CTR per style, category and placement with intervals, the running\n"
            "experiment with always-valid p-values, model versions, the service's latency and learner lag)\n"
            "and the review audit. Review states live in the store's index; `backdrop serve --review-required`\n"
            "serves only approved creatives, and a rejected one is never served (replicas see a change within\n"
            "a second). The console reads the event log read-only.\n\n"
            "Sign in with the console key (BACKDROP_CONSOLE_KEY, --console-key-file, or STORE/console-key,\n"
            "generated mode 600) under your name, as an admin; or give people their own keys and roles\n"
            "(viewer, reviewer, admin) with `backdrop console-user` and --users FILE.\n"
            "`backdrop serve` mounts the same console at /console.\n\n"
            "Sessions are kept server-side (STORE/console-sessions.sqlite, mode 600, only hashes of the\n"
            "session ids): signing out ends the session, so a copied cookie stops working, also after a\n"
            "restart; a session also ends 8 hours after sign-in or after 60 minutes unused.\n"
            "Sign-in limits: 10 failed sign-ins within a minute from one client address refuse that address\n"
            "(429) for the rest of the minute; after 5 failures at one account (a user, or the shared key)\n"
            "within 15 minutes, from anywhere, its sign-ins wait 0.5-4 s first, but the right key is never\n"
            "refused. The client address is the connection's: X-Forwarded-For is ignored unless the\n"
            "connection comes from a --trusted-proxy."
        ),
    )
    add_console_options(co)
    co.add_argument("--store", required=True, metavar="STORE", help="creative store: a folder, or s3://... with --store-index")
    co.add_argument("--store-index", metavar="URL", help="the store's index when it is not STORE/index.sqlite (postgresql://... or a path)")
    co.add_argument("--db", metavar="URL", help="the event log the results come from (default: STORE/events.sqlite)")
    co.add_argument("--service", metavar="URL", help="a running decision service whose /metrics the results page shows")
    co.add_argument("--planned", metavar="ARM=SHARE,...", help="the experiment's planned split, for its sample-ratio check (default equal)")
    co.add_argument("--thumb-cache", type=Path, metavar="DIR", help="where thumbnails are kept (default ~/.cache/backdrop/console-thumbs)")
    co.add_argument("--host", default="127.0.0.1")
    co.add_argument("--port", type=int, default=8100)
    co.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])

    cu = sub.add_parser(
        "console-user",
        help="give a person a console key with a role",
        formatter_class=_Formatter,
        description=(
            "Add NAME to the console's users file (or give them a new key) with ROLE: viewer (sees the grid,\n"
            "results and audit), reviewer (also approves and rejects) or admin (also a whole style at once).\n"
            "The key is printed once; the file keeps only its SHA-256 (mode 600). Start the console with\n"
            "--users FILE; a console started before the change needs a restart."
        ),
    )
    cu.add_argument("name")
    cu.add_argument("--role", required=True, choices=["viewer", "reviewer", "admin"])
    cu.add_argument("--users", required=True, type=Path, metavar="FILE", help="the users file (created if missing)")
    cu.add_argument("--json", action="store_true")
    return {"console": cmd_console, "console-user": cmd_console_user}


def add_console_options(p: argparse.ArgumentParser) -> None:
    """Who may sign in: shared by `console` and `serve` (which mounts the console)."""
    p.add_argument("--users", type=Path, metavar="FILE", help="per-user keys and roles (written by `backdrop console-user`)")
    p.add_argument("--console-key-file", type=Path, metavar="FILE", help="read the shared console key from FILE")
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help=(
            "a reverse proxy in front of the console: an IP address or network (10.0.0.2, 10.0.0.0/24, ::1;"
            " repeat it or separate with commas). Only a connection from one of these has its X-Forwarded-For"
            " (the client's address, which the sign-in limit keys on) and X-Forwarded-Proto believed; without"
            " it X-Forwarded-For is ignored and the connection's own address is the client's"
        ),
    )


def keyring(args, store: str | Path) -> tuple[Keyring, str]:
    """(the Keyring, how to sign in: a line for the start-up message)."""
    from ..console import Keyring

    if args.users:
        return Keyring.from_users_file(args.users), f"sign in with your key from `backdrop console-user` ({args.users})"
    key = os.environ.get(CONSOLE_KEY_ENV)
    where = CONSOLE_KEY_ENV
    if not key and args.console_key_file:
        key = read_key_file(args.console_key_file, "console key")
        where = str(args.console_key_file)
    if not key:
        if "://" in str(store):
            raise BackdropError(f"{store} is on object storage: give the console key by {CONSOLE_KEY_ENV}, --console-key-file or --users")
        path = Path(store) / "console-key"
        try:
            key = generated_key(path)
        except OSError as e:
            raise BackdropError(
                f"{path}: cannot write a console key ({e.strerror}); give one by {CONSOLE_KEY_ENV}, --console-key-file or --users"
            ) from None
        where = str(path)
    if not key:
        raise BackdropError(f"{where}: the console key is empty")
    return Keyring.from_console_key(key), f"sign in with your name and the console key in {where}"


def trusted_proxies(args) -> tuple[str, ...]:
    """``--trusted-proxy`` values, checked (a bad one is a one-line error, exit 2)."""
    from ..console.sessions import trusted_networks

    values = tuple(getattr(args, "trusted_proxy", None) or ())
    trusted_networks(values)
    return values


def cmd_console(args) -> int:
    import urllib.request

    import uvicorn

    from ..console import ConsoleConfig, console_app

    store = args.store if "://" in args.store else str(Path(args.store).resolve())
    if "://" not in store and args.store_index is None and not (Path(store) / "index.sqlite").is_file():
        raise BackdropError(f"{args.store}: not a creative store (no index.sqlite); run `backdrop demo` or `backdrop generate` first")
    proxies = trusted_proxies(args)
    ring, how = keyring(args, store)
    metrics = None
    if args.service:
        url = args.service.rstrip("/") + "/metrics"

        def metrics() -> str:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()

    planned = planned_shares(args.planned)
    config = ConsoleConfig(
        store=store,
        keyring=ring,
        store_index=args.store_index,
        db=args.db,
        metrics=metrics,
        planned_shares=planned,
        trusted_proxies=proxies,
    )
    if args.thumb_cache:
        config.thumb_cache = args.thumb_cache
    app = console_app(config)
    print(f"console: http://{args.host}:{args.port}/console ({how})", file=sys.stderr)
    # proxy_headers=False: uvicorn would believe X-Forwarded-For from any local connection; the console
    # decides whose address a sign-in is from, believing only a --trusted-proxy
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, proxy_headers=False)
    return 0


def cmd_console_user(args) -> int:
    import json

    from ..console import add_user

    key = add_user(args.users, args.name, args.role)
    if args.json:
        print(json.dumps({"name": args.name.strip(), "role": args.role, "key": key, "users": str(args.users)}))
    else:
        print(f"{args.name.strip()} ({args.role}) signs in with this key, shown only now:\n{key}")
    return 0
