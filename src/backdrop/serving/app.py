"""The decision service: which creative to show for this (user, item, placement), and the feedback loop.

An ad server calls ``POST /v1/decide`` per impression and ``POST /v1/feedback`` when the user
clicks. Every answered decision is in the event log before the answer leaves (its propensity is the
probability the served policy really had); the learner (``backdrop learn`` or ``serve --learn``)
folds joined rewards into a new model version, which every replica picks up between requests.
The OpenAPI schema (``/openapi.json``, committed as ``docs/openapi.json``) is the contract.

Layers: :mod:`.schemas` (the contract), :mod:`.service` (the domain: no HTTP), :mod:`.asgi` (limits,
metrics, the fast decide path), this module (routes, the one mapping of domain errors to HTTP, the
lifespan that starts and stops the service's threads).
"""

from __future__ import annotations

import hmac
import logging
import sys
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from .. import __version__
from . import personalizer
from .asgi import NO_KEY, WRONG_KEY, LimitsAndMetrics
from .decide import DecideEndpoint
from .errors import ServiceError, Unauthorized, Unavailable, http_status
from .eventlog import EventLog
from .http import DECIDE_STATE
from .schemas import (
    ActivateRequest,
    ActivateResponse,
    DecideRequest,
    DecideResponse,
    EventRequest,
    EventResponse,
    FeedbackRequest,
    FeedbackResponse,
    ModelResponse,
    Problem,
    RolloutResponse,
    validation_detail,
)
from .service import Service
from .settings import ServiceSettings

logger = logging.getLogger(__name__)
#: the interpreter's GIL switch interval while the service runs (Python's default: 5 ms)
GIL_SWITCH_S = 0.0005


class _ServiceApp(FastAPI):
    """FastAPI with :class:`LimitsAndMetrics` outside Starlette's own middleware (not inside it, where
    ``add_middleware`` puts it): the decide fast path then costs no error, telemetry and body-limit
    wrappers, and every request is still counted and limited before anything else sees it."""

    outermost: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return self.outermost(stack) if self.outermost is not None else stack


