"""The overlay side of planning a creative: what a product's overlays show, their part of the key,
the placement's safe area, and the QA reasons an overlay can give."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ..imaging.layout import Placement
from ..overlays import MIN_CONTRAST, OverlayData, OverlayReport, OverlayTemplate, SafeArea
from .catalog import Product

LOGO_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg")


def brand_logo(product: Product, fallback: str | Path | None = None) -> Path | None:
    """The product's logo: its ``brand_logo`` column, else ``fallback``: one file for the catalog, or
    a folder of files per brand (``Nordly Outdoor`` -> ``nordly-outdoor.png``)."""
    if product.brand_logo is not None or fallback is None:
        return product.brand_logo
    fallback = Path(fallback)
    if fallback.is_file():
        return fallback
    slug = re.sub(r"[^a-z0-9]+", "-", product.brand.lower()).strip("-")
    for suffix in LOGO_SUFFIXES if slug else ():
        if (fallback / (slug + suffix)).is_file():
            return fallback / (slug + suffix)
    return None


def overlay_data(product: Product, locale: str = "en_US", logo: str | Path | None = None) -> OverlayData:
    """What a product's overlays show: its price fields, badge, brand and logo (``logo``: see :func:`brand_logo`)."""
    return OverlayData(
        price=product.price,
        sale_price=product.sale_price,
        currency=product.currency,
        badge=product.badge,
        brand=product.brand,
        logo=brand_logo(product, logo),
        locale=product.locale or locale,
    )


def lacks(template: OverlayTemplate, data: OverlayData) -> list[str]:
    """The product fields ``template`` needs that ``data`` does not have (none: the product gets it)."""
    return [need for need in sorted(template.needs()) if not data.has(need)]


def overlay_shortfall(products: Sequence[Product], config) -> dict[str, tuple[int, list[str]]]:
    """{template: (products that lack what it needs, the fields)} for ``config``'s overlays (a
    :class:`~backdrop.creative.pipeline.PipelineConfig`), for ``backdrop generate`` to say."""
    templates = [t for t in config.overlay_templates() if t is not None]
    out: dict[str, tuple[int, list[str]]] = {}
    if not templates:
        return out
    data = [overlay_data(p, config.locale, config.brand_logo) for p in products]
    for template in templates:
        missing = [lacks(template, d) for d in data]
        n = sum(1 for m in missing if m)
        if n:
            out[template.name] = (n, sorted({f for m in missing for f in m}))
    return out


def safe_area(placement: Placement) -> SafeArea:
    return SafeArea(top=placement.safe_top, bottom=placement.safe_bottom)


def overlay_key(template: OverlayTemplate | None, shown: dict, placement: Placement) -> dict | None:
    """The overlay's part of a creative's key: the template, what it shows (``OverlayData.spec()``,
    worked out once per product: it hashes the logo's file), where it may go."""
    if template is None:
        return None
    return {"name": template.name, "digest": template.digest(), "data": shown, "safe": [placement.safe_top, placement.safe_bottom]}


def overlay_reasons(report: OverlayReport) -> list[dict]:
    """QA reasons of an overlay: an element with no room clear of the product, text below 4.5:1."""
    reasons = []
    if report.dropped:
        reasons.append({"check": "overlay-dropped", "detail": f"no room clear of the product for: {', '.join(report.dropped)}"})
    if report.min_contrast is not None and report.min_contrast < MIN_CONTRAST:
        reasons.append({"check": "overlay-contrast", "detail": f"text contrast {report.min_contrast:.2f}:1 (< {MIN_CONTRAST}:1)"})
    return reasons
