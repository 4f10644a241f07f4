"""The decision-service commands: serve and learn."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BackdropError
from ..text import redact_url
from ._common import Formatter as _Formatter
from ._common import existing_event_log, generated_key, read_key_file
from ._common import positive_int as _positive_int
from .console import add_console_options


def register(sub) -> dict:
    """Add this group's commands to ``sub``; returns command -> handler."""
    sv = sub.add_parser(
        "serve",
        help="run the decision service (HTTP)",
        formatter_class=_Formatter,
        description=(
            "Serve POST /v1/decide (which creative to show), POST /v1/feedback (clicks), GET /v1/creatives/KEY,\n"
            "/healthz, /readyz, /metrics and the OpenAPI schema at /openapi.json. Every decision is logged (with\n"
            "its propensity) before it is answered: in SQLite next to the store by default, or in PostgreSQL\n"
            "(--db postgresql://...) shared by several replicas. --learn also runs the learner in-process.\n"
            "The feedback and model endpoints need an API key: BACKDROP_API_KEY, --api-key-file FILE, or a\n"
            "generated one written to STORE/api-key (mode 600); --api-key KEY works but shows in `ps`.\n"
            "A store on read-only media is served as is (pass --db for the event log and a key).\n"
            "The review console is mounted at /console (see `backdrop console --help`; --no-console to leave it out).\n\n"
            "An ad server asks, once per impression:\n"
            '  POST /v1/decide  {"item_id": "apple-juice", "placement": "square",\n'
            '                    "user": {"id": "u123", "features": {"segment": "runners", "device": "mobile"}}}\n'
            '  item_id is the catalog\'s product_id ("product_id" is accepted too); optional: "styles": [...] to\n'
            '  choose among, "request_id" (a retry gets the same answer), "activate": false (prefetch).\n'
            '  -> {"decision_id": ..., "style": ..., "creative": {"url": ..., "width": ..., "height": ...},\n'
            '      "propensity": ..., "policy": ..., "model_version": ..., "fallback": null}\n'
            'and reports the click: POST /v1/feedback {"decision_id": ..., "reward": 1} with the X-API-Key header.\n'
            "Every field, with its limits: the OpenAPI schema at /openapi.json (or /docs)."
        ),
    )
    sv.epilog = _environment_help()
    _add_service_options(sv)
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes (each a replica sharing the event log; one per core is the usual choice)",
    )
    sv.add_argument("--learn", action="store_true", help="run the learner in this process too")
    sv.add_argument("--learn-interval", type=float, default=5.0, help="seconds between learner passes")
    sv.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    sv.add_argument(
        "--review-required",
        action="store_true",
        default=None,
        help="serve only creatives a reviewer approved in the console (a rejected one is never served either way)",
    )
    sv.add_argument("--no-console", action="store_true", help="do not mount the review console at /console")
    add_console_options(sv)

    ln = sub.add_parser(
        "learn",
        help="fold joined rewards into new model versions",
        formatter_class=_Formatter,
        description=(
            "Join logged decisions with their rewards once the join window has passed (no reward by then = the\n"
            "default reward), update the policy in batches and publish a new model version atomically; the\n"
            "offset lives in the database, so a crash and restart neither skips nor double-counts an event."
        ),
    )
    _add_service_options(ln)
    ln.add_argument(
        "--warm-start",
        nargs="?",
        const="",
        metavar="LOG",
        help="first publish a model learnt from every shown decision with a style in LOG (default: this event log), "
        "an A/B test's random- and fixed-style arms included: the bandit starts from what the test learnt. "
        "Only for an event log without a model yet",
    )
    ln.add_argument("--once", action="store_true", help="one pass, then exit (prints the new version)")
    ln.add_argument("--interval", type=float, default=5.0, help="seconds between passes")
    ln.add_argument("--json", action="store_true")

    return {"serve": cmd_serve, "learn": cmd_learn}


def _environment_help() -> str:
    """The BACKDROP_* variables every service setting can come from (below the flags, above --config)."""
    from ..serving.settings import ServiceSettings

    names = []
    for name, f in ServiceSettings.model_fields.items():
        sub = getattr(f.annotation, "model_fields", None)
        if sub and name in ("policy", "limits"):
            names += [f"BACKDROP_{name.upper()}__{k.upper()}" for k in sub]
        elif name not in ("features", "experiment"):
            names.append(f"BACKDROP_{name.upper()}")
    lines, line = [], "environment (a flag beats it, it beats --config):"
    for n in names:
        if len(line) + len(n) + 2 > 100:
            lines.append(line)
            line = " "
        line += " " + n
    return "\n".join([*lines, line])


