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

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..creative.review import STATUS_FILTERS, ReviewFilter
from ..render import environment, pct, pvalue
from .auth import COOKIE, ROLES, User
from .core import Console, ConsoleConfig, ConsoleError, Forbidden
from .sessions import Locked, SignInLimiter, client_address, is_trusted_proxy, trusted_networks

STATIC = Path(__file__).resolve().parent / "static"
_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


class LoginRequired(Exception):
    pass


def create_console(config: ConsoleConfig) -> FastAPI:
    """The console app; mount it (``app.mount("/console", create_console(...))``)."""
    proxies = trusted_networks(config.trusted_proxies)  # a bad one fails here, before anything is opened
    console = Console(config)
    keyring = config.keyring
    sessions = console.sessions
    limiter = SignInLimiter(config.limits)
    app = FastAPI(title="Backdrop review console", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def user_of(request: Request) -> User | None:
        user = keyring.verify(request.cookies.get(COOKIE))
        return user if user is not None and sessions.check(user) else None

    def peer(request: Request) -> str | None:
        return request.client.host if request.client else None

    def scheme(request: Request) -> str:
        """http or https as the client sees it: a trusted proxy's X-Forwarded-Proto, else the connection's."""
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https") and is_trusted_proxy(peer(request), proxies):
            return forwarded
        return request.url.scheme

    def require(request: Request, role: str = "viewer") -> User:
        user = user_of(request)
        if user is None:
            raise LoginRequired
        if not user.can(role):
            raise Forbidden(f"{user.name} is a {user.role}: this needs the {role} role")
        return user

    def wants_json(request: Request) -> bool:
        return "application/json" in request.headers.get("accept", "") or request.headers.get("content-type", "").startswith(
            "application/json"
        )

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:  # not a browser (the CSRF token is still needed)
            return True
        host = request.headers.get("host", "")
        return origin in (f"http://{host}", f"https://{host}")

    async def form(request: Request) -> dict:
        """A form post or a JSON body as a dict (``keys`` always a list)."""
        body = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                raise ConsoleError("the body is not JSON") from None
            if not isinstance(data, dict):
                raise ConsoleError("the body must be a JSON object")
        else:
            parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            data = {k: (v if k == "keys" else v[-1]) for k, v in parsed.items()}
        keys = data.get("keys", [])
        data["keys"] = [str(k) for k in (keys if isinstance(keys, list) else [keys])]
        return data

    def checked(request: Request, data: dict) -> User:
        """The signed-in user of a state change whose CSRF token and origin are right."""
        user = require(request, "viewer")
        if not same_origin(request):
            raise Forbidden("cross-origin request refused")
        if not keyring.csrf_ok(user, data.get("csrf") or request.headers.get("x-csrf-token")):
            raise Forbidden("missing or stale CSRF token: reload the page and try again")
        return user

    def page(request: Request, template: str, user: User | None, status: int = 200, **context) -> HTMLResponse:
        html = (
            environment()
            .get_template(f"console/{template}")
            .render(
                base=base(request),
                user=user,
                csrf=keyring.csrf_token(user) if user else "",
                readonly_reason=console.readonly_reason,
                version=__version__,
                **context,
            )
        )
        return HTMLResponse(html, status_code=status)

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
        if wants_json(request) or request.method != "GET":
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{base(request)}/login?{urlencode({'next': target})}", status_code=303)

    @app.exception_handler(ConsoleError)
    async def refused(request: Request, exc: ConsoleError):  # the one mapping of console errors to HTTP
        if wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        return page(request, "error.html.j2", user_of(request), status=exc.status, message=str(exc))

    # -- signing in --------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home(request: Request):
        return RedirectResponse(f"{base(request)}/review", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = ""):
        return page(request, "login.html.j2", None, next=_safe_next(next, base(request)), error="", shared=keyring.shared_key)

    @app.post("/login")
    async def login(request: Request):
        data = await form(request)
        nxt = _safe_next(str(data.get("next", "")), base(request))
        if not same_origin(request):
            raise Forbidden("cross-origin sign-in refused")
        name = str(data.get("name", ""))
        address = client_address(peer(request), request.headers.getlist("x-forwarded-for"), proxies)
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
        secure = config.secure_cookie if config.secure_cookie is not None else scheme(request) == "https"
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
        user = checked(request, await form(request))
        sessions.revoke(user)  # a copy of the cookie is nobody from now on
        response = RedirectResponse(f"{base(request)}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base(request) or "/")
        return response

    # -- review ------------------------------------------------------------------------------

    @app.get("/review", response_class=HTMLResponse)
    def review_grid(
        request: Request,
        status: str = "pending",
        category: str = "",
        style: str = "",
        placement: str = "",
        product: str = "",
        page_no: int = 1,
    ):
        user = require(request)
        if status not in STATUS_FILTERS:
            raise ConsoleError(f"status must be one of {', '.join(STATUS_FILTERS)}")
        f = ReviewFilter(status, category, style, placement, product)
        data = console.page(f, max(1, page_no))
        query = {"status": status, "category": category, "style": style, "placement": placement, "product": product}
        links = {
            "prev": _link(base(request), query, data["page"] - 1) if data["page"] > 1 else None,
            "next": _link(base(request), query, data["page"] + 1) if data["page"] < data["pages"] else None,
        }
        return page(
            request,
            "review.html.j2",
            user,
            filter=f,
            statuses=STATUS_FILTERS,
            links=links,
            here=_link(base(request), query, data["page"]),
            **data,
        )

    @app.post("/review")
    async def review(request: Request):
        data = await form(request)
        user = checked(request, data)
        changes = console.review(user, data["keys"], str(data.get("status", "")), str(data.get("reason", "")))
        if not wants_json(request):
            return RedirectResponse(_safe_next(str(data.get("next", "")), base(request)) or f"{base(request)}/review", status_code=303)
        return {
            "changed": len(changes),
            "items": [{"key": c.key, "status": c.status, "reviewer": c.reviewer, "reason": c.reason, "at": c.at} for c in changes],
            "counts": console.counts(),
        }

    @app.post("/review/style")
    async def review_style(request: Request):
        data = await form(request)
        user = checked(request, data)
        out = console.review_style(
            user, str(data.get("style", "")), str(data.get("category", "")), str(data.get("status", "")), str(data.get("reason", ""))
        )
        if not wants_json(request):
            return RedirectResponse(_safe_next(str(data.get("next", "")), base(request)) or f"{base(request)}/review", status_code=303)
        return out

    @app.get("/creatives/{key}", response_class=HTMLResponse)
    def creative_page(request: Request, key: str):
        user = require(request)
        record = console.creative(key)
        product = console.product(record.product_id)
        history = console.audit(key)
        return page(
            request, "creative.html.j2", user, record=record, product=product, history=history, latest=history[0] if history else None
        )

    # -- images ------------------------------------------------------------------------------

    def image(data: bytes) -> Response:
        kind = "image/png" if data[:4] == b"\x89PNG" else "image/webp" if data[8:12] == b"WEBP" else "image/jpeg"
        return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=86400, immutable"})

    @app.get("/img/{key}")
    def full_image(request: Request, key: str):
        require(request)
        return image(console.creative_bytes(key))

    @app.get("/thumb/{key}")
    def thumbnail(request: Request, key: str):
        require(request)
        return image(console.thumbnail(key))

    @app.get("/catalog/{product_id}")
    def catalog_image(request: Request, product_id: str, thumb: bool = False):
        require(request)
        return image(console.catalog_thumbnail(product_id) if thumb else console.catalog_bytes(product_id))

    # -- results and audit ----------------------------------------------------------------------

    @app.get("/results", response_class=HTMLResponse)
    def results_page(request: Request):
        user = require(request)
        return page(request, "results.html.j2", user, r=console.results())

    @app.get("/results.json")
    def results_json(request: Request):
        require(request)
        data = dict(console.results())
        data.pop("plots", None)
        return data

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, key: str = ""):
        user = require(request)
        return page(request, "audit.html.j2", user, changes=console.audit(key or None), key=key)

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


def _link(base: str, query: dict, page_no: int) -> str:
    q = {k: v for k, v in query.items() if v} | ({"page_no": page_no} if page_no > 1 else {})
    return f"{base}/review" + (f"?{urlencode(q)}" if q else "")


def _safe_next(target: str, base: str) -> str:
    """Only a path of this console (never another site) is a place to go after signing in."""
    if target.startswith(f"{base}/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


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
