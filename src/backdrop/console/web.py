"""What every console route needs from a request: who is signed in, the CSRF check, the form or
JSON body, and a rendered page. One :class:`Web` per console app, shared by its routers."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, parse_qsl, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from .. import __version__
from ..render import environment
from .auth import COOKIE, User
from .core import Console, ConsoleError, Forbidden
from .sessions import is_trusted_proxy


class LoginRequired(Exception):
    pass


class Web:
    def __init__(self, console: Console, proxies):
        self.console = console
        self.keyring = console.config.keyring
        self.sessions = console.sessions
        self.proxies = proxies

    @staticmethod
    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def user_of(self, request: Request) -> User | None:
        user = self.keyring.verify(request.cookies.get(COOKIE))
        return user if user is not None and self.sessions.check(user) else None

    @staticmethod
    def peer(request: Request) -> str | None:
        return request.client.host if request.client else None

    def scheme(self, request: Request) -> str:
        """http or https as the client sees it: a trusted proxy's X-Forwarded-Proto, else the connection's."""
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https") and is_trusted_proxy(self.peer(request), self.proxies):
            return forwarded
        return request.url.scheme

    def require(self, request: Request, role: str = "viewer") -> User:
        user = self.user_of(request)
        if user is None:
            raise LoginRequired
        if not user.can(role):
            raise Forbidden(f"{user.name} is a {user.role}: this needs the {role} role")
        return user

    @staticmethod
    def wants_json(request: Request) -> bool:
        return "application/json" in request.headers.get("accept", "") or request.headers.get("content-type", "").startswith(
            "application/json"
        )

    @staticmethod
    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:  # not a browser (the CSRF token is still needed)
            return True
        host = request.headers.get("host", "")
        return origin in (f"http://{host}", f"https://{host}")

    @staticmethod
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

    def checked(self, request: Request, data: dict) -> User:
        """The signed-in user of a state change whose CSRF token and origin are right."""
        user = self.require(request, "viewer")
        if not self.same_origin(request):
            raise Forbidden("cross-origin request refused")
        if not self.keyring.csrf_ok(user, data.get("csrf") or request.headers.get("x-csrf-token")):
            raise Forbidden("missing or stale CSRF token: reload the page and try again")
        return user

    def page(self, request: Request, template: str, user: User | None, status: int = 200, **context) -> HTMLResponse:
        html = (
            environment()
            .get_template(f"console/{template}")
            .render(
                base=self.base(request),
                user=user,
                csrf=self.keyring.csrf_token(user) if user else "",
                readonly_reason=self.console.readonly_reason,
                version=__version__,
                notice=request.query_params.get("notice", "")[:300],
                **context,
            )
        )
        return HTMLResponse(html, status_code=status)

    def link(self, request: Request, path: str, query: dict, page_no: int = 1) -> str:
        """``path`` of this console with the filters in ``query`` that are set, at page ``page_no``."""
        q = {k: v for k, v in query.items() if v} | ({"page_no": page_no} if page_no > 1 else {})
        return f"{self.base(request)}{path}" + (f"?{urlencode(q)}" if q else "")

    def paged(self, request: Request, path: str, query: dict, data: dict) -> dict | RedirectResponse:
        """The prev, next and here links of page ``data["page"]`` of ``data["pages"]`` of a listing; a page
        past the end (reviews emptied it) is a redirect to the last one."""
        page, pages = data["page"], data["pages"]
        if page > pages:
            return RedirectResponse(self.link(request, path, query, pages), status_code=303)
        return {
            "prev": self.link(request, path, query, page - 1) if page > 1 else None,
            "next": self.link(request, path, query, page + 1) if page < pages else None,
            "here": self.link(request, path, query, page),
        }

    def back(self, request: Request, target: str, fallback: str, notice: str = "") -> RedirectResponse:
        """A 303 to ``target`` when it is a path of this console (else ``fallback``), carrying ``notice``."""
        to = safe_next(target, self.base(request)) or f"{self.base(request)}{fallback}"
        path, _, query = to.split("#")[0].partition("?")
        params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "notice"] + ([("notice", notice)] if notice else [])
        return RedirectResponse(path + (f"?{urlencode(params)}" if params else ""), status_code=303)


def safe_next(target: str, base: str) -> str:
    """Only a path of this console (never another site) is a place to go after signing in or acting."""
    if target.startswith(f"{base}/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""
