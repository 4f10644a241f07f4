"""Product feeds as retailers send them to Google Merchant Center and Meta: TSV, CSV, or RSS/Atom XML
with the ``g:`` namespace, plain or gzip-compressed, told apart by their content, not their name.

A feed row becomes the record :func:`backdrop.creative.catalog.load_catalog` checks like any
catalog row: ``id`` -> ``product_id``, ``image_link`` -> ``image`` (an https URL, downloaded by
:mod:`backdrop.creative.fetch`), ``product_type`` -> the category path (else the path of
``google_product_category`` in Google's taxonomy), and every other column kept as an attribute
(``link``, ``price``, ``material``, ``gender``, ``additional_image_link``...).

>>> feed_record({"id": "SKU-1", "title": "Tee", "image link": "https://x/1.jpg", "google_product_category": "212", "price": "9.99 USD"})["category_path"]
'Apparel & Accessories > Clothing > Shirts & Tops'
"""

from __future__ import annotations

import codecs
import gzip
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import CatalogError, RowError
from ..styles.categories import taxonomy_path

GOOGLE_NS = "http://base.google.com/ns/1.0"
#: feed columns with a place of their own on a Product (the rest become attributes)
MAPPED = {"id", "title", "description", "image_link", "brand", "color", "product_type", "google_product_category"}
#: the columns that make a header a feed's rather than a plain catalog's
FEED_MARKERS = {"id", "image_link"}


def column(name: str) -> str:
    """A feed column's canonical name: ``"Image Link"``, ``"g:image_link"`` -> ``"image_link"``."""
    name = name.strip().lower()
    if name.startswith("g:"):
        name = name[2:]
    return "_".join(name.replace("-", " ").split())


def is_feed_header(header: list[str]) -> bool:
    return {column(h) for h in header} >= FEED_MARKERS


def feed_record(raw: dict[str, str]) -> dict:
    """A feed row (column -> value) as a catalog record; see the module docstring."""
    values: dict[str, str] = {}
    for key, value in raw.items():
        name = column(str(key))
        text = "" if value is None else str(value).strip()
        if name and (text or name not in values):
            values[name] = text
    product_type = values.get("product_type", "")
    if "," in product_type and ">" in product_type:  # several product_type values: the first
        product_type = product_type.split(",", 1)[0].strip()
    google = values.get("google_product_category", "")
    category = product_type or (taxonomy_path(google) or "" if google else "")
    return {
        "product_id": values.get("id", ""),
        "title": values.get("title", ""),
        "description": values.get("description", ""),
        "image": values.get("image_link", ""),
        "brand": values.get("brand", ""),
        "color": values.get("color", ""),
        "product_type": product_type,
        "google_product_category": google,
        "category_path": category,
        "price": values.get("price", ""),
        "sale_price": values.get("sale_price", ""),
        "attributes": {k: v for k, v in values.items() if k not in MAPPED and v},
        # why the category is missing, for the row error: neither column, or an unknown taxonomy value
        "_category_hint": (
            f"google_product_category '{google}' is not in Google's product taxonomy; give product_type"
            if google and not category
            else "missing value: a feed row needs product_type or google_product_category"
        ),
    }


def open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it is gzip (by its magic number, whatever its name)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except OSError as e:
        raise CatalogError(f"{path}: cannot open: {e.strerror}") from e
    if f.read(2) == b"\x1f\x8b":
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]  # GzipFile is a binary IO
    f.seek(0)
    return f


def sniff(path: Path) -> str:
    """``"xml"``, ``"tsv"`` or ``"csv"``: what the (gunzipped) content is."""
    with open_bytes(path) as f:
        try:
            head = f.read(64 * 1024)
        except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
            raise CatalogError(f"{path}: cannot read: {e}") from e
    text = head.decode("utf-8", errors="replace").lstrip(codecs.BOM_UTF8.decode() + " \t\r\n")
    if text.startswith("<"):
        return "xml"
    first = text.split("\n", 1)[0]
    return "tsv" if first.count("\t") > first.count(",") else "csv"


def open_text(path: Path) -> IO[str]:
    """The (gunzipped) file as UTF-8 text, a BOM dropped, for the CSV reader."""
    return io.TextIOWrapper(open_bytes(path), encoding="utf-8-sig", newline="")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _item_values(item: ET.Element) -> dict[str, str]:
    """An item's fields; repeated ones (``additional_image_link``, ``product_type``) joined with commas,
    nested ones (``g:shipping``) as their parts joined with colons, as Merchant Center's text format does."""
    out: dict[str, list[str]] = {}
    for child in item:
        name = _local(child.tag)
        if len(child):
            value = ":".join((c.text or "").strip() for c in child)
        elif name == "link" and child.get("href"):  # Atom
            value = child.get("href", "")
        else:
            value = (child.text or "").strip()
        out.setdefault(name, []).append(value)
    return {k: ",".join(v for v in vs if v) for k, vs in out.items()}


def read_xml(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    """Every ``<item>`` (RSS 2.0) or ``<entry>`` (Atom) of the feed, numbered from 1, as a catalog record."""
    index = 0
    with open_bytes(path) as f:
        try:
            for _, elem in ET.iterparse(f, events=("end",)):
                if _local(elem.tag) not in ("item", "entry"):
                    continue
                index += 1
                values = _item_values(elem)
                elem.clear()  # a catalog feed can be large: keep only the item being read
                record = feed_record(values)
                record["_where"] = f"item {index}" + (f" (id {record['product_id']})" if record["product_id"] else "")
                yield index, record
        except ET.ParseError as e:
            line, col = e.position
            where = f"after item {index}" if index else "before the first item"
            raise CatalogError(f"{path}:{line}:{col}: not well-formed XML ({e}); {where}") from None
        except (OSError, EOFError) as e:
            raise CatalogError(f"{path}: cannot read: {e}") from e
    if index == 0:
        raise CatalogError(f"{path}: an XML file without <item> or <entry> elements: not a product feed")
