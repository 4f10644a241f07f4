"""A local HTTP server for product images, with the ways real image hosts misbehave.

Routes: ``/img/NAME`` (an image from ``images``, with ETag and Last-Modified, 304 on revalidation),
``/missing`` (404), ``/slow`` (headers after ``slow_s``), ``/drip`` (a body that never ends, slowly),
``/loop`` (redirects to itself), ``/hop/N/NAME`` (N redirects, then the image), ``/big`` (a body over
any limit, no Content-Length), ``/big-declared`` (Content-Length says too much), ``/html`` (a web page
where an image should be), ``/flaky/K/NAME`` (503 with ``Retry-After: 0`` K times, then the image),
``/limited`` (429 with ``Retry-After: 3600``). ``hits`` counts requests per path; ``bodies`` counts
image bodies sent (a revalidated image sends none).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LAST_MODIFIED = "Tue, 01 Dec 2026 10:00:00 GMT"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client hanging up (the fetcher giving up on a slow or endless body, an idle keep-alive
        # connection closed) is what this server is for, not an error to print into the suite's output
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ImageServer:
    def __init__(self, images: dict[str, bytes], slow_s: float = 3.0):
        self.images = images
        self.slow_s = slow_s
        self.hits: Counter = Counter()
        self.bodies: Counter = Counter()
        self._flaky: Counter = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                with server._lock:
                    server.hits[self.path] += 1
                server.route(self)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- routes ---------------------------------------------------------------------------
    def route(self, h: BaseHTTPRequestHandler) -> None:
        parts = h.path.strip("/").split("/")
        kind = parts[0]
        if kind == "img":
            self._image(h, parts[1])
        elif kind == "missing":
            self._send(h, 404, b"not found", "text/plain")
        elif kind == "slow":
            time.sleep(self.slow_s)
            self._image(h, next(iter(self.images)))
        elif kind == "drip":
            h.send_response(200)
            h.send_header("content-type", "image/jpeg")
            h.send_header("transfer-encoding", "chunked")
            h.end_headers()
            try:
                for _ in range(100):
                    h.wfile.write(b"1\r\nx\r\n")
                    h.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif kind == "loop":
            self._redirect(h, "/loop")
        elif kind == "hop":
            n = int(parts[1])
            self._redirect(h, f"/hop/{n - 1}/{parts[2]}" if n > 1 else f"/img/{parts[2]}")
        elif kind == "big":
            h.send_response(200)
            h.send_header("content-type", "image/jpeg")
            h.send_header("transfer-encoding", "chunked")
            h.end_headers()
            chunk = b"\xff" * 65536
            try:
                for _ in range(64):  # 4 MiB
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                h.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        elif kind == "big-declared":
            h.send_response(200)
            h.send_header("content-type", "image/jpeg")
            h.send_header("content-length", str(1 << 30))
            h.end_headers()
        elif kind == "html":
            self._send(h, 200, b"<html><body>Sorry, this product page moved</body></html>", "text/html; charset=utf-8")
        elif kind == "flaky":
            key = h.path
            with self._lock:
                self._flaky[key] += 1
                failing = self._flaky[key] <= int(parts[1])
            if failing:
                self._send(h, 503, b"busy", "text/plain", {"retry-after": "0"})
            else:
                self._image(h, parts[2])
        elif kind == "limited":
            self._send(h, 429, b"slow down", "text/plain", {"retry-after": "3600"})
        else:
            self._send(h, 404, b"no route", "text/plain")

    def _image(self, h: BaseHTTPRequestHandler, name: str) -> None:
        data = self.images.get(name)
        if data is None:
            self._send(h, 404, b"no such image", "text/plain")
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if h.headers.get("if-none-match") == etag:
            h.send_response(304)
            h.send_header("etag", etag)
            h.send_header("content-length", "0")
            h.end_headers()
            return
        with self._lock:
            self.bodies[name] += 1
        ctype = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
        self._send(h, 200, data, ctype, {"etag": etag, "last-modified": LAST_MODIFIED})

    def _redirect(self, h: BaseHTTPRequestHandler, location: str) -> None:
        self._send(h, 302, b"", "text/plain", {"location": location})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        with contextlib.suppress(OSError):
            h.wfile.write(body)
