"""``POST /v1/decide`` from body bytes to answer bytes, without a coroutine or a thread per request.

:class:`DecideEndpoint` is the one implementation of the endpoint's wire behaviour (the request
model, the 422/4xx bodies, the response model): the ASGI layer (:mod:`.asgi`) and the HTTP
protocol's fast path (:mod:`.http`) both call :meth:`DecideEndpoint.handle`. On the event loop it
validates, chooses (:meth:`Service.plan`) and queues the decision for the event log's group commit;
``respond(status, body)`` runs on the loop once the commit is durable, or when the decision is
answered as not logged (past ``log_timeout_ms``). A request with a ``request_id`` (looked up in the
log first) and a log without group commit take a pool thread (:meth:`Service.decide`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from pydantic import ValidationError

from .errors import ServiceError, http_status
from .schemas import DecideRequest, DecideResponse, validation_detail

logger = logging.getLogger(__name__)
Respond = Callable[[int, bytes], None]


def problem_body(detail) -> bytes:
    """The body of every refused request: ``{"detail": ...}``, as the ASGI routes answer too."""
    return json.dumps({"detail": detail}).encode()


def _problem(status: int, detail: str) -> tuple[int, bytes]:
    return status, problem_body(detail)


class DecideEndpoint:
    def __init__(self, service):
        self.service = service

    def handle(self, body: bytes, respond: Respond) -> None:
        """Answer ``body`` through ``respond`` (called exactly once, on the running loop)."""
        try:
            req = DecideRequest.model_validate_json(body)
        except ValidationError as e:
            errors = [dict(x, loc=("body", *x["loc"])) for x in e.errors()]
            respond(422, problem_body(validation_detail(errors)))
            return
        service = self.service
        loop = asyncio.get_running_loop()
        log = service.log
        if req.request_id is not None or not getattr(log, "group_commit", False) or service.pool is None:
            future = loop.run_in_executor(service.pool, service.decide, req)
            future.add_done_callback(lambda f: respond(*self._finished(f)))
            return
        try:
            plan = service.plan(req)
        except Exception as e:  # noqa: BLE001 - mapped by _answer
            respond(*self._answer(e, None))
            return
        if isinstance(plan, DecideResponse):
            respond(*self._answer(None, plan))
            return
        timeout = service.settings.log_timeout_ms / 1000
        answered = False
        timer = None

        def done(logged, error) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            if timer is not None:
                timer.cancel()
            try:
                response = service.finish(plan, logged, error)
            except Exception as e:  # noqa: BLE001 - mapped by _answer
                respond(*self._answer(e, None))
                return
            respond(*self._answer(None, response))

        pending = log.submit_decision(plan.record, loop, done)

        def too_late() -> None:
            if log.abandon(pending, timeout):
                done(None, pending.error)

        timer = loop.call_later(timeout, too_late)

    @classmethod
    def _finished(cls, future) -> tuple[int, bytes]:
        if future.cancelled():  # the pool was shut down under it: the service is stopping
            return _problem(503, "the service is shutting down; retry")
        error = future.exception()
        return cls._answer(error, None if error is not None else future.result())

    @staticmethod
    def _answer(error: BaseException | None, response: DecideResponse | None) -> tuple[int, bytes]:
        if error is None:
            assert response is not None
            return 200, response.model_dump_json().encode()
        if isinstance(error, ServiceError):
            return _problem(http_status(error), str(error))
        logger.error("decide failed", exc_info=error)
        return _problem(500, "Internal Server Error")
