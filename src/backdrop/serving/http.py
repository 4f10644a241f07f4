"""uvicorn's HTTP protocol with a header timeout: a client that sends its request line and headers
slowly (or opens a connection and says nothing) is answered 408 and disconnected, instead of
holding a connection for as long as it likes. Body timeouts are the app's (``LimitsAndMetrics``).

uvicorn has a keep-alive timeout between requests but none while the first request's headers
trickle in; this subclass arms a timer when a connection opens and when a request begins, and
cancels it once the headers are complete. The timeout is read from ``BACKDROP_HEADER_TIMEOUT_S``
(``backdrop serve`` sets it from ``limits.header_timeout_s``) so uvicorn's worker processes,
which import this class by name, get it too.
"""

from __future__ import annotations

import asyncio
import os
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .decide import problem_body

HEADER_TIMEOUT_ENV = "BACKDROP_HEADER_TIMEOUT_S"
_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 29\r\nconnection: close\r\n\r\nrequest headers took too long"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_ENV, "10"))
        self._header_timer = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_408)
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


#: the lifespan state key under which the app offers its decide endpoint to the protocol
DECIDE_STATE = "backdrop.decide"
_STATUS = {
    200: b"200 OK",
    404: b"404 Not Found",
    408: b"408 Request Timeout",
    409: b"409 Conflict",
    413: b"413 Content Too Large",
    422: b"422 Unprocessable Content",
    500: b"500 Internal Server Error",
    503: b"503 Service Unavailable",
}


class _FastCycle:
    """Stands in for uvicorn's request cycle while a decide is answered here: uvicorn queues a
    pipelined request behind it (so answers keep their order) and tells it about a shutdown."""

    __slots__ = ("body", "disconnected", "keep_alive", "more_body", "response_complete", "started", "timer")

    def __init__(self, keep_alive: bool):
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False
        self.body = b""
        self.more_body = True
        self.started = 0.0
        self.timer: asyncio.TimerHandle | None = None

    class message_event:  # uvicorn sets it on disconnect; nothing waits on it here
        @staticmethod
        def set() -> None:
            pass


class DecideProtocol(HeaderTimeoutProtocol):
    """The HTTP protocol ``backdrop serve`` runs: ``POST /v1/decide`` is answered right here, from the
    parser's callbacks, by the app's :class:`~backdrop.serving.decide.DecideEndpoint`, without
    uvicorn's ASGI request cycle, its task and its send/receive coroutines, which cost more CPU than
    choosing and logging the decision. Everything else (and a decide pipelined behind another
    request) goes to the ASGI app as usual, where the same endpoint answers it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fast: _FastCycle | None = None

    def on_headers_complete(self) -> None:
        offer = self.app_state.get(DECIDE_STATE)
        if (
            offer is None
            or self.url != b"/v1/decide"
            or self.parser.get_method() != b"POST"
            or self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.parser.should_upgrade()
        ):
            self._fast = None
            return super().on_headers_complete()
        self._disarm()
        limits = offer[2]
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        cycle = self._fast = _FastCycle(keep_alive)
        cycle.started = time.perf_counter()
        self.cycle = cycle  # type: ignore[assignment]
        length = next((v for k, v in self.headers if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > limits.max_body_bytes):
            self._answer(413, problem_body(f"request body larger than {limits.max_body_bytes} bytes"), close=True)
            return
        if self.expect_100_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        cycle.timer = self.loop.call_later(limits.body_timeout_s, self._body_too_slow, cycle)

    def on_body(self, body: bytes) -> None:
        cycle = self._fast
        if cycle is None:
            return super().on_body(body)
        if cycle.response_complete:
            return
        cycle.body += body
        limit = self.app_state[DECIDE_STATE][2].max_body_bytes
        if len(cycle.body) > limit:
            self._answer(413, problem_body(f"request body larger than {limit} bytes"), close=True)

    def on_message_complete(self) -> None:
        cycle = self._fast
        if cycle is None:
            return super().on_message_complete()
        self._fast = None
        if cycle.response_complete:
            return
        if cycle.timer is not None:
            cycle.timer.cancel()
        cycle.more_body = False
        # reading is not paused while this is answered (two epoll_ctl calls a request): a request
        # pipelined behind it takes uvicorn's path, which queues it behind this cycle and pauses reading
        self.app_state[DECIDE_STATE][0].handle(cycle.body, lambda status, body: self._answer(status, body, cycle=cycle))

    def _body_too_slow(self, cycle: _FastCycle) -> None:
        if not cycle.response_complete:
            self._answer(408, problem_body("the request body did not arrive in time"), close=True, cycle=cycle)

    def _answer(self, status: int, body: bytes, close: bool = False, cycle: _FastCycle | None = None) -> None:
        cycle = cycle or self._fast
        assert cycle is not None
        if cycle.response_complete:
            return
        cycle.response_complete = True
        if cycle.timer is not None:
            cycle.timer.cancel()
        metrics = self.app_state[DECIDE_STATE][1]
        metrics.count("/v1/decide", status, time.perf_counter() - cycle.started)
        if cycle.disconnected or self.transport.is_closing():
            return
        keep_alive = cycle.keep_alive and not close
        head = [b"HTTP/1.1 ", _STATUS.get(status, str(status).encode()), b"\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(), b"\r\n"]
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head += [b"\r\n", body]
        self.transport.write(b"".join(head))
        if not keep_alive:
            self.transport.close()
            return
        self.on_response_complete()  # resumes reading, starts a pipelined request, arms the keep-alive timeout
