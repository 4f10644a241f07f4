"""Drawing an overlay template over a finished creative: a layer apart from the scene.

Each element is drawn into its own patch first (glyphs as a coverage mask, so what is text and what
is background is known exactly), then placed: the preferred corner of the safe area, else sliding
along that edge, else the other corners, else smaller -- never over the product's mask (dilated by
a gap) nor over another element. The text colour is the one of white and near-black with the better
worst-case WCAG contrast against the pixels under it; below 4.5:1 a plate goes behind it. The
contrast is then measured on the finished pixels and reported with every element; an element that
found no room is reported as dropped (the pipeline flags the creative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .contrast import MIN_CONTRAST, contrast_ratio, worst_contrast
from .money import discount_percent, format_price
from .templates import Element, OverlayTemplate

WHITE, INK = (255, 255, 255), (17, 17, 17)
PILLS = {"sale": (200, 16, 46), "dark": (24, 24, 27), "light": (250, 250, 250)}
SCALES = (1.0, 0.8, 0.65)


@dataclass(frozen=True)
class OverlayData:
    """The product fields overlays draw (already validated by the catalog)."""

    price: Decimal | None = None
    sale_price: Decimal | None = None
    currency: str = ""
    badge: str = ""
    brand: str = ""
    logo: Path | None = None
    locale: str = "en_US"

    def has(self, need: str) -> bool:
        return {
            "price": self.price is not None and bool(self.currency),
            "sale_price": self.sale_price is not None and self.price is not None and self.sale_price < self.price,
            "badge": bool(self.badge),
            "brand_logo": self.logo is not None,
        }[need]

    def texts(self) -> dict[str, str]:
        out = {"badge": self.badge, "brand": self.brand}
        if self.price is not None and self.currency:
            out["price"] = format_price(self.price, self.currency, self.locale)
            if self.has("sale_price"):
                out["sale_price"] = format_price(self.sale_price, self.currency, self.locale)  # type: ignore[arg-type]
                out["discount"] = str(discount_percent(self.price, self.sale_price))  # type: ignore[arg-type]
        return out

    def spec(self) -> dict:
        """What the overlay shows, for the creative's key: a new price is a new creative."""
        import hashlib

        logo = hashlib.sha256(self.logo.read_bytes()).hexdigest()[:16] if self.logo is not None else ""
        return {"texts": self.texts(), "locale": self.locale, "logo": logo}


@dataclass(frozen=True)
class SafeArea:
    """Shares of the canvas kept free for the platform's UI (the story's top and bottom bands)."""

    top: float = 0.0
    bottom: float = 0.0
    margin: float = 0.045


@dataclass
class OverlayReport:
    template: str
    elements: list[dict] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def min_contrast(self) -> float | None:
        ratios = [e["contrast"] for e in self.elements if e.get("contrast") is not None]
        return min(ratios) if ratios else None

    def to_dict(self) -> dict:
        return {"template": self.template, "elements": self.elements, "dropped": self.dropped, "min_contrast": self.min_contrast}


@cache
def font(weight: str, px: int) -> ImageFont.FreeTypeFont:
    path = resources.files("backdrop.overlays").joinpath(f"fonts/Inter-{weight}.otf")
    with resources.as_file(path) as p:
        return ImageFont.truetype(str(p), px)


@dataclass
class _Patch:
    """An element drawn at its size: glyph coverage, optional pill / logo pixels, in patch coordinates."""

    w: int
    h: int
    glyphs: np.ndarray  # (h, w) float32 0..1: text
    pill: np.ndarray | None = None  # (h, w) float32 0..1 coverage of the pill
    pill_colour: tuple[int, int, int] | None = None
    logo: np.ndarray | None = None  # (h, w, 4) uint8
    text: str = ""


