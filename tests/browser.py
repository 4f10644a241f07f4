"""Open a page in headless Chromium and evaluate JavaScript in it (Chrome DevTools Protocol).

`make test` installs Debian's chromium (scripts/ensure-chromium.sh) and sets
BACKDROP_REQUIRE_ALL=1, so there a missing browser fails the tests instead of skipping them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    from conftest import need

    need(False, "chromium (scripts/ensure-chromium.sh installs Debian's package)")


class Browser:
    def __init__(self):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="backdrop-chromium-")
        self.proc = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = []
        while not any(t.get("type") == "page" for t in targets):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json") as r:
                targets = json.load(r)
            if time.time() > deadline:
                raise RuntimeError("chromium has no page target")
            time.sleep(0.05)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self._id = 0

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def open(self, url: str, settle_js: str = "document.readyState === 'complete'", timeout: float = 60) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        deadline = time.time() + timeout
        while not self.evaluate(settle_js):
            if time.time() > deadline:
                raise TimeoutError(f"page did not settle: {url}")
            time.sleep(0.1)

    def image_report(self) -> list[dict]:
        """Every <img> of the page after scrolling it all into view (lazy images load): src, loaded, size."""
        self.evaluate(
            """(async () => {
                 for (const img of document.images) { img.loading = 'eager'; }
                 await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
                 return true; })()"""
        )
        return self.evaluate(
            "[...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,"
            " width: i.naturalWidth, height: i.naturalHeight}))"
        )

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
