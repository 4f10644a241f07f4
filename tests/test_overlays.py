"""Overlays: price, badge, logo, call to action -- never over the product, readable, in the safe area."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from PIL import Image, ImageDraw

from backdrop.cli import DEMO_DIR, main
from backdrop.creative.catalog import load_catalog
from backdrop.creative.pipeline import CreativeMaker, PipelineConfig
from backdrop.creative.store import ORIGINAL, CreativeStore
from backdrop.imaging.composite import exact_region_matches
from backdrop.imaging.layout import load_placements
from backdrop.overlays import (
    MIN_CONTRAST,
    OverlayData,
    OverlayLibrary,
    SafeArea,
    apply_overlay,
    contrast_ratio,
    format_price,
    worst_contrast,
)
from backdrop.overlays.render import font
from backdrop.styles import StyleLibrary

PLACEMENTS = load_placements()
LIBRARY = OverlayLibrary.load()


@pytest.fixture(scope="module")
def logo(tmp_path_factory):
    path = tmp_path_factory.mktemp("logo") / "logo.png"
    im = Image.new("RGBA", (400, 110), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((8, 4), "NORDLY", font=font("Bold", 90), fill=(30, 30, 30, 255))
    im.save(path)
    return path


@pytest.fixture(scope="module")
def data(logo):
    return OverlayData(
        price=Decimal("1299"), sale_price=Decimal("999"), currency="EUR", badge="New", brand="Nordly", logo=logo, locale="de_DE"
    )


def scene_like(w, h, seed=0, busy=False):
    rng = np.random.default_rng(seed)
    if busy:  # the worst case: noise across the whole range under the text
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        img = np.full((h, w, 3), (214, 196, 176), np.uint8)
        img[h // 2 :] = (120, 96, 80)
    mask = np.zeros((h, w), bool)
    mask[int(0.25 * h) : int(0.75 * h), int(0.3 * w) : int(0.7 * w)] = True
    img[mask] = (20, 60, 200)
    return img, mask


def measured_contrast(out: np.ndarray, element: dict) -> float:
    """Recomputed from the finished pixels alone: the text's colour against the rest of its box."""
    x0, y0, x1, y1 = element["box"]
    region = out[y0:y1, x0:x1].astype(int)
    colour = np.array(element["colour"])
    glyph = np.abs(region - colour).max(axis=2) <= 6
    near = np.zeros_like(glyph)
    ys, xs = np.nonzero(glyph)
    for dy in range(-2, 3):  # leave the antialiased rim of the letters out
        for dx in range(-2, 3):
            near[np.clip(ys + dy, 0, glyph.shape[0] - 1), np.clip(xs + dx, 0, glyph.shape[1] - 1)] = True
    gy, gx = ys.min(), xs.min()
    tight = (slice(gy, ys.max() + 1), slice(gx, xs.max() + 1))
    return worst_contrast(tuple(colour), region[tight][~near[tight]].astype(np.uint8))


def test_prices_are_written_the_way_each_locale_writes_them():
    assert format_price("1299", "EUR", "de_DE") == "1.299,00\xa0€"
    assert format_price("1299", "USD", "en_US") == "$1,299.00"
    assert format_price("1299", "EUR", "fr_FR") == "1\u202f299,00\xa0€"
    assert format_price("9.5", "GBP", "en_GB") == "£9.50"
    assert format_price("1299", "JPY", "ja_JP") == "￥1,299"


def test_contrast_ratio_matches_wcag():
    assert contrast_ratio((255, 255, 255), (0, 0, 0)) == pytest.approx(21.0)
    assert contrast_ratio((119, 119, 119), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)  # just fails AA
    assert worst_contrast((255, 255, 255), np.array([[[0, 0, 0], [250, 250, 250]]] * 50, np.uint8)) < 1.1


