"""The console's HTTP side: routes, the session and CSRF checks, and the one mapping of its errors.

Mounted at ``/console`` (by ``backdrop console`` and by ``backdrop serve``); every URL in a page is
built from the mount path, and the session cookie is scoped to it. Pages are server-rendered
Jinja2; ``static/console.js`` adds the keyboard and in-place updates, and every action also works
as a plain form post. Responses carry a strict Content-Security-Policy (no inline script).

A request is signed in when its cookie verifies and its session is live server-side
(:mod:`.sessions`); a sign-in is limited by the client's address (the socket peer; a trusted proxy's
``X-Forwarded-For``) and slowed down per account, never refused per account.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..creative.review import REJECT_REASONS, product_focus
from ..render import environment, pct, pvalue
from . import audit_routes, review_routes
from .auth import COOKIE, ROLES
from .core import Console, ConsoleConfig, ConsoleError, Forbidden
from .sessions import Locked, SignInLimiter, client_address, trusted_networks
from .web import LoginRequired, Web, safe_next

STATIC = Path(__file__).resolve().parent / "static"
_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def create_console(config: ConsoleConfig) -> FastAPI:
    """The console app; mount it (``app.mount("/console", create_console(...))``)."""
    proxies = trusted_networks(config.trusted_proxies)  # a bad one fails here, before anything is opened
    console = Console(config)
    keyring = config.keyring
    sessions = console.sessions
    limiter = SignInLimiter(config.limits)
    app = FastAPI(title="Backdrop review console", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    icon = (STATIC / "favicon.svg").read_bytes()
    app.state.console = console
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    web = Web(console, proxies)
    base, page, form = web.base, web.page, web.form

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.endswith((".js", ".css")) and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        if web.wants_json(request) or request.method != "GET":
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{base(request)}/login?{urlencode({'next': target})}", status_code=303)

    @app.exception_handler(ConsoleError)
    async def refused(request: Request, exc: ConsoleError):  # the one mapping of console errors to HTTP
        if web.wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        return page(request, "error.html.j2", web.user_of(request), status=exc.status, message=str(exc))

    # -- signing in --------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home(request: Request):
        return RedirectResponse(f"{base(request)}/review", status_code=303)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(icon, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = ""):
        return page(request, "login.html.j2", None, next=safe_next(next, base(request)), error="", shared=keyring.shared_key)

    @app.post("/login")
    async def login(request: Request):
        data = await form(request)
        nxt = safe_next(str(data.get("next", "")), base(request))
        if not web.same_origin(request):
            raise Forbidden("cross-origin sign-in refused")
        name = str(data.get("name", ""))
        address = client_address(web.peer(request), request.headers.getlist("x-forwarded-for"), proxies)
        try:
            attempt = limiter.begin(address, keyring.account(name))
        except Locked as e:  # this address only, and the key is not even checked
            wait_s = math.ceil(e.retry_after)
            error = f"Too many failed sign-ins from your address: try again in {wait_s} s."
            refused = page(request, "login.html.j2", None, 429, next=nxt, error=error, shared=keyring.shared_key)
            refused.headers["Retry-After"] = str(wait_s)
            return refused
        user = None
        try:
            await limiter.wait(attempt)  # an account under attack: every attempt at it waits, right key or not
            user = keyring.login(name, str(data.get("key", "")))
        finally:  # an attempt given up half-way counts as failed
            limiter.end(attempt, user is not None)
        if user is None:
            return page(request, "login.html.j2", None, 401, next=nxt, error="Wrong name or key.", shared=keyring.shared_key)
        sessions.create(user)
        response = RedirectResponse(nxt or f"{base(request)}/review", status_code=303)
        secure = config.secure_cookie if config.secure_cookie is not None else web.scheme(request) == "https"
        response.set_cookie(
            COOKIE,
            keyring.sign(user, hours=config.session_hours),
            max_age=int(config.session_hours * 3600),
            path=base(request) or "/",
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return response

    @app.post("/logout")
    async def logout(request: Request):
        user = web.checked(request, await form(request))
        sessions.revoke(user)  # a copy of the cookie is nobody from now on
        response = RedirectResponse(f"{base(request)}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base(request) or "/")
        return response

    review_routes.add(app, web)
    audit_routes.add(app, web)

    @app.get("/creatives/{key}", response_class=HTMLResponse)
    def creative_page(request: Request, key: str):
        user = web.require(request)
        record = console.creative(key)
        product = console.product(record.product_id)
        history = console.audit(key)
        return page(
            request,
            "creative.html.j2",
            user,
            record=record,
            product=product,
            history=history,
            latest=history[0] if history else None,
            reasons=REJECT_REASONS,
            focus=product_focus(record.params, record.width, record.height),
        )

    # -- images ------------------------------------------------------------------------------

    def image(data: bytes) -> Response:
        kind = "image/png" if data[:4] == b"\x89PNG" else "image/webp" if data[8:12] == b"WEBP" else "image/jpeg"
        return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=86400, immutable"})

    @app.get("/img/{key}")
    def full_image(request: Request, key: str):
        web.require(request)
        return image(console.creative_bytes(key))

    @app.get("/thumb/{key}")
    def thumbnail(request: Request, key: str):
        web.require(request)
        return image(console.thumbnail(key))

    @app.get("/catalog/{product_id}")
    def catalog_image(request: Request, product_id: str, thumb: bool = False):
        web.require(request)
        return image(console.catalog_thumbnail(product_id) if thumb else console.catalog_bytes(product_id))

    # -- results and audit ----------------------------------------------------------------------

    @app.get("/results", response_class=HTMLResponse)
    def results_page(request: Request):
        user = web.require(request)
        return page(request, "results.html.j2", user, r=console.results())

    @app.get("/results.json")
    def results_json(request: Request):
        web.require(request)
        data = dict(console.results())
        data.pop("plots", None)
        return data

    app.router.on_shutdown.append(console.close)
    environment().filters.update(when=_when, ms=_ms, pct=pct, pvalue=pvalue)
    environment().globals.update(roles=ROLES, quote=quote)
    return app


def console_app(config: ConsoleConfig) -> FastAPI:
    """``backdrop console``: the console at ``/console``, and ``/`` sending there."""
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.mount("/console", create_console(config))

    @root.get("/", include_in_schema=False)
    def home():
        return RedirectResponse("/console/review", status_code=303)

    return root


def _when(t: float | None) -> str:
    if t is None:
        return "–"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(x) -> str:
    return "–" if x is None else f"{x:.2f} ms"


#: ``backdrop serve --workers N`` gives the workers the console's users file through this variable
#: (the shared console key travels as ``BACKDROP_CONSOLE_KEY``)
USERS_FILE_ENV = "BACKDROP_CONSOLE_USERS"
#: ... and its trusted proxies (``--trusted-proxy``, comma-separated) through this one
TRUSTED_PROXIES_ENV = "BACKDROP_CONSOLE_TRUSTED_PROXIES"


def mount_console(app: FastAPI, keyring, thumb_cache: Path | None = None, trusted_proxies: Sequence[str] = ()) -> FastAPI:
    """Mount the console at ``/console`` of a decision service's app (``serving.app.create_app``):
    it reviews the service's store, reads its event log and shows its own metrics. ``trusted_proxies``:
    see :attr:`ConsoleConfig.trusted_proxies`."""
    service = app.state.service
    s = service.settings
    config = ConsoleConfig(
        store=s.store,
        keyring=keyring,
        store_index=s.store_index,
        db=s.db_url,
        metrics=lambda: service.metrics.render().decode(),
        planned_shares=s.experiment.planned_shares() if s.experiment is not None else None,
        trusted_proxies=tuple(trusted_proxies),
    )
    if thumb_cache is not None:
        config.thumb_cache = thumb_cache
    app.mount("/console", create_console(config))
    return app


def service_app_from_settings_file() -> FastAPI:
    """The app factory of ``backdrop serve --workers N`` with the console mounted."""
    import os

    from ..serving.app import app_from_settings_file
    from .auth import Keyring

    users = os.environ.get(USERS_FILE_ENV)
    keyring = Keyring.from_users_file(Path(users)) if users else Keyring.from_console_key(os.environ.get("BACKDROP_CONSOLE_KEY", ""))
    proxies = [p for p in os.environ.get(TRUSTED_PROXIES_ENV, "").split(",") if p.strip()]
    return mount_console(app_from_settings_file(), keyring, trusted_proxies=proxies)