def _add_service_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        required=True,
        metavar="STORE",
        help="creative store (from backdrop generate / demo): a folder, or s3://... with --store-index",
    )
    p.add_argument("--store-index", metavar="URL", help="the store's index when it is not STORE/index.sqlite (postgresql://... or a path)")
    p.add_argument(
        "--public-base-url",
        metavar="URL",
        help="a CDN in front of the store's files: creative URLs become URL/PATH (default: this service serves the bytes)",
    )
    p.add_argument("--db", metavar="URL", help="event log: postgresql://... or an sqlite path (default: STORE/events.sqlite)")
    p.add_argument("--config", type=Path, metavar="YAML", help="service settings file (see README); flags override it")
    p.add_argument("--api-key", help="key for the write endpoints (visible in `ps`: prefer BACKDROP_API_KEY or --api-key-file)")
    p.add_argument("--api-key-file", type=Path, metavar="FILE", help="read the key for the write endpoints from FILE")
    from ..bandit.policies import SERVABLE

    p.add_argument("--policy", choices=SERVABLE, help="served policy (default pooled-ucb)")
    p.add_argument("--alpha", type=float, help="exploration width (LinUCB) / posterior scale (LinTS)")
    p.add_argument("--epsilon", type=float, help="uniform exploration mixed in (keeps logged propensities >= epsilon/K)")
    p.add_argument("--join-window", type=float, help="seconds a reward may take to arrive (default 600)")
    p.add_argument("--default-reward", type=float, help="reward of a decision without feedback (default 0)")
    p.add_argument(
        "--serve-flagged",
        action="store_true",
        default=None,
        help="also serve creatives the QA checks flagged (withheld by default; see backdrop report)",
    )


def _service_settings(args):
    import os

    from ..serving.settings import load_settings

    if args.api_key:
        print(
            "backdrop: warning: --api-key on the command line is visible to every user in `ps`; use BACKDROP_API_KEY or --api-key-file",
            file=sys.stderr,
        )
    key = args.api_key  # BACKDROP_API_KEY is read with the other BACKDROP_* settings
    if key is None and getattr(args, "api_key_file", None):
        key = read_key_file(args.api_key_file, "API key")
    settings = load_settings(
        args.config,
        store=args.store,
        store_index=args.store_index,
        public_base_url=args.public_base_url,
        db=args.db,
        api_key=key,
        join_window_s=args.join_window,
        default_reward=args.default_reward,
        serve_flagged=getattr(args, "serve_flagged", None),
        review_required=getattr(args, "review_required", None),
        **{"policy.name": args.policy, "policy.alpha": args.alpha, "policy.epsilon": args.epsilon},
    )
    folder = settings.store_dir
    if folder is None:  # object storage: no folder for a generated key or the event log
        if settings.api_key is None:
            raise BackdropError(f"{settings.store} is on object storage: give the API key by BACKDROP_API_KEY or --api-key-file")
        return settings
    if settings.store_index is None and not (folder / "index.sqlite").is_file():
        raise BackdropError(f"{folder}: not a creative store; run `backdrop demo` or `backdrop generate` first")
    writable = os.access(folder, os.W_OK) and _dir_writable(folder)
    if settings.db is None and not writable:
        raise BackdropError(
            f"{settings.store} is read-only, so the event log cannot live next to it: pass --db (an SQLite path or postgresql://...)"
        )
    if settings.api_key is None:
        path = folder / "api-key"
        if not path.exists() and not writable:
            raise BackdropError(f"{settings.store} is read-only: give the API key by BACKDROP_API_KEY or --api-key-file")
        from pydantic import SecretStr

        settings = settings.model_copy(update={"api_key": SecretStr(generated_key(path))})
        print(f"API key for /v1/feedback and /v1/models: in {path}", file=sys.stderr)
    return settings