@pytest.mark.parametrize("template", sorted(LIBRARY.templates))
@pytest.mark.parametrize("placement", ["square", "landscape", "portrait", "story"])
@pytest.mark.parametrize("busy", [False, True], ids=["calm", "busy"])
def test_every_template_keeps_off_the_product_and_reads_at_4_5_to_1(template, placement, busy, data):
    p = PLACEMENTS[placement]
    img, mask = scene_like(p.width, p.height, busy=busy)
    safe = SafeArea(top=p.safe_top, bottom=p.safe_bottom)
    out, report = apply_overlay(img, mask, LIBRARY.get(template), data, safe)
    assert not report.dropped
    assert np.array_equal(out[mask], img[mask])  # not one product pixel touched
    changed = np.any(out != img, axis=2)
    assert changed.any()
    short = min(p.width, p.height)
    for e in report.elements:
        x0, y0, x1, y1 = e["box"]
        assert y0 >= p.safe_top * p.height and y1 <= (1 - p.safe_bottom) * p.height  # the story's bands stay free
        assert x0 >= 0.04 * short and x1 <= p.width - 0.04 * short
        if e["contrast"] is not None:
            assert e["contrast"] >= MIN_CONTRAST
            assert measured_contrast(out, e) >= MIN_CONTRAST - 0.15, e
    boxes = np.zeros_like(changed)
    for e in report.elements:
        x0, y0, x1, y1 = e["box"]
        boxes[y0:y1, x0:x1] = True
    assert not changed[~boxes].any()  # nothing drawn outside the elements' boxes
    again, _ = apply_overlay(img, mask, LIBRARY.get(template), data, safe)
    assert np.array_equal(out, again)  # deterministic


def test_busy_scenes_get_a_plate_and_calm_ones_do_not(data):
    calm, mask = scene_like(1080, 1080)
    busy, _ = scene_like(1080, 1080, busy=True)
    _, r_calm = apply_overlay(calm, mask, LIBRARY.get("price"), data)
    _, r_busy = apply_overlay(busy, mask, LIBRARY.get("price"), data)
    assert not r_calm.elements[0]["plate"] and r_busy.elements[0]["plate"]


def test_sale_price_strikes_the_regular_one_and_the_discount_is_never_overstated(data):
    _, report = apply_overlay(*scene_like(1080, 1080), LIBRARY.get("sale"), data)
    texts = {e["kind"]: e["text"] for e in report.elements}
    assert texts["badge"] == "-23%"  # 1299 -> 999 is 23.09 % off: rounded down
    assert texts["price"] == "999,00\xa0€ 1.299,00\xa0€"


def test_an_overlay_that_finds_no_room_is_dropped_and_the_creative_flagged(data):
    img = np.full((1080, 1080, 3), 200, np.uint8)
    mask = np.ones((1080, 1080), bool)
    mask[:8, :8] = False
    out, report = apply_overlay(img, mask, LIBRARY.get("price-badge"), data)
    assert report.dropped == ["price", "badge"] and np.array_equal(out, img)


def test_templates_need_the_fields_they_show():
    assert LIBRARY.get("price").needs() == {"price"}
    assert LIBRARY.get("sale").needs() == {"price", "sale_price"}
    assert LIBRARY.get("logo").needs() == {"brand_logo"}
    plain = OverlayData(price=Decimal("10"), currency="USD")
    assert plain.has("price") and not plain.has("sale_price") and not plain.has("badge")


def test_catalog_overlay_fields_are_validated_row_by_row(tmp_path, logo):
    image = DEMO_DIR / "images" / "mighty-mug.png"
    rows = [
        ("ok", "12.50", "", "EUR", "", ""),
        ("feed-style", "12.50 USD", "9.99 USD", "", "New", str(logo)),
        ("bad-price", "twelve", "", "EUR", "", ""),
        ("no-currency", "12.50", "", "", "", ""),
        ("bad-currency", "12.50", "", "EUX", "", ""),
        ("sale-above", "12.50", "13.00", "EUR", "", ""),
        ("sale-alone", "", "9.00", "EUR", "", ""),
        ("long-badge", "5", "", "EUR", "x" * 30, ""),
        ("no-logo", "5", "", "EUR", "", "logos/missing.png"),
    ]
    csv = tmp_path / "c.csv"
    csv.write_text(
        "product_id,title,category,image,price,sale_price,currency,badge,brand_logo\n"
        + "".join(f"{pid},Mug,Homewares,{image},{p},{s},{c},{b},{lg}\n" for pid, p, s, c, b, lg in rows)
    )
    result = load_catalog(csv)
    good = {p.product_id: p for p in result.products}
    assert set(good) == {"ok", "feed-style"}
    assert (
        good["feed-style"].currency == "USD" and good["feed-style"].sale_price == Decimal("9.99") and good["feed-style"].brand_logo == logo
    )
    errors = {e.row: (e.field, str(e)) for e in result.errors}
    assert errors[4][0] == "price" and "not an amount" in errors[4][1]
    assert errors[5][0] == "currency" and "missing" in errors[5][1]
    assert errors[6][0] == "currency" and "ISO 4217" in errors[6][1]
    assert errors[7][0] == "sale_price" and "not below" in errors[7][1]
    assert errors[8][0] == "sale_price" and "without a price" in errors[8][1]
    assert errors[9][0] == "badge"
    assert errors[10][0] == "brand_logo"


