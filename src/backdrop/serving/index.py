"""The in-memory creative index a replica serves from: one immutable snapshot of the store.

:meth:`CreativeIndex.load` reads the store (read-only) into a new snapshot; the service swaps its
reference to it in one assignment, so a request sees the old index or the new one, never a mix.
Creatives QA flagged are withheld (unless ``serve_flagged``), and a creative whose file does not
have the bytes its index row says (truncated, replaced, missing) is never served and is reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..creative.store import CreativeStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Creative:
    key: str
    #: the file on this machine; None when the store is on object storage (read through ``rel``)
    path: Path | None
    width: int
    height: int
    media_type: str
    size: int | None = None  # bytes the index says the file has (None: the catalog image, not indexed)
    #: the file's path in the store ("" for the catalog image)
    rel: str = ""


@dataclass(frozen=True)
class CreativeIndex:
    """item -> product, and (item, placement) -> {style: creative}: one immutable snapshot of a store."""

    store_root: Path | str
    serve_flagged: bool = False
    products: dict[str, dict] = field(default_factory=dict)
    by_item: dict[tuple[str, str], dict[str, _Creative]] = field(default_factory=dict)
    files: dict[str, _Creative] = field(default_factory=dict)
    placements: frozenset[str] = frozenset()
    #: creatives QA flagged, not served (unless ``serve_flagged``)
    withheld: int = 0
    #: creatives whose file is missing or does not have the bytes the index says (never served)
    broken: tuple[str, ...] = ()
    loaded_at: float = 0.0

    @property
    def served(self) -> int:
        return sum(len(v) for v in self.by_item.values())

    @classmethod
    def load(
        cls, store_root: Path | str, serve_flagged: bool = False, previous: CreativeIndex | None = None, index: str | None = None
    ) -> CreativeIndex:
        """A fresh snapshot of the store at ``store_root`` (read-only; a folder, or object storage with
        its ``index``); ``previous`` only decides whether newly broken files are logged again."""
        from PIL import Image

        store = CreativeStore(store_root, readonly=True, index=index)
        # one listing instead of a request per file on object storage
        sizes = dict(store.files.walk("creatives")) if store.remote else None
        try:
            products: dict[str, dict] = {}
            by_item: dict[tuple[str, str], dict[str, _Creative]] = {}
            files: dict[str, _Creative] = {}
            placements: set[str] = set()
            withheld, broken = 0, []
            for p in store.products():
                products[p["product_id"]] = p
            for r in store.creatives():
                placements.add(r.placement)
                if r.flagged and not serve_flagged:
                    withheld += 1
                    continue
                path = store.files.local_path(r.path)
                if sizes is not None:
                    size = sizes.get(r.path, -1)
                else:
                    got = store.files.size(r.path)
                    size = -1 if got is None else got
                if size != r.bytes:  # truncated, replaced or missing: never served, always reported
                    broken.append(r.key)
                    continue
                media = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}.get(r.format, "application/octet-stream")
                c = _Creative(r.key, path, r.width, r.height, media, r.bytes, r.path)
                by_item.setdefault((r.product_id, r.placement), {})[r.arm] = c  # a style, or a style with an overlay
                files[r.key] = c
            for p in products.values():  # the catalog image, content-addressed like the creatives
                path = Path(p["image_path"])
                key = "catalog-" + p["image_sha256"][:32]
                if key not in files and path.is_file():
                    with Image.open(path) as im:
                        w, h = im.size
                    media = (
                        "image/png"
                        if path.suffix.lower() == ".png"
                        else "image/jpeg"
                        if path.suffix.lower() in (".jpg", ".jpeg")
                        else "image/webp"
                    )
                    files[key] = _Creative(key, path, w, h, media)
                p["catalog_key"] = key
        finally:
            store.close()
        if broken and (previous is None or tuple(broken) != previous.broken):
            logger.error(
                "%d creative file(s) do not match the store's index and are not served (first: %s); run `backdrop store verify %s`",
                len(broken),
                broken[0],
                store_root,
            )
        return cls(store_root, serve_flagged, products, by_item, files, frozenset(placements), withheld, tuple(broken), time.time())
