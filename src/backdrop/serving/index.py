"""The in-memory creative index a replica serves from: one immutable snapshot of the store.

:meth:`CreativeIndex.load` reads the store (read-only) into a new snapshot; the service swaps its
reference to it in one assignment, so a request sees the old index or the new one, never a mix.
Creatives QA flagged are withheld (unless ``serve_flagged``), and a creative whose file does not
have the bytes its index row says (truncated, replaced, missing) is never served and is reported.

Reviews (:mod:`backdrop.creative.review`) decide on top: a rejected creative is never served; with
``review_required`` only approved ones are; an approval is a person overriding a QA flag.
:meth:`CreativeIndex.with_reviews` applies new review states to a snapshot without reading the
store again, which is what lets a rejection take effect within a second.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..bandit.arms import ORIGINAL
from ..creative.review import PENDING_REVIEW, REJECTED, SERVABLE, WITHHELD, review_states, servability
from ..creative.rotation import is_retired, retired
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
class _Candidate:
    """An indexed creative whose file is intact: served or not depending on QA and review."""

    item: str
    placement: str
    arm: str
    flagged: bool
    creative: _Creative


@dataclass(frozen=True)
class CreativeIndex:
    """item -> product, and (item, placement) -> {style: creative}: one immutable snapshot of a store."""

    store_root: Path | str
    serve_flagged: bool = False
    review_required: bool = False
    products: dict[str, dict] = field(default_factory=dict)
    by_item: dict[tuple[str, str], dict[str, _Creative]] = field(default_factory=dict)
    files: dict[str, _Creative] = field(default_factory=dict)
    placements: frozenset[str] = frozenset()
    #: creatives QA flagged, not served (unless ``serve_flagged``)
    withheld: int = 0
    #: creatives whose file is missing or does not have the bytes the index says (never served)
    broken: tuple[str, ...] = ()
    loaded_at: float = 0.0
    #: creatives a reviewer rejected (never served)
    rejected: int = 0
    #: creatives not served because review is required and nobody approved them yet
    pending: int = 0
    #: the review change the snapshot is as of (:func:`~backdrop.creative.review.review_seq`)
    review_seq: int = 0
    candidates: tuple[_Candidate, ...] = ()
    #: the catalog images (content-addressed like the creatives)
    catalog: dict[str, _Creative] = field(default_factory=dict)
    reviews: dict[str, str] = field(default_factory=dict)
    #: (item, placement) whose fitted ``original`` a reviewer rejected: it has no baseline to serve
    rejected_baselines: frozenset[tuple[str, str]] = frozenset()
    #: served creatives that are not a baseline (generated scenes, and their overlay variants)
    served_generated: int = 0
    #: creatives of styles retired from their category's rotation (``creative.rotation``): not offered
    retired: int = 0

    def baseline_choices(self, item: str, placement: str) -> tuple[_Creative, ...]:
        """What can show an item's baseline on a placement, best first: its fitted ``original`` (the photo
        on the placement's canvas), then the catalog photo itself (for a store made before ``generate``
        fitted it; not when a reviewer rejected the fitted one)."""
        fitted = self.by_item.get((item, placement), {}).get(ORIGINAL)
        if (item, placement) in self.rejected_baselines:
            return ()
        product = self.products.get(item)
        photo = self.files.get(product.get("catalog_key", "")) if product is not None else None
        return tuple(c for c in (fitted, photo) if c is not None)

    @functools.cached_property
    def baselines(self) -> tuple[tuple[tuple[str, str], ...], dict[str, list[tuple[str, str]]]]:
        """(the (item, placement) pairs with no baseline at all, and which pairs each baseline file
        serves): computed once per snapshot, when readiness first asks."""
        missing: list[tuple[str, str]] = []
        users: dict[str, list[tuple[str, str]]] = {}
        for item in sorted(self.products):
            for placement in sorted(self.placements):
                choices = self.baseline_choices(item, placement)
                if not choices:
                    missing.append((item, placement))
                for c in choices:
                    users.setdefault(c.key, []).append((item, placement))
        return tuple(missing), users

    @property
    def served(self) -> int:
        return sum(len(v) for v in self.by_item.values())

    def with_reviews(self, reviews: dict[str, str], seq: int) -> CreativeIndex:
        """This snapshot with ``reviews`` (key -> approved/rejected) applied: which creatives are served."""
        by_item: dict[tuple[str, str], dict[str, _Creative]] = {}
        files = dict(self.catalog)
        not_served = {REJECTED: 0, PENDING_REVIEW: 0, WITHHELD: 0}
        # the one rule (export, the report and the console apply it too), memoised per (flag, review, arm):
        # a few dozen combinations, so a poll's change stays cheap on 100k creatives
        rule: dict[tuple[bool, str, str], str] = {}
        generated = 0
        no_baseline: set[tuple[str, str]] = set()  # a reviewer rejected the fitted photo: not the raw photo instead
        for c in self.candidates:
            case = (c.flagged, reviews.get(c.creative.key, "pending"), c.arm)
            why = rule.get(case)
            if why is None:
                flagged, status, arm = case
                why = rule[case] = servability(
                    flagged=flagged, status=status, review_required=self.review_required, serve_flagged=self.serve_flagged, arm=arm
                )
            if why != SERVABLE:
                not_served[why] += 1
                if why == REJECTED and c.arm == ORIGINAL:
                    no_baseline.add((c.item, c.placement))
                continue
            by_item.setdefault((c.item, c.placement), {})[c.arm] = c.creative  # a style, or a style with an overlay
            generated += c.arm != ORIGINAL
            files[c.creative.key] = c.creative
        return dataclasses.replace(
            self,
            by_item=by_item,
            files=files,
            withheld=not_served[WITHHELD],
            rejected=not_served[REJECTED],
            pending=not_served[PENDING_REVIEW],
            review_seq=seq,
            reviews=reviews,
            rejected_baselines=frozenset(no_baseline),
            served_generated=generated,
        )

    @classmethod
    def load(
        cls,
        store_root: Path | str,
        serve_flagged: bool = False,
        previous: CreativeIndex | None = None,
        index: str | None = None,
        review_required: bool = False,
    ) -> CreativeIndex:
        """A fresh snapshot of the store at ``store_root`` (read-only; a folder, or object storage with
        its ``index``); ``previous`` only decides whether newly broken files are logged again."""
        from PIL import Image

        store = CreativeStore(store_root, readonly=True, index=index)
        # one listing instead of a request per file on object storage
        sizes = dict(store.files.walk("creatives")) if store.remote else None
        try:
            products: dict[str, dict] = {}
            candidates: list[_Candidate] = []
            catalog: dict[str, _Creative] = {}
            placements: set[str] = set()
            broken = []
            reviews, seq = review_states(store)
            out_of_rotation = retired(store)
            n_retired = 0
            for p in store.products():
                products[p["product_id"]] = p
            for r in store.creatives():
                product = products.get(r.product_id)
                if out_of_rotation and product is not None and is_retired(r.arm, product["category"], out_of_rotation):
                    n_retired += 1
                    continue
                placements.add(r.placement)
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
                candidates.append(_Candidate(r.product_id, r.placement, r.arm, r.flagged, c))
            for p in products.values():  # the catalog image, content-addressed like the creatives
                path = Path(p["image_path"])
                key = "catalog-" + p["image_sha256"][:32]
                if key not in catalog and path.is_file():
                    with Image.open(path) as im:
                        w, h = im.size
                    media = (
                        "image/png"
                        if path.suffix.lower() == ".png"
                        else "image/jpeg"
                        if path.suffix.lower() in (".jpg", ".jpeg")
                        else "image/webp"
                    )
                    catalog[key] = _Creative(key, path, w, h, media)
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
        snapshot = cls(
            store_root,
            serve_flagged,
            review_required,
            products,
            placements=frozenset(placements),
            broken=tuple(broken),
            loaded_at=time.time(),
            candidates=tuple(candidates),
            catalog=catalog,
            retired=n_retired,
        )
        return snapshot.with_reviews(reviews, seq)