def _text_patch(parts: list[tuple[str, str, int, bool]], pad: int) -> _Patch:
    """Runs of (text, weight, px, struck) on one baseline, ``pad`` pixels around them."""
    runs = []
    for text, weight, px, struck in parts:
        f = font(weight, px)
        x0, y0, x1, y1 = (int(v) for v in f.getbbox(text))
        runs.append((text, f, x0, y0, x1, y1, px, struck))
    top = min(r[3] for r in runs)
    bottom = max(r[5] for r in runs)
    gap = int(0.35 * max(r[6] for r in runs))
    width = sum(r[4] - r[2] for r in runs) + gap * (len(runs) - 1) + 2 * pad
    height = bottom - top + 2 * pad
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    x = pad
    for text, f, x0, _y0, x1, _y1, px, struck in runs:
        draw.text((x - x0, pad - top), text, font=f, fill=255)
        if struck:  # a line through the middle of the lower-case height
            _, x_top, _, x_bottom = f.getbbox("x")
            mid = pad - top + int(x_top + 0.5 * (x_bottom - x_top))
            draw.line((x - 1, mid, x + (x1 - x0) + 1, mid), fill=255, width=max(2, px // 12))
        x += (x1 - x0) + gap
    return _Patch(width, height, np.asarray(canvas, np.float32) / 255.0, text=" ".join(r[0] for r in runs))


def _pill(patch: _Patch, colour: tuple[int, int, int]) -> _Patch:
    m = np.zeros((patch.h * 4, patch.w * 4), np.uint8)
    r = patch.h * 2
    cv2.rectangle(m, (r, 0), (patch.w * 4 - r, patch.h * 4 - 1), 255, -1)
    cv2.circle(m, (r, r), r, 255, -1, cv2.LINE_AA)
    cv2.circle(m, (patch.w * 4 - r, r), r, 255, -1, cv2.LINE_AA)
    patch.pill = cv2.resize(m, (patch.w, patch.h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    patch.pill_colour = colour
    return patch


def _build(element: Element, data: OverlayData, texts: dict[str, str], short: int, scale: float) -> _Patch | None:
    cap = max(8, int(round(element.size * short * scale)))
    px = int(cap / 0.73)  # Inter's cap height is ~0.73 em
    if element.kind == "logo":
        assert data.logo is not None
        with Image.open(data.logo) as im:
            logo = np.asarray(im.convert("RGBA"))
        h = cap
        w = max(1, int(round(logo.shape[1] * h / logo.shape[0])))
        return _Patch(w, h, np.zeros((h, w), np.float32), logo=cv2.resize(logo, (w, h), interpolation=cv2.INTER_AREA), text="logo")
    if element.kind == "price":
        if "sale_price" in texts:
            parts = [(texts["sale_price"], "Bold", px, False), (texts["price"], "Regular", int(px * 0.62), True)]
        else:
            parts = [(texts["price"], "Bold", px, False)]
        return _text_patch(parts, pad=int(0.3 * px))
    text = element.text.format_map(_Missing(texts)).strip()
    if not text:
        return None
    patch = _text_patch([(text, "Bold", px, False)], pad=int(0.45 * px))
    if element.fill != "none":
        patch = _pill(patch, PILLS[element.fill])
    return patch


class _Missing(dict):
    def __missing__(self, key):
        return ""


def _candidates(corner: str, W: int, H: int, w: int, h: int, safe: SafeArea, short: int):
    """Top-left positions to try: the corner, then sliding along its edge towards the middle."""
    m = int(safe.margin * short)
    left, right = m, W - m - w
    top, bottom = int(safe.top * H) + m, H - int(safe.bottom * H) - m - h
    if right < left or bottom < top:
        return
    y = top if corner.startswith("top") else bottom
    xs = np.linspace(left, right, 9).astype(int)
    for x in xs if corner.endswith("left") else xs[::-1]:
        yield int(x), y


def apply_overlay(
    image: np.ndarray, product_mask: np.ndarray, template: OverlayTemplate, data: OverlayData, safe: SafeArea = SafeArea()
) -> tuple[np.ndarray, OverlayReport]:
    """The creative with ``template`` drawn over it (a new array) and what was drawn where."""
    H, W = image.shape[:2]
    short = min(W, H)
    out = image.copy()
    report = OverlayReport(template.name)
    texts = data.texts()
    gap = max(4, int(0.025 * short))
    # within ``gap`` of the product (a distance transform: linear time, where a dilation by a disc of
    # that size costs tens of milliseconds on a story canvas)
    blocked = cv2.distanceTransform((~product_mask).astype(np.uint8), cv2.DIST_L2, 5) <= gap
    integral = cv2.integral(blocked.astype(np.uint8))
    placed: list[tuple[int, int, int, int]] = []
    order = ["top-left", "top-right", "bottom-left", "bottom-right"]
    for element in template.elements:
        # the preferred corner, then the other on the same side (top / bottom), then the rest
        others = sorted((c for c in order if c != element.corner), key=lambda c: c.split("-")[0] != element.corner.split("-")[0])
        corners = [element.corner, *others]
        spot = None
        for scale in SCALES:
            patch = _build(element, data, texts, short, scale)
            if patch is None:
                break
            for corner in corners:
                for x, y in _candidates(corner, W, H, patch.w, patch.h, safe, short):
                    box = (x, y, x + patch.w, y + patch.h)
                    hits = integral[box[3], box[2]] - integral[box[1], box[2]] - integral[box[3], box[0]] + integral[box[1], box[0]]
                    if hits == 0 and not any(_overlap(box, b, gap) for b in placed):
                        spot = (patch, box)
                        break
                if spot:
                    break
            if spot:
                break
        if spot is None:
            report.dropped.append(element.kind)
            continue
        patch, box = spot
        placed.append(box)
        report.elements.append(_draw(out, patch, box, element))
    return out, report


def _overlap(a, b, gap: int) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _draw(out: np.ndarray, patch: _Patch, box: tuple[int, int, int, int], element: Element) -> dict:
    x0, y0, x1, y1 = box
    region = out[y0:y1, x0:x1].astype(np.float32)
    info: dict = {"kind": element.kind, "box": list(box), "text": patch.text, "plate": False}
    if patch.logo is not None:
        a = patch.logo[..., 3:4].astype(np.float32) / 255.0
        region = region * (1 - a) + patch.logo[..., :3].astype(np.float32) * a
        out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
        info["contrast"] = None
        return info
    ys, xs = np.nonzero(patch.glyphs > 0.5)
    tight = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)) if ys.size else (slice(None), slice(None))
    clear = patch.glyphs[tight] < 0.05  # the pixels around the letters, within the text's box

    def measured(colour, pixels: np.ndarray) -> float:
        return worst_contrast(colour, np.clip(pixels[tight][clear] + 0.5, 0, 255))

    if patch.pill is not None:
        under = np.asarray(patch.pill_colour, np.float32)
        region = region * (1 - patch.pill[..., None]) + under * patch.pill[..., None]
        colour = WHITE if contrast_ratio(WHITE, patch.pill_colour) >= contrast_ratio(INK, patch.pill_colour) else INK
    else:
        colour = max((WHITE, INK), key=lambda c: measured(c, region))
        if measured(colour, region) < MIN_CONTRAST:  # a busy scene: a plate behind the text, opaque if it must be
            plate_colour = (20, 20, 22) if colour == WHITE else (250, 250, 250)
            plate = _pill(_Patch(patch.w, patch.h, patch.glyphs), plate_colour).pill
            assert plate is not None
            for opacity in (0.82, 1.0):
                plated = region * (1 - plate[..., None] * opacity) + np.asarray(plate_colour, np.float32) * plate[..., None] * opacity
                if measured(colour, plated) >= MIN_CONTRAST:
                    break
            region = plated
            info["plate"] = True
    g = patch.glyphs[..., None]
    background = region.copy()
    region = region * (1 - g) + np.asarray(colour, np.float32) * g
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    # measured on the finished pixels: the text colour against what lies under the text's box
    info["contrast"] = round(measured(colour, background), 2) if ys.size else None
    info["colour"] = list(colour)
    return info
