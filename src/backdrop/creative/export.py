"""Creatives back into the feeds that drive catalog ads: a supplemental feed (by ``id``) that points
``image_link`` at the chosen creative and lists the others (and the catalog photo) as
``additional_image_link``, checked against each platform's published field rules.

Which creatives may go in a feed is the decision service's rule
(:func:`~backdrop.creative.review.servability`): never one rejected in review; one the QA checks
flagged only once a reviewer approved it; with ``review_required`` only approved ones. Feeds take
plain creatives only (no overlay), and never the ``original`` rendition (the catalog photo fitted to
the placement, the experiments' control arm): the feed carries the catalog photo itself, as an
``additional_image_link``, and ``image_link`` is for a generated creative, whatever the original's CTR.

"Best" is, per product: among those creatives at the placement, the style with the highest measured
CTR when the decision service's results are given (clicks over impressions per product and style,
shrunk towards the style's CTR over all products, itself shrunk towards the overall CTR: a product
with few impressions takes its style's record); without results, the first of the product's styles
in the style library's order (the library lists a category's strongest style first). Ties keep the
library's order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from .review import PENDING_REVIEW, REJECTED, SERVABLE, WITHHELD, review_states, servability
from .store import ORIGINAL, CreativeRecord, CreativeStore

#: shrinkage strength, in impressions: a product's CTR counts as its own once it has well over this many
PRIOR_IMPRESSIONS = 200.0


@dataclass(frozen=True)
class PlatformRules:
    """What a platform accepts in ``image_link`` / ``additional_image_link`` (its published field rules)."""

    name: str
    max_url_chars: int
    max_additional: int
    formats: tuple[str, ...]
    min_side: int
    max_bytes: int
    delimiter: str
    source: str


PLATFORMS = {
    # https://support.google.com/merchants/answer/6324350 (image_link), /6324370 (additional_image_link)
    "google": PlatformRules(
        "Google Merchant Center",
        2000,
        10,
        ("jpeg", "png", "webp", "gif", "bmp", "tiff"),
        100,
        16 << 20,
        "\t",
        "support.google.com/merchants/answer/6324350",
    ),
    # https://developers.facebook.com/docs/commerce-platform/catalog/fields (image_link, additional_image_link)
    "meta": PlatformRules(
        "Meta catalog", 2000, 20, ("jpeg", "png"), 500, 8 << 20, ",", "developers.facebook.com/docs/commerce-platform/catalog/fields"
    ),
}


def creative_url(base_url: str, record: CreativeRecord, layout: str = "service") -> str:
    """Where ``record`` is served: ``BASE/v1/creatives/KEY`` by the decision service, or ``BASE/PATH``
    (its path in the store) when a CDN serves the store's files (``layout="store"``)."""
    base = base_url.rstrip("/")
    if layout == "store":
        return f"{base}/{quote(record.path)}"
    return f"{base}/v1/creatives/{record.key}"


@dataclass
class ExportRow:
    id: str
    image_link: str
    additional_image_link: list[str] = field(default_factory=list)
    chosen_style: str = ""
    why: str = ""


@dataclass
class ExportResult:
    rows: list[ExportRow]
    #: (product id, reason) for products of the feed that got no row
    skipped: list[tuple[str, str]]
    #: rule violations found in the rows (none in a feed that was written)
    problems: list[str]

    def to_dict(self) -> dict:
        return {
            "rows": len(self.rows),
            "skipped": [{"id": i, "reason": r} for i, r in self.skipped],
            "problems": self.problems,
            "chosen": {r.id: {"style": r.chosen_style, "why": r.why} for r in self.rows},
        }


def shrunk_ctrs(results: Mapping[tuple[str, str], tuple[int, float]], prior: float = PRIOR_IMPRESSIONS) -> dict[tuple[str, str], float]:
    """(product, style) -> CTR shrunk towards the style's CTR, itself shrunk towards the overall CTR.

    >>> ctr = shrunk_ctrs({("a", "x"): (1000, 30.0), ("a", "y"): (1000, 10.0), ("b", "x"): (2, 0.0), ("b", "y"): (2, 1.0)})
    >>> ctr[("b", "x")] > ctr[("b", "y")]  # b's two impressions say little: the styles' records decide
    True
    """
    n_all = sum(n for n, _ in results.values())
    c_all = sum(c for _, c in results.values())
    overall = c_all / n_all if n_all else 0.0
    by_style: dict[str, list[float]] = {}
    for (_, style), (n, c) in results.items():
        acc = by_style.setdefault(style, [0.0, 0.0])
        acc[0] += n
        acc[1] += c
    style_ctr = {s: (c + prior * overall) / (n + prior) for s, (n, c) in by_style.items()}
    return {(p, s): (c + prior * style_ctr[s]) / (n + prior) for (p, s), (n, c) in results.items()}


