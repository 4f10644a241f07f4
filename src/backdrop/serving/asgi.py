"""The plain ASGI layer in front of the app: limits before work (the API key before a byte of the
body is read, body size counted while it streams, body timeouts, bounded uploads), request
metrics, and the fast path for ``POST /v1/decide``."""

from __future__ import annotations

import hmac
import logging
import time

from fastapi.responses import JSONResponse

from . import personalizer
from .decide import DecideEndpoint

logger = logging.getLogger(__name__)
NO_KEY = "this endpoint needs an API key and none is configured (BACKDROP_API_KEY, --api-key-file or the store's api-key file)"
WRONG_KEY = "missing or wrong API key (Authorization: Bearer <key> or X-API-Key)"


class LimitsAndMetrics:
    """Body-size limits, request counts and latency per route: a plain ASGI middleware (Starlette's
    ``BaseHTTPMiddleware`` costs about half a millisecond of CPU per request).

    It also serves ``POST /v1/decide``, the hot path, directly: the same request model, the same
    422/4xx bodies and the same response model as the FastAPI route that documents it in the
    OpenAPI schema (the fuzz test holds both to the schema), without FastAPI's routing and
    dependency machinery, which costs more CPU than choosing and logging the decision.
    """

    #: endpoints that need the API key: checked before a byte of the body is read
    KEYED = ("/v1/models", "/v1/feedback", "/v1/activate", "/v1/events")
    #: ... and every Personalizer route (its key header is ``Ocp-Apim-Subscription-Key``)
    KEYED_PREFIX = "/personalizer/"

    def __init__(self, app, service, api_key: str | None = None, decide: DecideEndpoint | None = None):
        import asyncio

        self.app, self.service, self.api_key = app, service, api_key
        self.decide = decide or DecideEndpoint(service)
        self.uploads = asyncio.Semaphore(service.settings.limits.max_concurrent_uploads)

    def _key_ok(self, scope) -> bool:
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key") or headers.get(b"ocp-apim-subscription-key")
        auth = headers.get(b"authorization", b"")
        if given is None and auth.lower().startswith(b"bearer "):
            given = auth[7:]
        return self.api_key is not None and given is not None and hmac.compare_digest(given, self.api_key.encode())

    async def _receive_within(self, receive, timeout: float):
        import asyncio

        try:
            return await asyncio.wait_for(receive(), timeout)
        except TimeoutError:
            raise _BodyTimeout from None

    async def _decide(self, receive, send) -> None:
        import asyncio

        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        # (the body was read, within the size limit and the body timeout, by __call__)
        answer: asyncio.Future = asyncio.get_running_loop().create_future()
        self.decide.handle(b"".join(chunks), lambda status, body: answer.set_result((status, body)))
        status, body = await answer
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        limits = self.service.settings.limits
        limit = limits.max_model_bytes if scope["path"] == "/v1/models" else limits.max_body_bytes
        length = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-length"), None)
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        too_big = length is not None and (not length.isdigit() or int(length) > limit)
        endpoint = None
        upload = scope["path"] == "/v1/models" and scope["method"] == "POST"
        keyed = scope["path"] in self.KEYED or scope["path"].startswith(self.KEYED_PREFIX)
        if keyed and scope["method"] == "POST" and not self._key_ok(scope):
            # before a byte of the body is read: an unauthenticated client cannot make us buffer anything
            if self.api_key is None:
                await _refusal(scope, 503, NO_KEY)(scope, _no_body, send_status)
            else:
                wrong = personalizer.WRONG_KEY if scope["path"].startswith(personalizer.PREFIX) else WRONG_KEY
                await _refusal(scope, 401, wrong)(scope, _no_body, send_status)
        elif too_big:
            await _refusal(scope, 413, f"request body larger than {limit} bytes")(scope, receive, send_status)
        elif upload and self.uploads.locked():
            await JSONResponse({"detail": "too many model uploads at once; retry shortly"}, 429, headers={"Retry-After": "5"})(
                scope, receive, send_status
            )
        else:
            await self._serve(scope, receive, send_status, limit, upload)
            if scope["path"] == "/v1/decide" and scope["method"] == "POST":
                endpoint = "/v1/decide"
        endpoint = endpoint or getattr(scope.get("route"), "path", "unmatched")
        self.service.metrics.count(endpoint, status[0], time.perf_counter() - t0)

    async def _serve(self, scope, receive, send, limit: int, upload: bool) -> None:
        """Read the body (within ``limit`` bytes and the body timeout, counted while streaming), then answer."""
        timeout = self.service.settings.limits.body_timeout_s
        body = None
        if scope["method"] in ("POST", "PUT"):
            chunks, size, more = [], 0, True
            try:
                if upload:
                    await self.uploads.acquire()
                try:
                    while more:
                        message = await self._receive_within(receive, timeout)
                        if message["type"] == "http.disconnect":
                            return
                        chunks.append(message.get("body", b""))
                        size += len(chunks[-1])
                        more = message.get("more_body", False)
                        if size > limit:
                            await _refusal(scope, 413, f"request body larger than {limit} bytes")(scope, receive, send)
                            return
                    body = b"".join(chunks)
                    chunks = []
                    replayed = False

                    async def replay():
                        nonlocal replayed
                        if replayed:  # an app asking for more after the whole body waits for the disconnect
                            return await receive()
                        replayed = True
                        return {"type": "http.request", "body": body, "more_body": False}

                    if scope["path"] == "/v1/decide" and scope["method"] == "POST":
                        await self._decide(replay, send)
                    else:
                        await self.app(scope, replay, send)
                finally:
                    if upload:
                        self.uploads.release()
            except _BodyTimeout:
                await _refusal(scope, 408, f"the request body did not arrive within {timeout:g} s", {"Connection": "close"})(
                    scope, receive, send
                )
            return
        await self.app(scope, receive, send)


def _refusal(scope, status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    """A request refused before the app saw it, in its route's error shape (Personalizer's on its routes)."""
    if scope["path"].startswith(personalizer.PREFIX):
        return personalizer.error(status, detail, headers)
    return JSONResponse({"detail": detail}, status, headers=headers)


class _BodyTimeout(Exception):
    pass


async def _no_body():
    return {"type": "http.request", "body": b"", "more_body": False}
