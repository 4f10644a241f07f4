"""Product images over HTTP(S): concurrent downloads into a cache keyed by URL.

Every download is bounded (timeouts per read and in all, redirects, size, content type), retried
with exponential backoff on 5xx, 429 and dropped connections (``Retry-After`` honoured), and kept
with its ``ETag`` / ``Last-Modified`` so that a rerun revalidates instead of downloading: an
unchanged image costs one ``304 Not Modified``. A failure says the URL and why (the HTTP status,
the limit it broke), for the catalog row that named it.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..files import write_atomic

#: content types accepted as images (the bytes are decoded and checked afterwards in any case)
IMAGE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
RETRY_STATUS = {429, 500, 502, 503, 504}
USER_AGENT = "backdrop-image-fetcher/1 (product feed images)"


def default_cache_dir() -> Path:
    """``$BACKDROP_IMAGE_CACHE``, else ``$XDG_CACHE_HOME/backdrop/images`` (``~/.cache/backdrop/images``)."""
    explicit = os.environ.get("BACKDROP_IMAGE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backdrop" / "images"


def cache_path(url: str, cache_dir: Path | None = None) -> tuple[Path, Path]:
    """Where the cache keeps ``url``'s bytes and its metadata (ETag, Last-Modified, content type)."""
    digest = hashlib.sha256(url.encode()).hexdigest()
    folder = (cache_dir if cache_dir is not None else default_cache_dir()) / digest[:2]
    return folder / f"{digest}.img", folder / f"{digest}.json"


def is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class Fetched:
    """One URL's outcome: ``path`` to the cached bytes, or ``error`` (why, with the HTTP status if any)."""

    url: str
    path: Path | None
    #: "downloaded", "revalidated" (304: the cached copy is current) or "failed"
    outcome: str
    status: int | None = None
    error: str | None = None
    bytes: int = 0


@dataclass
class FetchStats:
    downloaded: int = 0
    revalidated: int = 0
    failed: int = 0
    retries: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, f: Fetched, retries: int) -> None:
        with self._lock:
            setattr(self, f.outcome, getattr(self, f.outcome) + 1)
            self.retries += retries
            self.bytes += f.bytes if f.outcome == "downloaded" else 0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("downloaded", "revalidated", "failed", "retries", "bytes")}


class _Failure(Exception):
    def __init__(self, reason: str, status: int | None = None, retry: bool = False, wait_s: float | None = None):
        super().__init__(reason)
        self.reason, self.status, self.retry, self.wait_s = reason, status, retry, wait_s


