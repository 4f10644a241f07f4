"""A creative store on object storage: the files on a real S3 API (moto's server mode), the index
on PostgreSQL, written by several worker processes, resumed without generating anything twice."""

import json

import pytest

from backdrop.cli import main
from backdrop.creative.store import CreativeStore, StoreError
from backdrop.creative.store_check import verify_store
from feedserver import ImageServer
from test_feeds import IMAGES, _gmc_tsv


@pytest.fixture
def server():
    with ImageServer(IMAGES) as s:
        yield s


def _generate(feed, url, index, *options):
    """`backdrop generate FEED` into the object store ``url`` with its ``index``, quiet, with a JSON summary."""
    return ["generate", str(feed), "--out", url, "--index", index, *options, "--no-progress", "--json"]


def _objects(endpoint, bucket, prefix):
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def test_an_object_store_needs_an_index():
    with pytest.raises(StoreError, match="needs --index"):
        CreativeStore("s3://bucket/shop")


def test_generate_a_feed_into_s3_with_the_index_on_postgres(tmp_path, server, s3_endpoint, s3_bucket, pg_url, capsys, monkeypatch):
    monkeypatch.setenv("BACKDROP_IMAGE_CACHE", str(tmp_path / "cache"))
    feed = tmp_path / "feed.tsv"
    feed.write_text(_gmc_tsv(server.url))
    url = f"s3://{s3_bucket}/shop"
    args = _generate(feed, url, pg_url, "--placements", "square,story", "--workers", "2")
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["generated"] > 0 and first["failed"] == 0 and first["images"]["downloaded"] == 3

    objects = _objects(s3_endpoint, s3_bucket, "shop/")
    store = CreativeStore(url, index=pg_url, readonly=True)
    records = store.creatives()
    assert len(records) == first["generated"] == len(objects)
    for r in records:
        assert objects[f"shop/{r.path}"] == r.bytes  # every indexed creative is in the bucket, whole
    img = store.read_image(records[0])
    assert img.shape == (records[0].height, records[0].width, 3)
    store.close()
    report = verify_store(url, index=pg_url)
    assert report.ok and report.creatives == len(records)
    # the contact sheet of a bucket: thumbnails and full-size previews fetched from it
    assert main(["report", url, "--index", pg_url, "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    for r in records:
        assert f"report_files/thumbs/{r.key}.jpg" in page and f"report_files/full/{r.key}.jpg" in page
        assert (tmp_path / "report_files" / "full" / f"{r.key}.jpg").is_file()
    capsys.readouterr()

    # a rerun downloads nothing unchanged and generates nothing
    bodies = sum(server.bodies.values())
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["generated"] == 0 and again["skipped"] == first["generated"]
    assert again["images"]["downloaded"] == 0 and sum(server.bodies.values()) == bodies
    assert _objects(s3_endpoint, s3_bucket, "shop/") == objects

    # a lost object is found by verify, removed from the index by repair, and made again by generate
    import boto3

    lost = records[0]
    boto3.client("s3", endpoint_url=s3_endpoint).delete_object(Bucket=s3_bucket, Key=f"shop/{lost.path}")
    assert main(["store", "verify", url, "--index", pg_url, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["missing"] == [lost.key]
    assert main(["store", "repair", url, "--index", pg_url]) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["generated"] == 1
    assert _objects(s3_endpoint, s3_bucket, "shop/") == objects  # the same bytes at the same key


def test_a_store_on_fsspec_memory_with_an_sqlite_index(tmp_path):
    import numpy as np

    store = CreativeStore("memory://backdrop-test/store", index=tmp_path / "index.sqlite")
    img = np.full((40, 30, 3), 200, np.uint8)
    meta = dict(
        product_id="p",
        style="s",
        placement="square",
        generator="g",
        generator_version="1",
        seed=1,
        prompt="",
        negative_prompt="",
        params={},
        metrics={},
    )
    rec = store.put("ab" + "0" * 30, img, fmt="png", **meta)
    assert store.has(rec.key) and rec.path == f"creatives/ab/{rec.key}.png"
    assert (store.read_image(rec) == img).all()
    with pytest.raises(StoreError, match="no local folder"):
        _ = store.root
    store.close()


def test_feeds_to_s3_then_export_resolves_through_the_service(tmp_path, server, s3_endpoint, s3_bucket, pg_url, capsys, monkeypatch):
    """The issue's whole path: a Merchant Center TSV and a Meta XML feed with image URLs, generated into
    S3 with the index on PostgreSQL, a rerun that does nothing, and supplemental feeds whose URLs the
    decision service (serving from the bucket) answers with the stored bytes."""
    import csv
    import gzip

    import boto3
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from backdrop.serving.app import create_app
    from backdrop.serving.settings import ServiceSettings
    from test_feeds import _meta_xml

    monkeypatch.setenv("BACKDROP_IMAGE_CACHE", str(tmp_path / "cache"))
    url = f"s3://{s3_bucket}/shop"
    feeds = {"google": tmp_path / "gmc.txt", "meta": tmp_path / "meta.xml.gz"}
    feeds["google"].write_text(_gmc_tsv(server.url))
    feeds["meta"].write_bytes(gzip.compress(_meta_xml(server.url).encode()))
    made = 0
    for feed in feeds.values():
        args = _generate(feed, url, pg_url, "--placements", "square", "--workers", "2")
        assert main(args) == 0
        made += json.loads(capsys.readouterr().out)["generated"]
        assert main(args) == 0  # the rerun: nothing downloaded, nothing generated
        again = json.loads(capsys.readouterr().out)
        assert again["generated"] == 0 and again["images"]["downloaded"] == 0
    assert made == len(_objects(s3_endpoint, s3_bucket, "shop/"))

    base = "https://ads.example.com"
    settings = ServiceSettings(store=url, store_index=pg_url, db=str(tmp_path / "events.sqlite"), api_key=SecretStr("k" * 32))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        for platform, feed in feeds.items():
            out = tmp_path / f"supp-{platform}"
            cmd = ["export", "feed", "--store", url, "--store-index", pg_url, "--catalog", str(feed), "--base-url", base]
            assert main([*cmd, "--format", platform, "--pick", "all", "--out", str(out)]) == 0
            with open(out, newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t" if platform == "google" else ","))
            assert {r["id"] for r in rows} == ({"TEE-1", "BAG-1"} if platform == "google" else {"SHIRT-9", "BAG-9"})
            for row in rows:
                for link in [row["image_link"], *row["additional_image_link"].split(",")]:
                    if not link.startswith(base):
                        continue  # the catalog's own photo
                    r = client.get(link.removeprefix(base))
                    assert r.status_code == 200 and r.headers["content-type"] == "image/png", link
                    key = link.rsplit("/", 1)[1]
                    obj = s3.get_object(Bucket=s3_bucket, Key=f"shop/creatives/{key[:2]}/{key}.png")["Body"].read()
                    assert r.content == obj
        decided = client.post("/v1/decide", json={"item_id": "TEE-1", "placement": "square", "user": {"id": "u1", "features": {}}})
        assert decided.status_code == 200 and decided.json()["creative"]["url"].startswith("/v1/creatives/")

    # with a CDN in front of the bucket, the service answers its URLs instead
    cdn = ServiceSettings(store=url, store_index=pg_url, db=str(tmp_path / "events.sqlite"), public_base_url="https://cdn.example.com/shop")
    with TestClient(create_app(cdn)) as client:
        d = client.post("/v1/decide", json={"item_id": "TEE-1", "placement": "square", "user": {"id": "u2", "features": {}}}).json()
        key = d["creative"]["key"]
        assert d["creative"]["url"] == f"https://cdn.example.com/shop/creatives/{key[:2]}/{key}.png"


def test_a_remote_store_needs_its_index_and_event_log(tmp_path):
    from pydantic import ValidationError

    from backdrop.serving.settings import ServiceSettings

    with pytest.raises(ValidationError, match="needs store_index"):
        ServiceSettings(store="s3://b/p", db=str(tmp_path / "e.sqlite"))
    with pytest.raises(ValidationError, match="give db"):
        ServiceSettings(store="s3://b/p", store_index="postgresql://x/y")


def test_the_ray_runner_writes_into_s3_from_its_workers(tmp_path, server, s3_endpoint, s3_bucket, pg_url, capsys, monkeypatch):
    """Ray tasks and actors reopen the store by address (bucket + PostgreSQL index) wherever they run."""
    ray = pytest.importorskip("ray")
    # Ray's workers take the credentials from their node's environment: a Ray started by an earlier
    # test, before this session's AWS_* pointed at the moto server, would not have them
    ray.shutdown()
    monkeypatch.setenv("BACKDROP_IMAGE_CACHE", str(tmp_path / "cache"))
    feed = tmp_path / "feed.tsv"
    feed.write_text(_gmc_tsv(server.url))
    url = f"s3://{s3_bucket}/ray"
    args = _generate(feed, url, pg_url, "--placements", "square", "--styles", "studio-sweep,color-pop")
    assert main([*args, "--ray", "local"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["generated"] == 4 + 2 and out["failed"] == 0  # 2 styles and the baseline of 2 products
    store = CreativeStore(url, index=pg_url, readonly=True)
    objects = _objects(s3_endpoint, s3_bucket, "ray/")
    assert sorted(f"ray/{r.path}" for r in store.creatives()) == sorted(objects)
    store.close()
    ray.shutdown()
    assert main([*args, "--workers", "1"]) == 0  # the local runner agrees: nothing to do
    assert json.loads(capsys.readouterr().out)["skipped"] == 4 + 2