def create_app(settings: ServiceSettings, log: EventLog | None = None, learn_interval_s: float | None = None) -> FastAPI:
    """The FastAPI app of one replica (several replicas share one PostgreSQL event log); with
    ``learn_interval_s`` the replica also runs the learner (``serve --learn``)."""
    service = Service(settings, log, learn_interval_s=learn_interval_s)

    endpoint = DecideEndpoint(service)

    @asynccontextmanager
    async def lifespan(app):
        service.start()  # the lifespan owns the threads and the pool
        # the event-log writer thread needs the GIL a few times per batch while the event loop keeps
        # it busy; at the default 5 ms switch interval each handoff can add 5 ms to every decision
        # waiting for that commit
        switch = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        try:
            # offered to the HTTP protocol (serving.http.DecideProtocol), which answers decides itself
            yield {DECIDE_STATE: (endpoint, service.metrics, settings.limits)}
        finally:
            sys.setswitchinterval(switch)
            service.close()

    app = _ServiceApp(
        lifespan=lifespan,
        title="Backdrop decision service",
        version=__version__,
        description=(
            "Chooses, per ad impression, which generated creative (background style) of an item to show, "
            "logs the decision with its propensity, and joins click feedback for the learner."
        ),
        responses={422: {"description": "Invalid request: the detail names the field"}},
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = validation_detail(exc.errors())
        if request.url.path.startswith(personalizer.PREFIX):
            first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
            return personalizer.error(400, f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}")
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own refusals (a body it cannot parse, however deep): Personalizer's shape on its routes
        if request.url.path.startswith(personalizer.PREFIX):
            return personalizer.error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        # logged with its traceback by the server; the client gets its route's error shape, not plain text
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        if request.url.path.startswith(personalizer.PREFIX):
            return personalizer.error(500, "internal error; the service's log has the details")
        return JSONResponse({"detail": "internal error; the service's log has the details"}, status_code=500)

    @app.exception_handler(ServiceError)
    async def refused(request: Request, exc: ServiceError) -> JSONResponse:  # the one domain -> HTTP mapping
        if request.url.path.startswith(personalizer.PREFIX):
            return personalizer.error_for(exc)
        return JSONResponse({"detail": str(exc)}, status_code=http_status(exc))

    api_key = settings.api_key.get_secret_value() if settings.api_key else None

    def require_key(
        authorization: Annotated[str | None, Header(description="Bearer <api key>")] = None,
        x_api_key: Annotated[str | None, Header(description="the API key (alternative to Authorization)")] = None,
    ) -> None:
        check_key(x_api_key or (authorization[7:] if authorization and authorization.lower().startswith("bearer ") else None))

    def check_key(given: str | None, wrong: str = WRONG_KEY) -> None:
        """The routes' one API-key check, in constant time (the Personalizer routes' too)."""
        if api_key is None:
            raise Unavailable(NO_KEY)
        if given is None or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise Unauthorized(wrong)

    app.outermost = lambda inner: LimitsAndMetrics(inner, service=service, api_key=api_key, decide=endpoint)

    @app.post("/v1/decide", response_model=DecideResponse, responses={404: {"model": Problem}, 409: {"model": Problem}})
    def decide(req: DecideRequest) -> DecideResponse:
        """Choose the creative for this impression; the decision is logged before the answer leaves."""
        # requests are answered by LimitsAndMetrics._decide before they get here; this route is the
        # contract in the OpenAPI schema (and serves the app if it is mounted without the middleware)
        return service.decide(req)

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}},
    )
    def feedback(req: FeedbackRequest) -> FeedbackResponse:
        """Join a reward (a click) to its decision; a second reward for the same decision is not counted.
        It is the event ``feedback`` with that value (see /v1/events and the deployment's reward function)."""
        status, activated = service.feedback(req.decision_id, req.reward, req.at)
        return FeedbackResponse(decision_id=req.decision_id, status=status, activated=activated)

    @app.post(
        "/v1/activate",
        response_model=ActivateResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}},
    )
    def activate(req: ActivateRequest) -> ActivateResponse:
        """The impression of a decision made with ``activate: false`` happened: it now counts (idempotent).
        409 past the activation window: the decision expired unshown and is not learned from."""
        return ActivateResponse(decision_id=req.decision_id, status=service.activate(req.decision_id))

    @app.post(
        "/v1/events",
        response_model=EventResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}},
    )
    def event(req: EventRequest) -> EventResponse:
        """Join an outcome (click, add_to_cart, purchase with value and currency, or your own type) to its
        decision within the join window; the deployment's reward function turns a decision's events into its reward."""
        status, activated = service.event(req)
        return EventResponse(decision_id=req.decision_id, type=req.type, status=status, activated=activated)

    @app.get("/v1/rollout", response_model=RolloutResponse, responses={404: {"model": Problem}})
    def rollout() -> RolloutResponse:
        """The safe rollout: the phase served, the off-policy estimates with intervals, and the switch."""
        return RolloutResponse(**service.rollout_status())

    @app.get(
        "/v1/creatives/{key}",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
            304: {"description": "Not modified"},
            404: {"model": Problem},
        },
    )
    def creative(key: str, if_none_match: Annotated[str | None, Header()] = None):
        """The image bytes; content-addressed, so cached forever (ETag = key)."""
        etag = f'"{key}"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=31536000, immutable"}
        if key in service.index.files and if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
            return Response(status_code=304, headers=headers)
        c = service.creative_file(key)
        if c.path is None:  # on object storage: the bytes through this replica
            return Response(service.creative_bytes(c), media_type=c.media_type, headers=headers)
        return FileResponse(c.path, media_type=c.media_type, headers=headers)

    @app.post(
        "/v1/models",
        response_model=ModelResponse,
        dependencies=[Depends(require_key)],
        responses={401: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
        },
    )
    async def publish_model(request: Request) -> ModelResponse:
        """Publish a model file (``Policy.save``) as the next version: every replica serves it within seconds."""
        record = service.publish(await request.body())
        return ModelResponse(version=record.version, policy=record.policy, learner_offset=record.learner_offset, reward=record.reward)

    app.include_router(personalizer.router(service, check_key))

    @app.get("/healthz")
    def healthz() -> dict:
        """The process is up."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", responses={503: {"description": "Not ready: the reasons are listed"}})
    def readyz():
        """Ready to serve logged decisions: the event log can be written, a servable model is loaded, the
        learner (when configured) keeps up, and the store's files match its index."""
        problems, warnings = service.readiness()
        body = {"ready": not problems, "problems": problems, "warnings": warnings, "model_version": service.model_version}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: requests and latency per endpoint, decisions per style, rewards, model version."""
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    return app


#: ``backdrop serve --workers N`` passes the settings to each worker process through this file (mode 600)
SETTINGS_FILE_ENV = "BACKDROP_SETTINGS_FILE"


def app_from_settings_file() -> FastAPI:
    """The app factory uvicorn's worker processes call (``backdrop serve --workers N``)."""
    import json
    import os

    path = os.environ.get(SETTINGS_FILE_ENV)
    if not path:
        raise RuntimeError(f"{SETTINGS_FILE_ENV} is not set; start the service with `backdrop serve`")
    data = json.loads(Path(path).read_text())
    data["api_key"] = os.environ.get("BACKDROP_API_KEY")  # never in the file
    return create_app(ServiceSettings.model_validate(data))