class ImageFetcher:
    """Downloads images into ``cache_dir`` (one file and its metadata per URL).

    >>> fetcher = ImageFetcher("/tmp/backdrop-doctest-cache", retries=0)
    >>> fetcher.fetch("ftp://example.com/a.jpg").error
    'only http:// and https:// image URLs are supported'
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        timeout_s: float = 20.0,
        total_timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_wait_s: float = 60.0,
        max_bytes: int = 32 << 20,
        max_redirects: int = 5,
        workers: int = 8,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.timeout_s, self.total_timeout_s = timeout_s, total_timeout_s
        self.retries, self.backoff_s, self.max_wait_s = retries, backoff_s, max_wait_s
        self.max_bytes, self.max_redirects, self.workers = max_bytes, max_redirects, workers
        self.stats = FetchStats()
        self._sleep = sleep
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=True,
            max_redirects=max_redirects,
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            headers={"user-agent": USER_AGENT, "accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8"},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ImageFetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the cache ------------------------------------------------------------------------
    def _paths(self, url: str) -> tuple[Path, Path]:
        return cache_path(url, self.cache_dir)

    def cached(self, url: str) -> tuple[Path, dict] | None:
        """The cached file and its metadata, when both are there and agree."""
        body, meta_path = self._paths(url)
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("url") != url or body.stat().st_size != meta.get("bytes"):
                return None
        except (OSError, ValueError):
            return None
        return body, meta

    # -- fetching -------------------------------------------------------------------------
    def fetch(self, url: str) -> Fetched:
        """One URL, retried as the class says; never raises for what the server or network does."""
        if not is_url(url):
            return Fetched(url, None, "failed", error="only http:// and https:// image URLs are supported")
        retries = 0
        while True:
            try:
                result = self._attempt(url)
                break
            except _Failure as e:
                if not e.retry or retries >= self.retries:
                    tried = f" (after {retries + 1} attempts)" if retries else ""
                    result = Fetched(url, None, "failed", status=e.status, error=e.reason + tried)
                    break
                wait = self.backoff_s * 2**retries * (1 + 0.25 * random.random())
                if e.wait_s is not None:
                    if e.wait_s > self.max_wait_s:
                        result = Fetched(
                            url,
                            None,
                            "failed",
                            status=e.status,
                            error=f"{e.reason}; Retry-After {e.wait_s:.0f} s is past the {self.max_wait_s:.0f} s limit",
                        )
                        break
                    wait = max(wait, e.wait_s)
                retries += 1
                self._sleep(min(wait, self.max_wait_s))
        self.stats.add(result, retries)
        return result

    def fetch_many(self, urls: Iterable[str], progress: bool = False) -> dict[str, Fetched]:
        """Every distinct URL, ``workers`` at a time; a progress bar on stderr with ``progress``."""
        todo = list(dict.fromkeys(urls))
        out: dict[str, Fetched] = {}
        if not todo:
            return out
        from tqdm import tqdm

        with (
            tqdm(total=len(todo), unit="image", desc="images", disable=not progress, dynamic_ncols=True) as bar,
            ThreadPoolExecutor(max_workers=min(self.workers, len(todo)), thread_name_prefix="backdrop-fetch") as pool,
        ):
            for f in pool.map(self.fetch, todo):
                out[f.url] = f
                bar.update(1)
                bar.set_postfix(new=self.stats.downloaded, unchanged=self.stats.revalidated, failed=self.stats.failed, refresh=False)
        return out

    def _attempt(self, url: str) -> Fetched:
        cached = self.cached(url)
        headers = {}
        if cached is not None:
            meta = cached[1]
            if meta.get("etag"):
                headers["if-none-match"] = meta["etag"]
            if meta.get("last_modified"):
                headers["if-modified-since"] = meta["last_modified"]
        deadline = time.monotonic() + self.total_timeout_s
        try:
            with self._client.stream("GET", url, headers=headers) as r:
                if r.status_code == 304 and cached is not None:
                    return Fetched(url, cached[0], "revalidated", status=304, bytes=cached[0].stat().st_size)
                if r.status_code != 200:
                    phrase = f" {r.reason_phrase}" if r.reason_phrase else ""
                    raise _Failure(
                        f"HTTP {r.status_code}{phrase}",
                        r.status_code,
                        retry=r.status_code in RETRY_STATUS,
                        wait_s=_retry_after(r.headers.get("retry-after")),
                    )
                ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
                if not ctype.startswith(IMAGE_TYPES):
                    raise _Failure(f"content-type '{ctype or 'none'}' is not an image (HTTP 200)", 200)
                declared = r.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise _Failure(f"too large: {int(declared):,} bytes (limit {self.max_bytes:,})", 200)
                chunks, size = [], 0
                for chunk in r.iter_bytes():  # as it arrives: the deadline is checked between pieces
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise _Failure(f"too large: over {self.max_bytes:,} bytes", 200)
                    if time.monotonic() > deadline:
                        raise _Failure(f"too slow: not complete within {self.total_timeout_s:g} s", 200, retry=True)
                    chunks.append(chunk)
                data = b"".join(chunks)
                meta = {
                    "url": url,
                    "final_url": str(r.url),
                    "etag": r.headers.get("etag"),
                    "last_modified": r.headers.get("last-modified"),
                    "content_type": ctype,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "fetched_at": time.time(),
                }
        except httpx.TooManyRedirects:
            raise _Failure(f"more than {self.max_redirects} redirects") from None
        except httpx.TimeoutException as e:
            raise _Failure(f"timed out ({type(e).__name__}, {self.timeout_s:g} s per read)", retry=True) from None
        except httpx.TransportError as e:  # refused, reset, DNS, TLS
            raise _Failure(f"connection failed: {e or type(e).__name__}", retry=True) from None
        except httpx.InvalidURL as e:
            raise _Failure(f"invalid URL: {e}") from None
        body, meta_path = self._paths(url)
        write_atomic(body, data)
        write_atomic(meta_path, json.dumps(meta).encode())  # after the body: metadata never names bytes not there
        return Fetched(url, body, "downloaded", status=200, bytes=len(data))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
