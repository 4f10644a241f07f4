"""Product feeds (Google Merchant Center, Meta) with image URLs, against a local HTTP server that
misbehaves the ways real image hosts do."""

import gzip
import io
import json
from xml.sax.saxutils import escape

import pytest
from PIL import Image

from backdrop.cli import main
from backdrop.creative.catalog import load_catalog
from backdrop.creative.feeds import sniff
from backdrop.creative.fetch import ImageFetcher
from feedserver import ImageServer


def _jpeg(colour, size=(160, 200)) -> bytes:
    im = Image.new("RGB", size, (255, 255, 255))
    im.paste(Image.new("RGB", (size[0] // 2, size[1] // 2), colour), (size[0] // 4, size[1] // 4))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    return buf.getvalue()


IMAGES = {"tee.jpg": _jpeg((200, 30, 30)), "bag.jpg": _jpeg((30, 60, 200)), "mug.jpg": _jpeg((20, 140, 60)), "alt.jpg": _jpeg((90, 90, 90))}


@pytest.fixture
def server():
    with ImageServer(IMAGES, slow_s=2.0) as s:
        yield s


def _fetcher(tmp_path, sleeps=None, **kw):
    kw.setdefault("retries", 2)
    return ImageFetcher(tmp_path / "cache", sleep=(sleeps.append if sleeps is not None else lambda s: None), **kw)


# -- the fetcher -------------------------------------------------------------------------------


def test_download_then_revalidate_sends_no_body_twice(tmp_path, server):
    with _fetcher(tmp_path) as f:
        first = f.fetch(server.url + "/img/tee.jpg")
    assert first.outcome == "downloaded" and first.path.read_bytes() == IMAGES["tee.jpg"]
    with _fetcher(tmp_path) as f:  # a rerun: a fresh fetcher over the same cache
        again = f.fetch(server.url + "/img/tee.jpg")
        assert f.stats.to_dict() | {"bytes": 0} == {"downloaded": 0, "revalidated": 1, "failed": 0, "retries": 0, "bytes": 0}
    assert again.outcome == "revalidated" and again.status == 304 and again.path == first.path
    assert server.bodies["tee.jpg"] == 1 and server.hits["/img/tee.jpg"] == 2


def test_a_changed_image_is_downloaded_again(tmp_path, server):
    with _fetcher(tmp_path) as f:
        f.fetch(server.url + "/img/tee.jpg")
    server.images["tee.jpg"] = IMAGES["bag.jpg"]  # the retailer replaced the photo: a new ETag
    with _fetcher(tmp_path) as f:
        got = f.fetch(server.url + "/img/tee.jpg")
    assert got.outcome == "downloaded" and got.path.read_bytes() == IMAGES["bag.jpg"]
    server.images["tee.jpg"] = IMAGES["tee.jpg"]


@pytest.mark.parametrize(
    ("path", "status", "reason", "hits"),
    [
        ("/missing", 404, "HTTP 404 Not Found", 1),  # not retried
        ("/loop", None, "more than 5 redirects", 6),
        ("/big", 200, "too large: over 1,048,576 bytes", 1),
        ("/big-declared", 200, "too large: 1,073,741,824 bytes (limit 1,048,576)", 1),
        ("/html", 200, "content-type 'text/html' is not an image (HTTP 200)", 1),
        ("/limited", 429, "HTTP 429 Too Many Requests; Retry-After 3600 s is past the 60 s limit", 1),
    ],
)
def test_failures_name_the_reason_and_status(tmp_path, server, path, status, reason, hits):
    with _fetcher(tmp_path, max_bytes=1 << 20) as f:
        got = f.fetch(server.url + path)
        assert f.stats.failed == 1
    assert got.outcome == "failed" and got.path is None
    assert got.status == status and got.error == reason
    assert server.hits[path] == hits


def test_slow_servers_time_out_and_are_retried(tmp_path, server):
    sleeps: list[float] = []
    with _fetcher(tmp_path, sleeps, timeout_s=0.3, retries=1) as f:
        got = f.fetch(server.url + "/slow")
    assert got.outcome == "failed" and got.error == "timed out (ReadTimeout, 0.3 s per read) (after 2 attempts)"
    assert len(sleeps) == 1 and server.hits["/slow"] == 2
    with _fetcher(tmp_path, timeout_s=5, total_timeout_s=0.5, retries=0) as f:  # a body that trickles in forever
        got = f.fetch(server.url + "/drip")
    assert got.error == "too slow: not complete within 0.5 s"


def test_flaky_503_is_retried_with_backoff_and_succeeds(tmp_path, server):
    sleeps: list[float] = []
    with _fetcher(tmp_path, sleeps, retries=3, backoff_s=0.5) as f:
        got = f.fetch(server.url + "/flaky/2/mug.jpg")
        assert f.stats.retries == 2
    assert got.outcome == "downloaded" and got.path.read_bytes() == IMAGES["mug.jpg"]
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 0.63 and 1.0 <= sleeps[1] <= 1.25  # exponential, with jitter
    with _fetcher(tmp_path, sleeps, retries=1) as f:
        got = f.fetch(server.url + "/flaky/5/mug.jpg")
    assert got.error == "HTTP 503 Service Unavailable (after 2 attempts)" and got.status == 503


def test_bounded_redirects_are_followed(tmp_path, server):
    with _fetcher(tmp_path) as f:
        assert f.fetch(server.url + "/hop/3/bag.jpg").outcome == "downloaded"
        assert f.fetch(server.url + "/hop/9/bag.jpg").error == "more than 5 redirects"


def test_connection_refused_names_the_url_reason(tmp_path):
    with _fetcher(tmp_path, retries=1) as f:
        got = f.fetch("http://127.0.0.1:9/x.jpg")
    assert got.outcome == "failed" and got.error.startswith("connection failed:") and got.error.endswith("(after 2 attempts)")


# -- feeds -------------------------------------------------------------------------------------

GMC_HEADER = [
    "id",
    "title",
    "description",
    "link",
    "image_link",
    "additional_image_link",
    "google_product_category",
    "product_type",
    "brand",
    "color",
    "material",
    "gender",
    "price",
    "sale_price",
    "custom_label_0",
]


def _gmc_tsv(url: str) -> str:
    rows = [
        GMC_HEADER,
        [
            "TEE-1",
            "Logan HeatTec&reg; Tee",
            "A soft tee",
            "https://shop.example/tee",
            f"{url}/img/tee.jpg",
            f"{url}/img/alt.jpg,{url}/img/bag.jpg",
            "212",
            "Men > Tops > Tees",
            "Luma",
            "Red",
            "Cotton",
            "male",
            "29.00 USD",
            "",
            "summer",
        ],
        [
            "BAG-1",
            "Voyage Yoga Bag",
            "",
            "https://shop.example/bag",
            f"{url}/img/bag.jpg",
            "",
            "Apparel & Accessories > Handbags, Wallets & Cases > Handbags",
            "",
            "Luma",
            "Blue",
            "Nylon",
            "",
            "32.00 USD",
            "28.00 USD",
            "",
        ],
        [
            "MUG-1",
            "Missing Mug",
            "",
            "https://shop.example/mug",
            f"{url}/missing",
            "",
            "",
            "Home > Kitchen > Mugs",
            "",
            "",
            "",
            "",
            "8.00 USD",
            "",
            "",
        ],
        ["HTML-1", "Moved Page", "", "https://shop.example/p", f"{url}/html", "", "", "Home > Decor", "", "", "", "", "8.00 USD", "", ""],
        ["NOCAT-1", "No Category", "", "https://shop.example/n", f"{url}/img/mug.jpg", "", "", "", "", "", "", "", "8.00 USD", "", ""],
        [
            "BADGPC-1",
            "Unknown Category",
            "",
            "https://shop.example/n",
            f"{url}/img/mug.jpg",
            "",
            "99999999",
            "",
            "",
            "",
            "",
            "",
            "8.00 USD",
            "",
            "",
        ],
    ]
    return "\n".join("\t".join(r) for r in rows) + "\n"


def _meta_xml(url: str) -> str:
    items = [
        ("SHIRT-9", "Polo Shirt", f"{url}/img/tee.jpg", "Apparel & Accessories > Clothing > Shirts & Tops", "Clothing > Polos"),
        ("BAG-9", "Tote", f"{url}/flaky/1/bag.jpg", "5181", ""),
        ("", "No Id", f"{url}/img/mug.jpg", "Home > Kitchen", ""),
        ("MUG-9", "Mug", f"{url}/missing", "", "Home > Kitchen > Mugs"),
    ]
    body = "".join(
        f"""<item><g:id>{i}</g:id><title>{t}</title><g:description>About {t}</g:description><link>https://shop.example/{i}</link>
        <g:image_link>{img}</g:image_link><g:additional_image_link>{url}/img/alt.jpg</g:additional_image_link>
        <g:google_product_category>{escape(gpc)}</g:google_product_category><g:product_type>{escape(pt)}</g:product_type>
        <g:brand>Luma</g:brand><g:price>19.00 USD</g:price><g:shipping><g:country>US</g:country><g:price>4.99 USD</g:price></g:shipping></item>"""
        for i, t, img, gpc, pt in items
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel><title>Shop</title>{body}</channel></rss>\n'


def test_a_merchant_center_tsv_feed_with_image_urls(tmp_path, server):
    feed = tmp_path / "feed.txt"  # Merchant Center's usual name; the content says TSV
    feed.write_text(_gmc_tsv(server.url))
    assert sniff(feed) == "tsv"
    with _fetcher(tmp_path) as f:
        result = load_catalog(feed, fetcher=f)
        assert f.stats.downloaded == 3 and f.stats.failed == 2
    by_id = {p.product_id: p for p in result.products}
    assert sorted(by_id) == ["BAG-1", "TEE-1"]
    tee = by_id["TEE-1"]
    assert tee.title == "Logan HeatTec® Tee" and tee.category_path == ("Men", "Tops", "Tees")
    assert tee.google_category == "212" and tee.image_url == f"{server.url}/img/tee.jpg"
    assert tee.image_path.read_bytes() == IMAGES["tee.jpg"]
    assert tee.attributes["material"] == "Cotton" and tee.attributes["custom_label_0"] == "summer"
    assert tee.attributes["additional_image_link"] == f"{server.url}/img/alt.jpg,{server.url}/img/bag.jpg"
    assert tee.fields()["material"] == "Cotton" and tee.fields()["price"] == "29.00 USD"
    # no product_type: the category is the Google taxonomy path, split on '>' only
    assert by_id["BAG-1"].category_path == ("Apparel & Accessories", "Handbags, Wallets & Cases", "Handbags")
    errors = {e.row: str(e) for e in result.errors}
    assert errors[4] == f"{feed}:4: image_link: {server.url}/missing: HTTP 404 Not Found"
    assert errors[5] == f"{feed}:5: image_link: {server.url}/html: content-type 'text/html' is not an image (HTTP 200)"
    assert errors[6] == f"{feed}:6: product_type: missing value: a feed row needs product_type or google_product_category"
    assert errors[7].endswith("google_product_category '99999999' is not in Google's product taxonomy; give product_type")


def test_a_meta_xml_feed_gzipped(tmp_path, server):
    feed = tmp_path / "catalog.xml.gz"
    feed.write_bytes(gzip.compress(_meta_xml(server.url).encode()))
    assert sniff(feed) == "xml"
    with _fetcher(tmp_path) as f:
        result = load_catalog(feed, fetcher=f)
        assert f.stats.retries == 1  # the flaky host answered on the second try
    by_id = {p.product_id: p for p in result.products}
    assert sorted(by_id) == ["BAG-9", "SHIRT-9"]
    assert by_id["SHIRT-9"].category_path == ("Clothing", "Polos")  # product_type first
    assert by_id["BAG-9"].category_path == ("Luggage & Bags",)  # the taxonomy id 5181, as its path
    assert (
        by_id["SHIRT-9"].attributes["shipping"] == "US:4.99 USD" and by_id["SHIRT-9"].attributes["link"] == "https://shop.example/SHIRT-9"
    )
    assert by_id["SHIRT-9"].description == "About Polo Shirt"
    errors = [str(e) for e in result.errors]
    assert errors == [
        f"{feed}:item 3: id: missing value (required)",
        f"{feed}:item 4 (id MUG-9): image_link: {server.url}/missing: HTTP 404 Not Found",
    ]
    assert result.errors[1].to_dict() == {
        "file": str(feed),
        "row": 4,
        "field": "image_link",
        "reason": f"{server.url}/missing: HTTP 404 Not Found",
        "where": "item 4 (id MUG-9)",
    }


def test_feed_formats_are_told_by_content(tmp_path, server, capsys):
    tsv = _gmc_tsv(server.url)
    csv_text = "\n".join(",".join(f'"{v}"' for v in line.split("\t")) for line in tsv.splitlines()) + "\n"
    cases = {
        "a.csv": csv_text.encode(),
        "b.gz": gzip.compress(csv_text.encode()),
        "c.txt": _meta_xml(server.url).encode(),
        "d.tsv": tsv.encode(),
    }
    with _fetcher(tmp_path) as f:
        for name, data in cases.items():
            (tmp_path / name).write_bytes(data)
            got = load_catalog(tmp_path / name, fetcher=f)
            assert {p.product_id for p in got.products} >= {"TEE-1"} or {p.product_id for p in got.products} >= {"SHIRT-9"}, name
        assert f.stats.downloaded == 4  # every URL once; the later files revalidate
    broken = tmp_path / "broken.xml"
    broken.write_text(_meta_xml(server.url)[:-40])
    from backdrop.errors import CatalogError

    with pytest.raises(CatalogError, match=r"broken.xml:\d+:\d+: not well-formed XML .*; after item 3"):
        load_catalog(broken, check_images=False)
    assert main(["generate", str(broken), "--out", str(tmp_path / "s"), "--no-progress"]) == 2  # a file error, not a row error
    (tmp_path / "t.gz").write_bytes(gzip.compress(tsv.encode())[:-30])
    assert "not well-formed XML" in capsys.readouterr().err
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "t.gz", check_images=False)


def test_generate_from_a_feed_then_rerun_downloads_and_generates_nothing(tmp_path, server, capsys, monkeypatch):
    monkeypatch.setenv("BACKDROP_IMAGE_CACHE", str(tmp_path / "cache"))
    feed = tmp_path / "feed.tsv"
    feed.write_text(_gmc_tsv(server.url))
    args = [
        "generate",
        str(feed),
        "--out",
        str(tmp_path / "store"),
        "--placements",
        "square",
        "--styles",
        "studio-sweep",
        "--workers",
        "1",
        "--no-progress",
        "--json",
    ]
    code = main(args)
    first = json.loads(capsys.readouterr().out)
    assert code == 0 and first["generated"] == 2 + 2 and len(first["errors"]) == 4  # TEE-1 and BAG-1: a creative and the baseline each
    assert first["images"] == {"downloaded": 3, "revalidated": 0, "failed": 2, "retries": 0, "bytes": first["images"]["bytes"]}
    assert {e["field"] for e in first["errors"]} == {"image_link", "product_type"}
    bodies = sum(server.bodies.values())
    code = main(args)
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["generated"] == 0 and again["skipped"] == 2 + 2
    assert again["images"]["downloaded"] == 0 and again["images"]["revalidated"] == 3
    assert sum(server.bodies.values()) == bodies  # nothing unchanged was downloaded again


# -- export ------------------------------------------------------------------------------------


@pytest.fixture
def fed_store(tmp_path, server, monkeypatch):
    """A store generated from the Merchant Center feed: TEE-1 and BAG-1, every style, square only."""
    monkeypatch.setenv("BACKDROP_IMAGE_CACHE", str(tmp_path / "cache"))
    feed = tmp_path / "feed.tsv"
    feed.write_text(_gmc_tsv(server.url))
    store = tmp_path / "store"
    assert main(["generate", str(feed), "--out", str(store), "--placements", "square", "--workers", "2", "--no-progress", "--json"]) == 0
    return feed, store


def _read_tsv(path, delimiter="\t"):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def test_export_feed_best_then_all_resolving_through_the_service(tmp_path, server, fed_store, capsys):
    from fastapi.testclient import TestClient

    from backdrop.creative.store import ORIGINAL, CreativeStore
    from backdrop.serving.app import create_app
    from backdrop.serving.settings import ServiceSettings
    from backdrop.styles import StyleLibrary

    feed, store = fed_store
    capsys.readouterr()
    out = tmp_path / "supp.tsv"
    base = "https://creatives.example.com"
    assert main(["export", "feed", "--store", str(store), "--catalog", str(feed), "--base-url", base, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 2
    # the feed's rows without a creative (their image failed at generate time) are named, not silently dropped
    assert summary["skipped"] == [{"id": i, "reason": "no creative at placement 'square' in the store"} for i in ("MUG-1", "HTML-1")]
    rows = {r["id"]: r for r in _read_tsv(out)}
    assert sorted(rows) == ["BAG-1", "TEE-1"]
    lib = StyleLibrary.load()
    db = CreativeStore(store, readonly=True)
    for pid, row in rows.items():
        first_style = next(
            s.name
            for s in lib.match(
                ("Men", "Tops", "Tees") if pid == "TEE-1" else ("Apparel & Accessories", "Handbags, Wallets & Cases", "Handbags")
            ).styles
            if db.creatives(product_id=pid, style=s.name)
        )
        [rec] = db.creatives(product_id=pid, style=first_style, placement="square")
        assert row["image_link"] == f"{base}/v1/creatives/{rec.key}"  # the library's first style: no results given
        assert row["additional_image_link"] == f"{server.url}/img/{'tee' if pid == 'TEE-1' else 'bag'}.jpg"  # the catalog photo kept
    assert summary["chosen"]["TEE-1"]["why"] == "library order (no measured results)"

    # --pick all: the other creatives as additional images, at most 10 for Google
    assert (
        main(["export", "feed", "--store", str(store), "--catalog", str(feed), "--base-url", base, "--pick", "all", "--out", str(out)]) == 0
    )
    rows = {r["id"]: r for r in _read_tsv(out)}
    extra = rows["TEE-1"]["additional_image_link"].split(",")
    tee = db.creatives(product_id="TEE-1", placement="square")
    # the generated ones but the chosen, and the catalog photo (not its fitted rendition, style original)
    generated = [r for r in tee if r.style != ORIGINAL]
    assert len(generated) == len(tee) - 1 and len(extra) == min(10, len(generated)) and len(set(extra)) == len(extra)
    [original] = [r for r in tee if r.style == ORIGINAL]
    assert f"{base}/v1/creatives/{original.key}" not in extra
    # every URL resolves through the decision service (base URL = the service's)
    app = create_app(ServiceSettings(store=store))
    with TestClient(app) as client:
        for row in rows.values():
            for url in [row["image_link"], *row["additional_image_link"].split(",")]:
                if not url.startswith(base):
                    continue
                r = client.get(url.removeprefix(base))
                key = url.rsplit("/", 1)[1]
                assert r.status_code == 200 and r.headers["content-type"] == "image/png"
                assert r.content == db.read_bytes(db.get(key))
    db.close()


def test_export_feed_picks_the_measured_best_style(tmp_path, fed_store, capsys):
    import time
    import uuid

    from backdrop.creative.store import CreativeStore
    from backdrop.serving.eventlog import open_event_log
    from backdrop.serving.records import DecisionRecord

    feed, store = fed_store
    db = CreativeStore(store, readonly=True)
    tee = db.creatives(product_id="TEE-1", placement="square")
    winner = tee[-1].style  # not the library's first: the measured CTR must override the default order
    log = open_event_log(str(tmp_path / "events.sqlite"))
    log.migrate()
    t0 = time.time() - 3600
    for i in range(400):
        rec = tee[i % len(tee)]
        d = log.log_decision(
            DecisionRecord(
                uuid.uuid4().hex,
                t0 + i,
                "TEE-1",
                "square",
                [r.style for r in tee],
                rec.style,
                1 / len(tee),
                "uniform",
                0,
                [1.0],
                creative_key=rec.key,
            )
        )
        if rec.style == winner and (i // len(tee)) % 2 == 0:  # every other time it is shown, whatever the number of styles
            log.log_reward(d.decision_id, 1.0, t0 + i + 1, t0 + i + 1, 600)
    log.close()
    out = tmp_path / "supp.csv"
    capsys.readouterr()
    assert (
        main(
            [
                "export",
                "feed",
                "--store",
                str(store),
                "--catalog",
                str(feed),
                "--base-url",
                "https://cdn.example",
                "--format",
                "meta",
                "--results",
                str(tmp_path / "events.sqlite"),
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["chosen"]["TEE-1"]["style"] == winner and summary["chosen"]["TEE-1"]["why"].startswith("highest measured CTR")
    assert summary["chosen"]["BAG-1"]["why"].startswith("highest measured CTR") or "library order" in summary["chosen"]["BAG-1"]["why"]
    rows = {r["id"]: r for r in _read_tsv(out, delimiter=",")}
    [chosen] = [r for r in tee if r.style == winner]
    assert rows["TEE-1"]["image_link"] == f"https://cdn.example/v1/creatives/{chosen.key}"
    db.close()


def test_export_feed_refuses_what_the_platform_would_reject(tmp_path, fed_store, capsys):
    from backdrop.creative.export import ExportRow, validate
    from backdrop.creative.store import CreativeStore

    feed, store = fed_store
    out = tmp_path / "supp.tsv"
    capsys.readouterr()
    long_base = "https://cdn.example/" + "x" * 2000
    assert main(["export", "feed", "--store", str(store), "--catalog", str(feed), "--base-url", long_base, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "image_link: URL of 2" in err and "Google Merchant Center takes at most 2000" in err and "nothing written" in err
    assert not out.exists()
    # --results naming no event log is an error, not an empty log that silently means "no results"
    assert (
        main(
            ["export", "feed", "--store", str(store), "--catalog", str(feed), "--base-url", "https://c.example", "--results", str(tmp_path)]
        )
        == 2
    )
    assert "no events.sqlite in this directory" in capsys.readouterr().err
    db = CreativeStore(store, readonly=True)
    rec = db.creatives(product_id="TEE-1")[0]
    url = f"https://c.example/v1/creatives/{rec.key}"
    webp = {rec.key: rec.__class__(**{**rec.__dict__, "format": "webp", "width": 400, "height": 400})}
    problems = validate([ExportRow("TEE-1", url, [url] * 21 + ["https://c.example/a b.jpg"])], "meta", webp, "https://c.example", "service")
    assert "TEE-1: additional_image_link: 22 images, Meta catalog takes at most 20" in problems
    assert any("a WEBP creative; Meta catalog takes JPEG, PNG" in p for p in problems)
    assert any("400x400 is under Meta catalog's 500 px minimum" in p for p in problems)
    assert any("must be ASCII without spaces" in p for p in problems)
    db.close()


def test_export_feed_never_picks_the_catalog_photos_own_rendition(small_store, tmp_path):
    """The ``original`` creative (the catalog photo fitted to the placement: the control arm) is no
    candidate for a feed's images, the best measured CTR notwithstanding: the feed carries the catalog
    photo itself. A product left with nothing else is skipped, and told why."""
    import shutil
    from contextlib import closing
    from pathlib import Path

    from backdrop.creative.export import build_supplemental, creative_url
    from backdrop.creative.review import set_review
    from backdrop.creative.store import ORIGINAL, CreativeStore

    demo = Path(__file__).resolve().parents[1] / "src" / "backdrop" / "data" / "demo" / "products.csv"
    base = "https://creatives.example.com"
    store = shutil.copytree(small_store, tmp_path / "store")
    products = load_catalog(demo, check_images=False).products
    with closing(CreativeStore(store)) as s:
        square = [r for r in s.creatives(placement="square") if not r.overlay]
        originals = {r.product_id: r for r in square if r.style == ORIGINAL}
        pids = sorted({r.product_id for r in square})
        assert sorted(originals) == pids and len(pids) >= 2  # generate stores one per product and placement
        winner, only_original = pids[:2]
        # the original has by far the best CTR of every product
        results = {(r.product_id, r.style): (5000, 1000.0 if r.style == ORIGINAL else 50.0 + i) for i, r in enumerate(square)}
        set_review(
            s,
            [r.key for r in s.creatives(product_id=only_original) if r.style != ORIGINAL],
            "rejected",
            reviewer="Ana",
            role="reviewer",
        )
        result = build_supplemental(s, products, base_url=base, pick="all", results=results)
    rows = {r.id: r for r in result.rows}
    urls = {u for r in result.rows for u in [r.image_link, *r.additional_image_link]}
    assert not urls & {creative_url(base, r) for r in originals.values()}
    assert rows[winner].chosen_style != ORIGINAL and rows[winner].why.startswith("highest measured CTR")
    assert only_original not in rows
    [reason] = [why for pid, why in result.skipped if pid == only_original]
    assert "rejected in review" in reason and "catalog photo" in reason, reason
