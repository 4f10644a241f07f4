import shutil

import numpy as np
import pytest

from backdrop.cli import DEMO_DIR
from backdrop.creative.catalog import load_catalog
from backdrop.creative.local import planned_count, run_local
from backdrop.creative.pipeline import CreativeMaker, PipelineConfig, derive_seed
from backdrop.creative.store import ORIGINAL, CreativeStore
from backdrop.imaging.layout import load_placements
from backdrop.styles import StyleLibrary

PLACEMENTS = load_placements()


@pytest.fixture(scope="module")
def products():
    return load_catalog(DEMO_DIR / "products.csv").products


def _config(names=("square",), **kw):
    return PipelineConfig(placements=tuple(PLACEMENTS[n] for n in names), library=StyleLibrary.load(), **kw)


def test_every_creative_keeps_the_product_pixels_exact_on_disk(tmp_path, products):
    product = next(p for p in products if p.product_id == "dry-sunglasses")  # translucent lenses
    config = _config(tuple(PLACEMENTS), max_styles=2)
    maker = CreativeMaker(config, CreativeStore(tmp_path / "s"))
    results = maker.make(product)
    # two styles and the baseline (the catalog photo on the canvas) on every placement
    assert [r.status for r in results] == ["generated"] * (3 * len(PLACEMENTS))
    specs = maker.plan_originals(product) + maker.plan(product)
    prepared = {p.spec.key: p.scene for p in maker.prepare(product, specs)}
    for r in results:
        rec = maker.store.get(r.key)
        img = maker.store.read_image(rec)  # decoded from the PNG file
        scene = prepared[r.key]
        assert img.shape == (scene.height, scene.width, 3)
        x0, y0, x1, y1 = scene.box
        solid = scene.product_alpha == 255
        assert solid.sum() > 1000
        assert np.array_equal(img[y0:y1, x0:x1][solid], scene.product_rgb[solid])
        assert rec.metrics["exact"] is True
        assert rec.params["box"] == list(scene.box)
        assert "{" not in rec.prompt and (rec.prompt or rec.style == ORIGINAL)


def test_same_inputs_same_bytes_and_seed_changes_keys(tmp_path, products):
    product = products[0]
    a = CreativeMaker(_config(max_styles=1), CreativeStore(tmp_path / "a"))
    b = CreativeMaker(_config(max_styles=1), CreativeStore(tmp_path / "b"))
    c = CreativeMaker(_config(max_styles=1, seed=1), CreativeStore(tmp_path / "c"))
    [oa, ra], [ob, rb], [oc, rc] = a.make(product), b.make(product), c.make(product)
    assert ra.key == rb.key != rc.key
    assert oa.style == ORIGINAL and oa.key == ob.key == oc.key  # the baseline has no seed
    assert a.store.read_bytes(a.store.get(ra.key)) == b.store.read_bytes(b.store.get(rb.key))
    assert derive_seed(0, "p", "s", "square") != derive_seed(0, "p", "s", "story")


def test_rerun_skips_everything_and_lost_work_is_redone(tmp_path, products):
    few = products[:3]
    config = _config(("square", "story"), max_styles=2)
    total = planned_count(few, config)
    first = run_local(few, config, tmp_path / "s", workers=2, progress=False)
    assert (first.generated, first.skipped, first.failed) == (total, 0, 0)
    again = run_local(few, config, tmp_path / "s", workers=1, progress=False)
    assert (again.generated, again.skipped, again.failed) == (0, total, 0)
    # a crash can leave a file without its index row, or lose a file: both are redone
    store = CreativeStore(tmp_path / "s")
    recs = store.creatives()
    (store.root / recs[0].path).unlink()
    with store._db() as db:
        db.execute("DELETE FROM creatives WHERE key=?", (recs[1].key,))
    third = run_local(few, config, tmp_path / "s", workers=1, progress=False)
    assert (third.generated, third.skipped) == (2, total - 2)
    assert len(CreativeStore(tmp_path / "s")) == total


def test_a_product_with_a_broken_image_fails_alone(tmp_path, products):
    broken_img = tmp_path / "broken.png"
    good = products[0]
    shutil.copy(good.image_path, broken_img)
    data = broken_img.read_bytes()
    broken_img.write_bytes(data[: len(data) // 3])  # truncated after the catalog was validated
    from dataclasses import replace

    broken = replace(good, product_id="broken", image_path=broken_img, source_row=9)
    config = _config(max_styles=1)
    summary = run_local([broken, good], config, tmp_path / "s", workers=1, progress=False)
    assert (summary.generated, summary.failed) == (2, 1)  # the good one's creative and its baseline
    [err] = summary.errors
    assert (err.row, err.field) == (9, "image")
    assert "broken.png" in err.reason


def test_styles_filter_and_unknown_category_falls_back_to_default(tmp_path, products):
    from dataclasses import replace

    # (no product_type either: "Juice" would lead to Food & Drink by keyword)
    odd = replace(products[0], product_id="odd", category_path=("Garden", "Hoses"), product_type="")
    config = _config(max_styles=None)
    maker = CreativeMaker(config, CreativeStore(tmp_path / "s"))
    default_names = [s.name for s in config.library.for_category("default")]
    assert [s.style.name for s in maker.plan(odd)] == default_names
    only = _config(styles=(default_names[0],))
    assert [s.style.name for s in CreativeMaker(only, maker.store).plan(odd)] == [default_names[0]]
