"""The baseline creative (issue 27, item 11): every product's catalog photo fitted to every
placement's canvas, made by `backdrop generate`, stored with its key like the other creatives, so
the decision service's control arm ("original") has each placement's size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from backdrop.bandit import arms
from backdrop.cli import DEMO_DIR, main
from backdrop.creative.catalog import load_catalog
from backdrop.creative.local import run_local
from backdrop.creative.pipeline import CreativeMaker, PipelineConfig
from backdrop.creative.store import ORIGINAL, CreativeStore
from backdrop.imaging.composite import composite, exact_region_matches
from backdrop.imaging.layout import layout, load_placement_set
from backdrop.imaging.plain import CUTOUT_FILL, photo_fill, plain_background
from backdrop.serving.app import create_app
from backdrop.serving.settings import load_settings
from backdrop.styles import StyleLibrary
from conftest import magento_catalog

PSET = load_placement_set()
PLACEMENTS = {p.name: p for p in PSET.placements}


def _magento_catalog(tmp_path: Path, ids: tuple[str, ...]) -> Path:
    return magento_catalog(tmp_path / "catalog.csv", ids)


def _config(names, **kw) -> PipelineConfig:
    return PipelineConfig(
        placements=tuple(PLACEMENTS[n] for n in names), library=StyleLibrary.load(), framing=PSET.framing, qa=PSET.qa, **kw
    )


def test_a_story_decision_for_an_unreviewed_product_gets_the_photo_on_the_story_canvas(tmp_path, capsys):
    """The issue: with --review-required and a product nobody reviewed, a story or square decision
    served the 1080x1340 catalog photo itself. `generate` now stores the photo fitted to each
    placement, and the control arm serves that."""
    catalog = _magento_catalog(tmp_path, ("24-WB04",))  # a 1080x1340 packshot on white
    store = tmp_path / "store"
    args = ["generate", str(catalog), "--out", str(store), "--placements", "square,story", "--styles", "studio-sweep"]
    assert main([*args, "--workers", "1", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["generated"], summary["failed"]) == (4, 0)  # one style and the baseline, on 2 placements
    s = CreativeStore(store, readonly=True)
    baselines = {r.placement: r for r in s.creatives(style=ORIGINAL)}
    s.close()
    assert {p: (r.width, r.height) for p, r in baselines.items()} == {"square": (1080, 1080), "story": (1080, 1920)}

    settings = load_settings(None, store=store, db=str(tmp_path / "events.sqlite"), api_key="k", review_required=True)
    with TestClient(create_app(settings)) as c:
        for placement, (w, h) in (("square", (1080, 1080)), ("story", (1080, 1920))):
            r = c.post("/v1/decide", json={"item_id": "24-WB04", "placement": placement, "user": {"id": "u1"}})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["style"] == ORIGINAL  # nothing approved: the control
            assert (body["creative"]["width"], body["creative"]["height"]) == (w, h), body
            assert body["creative"]["key"] == baselines[placement].key
            img = c.get(body["creative"]["url"])
            assert img.status_code == 200 and img.headers["content-type"] == "image/png"


def test_the_baseline_is_the_photo_on_every_placement_product_exact_cut_sides_flush(tmp_path):
    """A photo on white (an on-model top the frame cuts at the thighs) and a cut-out, on every placement."""
    magento = load_catalog(_magento_catalog(tmp_path, ("MH03",))).products
    cutout = [p for p in load_catalog(DEMO_DIR / "products.csv").products if p.product_id == "dry-sunglasses"]  # translucent lenses
    maker = CreativeMaker(_config(tuple(PLACEMENTS), max_styles=0), CreativeStore(tmp_path / "s"))
    for product, fill, cut in ((magento[0], (255, 255, 255), ("bottom",)), (cutout[0], CUTOUT_FILL, ())):
        results = maker.make(product)
        assert [(r.style, r.status, r.qa_status) for r in results] == [(ORIGINAL, "generated", "ok")] * len(PLACEMENTS)
        specs = maker.plan_originals(product)
        scenes = {p.spec.key: p.scene for p in maker.prepare(product, specs)}
        for r in results:
            rec = maker.store.get(r.key)
            scene = scenes[r.key]
            assert rec.arm == ORIGINAL and rec.generator == "catalog-photo" and not rec.overlay
            assert (rec.width, rec.height) == (scene.placement.width, scene.placement.height)
            img = maker.store.read_image(rec)  # decoded from the PNG on disk
            x0, y0, x1, y1 = scene.box
            solid = scene.product_alpha == 255
            assert solid.sum() > 1000 and np.array_equal(img[y0:y1, x0:x1][solid], scene.product_rgb[solid])
            assert rec.metrics["exact"] is True and rec.params["box"] == list(scene.box)
            assert tuple(rec.params["fill"]["rgb"]) == fill
            assert tuple(rec.params["cut"]) == cut  # the photo's cut side flush with the canvas edge
            if "bottom" in cut:
                assert y1 == scene.height
            # the canvas's top corners are the plain backdrop (the photo's own white)
            assert tuple(img[0, 0]) == tuple(img[0, -1]) == fill


def test_the_photos_background_continues_past_its_edge_without_a_seam():
    """A studio grey that darkens towards the photo's top and bottom: on the story canvas the photo
    ends inside the canvas, and the backdrop carries on from it instead of stepping to a flat colour."""
    h, w = 400, 320
    ys = np.linspace(0.0, 1.0, h)[:, None, None]
    photo = np.broadcast_to(180 + 50 * np.sin(np.pi * ys), (h, w, 3)).astype(np.uint8).copy()
    photo[120:300, 100:220] = (40, 90, 160)  # the product
    alpha = np.zeros((h, w), np.uint8)
    alpha[120:300, 100:220] = 255
    fill, source = photo_fill(photo, alpha)
    assert source == "border" and fill[0] < 200  # the photo's own grey, not white
    scene = layout(photo, alpha, PLACEMENTS["story"])  # a small photo: it ends far inside the canvas
    canvas = composite(plain_background(photo, scene, fill, alpha), scene)
    assert exact_region_matches(canvas, scene)
    _, y0, _, y1 = scene.box
    _, by0, _, by1 = scene.source_box
    top = round(scene.y - by0 * (y1 - y0) / (by1 - by0))  # where the photo's top edge lands
    assert 300 < top < y0  # inside the canvas, above the product
    column = canvas[:, 10].astype(int)  # clear of the product
    assert np.abs(np.diff(column, axis=0)).max() <= 2  # no step anywhere down the canvas
    assert tuple(canvas[0, 10]) == fill  # and far from the photo, the plain colour


def test_rerun_adds_only_the_missing_baselines_and_plans_them_without_overlays(tmp_path):
    from dataclasses import replace

    two = load_catalog(DEMO_DIR / "products.csv").products[:2]
    products = [*two, replace(two[0], product_id="apple-juice-6-pack")]  # another catalog row, the same photo
    config = _config(("square", "story"), styles=("kitchen-counter",), overlays=("none", "price"))
    first = run_local(products, config, tmp_path / "s", workers=1, progress=False)
    # each product: 1 style x (plain, price) + the baseline, on 2 placements
    assert (first.generated, first.skipped, first.failed, first.baselines) == (3 * 2 * 3, 0, 0, 6)
    store = CreativeStore(tmp_path / "s")
    originals = store.creatives(style=ORIGINAL)
    assert len(originals) == 6 and not any(r.overlay for r in originals)
    assert {(r.product_id, r.placement) for r in originals} == {(p.product_id, pl) for p in products for pl in ("square", "story")}
    with store._db() as db:  # a store made before baselines existed
        db.execute("DELETE FROM creatives WHERE style=?", (ORIGINAL,))
    again = run_local(products, config, tmp_path / "s", workers=1, progress=False)
    assert (again.generated, again.skipped) == (6, 12)
    assert {r.key for r in store.creatives(style=ORIGINAL)} == {r.key for r in originals}  # the same keys, the same files
    third = run_local(products, config, tmp_path / "s", workers=1, progress=False)
    assert (third.generated, third.skipped) == (0, 18)
    # the baseline is the generator's and the seed's business of no one: its key stays
    other = CreativeMaker(_config(("square", "story"), seed=7, overlays=("none", "logo")), store)
    assert {s.key for p in products for s in other.plan_originals(p)} == {r.key for r in originals}


def test_one_name_for_the_control_arm_and_a_style_library_cannot_take_it(tmp_path, capsys):
    assert ORIGINAL == arms.ORIGINAL == "original"  # the creative layer cannot import the bandit
    library = (Path(StyleLibrary.load().source)).read_text().replace("studio-sweep", ORIGINAL)
    (tmp_path / "lib.yaml").write_text(library)
    args = ["generate", str(DEMO_DIR / "products.csv"), "--out", str(tmp_path / "s"), "--style-library", str(tmp_path / "lib.yaml")]
    assert main(args) == 2
    assert "named 'original'" in capsys.readouterr().err


def test_a_product_whose_category_lacks_the_styles_asked_for_gets_its_baseline_and_the_run_still_fails(tmp_path, capsys):
    """The baseline is made whatever the styles; but a run that made nothing it was asked for (a
    broken model, styles no product has) is no success because the baselines came out."""
    args = ["generate", str(DEMO_DIR / "products.csv"), "--out", str(tmp_path / "s"), "--limit", "1", "--placements", "square"]
    assert main([*args, "--styles", "cosy-wood", "--workers", "1", "--no-progress", "--json"]) == 1  # a juice: no cosy-wood
    summary = json.loads(capsys.readouterr().out)
    assert (summary["generated"], summary["baselines"], summary["failed"]) == (1, 1, 1)
    assert [e["field"] for e in summary["errors"]] == ["styles"]
    s = CreativeStore(tmp_path / "s", readonly=True)
    assert [r.style for r in s.creatives()] == [ORIGINAL]
    s.close()


def test_a_cut_outs_drop_shadow_is_kept_whole_or_not_at_all():
    """A cut-out on white with its own soft shadow well below it: kept where the canvas shows all of
    it, left out where the canvas would cut it off (a smudge along the edge)."""
    h, w = 400, 300
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[60:260, 90:210] = (30, 60, 200, 255)  # the product
    rgba[330:350, 80:220, 3] = 60  # its shadow, detached (low alpha: not the product's mask)
    from backdrop.imaging.mask import product_mask

    alpha = product_mask(rgba)
    assert photo_fill(rgba, alpha) == (CUTOUT_FILL, "cutout")
    for name in ("story", "landscape"):
        scene = layout(np.ascontiguousarray(rgba[..., :3]), alpha, PLACEMENTS[name])
        canvas = composite(plain_background(rgba, scene, CUTOUT_FILL, alpha), scene)
        assert exact_region_matches(canvas, scene)
        below = canvas[scene.box[3] + 3 :]  # everything under the product (its anti-aliased edge aside)
        shadow = (below < 250).any(axis=2)
        if name == "story":  # room below: the photo's shadow, whole
            assert shadow.any() and not shadow[-1].any()
        else:  # the landscape's ground line leaves no room: no shadow, no smudge
            assert not shadow.any()
