"""Thumbnails for the review grid, made once per image content and kept on disk.

Creatives are content-addressed, so a thumbnail never goes stale: it is named by the creative's
key (a catalog image's by its SHA-256) and the width. The cache is a folder of its own
(``--thumb-cache``, by default under ``$XDG_CACHE_HOME/backdrop``), never the store.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from pathlib import Path

from PIL import Image

from ..files import write_atomic

THUMB_WIDTH = 360


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backdrop" / "console-thumbs"


class Thumbnails:
    def __init__(self, cache: Path):
        self.cache = cache

    def get(self, name: str, read) -> bytes:
        """The WebP thumbnail of ``name`` (a key), made from ``read()``'s image bytes on a miss."""
        path = self.cache / name[:2] / f"{name}-{THUMB_WIDTH}.webp"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        with Image.open(io.BytesIO(read())) as im:
            im.draft("RGB", (THUMB_WIDTH * 2, THUMB_WIDTH * 2))  # JPEG: decode at a reduced size
            small = im.convert("RGB")
        small.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 2), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        small.save(buf, "WEBP", quality=82, method=4)
        data = buf.getvalue()
        with contextlib.suppress(OSError):  # a read-only cache: served without keeping it
            write_atomic(path, data)
        return data


class ThumbnailWarmer:
    """Makes the thumbnails a reviewer will open next before they ask, in a background thread: the
    first look at a grid page then costs no decoding (60 cold thumbnails take ~3 s on one core).
    ``batches()`` yields lists of ``(name, read)`` in the order pages show them; :meth:`stop` ends
    it between two thumbnails."""

    def __init__(self, thumbs: Thumbnails, batches):
        self.thumbs = thumbs
        self.batches = batches
        self.made = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="thumbnail-warmer", daemon=True)

    def start(self) -> ThumbnailWarmer:
        self._thread.start()
        return self

    def _run(self) -> None:
        log = logging.getLogger("backdrop.console")
        try:
            for batch in self.batches():
                for name, read in batch:
                    if self._stop.is_set():
                        return
                    self.thumbs.get(name, read)
                    self.made += 1
        except Exception as e:  # noqa: BLE001 - a thumbnail is made on demand all the same; say why warming stopped
            if not self._stop.is_set():
                log.warning("thumbnail warming stopped after %d: %s", self.made, e)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
