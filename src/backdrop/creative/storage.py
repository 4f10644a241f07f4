"""Where a store's files live: a local folder, or object storage through fsspec (``s3://bucket/prefix``,
``gs://``, ``az://``, ``memory://``...).

Writes are atomic either way: locally a temp file renamed into place (``files.write_atomic``); on
object storage a single PUT, which readers see whole or not at all. Paths are relative to the
store's root and use ``/``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import BackdropError
from ..files import write_atomic


def is_remote(location: str | os.PathLike) -> bool:
    """True for an fsspec URL other than a local path (``s3://b/p``; ``file://`` and plain paths are local)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


class StoreFiles(Protocol):
    """The file half of a creative store."""

    url: str

    def write(self, rel: str, data: bytes, tmp_name: str | None = None) -> None: ...

    def read(self, rel: str) -> bytes: ...

    def size(self, rel: str) -> int | None:
        """The file's size in bytes, None when it is not there."""
        ...

    def walk(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(relative path, size) of every file under ``prefix``."""
        ...

    def delete(self, rel: str) -> None: ...

    def local_path(self, rel: str) -> Path | None:
        """A path on this machine's file system, when there is one (None on object storage)."""
        ...


class LocalFiles:
    def __init__(self, root: str | os.PathLike):
        text = str(root)
        self.root = Path(text[len("file://") :] if text.startswith("file://") else text)
        self.url = str(self.root)

    def write(self, rel: str, data: bytes, tmp_name: str | None = None) -> None:
        write_atomic(self.root / rel, data, tmp_name=tmp_name)

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def size(self, rel: str) -> int | None:
        try:
            return (self.root / rel).stat().st_size
        except OSError:
            return None

    def walk(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self.root / prefix
        for path in sorted(base.glob("*/*")):
            if path.is_file():
                yield str(path.relative_to(self.root)), path.stat().st_size

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def local_path(self, rel: str) -> Path | None:
        return self.root / rel


class RemoteFiles:
    """Files on object storage through fsspec; ``storage_options`` go to the file system (endpoint,
    credentials); by default they come from the usual environment (``AWS_*``, ``AWS_ENDPOINT_URL``...)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec comes with the package
            raise BackdropError("object storage needs fsspec: pip install fsspec") from None
        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        try:
            self.fs = fsspec.filesystem(protocol, **(storage_options or {}))
        except (ImportError, ValueError) as e:
            extra = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(
                protocol, f"the fsspec backend for {protocol}://"
            )
            raise BackdropError(f"{url}: cannot open {protocol}:// storage ({e}); pip install {extra}") from None
        self._base = self.url.split("://", 1)[1]

    def _path(self, rel: str) -> str:
        return f"{self._base}/{rel}"

    def write(self, rel: str, data: bytes, tmp_name: str | None = None) -> None:
        self.fs.pipe_file(self._path(rel), data)  # one PUT: the object appears whole or not at all

    def read(self, rel: str) -> bytes:
        return self.fs.cat_file(self._path(rel))

    def size(self, rel: str) -> int | None:
        try:
            info = self.fs.info(self._path(rel))
        except FileNotFoundError:
            return None
        return int(info.get("size") or 0)

    def walk(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._path(prefix)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        for path, info in sorted(found.items()):
            if info.get("type", "file") == "file":
                yield path[len(self._base) + 1 :], int(info.get("size") or 0)

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(rel))

    def local_path(self, rel: str) -> Path | None:
        return None


def open_files(location: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> StoreFiles:
    return RemoteFiles(str(location), storage_options) if is_remote(location) else LocalFiles(location)
