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

import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