def test_overlay_variants_are_their_own_creatives_and_arms(tmp_path, capsys):
    catalog = DEMO_DIR / "products.csv"
    base = ["generate", str(catalog), "--placements", "square,story", "--styles", "cosy-wood,plinth-marble", "--no-progress", "--json"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    args = [*base, "--out", str(tmp_path / "over"), "--overlays", "none,price,sale,logo", "--locale", "de_DE"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "overlay 'logo': 20 product(s) lack brand_logo" in out.err
    plain, over = CreativeStore(tmp_path / "plain", readonly=True), CreativeStore(tmp_path / "over", readonly=True)
    plain_keys = {r.key for r in plain}
    recs = list(over)
    assert plain_keys == {r.key for r in recs if not r.overlay}  # the plain creatives keep their keys
    by = {}
    for r in recs:
        by.setdefault((r.product_id, r.style, r.placement), {})[r.overlay] = r
    mug = by["mighty-mug", "plinth-marble", "square"]
    assert set(mug) == {"", "price", "sale"}  # on sale in the demo catalog; no logo there
    assert mug["price"].arm == "plinth-marble+price" and mug["price"].qa_status == "ok"
    # de_DE writes dollars as Germans read them; on sale, the sale price then the struck regular one
    assert mug["price"].metrics["overlay"]["elements"][0]["text"] == "9,00\xa0$ 12,00\xa0$"
    # the same scene under the overlay: outside the overlay's boxes the pixels are the plain creative's
    a, b = over.read_image(mug[""]), over.read_image(mug["sale"])
    drawn = np.zeros(a.shape[:2], bool)
    for e in mug["sale"].metrics["overlay"]["elements"]:
        x0, y0, x1, y1 = e["box"]
        drawn[y0:y1, x0:x1] = True
    assert np.array_equal(a[~drawn], b[~drawn]) and not np.array_equal(a[drawn], b[drawn])
    # the product's pixels are exact under every overlay and placement
    config = PipelineConfig(
        placements=(PLACEMENTS["square"], PLACEMENTS["story"]),
        library=StyleLibrary.load(),
        styles=("cosy-wood", "plinth-marble"),
        overlays=("none", "price", "sale", "logo"),
        locale="de_DE",
    )
    maker = CreativeMaker(config, over)
    product = next(p for p in load_catalog(catalog).products if p.product_id == "mighty-mug")
    for item in maker.prepare(product, maker.plan(product)):
        assert exact_region_matches(over.read_image(over.get(item.spec.key)), item.scene)
    # the decision service chooses among the arms: every overlay variant is one
    from backdrop.serving.index import CreativeIndex

    index = CreativeIndex.load(tmp_path / "over")
    assert {"cosy-wood", "cosy-wood+price", "plinth-marble+sale"} <= set(index.by_item["mighty-mug", "square"])


def test_a_logo_for_the_catalog_or_one_per_brand(tmp_path, logo, capsys):
    from backdrop.creative.catalog import Product
    from backdrop.creative.overlaying import brand_logo

    folder = tmp_path / "logos"
    folder.mkdir()
    (folder / "nordly-outdoor.png").write_bytes(logo.read_bytes())
    p = Product("p", "T", ("C",), logo, brand="Nordly Outdoor")
    assert brand_logo(p, folder) == folder / "nordly-outdoor.png"
    assert brand_logo(p, logo) == logo
    assert brand_logo(Product("q", "T", ("C",), logo, brand="Other"), folder) is None
    catalog = str(DEMO_DIR / "products.csv")
    common = ["generate", catalog, "--placements", "square", "--styles", "cosy-wood", "--overlays", "logo", "--no-progress", "--json"]
    assert main([*common, "--out", str(tmp_path / "s"), "--brand-logo", str(logo)]) == 0
    summary = json_out(capsys)
    recs = list(CreativeStore(tmp_path / "s", readonly=True))
    assert summary["generated"] == len(recs) > 0 and summary["flagged"] == 0
    styled = [r for r in recs if r.style != ORIGINAL]  # the baseline (the catalog photo) carries no overlay
    assert len(styled) == len(recs) - 20 and all(
        r.overlay == "logo" and r.metrics["overlay"]["elements"][0]["kind"] == "logo" for r in styled
    )
    assert main([*common, "--out", str(tmp_path / "t"), "--brand-logo", str(tmp_path / "nope.png")]) == 2
    assert "--brand-logo" in capsys.readouterr().err


def json_out(capsys) -> dict:
    import json

    return json.loads(capsys.readouterr().out)
