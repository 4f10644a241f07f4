"""Overlays: price, badge, logo and call to action drawn over a creative, never over the product.

A layer of its own, composited after the background and the product: :func:`apply_overlay` draws
a template (:mod:`.templates`, YAML) with a product's fields (:class:`OverlayData`), inside the
placement's safe area (:class:`SafeArea`), with text colours measured for WCAG contrast
(:mod:`.contrast`) and prices formatted per locale (:mod:`.money`).
"""

from .contrast import MIN_CONTRAST, contrast_ratio, worst_contrast
from .money import MoneyError, discount_percent, format_price, parse_amount
from .render import OverlayData, OverlayReport, SafeArea, apply_overlay
from .templates import Element, OverlayLibrary, OverlayTemplate

__all__ = [
    "MIN_CONTRAST",
    "Element",
    "MoneyError",
    "OverlayData",
    "OverlayLibrary",
    "OverlayReport",
    "OverlayTemplate",
    "SafeArea",
    "apply_overlay",
    "contrast_ratio",
    "discount_percent",
    "format_price",
    "parse_amount",
    "worst_contrast",
]