def _dir_writable(path: Path) -> bool:
    """Whether files can be created in ``path`` (a read-only mount says no even to root)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def cmd_serve(args) -> int:
    import os
    import threading

    import uvicorn

    from ..serving.app import create_app
    from ..serving.http import HEADER_TIMEOUT_ENV

    settings = _service_settings(args)
    if args.learn and settings.learner_max_lag_s is None:
        settings = settings.model_copy(update={"learner_max_lag_s": 10 * args.learn_interval + 60.0})
    os.environ[HEADER_TIMEOUT_ENV] = str(settings.limits.header_timeout_s)
    stop = threading.Event()
    settings_file = None
    ring = None
    proxies: tuple[str, ...] = ()
    if not args.no_console:
        from . import console

        try:
            proxies = console.trusted_proxies(args)
            ring, how = console.keyring(args, settings.store)
            print(f"review console: http://{args.host}:{args.port}/console ({how})", file=sys.stderr)
        except BackdropError as e:
            print(f"backdrop: warning: the review console is not mounted: {e}", file=sys.stderr)
    app: object  # the app, or (with worker processes) the import path of its factory
    if args.workers == 1:
        app = create_app(settings, learn_interval_s=args.learn_interval if args.learn else None)
        if ring is not None:
            from ..console.app import mount_console

            mount_console(app, ring, trusted_proxies=proxies)
    else:  # worker processes build their own app from the settings (a file only this user can read)
        import tempfile

        from ..serving.app import SETTINGS_FILE_ENV
        from ..serving.eventlog import open_event_log

        # the key travels by the environment the workers inherit, never in a file a crash could leave behind
        data = settings.model_dump(mode="json") | {"api_key": None}
        if settings.api_key is not None:
            os.environ["BACKDROP_API_KEY"] = settings.api_key.get_secret_value()
        fd, settings_file = tempfile.mkstemp(prefix="backdrop-serve-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.environ[SETTINGS_FILE_ENV] = settings_file
        app = "backdrop.serving.app:app_from_settings_file"
        if ring is not None:
            from ..console.app import TRUSTED_PROXIES_ENV, USERS_FILE_ENV

            os.environ[TRUSTED_PROXIES_ENV] = ",".join(proxies)

            if args.users:
                os.environ[USERS_FILE_ENV] = str(args.users.resolve())
            else:
                os.environ["BACKDROP_CONSOLE_KEY"] = ring.console_key or ""
            app = "backdrop.console.app:service_app_from_settings_file"
        if args.learn:  # the learner runs in this (parent) process; the workers' readiness watches its lag
            log = open_event_log(settings.db_url)
            log.migrate()
            learner = _learner(settings, log)
            threading.Thread(target=learner.run_forever, args=(args.learn_interval, stop), name="backdrop-learner", daemon=True).start()
    workers = f", {args.workers} worker processes" if args.workers > 1 else ""
    print(
        f"serving {settings.store} on http://{args.host}:{args.port}{workers} (event log: {redact_url(settings.db_url)})", file=sys.stderr
    )
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            workers=args.workers if args.workers > 1 else None,
            factory=args.workers > 1,
            http="backdrop.serving.http:DecideProtocol",
            proxy_headers=False,  # X-Forwarded-For is the console's to believe, only from --trusted-proxy
        )
    finally:
        stop.set()
        if settings_file is not None:
            Path(settings_file).unlink(missing_ok=True)
    return 0


def _learner(settings, log):
    from ..serving.learner import Learner

    return Learner.for_settings(log, settings)


def cmd_learn(args) -> int:
    import threading

    from ..serving.eventlog import open_event_log

    settings = _service_settings(args)
    log = open_event_log(settings.db_url)
    log.migrate()
    learner = _learner(settings, log)
    try:
        if args.warm_start is not None:
            _warm_start(args, settings, log)
        if args.once:
            record = learner.run_once()
            out = {
                "published": record is not None,
                "version": record.version if record else log.latest_version(),
                "learner_offset": record.learner_offset if record else None,
                "expired": record.n_expired if record else None,
                "reward": json.loads(record.reward) if record and record.reward else None,
            }
            print(json.dumps(out) if args.json else (f"published model version {out['version']}" if record else "nothing new to learn"))
            return 0
        print(f"learning from {redact_url(settings.db_url)} every {args.interval} s (Ctrl-C to stop)", file=sys.stderr)
        learner.run_forever(args.interval, threading.Event())
    finally:
        log.close()
    return 0


def _warm_start(args, settings, log) -> None:
    from ..bandit.features import FeatureEncoder
    from ..serving.eventlog import open_event_log
    from ..serving.warmstart import warm_start

    encoder = FeatureEncoder(settings.features)
    source = open_event_log(existing_event_log(args.warm_start)) if args.warm_start else None
    try:
        record = warm_start(
            log,
            lambda: settings.policy.make(encoder.n_features, encoder.blocks),
            source,
            join_window_s=settings.join_window_s,
            default_reward=settings.default_reward,
            grace_s=settings.commit_grace_s,
            reward=settings.reward,
        )
    finally:
        if source is not None:
            source.close()
    where = redact_url(args.warm_start) if args.warm_start else "this log"
    print(
        f"warm start: model version {record.version} learnt from {record.n_decisions} shown decisions of {where}"
        f" ({record.n_rewards} with feedback)",
        file=sys.stderr,
    )
