"""The overlay side of planning a creative: what a product's overlays show, their part of the key,
the placement's safe area, and the QA reasons an overlay can give."""

from __future__ import annotations

from ..imaging.layout import Placement
from ..overlays import MIN_CONTRAST, OverlayData, OverlayReport, OverlayTemplate, SafeArea
from .catalog import Product


def overlay_data(product: Product, locale: str = "en_US") -> OverlayData:
    """What a product's overlays show: its price fields, badge, brand and logo."""
    return OverlayData(
        price=product.price,
        sale_price=product.sale_price,
        currency=product.currency,
        badge=product.badge,
        brand=product.brand,
        logo=product.brand_logo,
        locale=product.locale or locale,
    )


def safe_area(placement: Placement) -> SafeArea:
    return SafeArea(top=placement.safe_top, bottom=placement.safe_bottom)


def overlay_key(template: OverlayTemplate | None, data: OverlayData | None, placement: Placement) -> dict | None:
    """The overlay's part of a creative's key: the template, what it shows, where it may go."""
    if template is None or data is None:
        return None
    return {"name": template.name, "digest": template.digest(), "data": data.spec(), "safe": [placement.safe_top, placement.safe_bottom]}


def overlay_reasons(report: OverlayReport) -> list[dict]:
    """QA reasons of an overlay: an element with no room clear of the product, text below 4.5:1."""
    reasons = []
    if report.dropped:
        reasons.append({"check": "overlay-dropped", "detail": f"no room clear of the product for: {', '.join(report.dropped)}"})
    if report.min_contrast is not None and report.min_contrast < MIN_CONTRAST:
        reasons.append({"check": "overlay-contrast", "detail": f"text contrast {report.min_contrast:.2f}:1 (< {MIN_CONTRAST}:1)"})
    return reasons
