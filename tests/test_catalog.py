import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from backdrop.creative.catalog import load_catalog, parse_category
from backdrop.errors import CatalogError
from conftest import SAMPLE_CATALOG as SAMPLE


def _png(path: Path, size=(64, 48), color=(30, 90, 250)) -> Path:
    a = np.zeros((size[1], size[0], 4), np.uint8)
    a[8:-8, 8:-8] = (*color, 255)
    Image.fromarray(a, "RGBA").save(path)
    return path


@pytest.fixture
def images(tmp_path):
    (tmp_path / "img").mkdir()
    good = _png(tmp_path / "img" / "good.png")
    (tmp_path / "img" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (tmp_path / "img" / "notes.txt").write_text("hello")
    return tmp_path, good


def test_sample_catalog_loads_every_row():
    result = load_catalog(SAMPLE / "products.csv")
    assert result.errors == []
    assert len(result.products) == 40
    juice = next(p for p in result.products if p.product_id == "apple-juice")
    assert juice.category_path == ("Groceries", "Juices")
    assert juice.category == "Juices"
    assert juice.product_type == "Juice"
    assert juice.fields()["brand"] == "Frutello"
    assert juice.fields()["flavor"] == "Apple"
    assert juice.image_path.is_file()
    assert juice.source_row == 2


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_go_on(images):
    tmp, good = images
    csv_text = (
        "product_id,title,category,image,attributes,description\n"  # line 1
        'p1,Good,Apparel > Sneakers,img/good.png,"{""Material"": ""Canvas""}",ok\n'  # 2
        "p2,Missing image,Apparel,img/nope.png,,\n"  # 3
        "p3,Corrupt,Apparel,img/corrupt.png,,\n"  # 4
        "p1,Duplicate,Apparel,img/good.png,,\n"  # 5
        "p4,,Apparel,img/good.png,,\n"  # 6
        "p5,Bad json,Apparel,img/good.png,{not json},\n"  # 7
        "p6,Multi\n"  # 8 (quoted newline below starts on line 9)
        'p7,"Two\nlines",Home,img/good.png,,"desc"\n'  # 9-10
        "p8,Text file,Home,img/notes.txt,,\n"  # 11
        "p9,Remote,Home,https://cdn.example.com/x.png,,\n"  # 12
        'p10,Not an object,Home,img/good.png,"[1,2]",\n'  # 13
        ",No id,Home,img/good.png,,\n"  # 14
        "p11,No category,,img/good.png,,\n"  # 15
        f"p12,Absolute,Home,{good},,\n"  # 16
        f"p13,URI,Home,file://{good},,\n"  # 17
    )
    path = tmp / "catalog.csv"
    path.write_text(csv_text)
    result = load_catalog(path)
    ok = {p.product_id for p in result.products}
    assert ok == {"p1", "p7", "p12", "p13"}
    errs = {(e.row, e.field) for e in result.errors}
    assert errs == {
        (3, "image"),
        (4, "image"),
        (5, "product_id"),
        (6, "title"),
        (7, "attributes"),
        (8, "row"),
        (11, "image"),
        (12, "image"),
        (13, "attributes"),
        (14, "product_id"),
        (15, "category"),
    }
    by_row = {e.row: e for e in result.errors}
    assert "file not found" in by_row[3].reason
    assert "first on row 2" in by_row[5].reason
    assert "https://" in by_row[12].reason
    line = str(by_row[7])
    assert line.startswith(f"{path}:7: attributes: invalid JSON")
    p1 = next(p for p in result.products if p.product_id == "p1")
    assert p1.category_path == ("Apparel", "Sneakers")
    assert p1.fields()["material"] == "Canvas"
    p7 = next(p for p in result.products if p.product_id == "p7")
    assert p7.source_row == 9 and p7.title == "Two lines"  # a quoted multi-line value, whitespace collapsed


def test_jsonl_and_parquet(images):
    tmp, _good = images
    rows = [
        {"product_id": "a", "title": "A", "category": "Home > Mugs", "image": "img/good.png", "attributes": {"Color": "Blue"}},
        {"product_id": "b", "title": "B", "category": "Home", "image": "img/missing.png"},
    ]
    jl = tmp / "cat.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    result = load_catalog(jl)
    assert [p.product_id for p in result.products] == ["a"]
    assert result.products[0].fields()["color"] == "Blue"
    assert {(e.row, e.field) for e in result.errors} == {(2, "image"), (3, "row")}

    pq_path = tmp / "cat.parquet"
    table = pa.Table.from_pylist([{**r, "attributes": json.dumps(r.get("attributes", {}))} for r in rows])
    pq.write_table(table, pq_path)
    result = load_catalog(pq_path)
    assert [p.product_id for p in result.products] == ["a"]
    assert [(e.row, e.field) for e in result.errors] == [(3, "image")]


def test_whole_file_problems_raise(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(CatalogError, match="unsupported catalog format"):
        load_catalog(tmp_path / "x.xlsx")
    (tmp_path / "h.csv").write_text("id,name\n1,2\n")
    with pytest.raises(CatalogError, match="header lacks required column"):
        load_catalog(tmp_path / "h.csv")


def test_parse_category():
    assert parse_category("Apparel > Shirts > T-shirts") == ("Apparel", "Shirts", "T-shirts")
    assert parse_category("Home/Kitchen") == ("Home", "Kitchen")
    assert parse_category("Juices") == ("Juices",)