def build_supplemental(
    store: CreativeStore,
    feed_products: Iterable,
    *,
    base_url: str,
    platform: str = "google",
    pick: str = "best",
    placement: str = "square",
    style_order: Mapping[str, list[str]] | None = None,
    results: Mapping[tuple[str, str], tuple[int, float]] | None = None,
    layout: str = "service",
    review_required: bool = False,
) -> ExportResult:
    """One row per feed product that has a servable generated creative at ``placement`` (the
    ``original`` rendition is not one); see the module docstring.

    ``feed_products``: the feed's :class:`~backdrop.creative.catalog.Product` records (their
    ``image_url`` is kept as an additional image); ``style_order``: product id -> its styles in the
    library's order; ``results``: (product id, style) -> (impressions, clicks); ``review_required``:
    as the decision service's (``serve --review-required``), only approved creatives go in.
    """
    rules = PLATFORMS[platform]
    ctr = shrunk_ctrs(results) if results else {}
    reviews, _ = review_states(store)
    rows: list[ExportRow] = []
    skipped: list[tuple[str, str]] = []
    for product in feed_products:
        pid = product.product_id
        here = store.creatives(product_id=pid, placement=placement)
        records, why_not = [], []
        for r in here:
            if r.style == ORIGINAL:  # the control arm: the feed has the catalog photo itself
                why_not.append(ORIGINAL)
                continue
            why = servability(flagged=r.flagged, status=reviews.get(r.key, "pending"), review_required=review_required, arm=r.arm)
            if why != SERVABLE:
                why_not.append(why)
            elif r.overlay:  # feeds' product images carry no overlays (Merchant Center refuses promotional text on them)
                why_not.append("overlay")
            else:
                records.append(r)
        if not records:
            skipped.append((pid, _none_usable(why_not) if here else f"no creative at placement '{placement}' in the store"))
            continue
        newest: dict[str, CreativeRecord] = {}
        for r in records:  # oldest first: the newest of a style wins
            newest[r.style] = r
        order = list((style_order or {}).get(pid, []))
        rank = {s: i for i, s in enumerate(order)}
        styles = sorted(newest, key=lambda s: (rank.get(s, len(rank)), s))
        measured = [s for s in styles if (pid, s) in ctr]
        if measured:
            styles.sort(key=lambda s: -ctr.get((pid, s), -1.0))  # stable: ties keep the library's order
            best = styles[0]
            n, c = results[(pid, best)] if results else (0, 0.0)
            why = f"highest measured CTR (shrunk {ctr[(pid, best)]:.4f}; {c:g} clicks / {n} impressions)"
        else:
            best = styles[0]
            why = "library order (no measured results)" if best in rank else "first by name (style not in the library)"
        chosen = [best] + ([s for s in styles if s != best] if pick == "all" else [])
        urls = [creative_url(base_url, newest[s], layout) for s in chosen]
        extra = urls[1:]
        if product.image_url and product.image_url not in extra:
            extra.append(product.image_url)  # the catalog photo stays one of the product's images
        rows.append(ExportRow(pid, urls[0], extra[: rules.max_additional], best, why))
    problems = validate(rows, platform, {r.key: r for r in store.creatives(placement=placement)}, base_url, layout)
    return ExportResult(rows, skipped, problems)


def _none_usable(why_not: list[str]) -> str:
    """Why none of a product's creatives can go in a feed, counted.

    >>> _none_usable(["rejected", "withheld", "withheld"])
    'no usable creative: 1 rejected in review, 2 flagged by QA and not approved'
    >>> _none_usable(["rejected", "original"])
    "no usable creative: 1 rejected in review, 1 the catalog photo's own rendition (the feed has the photo itself)"
    """
    words = {
        REJECTED: "rejected in review",
        WITHHELD: "flagged by QA and not approved",
        PENDING_REVIEW: "awaiting review (review is required)",
        "overlay": "with an overlay (feeds take plain creatives)",
        ORIGINAL: "the catalog photo's own rendition (the feed has the photo itself)",
    }
    return "no usable creative: " + ", ".join(f"{why_not.count(w)} {text}" for w, text in words.items() if w in why_not)


def validate(rows: list[ExportRow], platform: str, records: Mapping[str, CreativeRecord], base_url: str, layout: str) -> list[str]:
    """Every way ``rows`` break the platform's rules (``id: field: reason``); empty when the feed is valid."""
    rules = PLATFORMS[platform]
    by_url = {creative_url(base_url, r, layout): r for r in records.values()}
    out = []
    for row in rows:
        if not row.id or len(row.id) > 100:
            out.append(f"{row.id or '(empty)'}: id: must be 1-100 characters")
        if len(row.additional_image_link) > rules.max_additional:
            out.append(
                f"{row.id}: additional_image_link: {len(row.additional_image_link)} images, {rules.name} takes at most {rules.max_additional}"
            )
        for name, urls in (("image_link", [row.image_link]), ("additional_image_link", row.additional_image_link)):
            for url in urls:
                if not url.startswith(("http://", "https://")):
                    out.append(f"{row.id}: {name}: {url!r} is not an http(s) URL")
                if len(url) > rules.max_url_chars:
                    out.append(f"{row.id}: {name}: URL of {len(url)} characters, {rules.name} takes at most {rules.max_url_chars}")
                if not url.isascii() or any(ch in url for ch in ' ,"\t\n'):
                    out.append(f"{row.id}: {name}: {url!r} must be ASCII without spaces, commas or quotes (percent-encode them)")
                rec = by_url.get(url)
                if rec is None:
                    continue  # the catalog's own photo: the platform has it already
                if rec.format not in rules.formats:
                    out.append(
                        f"{row.id}: {name}: a {rec.format.upper()} creative; {rules.name} takes {', '.join(f.upper() for f in rules.formats)} (generate with --format jpeg)"
                    )
                if min(rec.width, rec.height) < rules.min_side:
                    out.append(f"{row.id}: {name}: {rec.width}x{rec.height} is under {rules.name}'s {rules.min_side} px minimum")
                if rec.bytes > rules.max_bytes:
                    out.append(f"{row.id}: {name}: {rec.bytes:,} bytes, over {rules.name}'s {rules.max_bytes >> 20} MB")
    return out


def write_supplemental(rows: list[ExportRow], platform: str) -> str:
    """The supplemental feed as text: TSV for Google, CSV for Meta; ``additional_image_link`` comma-separated."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=PLATFORMS[platform].delimiter, lineterminator="\n")
    writer.writerow(["id", "image_link", "additional_image_link"])
    for r in rows:
        writer.writerow([r.id, r.image_link, ",".join(r.additional_image_link)])
    return buf.getvalue()
